import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from benchmarks.runner import SERVERS, BenchmarkError, ingest_backends_run, ingest_benchmark_run

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/flexmeter_bench"
TARGET_BULK_EVENTS_PER_SECOND = 20_000
TARGET_SINGLE_REQUESTS_PER_SECOND = 1_000


class Command(BaseCommand):
    help = (
        "Benchmark ingestion over real HTTP: a WSGI server (granian, or gunicorn) on 127.0.0.1 against a throw-away "
        "PostgreSQL database, "
        "a separate load process (keep-alive HTTP/1.1 connections) sending bulk requests of backfill events, then "
        "single live events (timestamps in the last hour), and raw COPY / INSERT baselines of the same events. "
        "The database is created and dropped by the command (its name must contain 'bench'). "
        "--backend clickhouse sends the same bulk requests to one server process with events in PostgreSQL, then "
        "with events in ClickHouse (chdb, in-process), and compares the two."
    )

    def add_arguments(self, parser):
        parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help=f"default {DEFAULT_DATABASE_URL}")
        parser.add_argument("--events", type=int, default=200_000, help="events sent through the bulk endpoint")
        parser.add_argument("--batch-size", type=int, default=1000, help="events per bulk request (max 1000)")
        parser.add_argument("--single-requests", type=int, default=5000, help="single-event requests")
        parser.add_argument("--concurrency", type=int, default=8, help="concurrent client connections (keep-alive)")
        parser.add_argument("--server", choices=SERVERS, default="granian", help="WSGI server (default granian)")
        parser.add_argument("--workers", type=int, default=2, help="server worker processes")
        parser.add_argument(
            "--threads",
            type=int,
            default=8,
            help="threads per worker running Django (granian's blocking threads; for gunicorn >1 uses gthread, 1 sync)",
        )
        parser.add_argument("--max-seconds", type=float, default=120, help="time limit per phase")
        parser.add_argument(
            "--backend",
            choices=("postgresql", "clickhouse"),
            default="postgresql",
            help="clickhouse: bulk ingest into PostgreSQL and into ClickHouse (chdb) side by side, one server process",
        )
        parser.add_argument(
            "--clickhouse-path", default=None, help="an empty chdb data directory (default: a temporary one)"
        )

    def handle(self, *args, **options):
        if not 1 <= options["batch_size"] <= 1000:
            raise CommandError("--batch-size must be between 1 and 1000")

        def log(message: str) -> None:
            if options["verbosity"] > 1:
                self.stdout.write(f"  … {message}")

        if options["backend"] == "clickhouse":
            self._backends(options, log)
            return
        try:
            result = ingest_benchmark_run(
                database_url=options["database_url"],
                bulk_events=options["events"],
                batch_size=options["batch_size"],
                single_requests=options["single_requests"],
                concurrency=options["concurrency"],
                workers=options["workers"],
                threads=options["threads"],
                server=options["server"],
                max_seconds=options["max_seconds"],
                log=log,
            )
        except BenchmarkError as exc:
            raise CommandError(str(exc)) from exc

        bulk, single = result.bulk, result.single
        self.stdout.write(
            f"bulk    {bulk.events:>9,} events in {bulk.requests:,} requests: {bulk.events_per_second:>9,.0f} events/s"
            f"   latency p50 {bulk.p50_ms:.1f} ms, p99 {bulk.p99_ms:.1f} ms"
        )
        self.stdout.write(
            f"single  {single.requests:>9,} requests:                {single.requests_per_second:>9,.0f} requests/s"
            f" latency p50 {single.p50_ms:.1f} ms, p99 {single.p99_ms:.1f} ms"
        )
        self.stdout.write(
            f"COPY    raw COPY of the same events into the same table: {result.copy_events_per_second:,.0f} events/s"
        )
        self.stdout.write(f"ratio   bulk endpoint / raw COPY = {result.copy_ratio:.2f}")
        self.stdout.write(
            f"INSERT  raw single-row INSERT + commit, 1 connection: {result.insert_rows_per_second:,.0f} rows/s"
            f" (single endpoint / raw INSERT = {result.insert_ratio:.2f})"
        )
        for label, value, target, unit in (
            ("bulk", bulk.events_per_second, TARGET_BULK_EVENTS_PER_SECOND, "events/s"),
            ("single", single.requests_per_second, TARGET_SINGLE_REQUESTS_PER_SECOND, "requests/s"),
        ):
            verdict = self.style.SUCCESS("met") if value >= target else self.style.WARNING("NOT met")
            self.stdout.write(f"target  {label} ≥ {target:,} {unit}: {verdict}")

    def _backends(self, options, log) -> None:
        with tempfile.TemporaryDirectory(prefix="bench-chdb-") as scratch:
            path = Path(options["clickhouse_path"] or Path(scratch) / "events")
            try:
                result = ingest_backends_run(
                    database_url=options["database_url"],
                    clickhouse_path=path,
                    bulk_events=options["events"],
                    batch_size=options["batch_size"],
                    concurrency=options["concurrency"],
                    threads=options["threads"],
                    server=options["server"],
                    max_seconds=options["max_seconds"],
                    log=log,
                )
            except BenchmarkError as exc:
                raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"bulk ingest, one {options['server']} process × {options['threads']} threads, "
            f"{options['concurrency']} connections, requests of {options['batch_size']} events:"
        )
        for label, phase in result.phases.items():
            self.stdout.write(
                f"  {label:<18} {phase.events:>9,} events: {phase.events_per_second:>9,.0f} events/s"
                f"   latency p50 {phase.p50_ms:.1f} ms, p99 {phase.p99_ms:.1f} ms   stored {result.stored[label]:,}"
            )
        postgresql, clickhouse = result.phases.values()
        ratio = clickhouse.events_per_second / postgresql.events_per_second if postgresql.events_per_second else 0.0
        self.stdout.write(f"ratio   ClickHouse / PostgreSQL = {ratio:.2f}")
        verdict = self.style.SUCCESS("met") if ratio >= 1 else self.style.WARNING("NOT met")
        self.stdout.write(f"target  ClickHouse at least as fast as PostgreSQL: {verdict}")
        if set(result.stored.values()) != {postgresql.events}:
            raise CommandError(f"stored counts differ from the events sent: {result.stored}")
