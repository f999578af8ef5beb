import os

from django.core.management.base import BaseCommand, CommandError

from benchmarks.import_run import TARGET_EVENTS_PER_SECOND, import_benchmark_run
from benchmarks.runner import BenchmarkError
from metering.importing.batches import DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/flexmeter_import_bench"


class Command(BaseCommand):
    help = (
        "Benchmark import_events end to end: write N events (default 1,000,000) as a JSON Lines file, preload the "
        "events table of a throw-away PostgreSQL database, time a raw COPY of the same rows into the same indexed "
        "table (rolled back), then time `manage.py import_events` on the file, and print events/s and the ratio. "
        "The database is created and dropped by the command (its name must contain 'bench')."
    )
    requires_system_checks = []  # a measurement tool: it touches no URL, form or admin

    def add_arguments(self, parser):
        parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help=f"default {DEFAULT_DATABASE_URL}")
        parser.add_argument("--events", type=int, default=1_000_000, help="events in the file (default 1,000,000)")
        parser.add_argument("--preload", type=int, default=200_000, help="events stored beforehand (default 200,000)")
        parser.add_argument(
            "--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help=f"import batch size ({DEFAULT_BATCH_SIZE:,})"
        )
        parser.add_argument("--again", action="store_true", help="also time a second import (every event a duplicate)")

    def handle(self, *args, **options):
        if options["events"] < 1 or options["preload"] < 0 or not 1 <= options["batch_size"] <= MAX_BATCH_SIZE:
            raise CommandError(f"--events must be positive, --preload not negative, --batch-size 1..{MAX_BATCH_SIZE:,}")

        def log(message: str) -> None:
            if options["verbosity"] > 0:
                self.stderr.write(f"  … {message}")

        try:
            result = import_benchmark_run(
                database_url=options["database_url"],
                events=options["events"],
                preload=options["preload"],
                batch_size=options["batch_size"],
                again=options["again"],
                show_progress=options["verbosity"] > 1,
                log=log,
            )
        except BenchmarkError as exc:
            raise CommandError(str(exc)) from exc
        events = result.events
        self.stdout.write(
            f"{events:,} events ({result.file_bytes / 1e6:,.0f} MB of JSON Lines) into a table holding "
            f"{result.preloaded:,} events, batches of {options['batch_size']:,}:"
        )
        self.stdout.write(
            f"  import_events   {result.first.seconds:7.1f} s  {result.import_rate:>9,.0f} events/s  "
            f"(end to end: process start, parse, validate, store)"
        )
        self.stdout.write(
            f"  raw COPY        {result.copy_seconds:7.1f} s  {result.copy_rate:>9,.0f} events/s  (rolled back; "
            f"committing would add {result.foreign_key_seconds:.1f} s of deferred foreign-key checks)"
        )
        self.stdout.write(f"  ratio           {result.ratio:.2f} of raw COPY")
        if result.again is not None:
            self.stdout.write(
                f"  re-import       {result.again.seconds:7.1f} s  {result.again.rate(events):>9,.0f} events/s  "
                "(every event a duplicate: staging upsert)"
            )
        if result.load_before is not None and result.load_after is not None:
            before, after = (_load_text(load) for load in (result.load_before, result.load_after))
            self.stdout.write(f"  load average    {before} before, {after} after (1, 5, 15 min; {os.cpu_count()} CPUs)")
        verdict = "meets" if result.import_rate >= TARGET_EVENTS_PER_SECOND else "misses"
        self.stdout.write(f"  target          {TARGET_EVENTS_PER_SECOND:,} events/s: {verdict}")


def _load_text(load: tuple[float, float, float]) -> str:
    return " ".join(f"{value:.2f}" for value in load)
