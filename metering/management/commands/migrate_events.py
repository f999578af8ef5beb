"""Create the ClickHouse events tables (single server or chdb; with a cluster name, replicated + distributed)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from metering.clickhouse.config import clickhouse_client, parse_events_url
from metering.clickhouse.schema import schema_statements


class Command(BaseCommand):
    help = "Create the events tables in ClickHouse (idempotent). --print shows the DDL without running it."

    def add_arguments(self, parser):
        parser.add_argument(
            "--url",
            default=None,
            help="ClickHouse or chdb URL, e.g. chdb:///var/events (default: EVENTS_URL)",
        )
        parser.add_argument("--cluster", default=None, help="cluster name (default: EVENTS_CLICKHOUSE_CLUSTER)")
        parser.add_argument("--print", action="store_true", dest="print_only", help="print the DDL, run nothing")

    def handle(self, *args, url, cluster, print_only, **options):
        cluster = settings.EVENTS_CLICKHOUSE_CLUSTER if cluster is None else cluster
        url = settings.EVENTS_URL if url is None else url
        backend = parse_events_url(url, cluster=cluster)
        if not backend.is_clickhouse:
            raise CommandError("--url (or EVENTS_URL) must name ClickHouse: clickhouse://… or chdb://…")
        statements = schema_statements(backend.database, backend.cluster)
        if print_only:
            self.stdout.write(";\n\n".join(statements) + ";")
            return
        client = clickhouse_client(backend)
        for statement in statements:
            client.command(statement)
        where = f"cluster {backend.cluster!r}" if backend.cluster else "a single node"
        self.stdout.write(f"events tables ready in {backend.database} on {where}")
