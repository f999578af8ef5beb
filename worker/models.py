from django.db import models


class WorkerProcess(models.Model):
    """A running `run_worker` process and when it last proved it is alive. A job claimed by a worker whose
    heartbeat went stale is handed back to the queue (the process was killed or lost its database)."""

    worker_id = models.CharField(max_length=64, primary_key=True)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.worker_id} ({self.hostname}:{self.pid})"


class PeriodicSchedule(models.Model):
    """When a periodic job is next due, and the queued run it last enqueued. Workers lock the row to decide, so
    a job is enqueued at most once per interval and never while its previous run is still queued or running."""

    name = models.CharField(max_length=100, primary_key=True)
    next_run_at = models.DateTimeField()
    last_task_result_id = models.CharField(max_length=64, blank=True)
    last_enqueued_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name
