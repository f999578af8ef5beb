"""bench_usage refuses databases it could destroy; a small real run builds rollups, times every query, cleans up."""

import os
import subprocess
import sys

import psycopg
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from benchmarks.usage import METERS
from tests.benchmarks.helpers import bench_database

pytestmark = pytest.mark.django_db
URL, NAME = bench_database("usage")


def test_refuses_a_database_whose_name_lacks_bench():
    with pytest.raises(CommandError, match="must contain 'bench'"):
        call_command("bench_usage", "--database-url", "postgres://postgres@127.0.0.1:5432/flexmeter", "--events", "1")


def test_refuses_nonsense_sizes():
    with pytest.raises(CommandError, match="must be positive"):
        call_command("bench_usage", "--events", "0")


def _database_exists() -> bool:
    with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres") as admin:
        return admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [NAME]).fetchone()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the benchmark runs on PostgreSQL only")
@pytest.mark.parametrize("flags", [[], ["--no-rollups"], ["--http"]])
def test_small_run_times_every_query_and_drops_its_database(flags):
    # a child process, as a developer runs it: the benchmark opens its own database alias
    command = [sys.executable, "manage.py", "bench_usage", "--database-url", URL, "--events", "20000", "--repeat", "1"]
    command += ["--zones", "UTC,Asia/Kolkata", "--window-sizes", ",HOUR"]
    completed = subprocess.run(
        [*command, *flags],
        cwd=settings.BASE_DIR,
        env={**os.environ, "FLEXMETER_BENCHMARKS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    out = completed.stdout
    for label in METERS:
        for zone in ("UTC", "Asia/Kolkata"):
            assert f"{zone:<24} {label:<30} all customers" in out
            assert f"{zone + ' /HOUR':<24} {label:<30} heavy customer" in out
    assert ("rollups brought up to date" in out) != (flags == ["--no-rollups"])
    assert ("over HTTP" in out) == (flags == ["--http"])
    assert "load average" in out
    assert not _database_exists()
