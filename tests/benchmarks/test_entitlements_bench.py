"""The access-check benchmark refuses databases it could destroy; a small real run times every check over HTTP
and in the server, with the heavy customers past their limit, and drops its database."""

import subprocess
import sys

import psycopg
import pytest
from django.conf import settings
from django.db import connection

URL = "postgres://postgres@127.0.0.1:5432/flexmeter_entitlements_bench_pytest"


def _run(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "benchmarks.entitlements", *args]
    return subprocess.run(command, cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=900, check=False)


def test_refuses_a_database_whose_name_lacks_bench():
    completed = _run("--database-url", "postgres://postgres@127.0.0.1:5432/flexmeter", "--events", "1")
    assert completed.returncode != 0 and "must contain 'bench'" in completed.stderr


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the benchmark runs on PostgreSQL only")
def test_small_run_times_every_check_and_drops_its_database():
    completed = _run("--database-url", URL, "--events", "20000", "--repeat", "3")
    assert completed.returncode == 0, completed.stderr[-2000:]
    out = completed.stdout
    for label in ("single check, typical customer", "single check, heavy customer", "batch of 100 checks"):
        assert label in out
    # the loader gives the 3 heavy customers 30% of the events, all in the current period
    assert "heavy customers' usage this period: 2,000–2,000 events" in out
    with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres") as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [URL.rsplit("/", 1)[1]]).fetchone()
    assert exists is None
