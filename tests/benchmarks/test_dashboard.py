"""bench_dashboard refuses databases it could destroy, and a small real run measures every page and cleans up."""

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from tests.benchmarks.helpers import bench_database

pytestmark = pytest.mark.django_db


def test_refuses_a_database_whose_name_lacks_bench():
    with pytest.raises(CommandError, match="must contain 'bench'"):
        call_command(
            "bench_dashboard", "--database-url", "postgres://postgres@127.0.0.1:5432/flexmeter", "--events", "1"
        )


def test_refuses_sqlite_and_nonsense_sizes():
    with pytest.raises(CommandError, match="PostgreSQL"):
        call_command("bench_dashboard", "--database-url", "sqlite:///var/bench.sqlite3")
    with pytest.raises(CommandError, match="at least 1"):
        call_command("bench_dashboard", "--events", "0")


def test_inner_run_refuses_a_non_benchmark_database():
    with pytest.raises(CommandError, match="refusing to load events"):
        call_command("bench_dashboard", "--inner", "--events", "10", "--repeat", "1")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the benchmark runs on PostgreSQL only")
def test_small_run_times_every_page_and_drops_its_database(capfd):
    url, name = bench_database("dash")
    call_command("bench_dashboard", "--database-url", url, "--events", "3000", "--repeat", "1")
    out = capfd.readouterr().out
    for page in ("stream", "event detail", "feature usage (SUM), 30 days", "customer usage, current period"):
        assert page in out
    assert "ms p50" in out and "dropped the benchmark database" in out
    with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres") as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
    assert exists is None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the benchmark runs on PostgreSQL only")
def test_keep_then_reuse_times_the_same_database_without_reloading(capfd):
    url, name = bench_database("dash_kept")
    try:
        call_command("bench_dashboard", "--database-url", url, "--events", "2000", "--repeat", "1", "--keep")
        first = capfd.readouterr().out
        assert "loaded 2,000 events" in first and "kept" in first
        call_command("bench_dashboard", "--database-url", url, "--events", "2000", "--repeat", "1", "--reuse")
        second = capfd.readouterr().out
        assert "reusing" in second and "loaded" not in second and "overview (home)" in second
        assert "dropped the benchmark database" in second
    finally:
        with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
