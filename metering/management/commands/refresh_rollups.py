"""Bring the daily usage rollups up to date, once or every N seconds (PostgreSQL; a no-op on SQLite)."""

import time

from django.core.management.base import BaseCommand, CommandError

from metering.usage.rollups.refresh import rollups_refresh


class Command(BaseCommand):
    help = (
        "Compute the daily usage rollups of every meter for sealed days (every UTC day before today, from one hour "
        "past midnight) that are not rolled up yet or received events since. Usage is exact without them; they make "
        "month-long queries fast."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--every", type=float, metavar="SECONDS", help="keep running, refreshing every SECONDS (e.g. 300)"
        )

    def handle(self, *args, every=None, **options):
        if every is not None and every <= 0:
            raise CommandError("--every must be a positive number of seconds")
        verbose = options["verbosity"] >= 2
        while True:
            started = time.perf_counter()
            report = rollups_refresh(log=self.stdout.write if verbose else None)
            elapsed = time.perf_counter() - started
            if options["verbosity"] >= 1:
                self.stdout.write(
                    f"Rollups: {report.definitions} meter definitions, {report.days} days recomputed "
                    f"({report.rows} rows), the day in progress of {report.days_in_progress} up to two hours ago, "
                    f"{report.counted_days} days of event counts in {elapsed:.1f} s"
                )
            for note in report.skipped:
                self.stderr.write(note)
            if every is None:
                return
            time.sleep(every)
