"""bench_import: it only touches its own benchmark database, and a small run measures and verifies the import."""

import io
import json
import os

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from benchmarks.import_run import workload_write
from metering.ingest.validation import event_clean


def test_refuses_a_database_that_is_not_a_benchmark_database():
    with pytest.raises(CommandError, match="must contain 'bench'"):
        call_command("bench_import", database_url="postgres://postgres@127.0.0.1:5432/flexmeter", stdout=io.StringIO())


def test_rejects_bad_sizes():
    with pytest.raises(CommandError):
        call_command("bench_import", events=0, stdout=io.StringIO())


def test_workload_files_hold_the_same_valid_events(tmp_path):
    jsonl, copy_rows = workload_write(tmp_path, events=50, environment_id=7)
    events = [json.loads(line) for line in jsonl.read_text().splitlines()]
    rows = [line.split("\t") for line in copy_rows.read_text().splitlines()]
    assert len(events) == len(rows) == 50
    assert [event_clean(event).event_id for event in events] == [row[1] for row in rows]
    assert {row[0] for row in rows} == {"7"}
    assert json.loads(rows[3][7]) == events[3]["properties"]


@pytest.mark.django_db
def test_small_end_to_end_run_on_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("the benchmark runs against PostgreSQL only")
    settings = connection.settings_dict
    name = f"flexmeter_import_bench_test_{os.getpid()}"
    url = (
        f"postgres://{settings['USER'] or 'postgres'}@{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/"
        f"{name}"
    )
    out = io.StringIO()
    call_command(
        "bench_import",
        database_url=url,
        events=3000,
        preload=500,
        batch_size=1000,
        again=True,
        stdout=out,
        stderr=io.StringIO(),
    )
    output = out.getvalue()
    assert "3,000 events" in output and "table holding 500 events" in output
    assert "import_events" in output and "raw COPY" in output and "ratio" in output and "re-import" in output
    assert "load average" in output and "deferred foreign-key checks" in output
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        assert cursor.fetchone() is None
