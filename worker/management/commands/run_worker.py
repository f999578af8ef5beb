"""Run the background worker: the task queue and every periodic job (today the rollup refresh)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from worker.runner import worker_run


class Command(BaseCommand):
    help = (
        "Run the background worker: tasks queued in the database and the periodic jobs (daily rollup refresh every "
        "WORKER_ROLLUPS_EVERY seconds). Run one or more; a job never runs twice at once, and a job held by a "
        "killed worker is run again by another after WORKER_ABANDONED_AFTER seconds."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--interval", type=float, default=1.0, help="seconds between looks at the queue when idle (default 1)"
        )
        parser.add_argument("--worker-id", help="a unique name for this process (default: random)")

    def handle(self, *args, interval, worker_id, **options):
        if interval <= 0:
            raise CommandError("--interval must be a positive number of seconds")
        if worker_id is not None and not 0 < len(worker_id) <= 64:
            raise CommandError("--worker-id must be 1 to 64 characters")
        log = (lambda line: (self.stdout.write(line), self.stdout.flush())) if options["verbosity"] >= 1 else None
        worker_run(
            poll_interval=interval,
            abandoned_after=settings.WORKER_ABANDONED_AFTER,
            worker_id=worker_id,
            log=log,
        )
