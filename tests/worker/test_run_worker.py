"""`manage.py run_worker` as real processes: two workers share the periodic jobs without running one twice, and a
worker killed with SIGKILL mid-job loses it to no one: another worker runs it to the end. Bounded in time."""

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django_tasks_db.models import DBTaskResult

pytestmark = pytest.mark.django_db(transaction=True)

TASKS_TABLE = DBTaskResult._meta.db_table
SLOW_JOB = "tests.worker.jobs.slow_on_first_attempt"
WHERE_SLOW_JOB = "WHERE task_path = %s"


class ChildDatabase:
    """The database the worker processes use, read with plain SQL: PostgreSQL's test database, or for SQLite
    (whose test database lives in this process's memory) a migrated file of its own."""

    def __init__(self, url: str):
        self.url = url

    def rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        if self.url.startswith("sqlite:///"):
            with sqlite3.connect(self.url.removeprefix("sqlite:///")) as db:
                return db.execute(sql.replace("%s", "?"), params).fetchall()
        with psycopg.connect(self.url, autocommit=True) as db:
            return db.execute(sql, params).fetchall()


def _manage(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _manage_output(*args: str, env: dict[str, str]) -> str:
    child = _manage(*args, env=env)
    output, _ = child.communicate(timeout=120)
    assert child.returncode == 0, output
    return output


@pytest.fixture
def child_db(tmp_path: Path) -> Iterator[ChildDatabase]:
    if connection.vendor == "postgresql":
        params = connection.settings_dict
        port = params.get("PORT") or 5432
        yield ChildDatabase(f"postgres://{params['USER']}@{params['HOST'] or '127.0.0.1'}:{port}/{params['NAME']}")
        return
    database = ChildDatabase(f"sqlite:///{tmp_path / 'worker.sqlite3'}")
    _manage_output("migrate", "-v0", env={"DATABASE_URL": database.url})
    yield database


def _wait_for(condition, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _stop(*workers: subprocess.Popen) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)


def test_a_job_held_by_a_worker_killed_with_sigkill_is_run_by_another(child_db):
    env = {"DATABASE_URL": child_db.url, "WORKER_ABANDONED_AFTER": "2"}
    _manage_output(
        "shell",
        "-v0",
        "-c",
        "from tests.worker.jobs import slow_on_first_attempt; slow_on_first_attempt.enqueue(value='kept')",
        env=env,
    )
    first = _manage("run_worker", "--interval", "0.2", "--worker-id", "first", env=env)
    second = None
    try:
        _wait_for(
            lambda: child_db.rows(
                f"SELECT 1 FROM {TASKS_TABLE} WHERE task_path = %s AND status = 'RUNNING'", (SLOW_JOB,)
            ),
            timeout=60,
            what="the first worker to start the job",
        )
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        assert child_db.rows(f"SELECT status FROM {TASKS_TABLE} {WHERE_SLOW_JOB}", (SLOW_JOB,)) == [("RUNNING",)]

        second = _manage("run_worker", "--interval", "0.2", "--worker-id", "second", env=env)
        status, worker_ids, return_value = _wait_for(
            lambda: child_db.rows(
                f"SELECT status, CAST(worker_ids AS TEXT), CAST(return_value AS TEXT) FROM {TASKS_TABLE} "
                f"{WHERE_SLOW_JOB} AND status NOT IN ('RUNNING', 'READY')",
                (SLOW_JOB,),
            ),
            timeout=60,
            what="the second worker to finish the job",
        )[0]
    finally:
        _stop(*[worker for worker in (first, second) if worker is not None])
    assert (status, json.loads(worker_ids), json.loads(return_value)) == ("SUCCESSFUL", ["first", "second"], "kept")


def test_two_workers_enqueue_a_periodic_job_once_per_interval_and_never_run_it_twice_at_once(child_db):
    env = {"DATABASE_URL": child_db.url, "WORKER_ROLLUPS_EVERY": "1"}
    workers = [_manage("run_worker", "--interval", "0.1", "--worker-id", name, env=env) for name in ("a", "b")]
    try:
        both_up = _wait_for(
            lambda: child_db.rows("SELECT count(*) FROM worker_workerprocess")[0][0] == 2,
            timeout=60,
            what="both workers to start",
        )
        assert both_up
        time.sleep(6)
    finally:
        _stop(*workers)
    runs = child_db.rows(
        f"SELECT enqueued_at, started_at, finished_at, status FROM {TASKS_TABLE} "
        "WHERE task_path = 'worker.tasks.refresh_rollups' ORDER BY enqueued_at"
    )
    assert len(runs) >= 4
    enqueued = [_as_datetime(run[0]) for run in runs]
    gaps = [(later - earlier).total_seconds() for earlier, later in zip(enqueued, enqueued[1:], strict=False)]
    assert min(gaps) >= 0.99, gaps
    finished = [run for run in runs if run[3] == "SUCCESSFUL"]
    assert len(finished) >= len(runs) - 1
    spans = sorted((_as_datetime(run[1]), _as_datetime(run[2])) for run in finished)
    for (_, earlier_end), (later_start, _) in zip(spans, spans[1:], strict=False):
        assert later_start >= earlier_end


def _as_datetime(value):
    return dt.datetime.fromisoformat(value) if isinstance(value, str) else value
