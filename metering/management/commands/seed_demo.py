from django.core.management.base import BaseCommand, CommandError

from flexmeter.errors import FlexmeterError
from flexmeter.services import environment_get_or_create
from metering.demo_data import DEMO_DAYS, DEMO_EVENTS, DEMO_SEED, demo_seed
from metering.progress import ProgressBar


class Command(BaseCommand):
    help = (
        "Seed a realistic demo environment: the catalog examples (API calls, credits, storage, peak concurrent "
        "users, regional API requests, seats, unique active users, LLM tokens via CEL), a few dozen customers with "
        "varied billing anchors, ~100,000 events over the last 60 days with daily and weekly rhythms, and a few "
        "deliberately broken events for the debugger. Deterministic for a given --seed; safe to run again "
        "(existing features and customers are kept, events with the same ids are replaced, never added twice)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--environment", default="production", help="environment slug (created if missing)")
        parser.add_argument(
            "--events", type=int, default=DEMO_EVENTS, help=f"about how many events (default {DEMO_EVENTS:,})"
        )
        parser.add_argument("--days", type=int, default=DEMO_DAYS, help=f"days of history (default {DEMO_DAYS})")
        parser.add_argument("--seed", type=int, default=DEMO_SEED, help="random seed (default: a fixed one)")

    def handle(self, *args, **options):
        if options["events"] < 0 or not 1 <= options["days"] <= 3650:
            raise CommandError("--events must be at least 0 and --days between 1 and 3650")
        environment = environment_get_or_create(slug=options["environment"])
        progress = ProgressBar(self.stderr, enabled=options["verbosity"] > 0)
        try:
            report = demo_seed(
                environment=environment,
                seed=options["seed"],
                events=options["events"],
                days=options["days"],
                progress=progress,
            )
        except FlexmeterError as exc:
            raise CommandError(f"seeding failed: {exc}") from exc
        if options["verbosity"] > 0:
            for line in report.lines():
                self.stdout.write(line)
