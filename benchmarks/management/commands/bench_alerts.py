import subprocess
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from benchmarks.alerts import DEFAULT_DATABASE_URL


class Command(BaseCommand):
    help = (
        "Benchmark alert evaluation: one pass for 10,000 active customers × 5 alerting features on PostgreSQL "
        "(target ≤ 5 s), in a throw-away database whose name must contain 'bench'. Runs benchmarks/alerts.py in a "
        "child process pointed at that database."
    )
    requires_system_checks = []  # a measurement tool: it touches no URL, form or admin

    def add_arguments(self, parser):
        parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help=f"default {DEFAULT_DATABASE_URL}")
        parser.add_argument("--events", type=int, default=1_000_000, help="synthetic events (default 1M)")
        parser.add_argument("--customers", type=int, default=10_000, help="active customers (default 10,000)")
        parser.add_argument("--keep", action="store_true", help="keep the database afterwards")

    def handle(self, *args, **options):
        command = [sys.executable, "-m", "benchmarks.alerts", "--database-url", options["database_url"],
                   "--events", str(options["events"]), "--customers", str(options["customers"])]  # fmt: skip
        if options["keep"]:
            command.append("--keep")
        completed = subprocess.run(command, cwd=Path(__file__).resolve().parents[3], check=False)
        if completed.returncode:
            raise CommandError(f"the alerts benchmark failed (exit status {completed.returncode})")
