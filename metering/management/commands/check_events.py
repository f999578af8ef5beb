from collections import defaultdict

from django.core.management.base import BaseCommand, CommandError

from flexmeter.models import Environment
from metering.ingest.audit import stored_events_breaking_the_rule, stored_meters_breaking_the_rule
from metering.ingest.writer import events_delete

_SHOWN = 20


class Command(BaseCommand):
    help = (
        "Find events stored before the rule for what can be stored (numbers below 1e38 with at most 38 decimals, 32 "
        "levels of nesting, 255-character keys) that break it, and meters whose CEL expression no longer compiles. "
        "Such events should be re-sent within the rule (the same event_id replaces the stored row) or deleted "
        "(--delete). Exits with an error while any are found."
    )

    def add_arguments(self, parser):
        parser.add_argument("--environment", help="only this environment slug (default: every environment)")
        parser.add_argument("--batch-size", type=int, default=2000, help="rows read per query (default: 2000)")
        parser.add_argument("--delete", action="store_true", help="delete the events that break the rule")

    def handle(self, *args, environment=None, batch_size=2000, delete=False, **options):
        scope = None
        if environment is not None:
            scope = Environment.objects.filter(slug=environment).first()
            if scope is None:
                raise CommandError(f"unknown environment {environment!r}")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        verbose = options["verbosity"] > 0
        by_environment: dict[str, list[str]] = defaultdict(list)
        for found in stored_events_breaking_the_rule(environment=scope, batch_size=batch_size):
            by_environment[found.environment].append(found.event_id)
            if verbose and sum(map(len, by_environment.values())) <= _SHOWN:
                reasons = "; ".join(f"{path}: {message}" for path, message in found.problems.items())
                self.stdout.write(f"{found.environment} event {found.event_id}: {reasons}")
        events = sum(map(len, by_environment.values()))
        meters = stored_meters_breaking_the_rule(environment=scope)
        if verbose:
            if events > _SHOWN:
                self.stdout.write(f"… and {events - _SHOWN:,} more events")
            for meter in meters:
                self.stdout.write(f"{meter.environment} meter {meter.meter_id} ({meter.name}): {meter.problem}")
        if delete and events:
            deleted = sum(
                events_delete(environment_slug=slug, event_ids=ids[start : start + batch_size])
                for slug, ids in by_environment.items()
                for start in range(0, len(ids), batch_size)
            )
            self.stdout.write(f"Deleted {deleted:,} events that broke the rule.")
            events = 0
        if not events and not meters:
            if verbose:
                self.stdout.write("No stored event or meter breaks the rule for what can be stored.")
            return
        advice = []
        if events:
            advice.append(
                f"{events:,} stored events break the rule: re-send each within the rule (the same event_id replaces "
                "the stored event) or delete them with `manage.py check_events --delete`"
            )
        if meters:
            advice.append(
                f"{len(meters):,} meters have an expression that no longer compiles and count nothing: archive each "
                "and create a new one with an expression within the rule"
            )
        raise CommandError(". ".join(advice) + ".")
