"""Periodic jobs are enqueued once per interval, never behind a run still queued or running, and jobs held by a
dead worker go back to the queue (SPEC §11: a killed worker loses nothing)."""

import datetime as dt
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.db import connection
from django.tasks import TaskResultStatus
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from tests.concurrency import run_concurrently
from tests.worker.jobs import slow_on_first_attempt
from worker.models import PeriodicSchedule, WorkerProcess
from worker.schedule import PERIODIC_JOBS, PeriodicJob
from worker.services import abandoned_tasks_requeue, periodic_jobs_enqueue_due, worker_heartbeat
from worker.tasks import evaluate_alerts, refresh_rollups

pytestmark = pytest.mark.django_db
# The scheduling rules are pinned on the rollup job alone; other periodic jobs (webhook delivery…) have their own tests.
ROLLUPS = [job for job in PERIODIC_JOBS if job.name == "refresh_rollups"]


def _set_status(task_id: str, status: TaskResultStatus) -> None:
    DBTaskResult.objects.filter(id=task_id).update(status=status)


def test_the_rollup_refresh_is_a_periodic_job_every_300_seconds_by_default():
    assert [(job.name, job.task, job.every_seconds()) for job in ROLLUPS] == [
        ("refresh_rollups", refresh_rollups, 300.0)
    ]


def test_alert_evaluation_is_a_periodic_job_every_30_seconds_by_default():
    jobs = {job.name: (job.task, job.every_seconds()) for job in PERIODIC_JOBS}
    assert jobs["evaluate_alerts"] == (evaluate_alerts, 30.0)


def test_a_due_job_is_enqueued_once_and_next_due_one_interval_later():
    before = timezone.now()
    assert periodic_jobs_enqueue_due(jobs=ROLLUPS) == ["refresh_rollups"]
    after = timezone.now()
    assert periodic_jobs_enqueue_due(jobs=ROLLUPS) == []
    queued = DBTaskResult.objects.get()
    assert queued.task_path == "worker.tasks.refresh_rollups"
    assert queued.status == TaskResultStatus.READY
    schedule = PeriodicSchedule.objects.get(name="refresh_rollups")
    assert schedule.last_task_result_id == str(queued.id)
    assert before + dt.timedelta(seconds=300) <= schedule.next_run_at <= after + dt.timedelta(seconds=300)


def test_a_due_job_waits_while_its_previous_run_is_queued_or_running():
    periodic_jobs_enqueue_due(jobs=ROLLUPS)
    first = DBTaskResult.objects.get()
    PeriodicSchedule.objects.update(next_run_at=timezone.now() - dt.timedelta(seconds=1))
    assert periodic_jobs_enqueue_due(jobs=ROLLUPS) == []
    _set_status(first.id, TaskResultStatus.RUNNING)
    assert periodic_jobs_enqueue_due(jobs=ROLLUPS) == []
    assert DBTaskResult.objects.count() == 1
    _set_status(first.id, TaskResultStatus.SUCCESSFUL)
    assert periodic_jobs_enqueue_due(jobs=ROLLUPS) == ["refresh_rollups"]
    assert DBTaskResult.objects.count() == 2


def test_a_failed_run_does_not_stop_the_schedule():
    periodic_jobs_enqueue_due(jobs=ROLLUPS)
    _set_status(DBTaskResult.objects.get().id, TaskResultStatus.FAILED)
    PeriodicSchedule.objects.update(next_run_at=timezone.now())
    assert periodic_jobs_enqueue_due(jobs=ROLLUPS) == ["refresh_rollups"]


def test_more_periodic_jobs_plug_in_with_their_own_intervals():
    jobs = [
        PeriodicJob("evaluate_alerts", slow_on_first_attempt, lambda: 60),
        PeriodicJob("refresh_rollups", refresh_rollups, lambda: 300),
    ]
    now = timezone.now()
    assert sorted(periodic_jobs_enqueue_due(jobs=jobs)) == ["evaluate_alerts", "refresh_rollups"]
    intervals = {s.name: (s.next_run_at - now).total_seconds() for s in PeriodicSchedule.objects.all()}
    assert 60 <= intervals["evaluate_alerts"] < 61
    assert 300 <= intervals["refresh_rollups"] < 301


@pytest.mark.skipif(connection.vendor != "postgresql", reason="threads share no in-memory SQLite database")
@pytest.mark.django_db(transaction=True)
def test_concurrent_schedulers_enqueue_a_due_job_once():
    PeriodicSchedule.objects.create(name="refresh_rollups", next_run_at=timezone.now())
    enqueued = run_concurrently(lambda _: periodic_jobs_enqueue_due(jobs=ROLLUPS), threads=6)
    assert sorted(name for names in enqueued for name in names) == ["refresh_rollups"]
    assert DBTaskResult.objects.count() == 1


def _running_task(*, worker_id: str, started_seconds_ago: float) -> str:
    result = slow_on_first_attempt.enqueue(value="x")
    DBTaskResult.objects.filter(id=result.id).update(
        status=TaskResultStatus.RUNNING,
        started_at=timezone.now() - dt.timedelta(seconds=started_seconds_ago),
        worker_ids=[worker_id],
    )
    return str(result.id)


def test_tasks_of_a_dead_worker_go_back_to_the_queue_and_live_workers_keep_theirs():
    long_ago = timezone.now() - dt.timedelta(seconds=600)
    worker_heartbeat(worker_id="alive", started_at=long_ago)
    worker_heartbeat(worker_id="dead", started_at=long_ago)
    WorkerProcess.objects.filter(worker_id="dead").update(seen_at=timezone.now() - dt.timedelta(seconds=61))
    of_dead = _running_task(worker_id="dead", started_seconds_ago=120)
    of_unknown = _running_task(worker_id="never-registered", started_seconds_ago=120)
    of_alive = _running_task(worker_id="alive", started_seconds_ago=120)
    just_started = _running_task(worker_id="dead", started_seconds_ago=30)

    assert sorted(abandoned_tasks_requeue(abandoned_after=60)) == sorted([of_dead, of_unknown])

    statuses = dict(DBTaskResult.objects.values_list("id", "status"))
    assert {str(k): v for k, v in statuses.items()} == {
        of_dead: TaskResultStatus.READY,
        of_unknown: TaskResultStatus.READY,
        of_alive: TaskResultStatus.RUNNING,
        just_started: TaskResultStatus.RUNNING,
    }
    requeued = DBTaskResult.objects.get(id=of_dead)
    assert requeued.started_at is None and requeued.worker_ids == ["dead"]


@pytest.mark.parametrize("value", ["0", "-5", "soon", "inf"])
def test_worker_intervals_must_be_positive_numbers_of_seconds(value):
    completed = subprocess.run(
        [sys.executable, "-c", "import flexmeter.settings"],
        cwd=settings.BASE_DIR,
        env={**os.environ, "WORKER_ROLLUPS_EVERY": value},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode != 0
    assert "WORKER_ROLLUPS_EVERY must be a" in completed.stderr


def test_the_worker_prunes_finished_job_rows_older_than_a_week_every_hour():
    from worker.tasks import prune_job_results

    jobs = {job.name: (job.task, job.every_seconds()) for job in PERIODIC_JOBS}
    assert jobs["prune_job_results"] == (prune_job_results, 3600.0)
    assert settings.WORKER_KEEP_RESULTS == 7 * 86400
    now = timezone.now()
    rows = {}
    for label, status, finished_days_ago in (
        ("old success", TaskResultStatus.SUCCESSFUL, 8),
        ("old failure", TaskResultStatus.FAILED, 7.01),
        ("recent", TaskResultStatus.SUCCESSFUL, 6.99),
        ("queued long ago", TaskResultStatus.READY, None),
        ("running long ago", TaskResultStatus.RUNNING, None),
    ):
        result = refresh_rollups.enqueue()
        finished = None if finished_days_ago is None else now - dt.timedelta(days=finished_days_ago)
        DBTaskResult.objects.filter(id=result.id).update(
            status=status, enqueued_at=now - dt.timedelta(days=10), finished_at=finished
        )
        rows[label] = result.id
    assert prune_job_results.call() == {"deleted": 2}
    kept = {str(pk) for pk in DBTaskResult.objects.values_list("id", flat=True)}
    assert kept == {rows["recent"], rows["queued long ago"], rows["running long ago"]}
