from django.core.management.base import BaseCommand, CommandError

from benchmarks.dashboard import DEFAULT_DATABASE_URL, dashboard_benchmark_measure, dashboard_benchmark_run
from benchmarks.runner import BenchmarkError


class Command(BaseCommand):
    help = (
        "Time the overview, customer, event debugger and usage pages (server time through Django's test Client, "
        "p50/p95) with "
        "1,000,000 synthetic events in a throw-away PostgreSQL database that the command creates and drops "
        "(its name must contain 'bench'; never the development database); --keep, then --reuse, to re-time it."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help=f"default {DEFAULT_DATABASE_URL}")
        parser.add_argument("--events", type=int, default=1_000_000, help="events to load (default 1,000,000)")
        parser.add_argument("--repeat", type=int, default=20, help="timed requests per page (default 20)")
        parser.add_argument("--keep", action="store_true", help="keep the database afterwards (for --reuse)")
        parser.add_argument(
            "--reuse", action="store_true", help="time a kept database holding --events events again without reloading"
        )
        parser.add_argument("--inner", action="store_true", help="internal: measure in the current database")

    def handle(self, *args, **options):
        if options["events"] < 1 or options["repeat"] < 1:
            raise CommandError("--events and --repeat must be at least 1")

        def log(line: str) -> None:
            if options["verbosity"] > 0:
                self.stdout.write(line)
                self.stdout.flush()

        try:
            if options["inner"]:
                dashboard_benchmark_measure(
                    events=options["events"], repeat=options["repeat"], log=log, reuse=options["reuse"]
                )
            else:
                dashboard_benchmark_run(
                    database_url=options["database_url"],
                    events=options["events"],
                    repeat=options["repeat"],
                    log=log,
                    keep=options["keep"],
                    reuse=options["reuse"],
                )
        except BenchmarkError as exc:
            raise CommandError(str(exc)) from exc
