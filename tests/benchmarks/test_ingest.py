"""The ingestion benchmark: it must refuse databases it does not own, and its workload must be valid events."""

import datetime as dt
import json
import os

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from benchmarks.client import ProtocolError, parse_response, percentile
from benchmarks.runner import BenchmarkError, check_database_url
from benchmarks.workload import LIVE_SPREAD_SECONDS, bulk_body, live_start, single_body
from metering.ingest.validation import event_clean, events_clean


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///var/flexmeter_bench.sqlite3",
        "postgres://postgres@127.0.0.1:5432/flexmeter",
        "postgres://postgres@127.0.0.1:5432/production",
    ],
)
def test_refuses_databases_that_are_not_benchmark_databases(url):
    with pytest.raises(BenchmarkError):
        check_database_url(url)


def test_accepts_a_dedicated_benchmark_database():
    check_database_url("postgres://postgres@127.0.0.1:5432/flexmeter_bench")


def test_command_rejects_bad_batch_sizes():
    with pytest.raises(CommandError):
        call_command("bench_ingest", "--batch-size", "1001")


def test_workload_is_valid_and_deterministic():
    body = json.loads(bulk_body(3, 1000))
    assert body == json.loads(bulk_body(3, 1000))
    events = events_clean(body["events"], max_events=1000)
    assert len(events) == 1000
    assert events[0].event_id == "bench-3000"
    assert event_clean(json.loads(single_body(7))).event_id == "single-7"


def test_live_workload_falls_within_the_last_hour_and_is_valid():
    # bounds from the clock read by live_start itself: a slow machine between two clock reads must not matter
    now = dt.datetime.now(dt.UTC)
    start = live_start(now)
    events = [json.loads(single_body(i, start=start, spread_seconds=LIVE_SPREAD_SECONDS)) for i in range(600)]
    assert events == [json.loads(single_body(i, start=start, spread_seconds=LIVE_SPREAD_SECONDS)) for i in range(600)]
    for raw in events:
        timestamp = event_clean(raw).timestamp
        assert now - dt.timedelta(hours=1, seconds=1) <= timestamp <= now


def test_responses_are_parsed_whole_and_only_when_complete():
    answer = b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    assert parse_response(answer[:-1]) is None
    assert parse_response(answer + b"HTTP/1.1") == (202, answer, True, len(answer))
    closing = b"HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    assert parse_response(closing)[:3] == (401, closing, False)
    chunked = b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    assert parse_response(chunked[:-2]) is None
    assert parse_response(chunked)[:3] == (202, chunked, True)
    unsized = b"HTTP/1.0 202 Accepted\r\n\r\n{}"
    assert parse_response(unsized) is None
    assert parse_response(unsized, closed=True)[:3] == (202, unsized, False)


@pytest.mark.parametrize("garbage", [b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 202"])
def test_what_is_not_a_whole_response_is_an_error(garbage):
    with pytest.raises(ProtocolError):
        parse_response(garbage, closed=True)


def test_percentile():
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 0.5) == 51.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([], 0.5) == 0.0


def _bench_url() -> str:
    settings_dict = connection.settings_dict
    return (
        f"postgres://{settings_dict['USER'] or 'postgres'}@{settings_dict['HOST'] or '127.0.0.1'}:"
        f"{settings_dict['PORT'] or 5432}/flexmeter_bench_test_{os.getpid()}"
    )


@pytest.mark.django_db
def test_small_end_to_end_run_on_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("the benchmark runs against PostgreSQL only")
    url = _bench_url()
    from io import StringIO

    out = StringIO()
    call_command(
        "bench_ingest",
        "--database-url",
        url,
        "--events",
        "2000",
        "--single-requests",
        "40",
        "--concurrency",
        "2",
        stdout=out,
    )
    output = out.getvalue()
    assert "events/s" in output and "requests/s" in output and "raw COPY" in output
    assert "bulk endpoint / raw COPY" in output
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [f"flexmeter_bench_test_{os.getpid()}"])
        assert cursor.fetchone() is None  # dropped afterwards


@pytest.mark.django_db
def test_small_side_by_side_run_with_events_in_clickhouse(tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("the benchmark runs against PostgreSQL only")
    from io import StringIO

    out = StringIO()
    call_command(
        "bench_ingest",
        "--backend",
        "clickhouse",
        "--database-url",
        _bench_url(),
        "--clickhouse-path",
        str(tmp_path / "events"),
        "--events",
        "2000",
        "--concurrency",
        "2",
        stdout=out,
    )
    lines = out.getvalue().splitlines()
    assert [line.split()[0] for line in lines[1:3]] == ["PostgreSQL", "ClickHouse"]
    assert all(line.endswith("stored 2,000") for line in lines[1:3])  # every event in each store
    assert lines[3].startswith("ratio   ClickHouse / PostgreSQL = ")
