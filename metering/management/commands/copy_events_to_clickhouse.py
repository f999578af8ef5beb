"""Copy events from the Django database into ClickHouse (resumable, idempotent), then verify both agree."""

from django.core.management.base import BaseCommand, CommandError

from metering.clickhouse.config import clickhouse_client, parse_events_url
from metering.clickhouse.copy import copied_up_to, copy_events, events_to_copy, verify_copy
from metering.clickhouse.schema import schema_statements
from metering.progress import ProgressBar


class Command(BaseCommand):
    help = (
        "Copy every event of the Django database into ClickHouse, resuming where an earlier run stopped, then "
        "check that both stores give the same usage for every published meter."
    )

    def add_arguments(self, parser):
        parser.add_argument("--url", required=True, help="ClickHouse or chdb URL of the target")
        parser.add_argument("--batch-size", type=int, default=10_000)
        parser.add_argument("--dry-run", action="store_true", help="say what would be copied, copy nothing")
        parser.add_argument("--restart", action="store_true", help="copy everything again (harmless: idempotent)")
        parser.add_argument("--no-verify", action="store_true", help="skip the comparison of both stores")

    def handle(self, *args, url, batch_size, dry_run, restart, no_verify, verbosity, **options):
        backend = parse_events_url(url)
        if not backend.is_clickhouse:
            raise CommandError("--url must name ClickHouse: clickhouse://… or chdb://…")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        client = clickhouse_client(backend)
        for statement in schema_statements(backend.database, backend.cluster):
            client.command(statement)
        last_id, copied = (0, 0) if restart else copied_up_to(backend)
        pending = events_to_copy(last_id)
        if dry_run:
            self.stdout.write(
                f"dry run: {pending} events to copy into {backend.database} "
                f"({copied} copied by earlier runs, resuming after id {last_id})"
            )
            return
        progress = ProgressBar(self.stderr, total=pending, noun="events", enabled=verbosity > 0)
        done = copy_events(backend, batch_size=batch_size, restart=restart, on_batch=lambda n: progress.update(items=n))
        progress.finish()
        self.stdout.write(f"copied {done} events into {backend.database}")
        if no_verify:
            return
        verification = verify_copy(backend)
        for difference in verification.differences:
            self.stderr.write(difference)
        if not verification.same:
            raise CommandError(f"the stores differ in {len(verification.differences)} places (listed above)")
        total = sum(django for django, _ in verification.events.values())
        self.stdout.write(
            f"verified: {total} events and the usage of {verification.meters_compared} meters agree on both stores"
        )
