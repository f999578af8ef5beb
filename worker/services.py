"""Writes of the worker: heartbeats, enqueueing due periodic jobs, handing back jobs of dead workers."""

import datetime as dt
import os
import socket
from collections.abc import Iterable

from django.db import transaction
from django.tasks import TaskResultStatus
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from worker.models import PeriodicSchedule, WorkerProcess
from worker.schedule import PERIODIC_JOBS, PeriodicJob

_OUTSTANDING = (TaskResultStatus.READY, TaskResultStatus.RUNNING)


def worker_heartbeat(*, worker_id: str, started_at: dt.datetime) -> None:
    now = timezone.now()
    WorkerProcess.objects.update_or_create(
        worker_id=worker_id,
        defaults={"hostname": socket.gethostname(), "pid": os.getpid(), "started_at": started_at, "seen_at": now},
    )


def worker_stopped(*, worker_id: str) -> None:
    WorkerProcess.objects.filter(worker_id=worker_id).delete()


def periodic_jobs_enqueue_due(*, jobs: Iterable[PeriodicJob] = PERIODIC_JOBS) -> list[str]:
    """Enqueue every periodic job that is due and has no run still queued or running; return their names.

    The schedule rows are locked for the decision (SELECT … FOR UPDATE SKIP LOCKED on PostgreSQL, the write lock
    of an IMMEDIATE transaction on SQLite) and the task row is inserted in the same transaction, so concurrent
    workers enqueue a job once, and a slow run never piles up a second one behind it."""
    jobs_by_name = {job.name: job for job in jobs}
    now = timezone.now()
    PeriodicSchedule.objects.bulk_create(
        [PeriodicSchedule(name=name, next_run_at=now) for name in jobs_by_name], ignore_conflicts=True
    )
    enqueued = []
    with transaction.atomic():
        due = PeriodicSchedule.objects.select_for_update(skip_locked=True).filter(
            name__in=jobs_by_name, next_run_at__lte=now
        )
        for schedule in due:
            if (
                schedule.last_task_result_id
                and DBTaskResult.objects.filter(id=schedule.last_task_result_id, status__in=_OUTSTANDING).exists()
            ):
                continue
            job = jobs_by_name[schedule.name]
            result = job.task.enqueue()
            # The interval counts from the queue's own stamp, not from `now` read before the lock was won: runs are
            # then at least one interval apart as the queue records them.
            enqueued_at = result.enqueued_at or now
            schedule.last_task_result_id = str(result.id)
            schedule.last_enqueued_at = enqueued_at
            schedule.next_run_at = enqueued_at + dt.timedelta(seconds=job.every_seconds())
            schedule.save(update_fields=["last_task_result_id", "last_enqueued_at", "next_run_at"])
            enqueued.append(schedule.name)
    return enqueued


def abandoned_tasks_requeue(*, abandoned_after: float) -> list[str]:
    """Put back on the queue every running task whose worker has not been seen for `abandoned_after` seconds
    (killed, or cut off from the database); return their ids. Delivery is therefore at least once: a job must
    tolerate running again after a crash (rollup refresh recomputes the same days)."""
    cutoff = timezone.now() - dt.timedelta(seconds=abandoned_after)
    WorkerProcess.objects.filter(seen_at__lt=cutoff - dt.timedelta(days=1)).delete()
    alive = set(WorkerProcess.objects.filter(seen_at__gte=cutoff).values_list("worker_id", flat=True))
    requeued = []
    with transaction.atomic():
        running = DBTaskResult.objects.select_for_update(skip_locked=True).filter(
            status=TaskResultStatus.RUNNING, started_at__lt=cutoff
        )
        for task_result in running:
            if task_result.worker_ids and task_result.worker_ids[-1] in alive:
                continue
            task_result.status = TaskResultStatus.READY
            task_result.started_at = None
            task_result.save(update_fields=["status", "started_at"])
            requeued.append(str(task_result.id))
    return requeued
