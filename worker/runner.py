"""The worker loop: heartbeat, requeue what dead workers held, enqueue due periodic jobs, run the queue."""

import datetime as dt
import threading
import time

from django.db import close_old_connections, connections
from django.utils import timezone
from django.utils.crypto import get_random_string
from django_tasks_db.management.commands.db_worker import Worker

from worker.services import abandoned_tasks_requeue, periodic_jobs_enqueue_due, worker_heartbeat, worker_stopped


class _Heartbeat(threading.Thread):
    """Proves the worker alive while a long job (a first rollup build takes minutes) holds the main thread."""

    def __init__(self, *, worker_id: str, started_at: dt.datetime, every: float):
        super().__init__(name="worker-heartbeat", daemon=True)
        self.worker_id, self.started_at, self.every = worker_id, started_at, every
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.every):
            try:
                worker_heartbeat(worker_id=self.worker_id, started_at=self.started_at)
            except Exception:  # noqa: BLE001 - a missed beat is retried; the main loop reports database trouble
                pass
            finally:
                connections.close_all()


def worker_run(*, poll_interval: float, abandoned_after: float, worker_id: str | None = None, log=None) -> None:
    """Run until SIGINT/SIGTERM. Tasks are claimed and run by django-tasks-db's own Worker (SKIP LOCKED claims),
    one batch of ready tasks per turn; between batches this loop does the scheduling."""
    worker_id = worker_id or get_random_string(32)
    started_at = timezone.now()
    worker_heartbeat(worker_id=worker_id, started_at=started_at)
    queue = Worker(
        queue_names=["*"],
        interval=poll_interval,
        batch=True,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id=worker_id,
        excluded_queue_names=[],
    )
    queue.configure_signals()
    heartbeat = _Heartbeat(worker_id=worker_id, started_at=started_at, every=max(abandoned_after / 4, 0.2))
    heartbeat.start()
    if log:
        log(f"worker {worker_id} started")
    try:
        while queue.running:
            close_old_connections()
            requeued = abandoned_tasks_requeue(abandoned_after=abandoned_after)
            enqueued = periodic_jobs_enqueue_due()
            if log and (requeued or enqueued):
                log(f"requeued {len(requeued)} abandoned task(s); enqueued {', '.join(enqueued) or 'nothing'}")
            queue.run()
            if queue.running:
                time.sleep(poll_interval)
    finally:
        heartbeat.stopping.set()
        worker_stopped(worker_id=worker_id)
