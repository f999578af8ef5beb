"""Usage-engine benchmark: load synthetic events into a throw-away PostgreSQL database, time every aggregation.

The monthly profile is fixed so figures compare across sizes: 3 heavy customers with ~100,000 events a month
and 700 typical customers with ~1,000 a month (1M events a month); `--events` decides how many months. Events
are generated inside PostgreSQL (`generate_series`), in time order like real ingestion, with the table's indexes
built afterwards. Queries go through `run_usage_queries`, the code path of the API, on a second database alias.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import http.client
import json
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import dj_database_url
import psycopg
from django.core.management import call_command
from django.db import connections

from benchmarks.loading import event_indexes_deferred
from benchmarks.runner import (
    BenchmarkError,
    benchmark_database_kept,
    check_database_url,
    manage_run,
    server_environment,
    wsgi_server,
)
from catalog.models import Meter, MeterStatus
from flexmeter.models import Environment
from metering.models import Event
from metering.usage.engine import run_usage_queries
from metering.usage.rollups.refresh import rollups_refresh
from metering.usage.spec import AggregationSpec, UsageQuery

ALIAS = "usage_bench"
EVENTS_PER_MONTH = 1_000_000
HEAVY_CUSTOMERS = 3
HEAVY_SHARE = 300_000  # per million: 3 heavy customers × 100,000 events a month
TYPICAL_CUSTOMERS = 700
FIRST_MONTH = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
EVENT_NAME = "api.request"

# name → meter definition (unsaved Meter rows: only their definition is used)
METERS: dict[str, dict] = {
    "COUNT": {"aggregation_type": "COUNT"},
    "SUM": {"aggregation_type": "SUM", "aggregation_field": "tokens"},
    "AVG": {"aggregation_type": "AVG", "aggregation_field": "tokens"},
    "MIN": {"aggregation_type": "MIN", "aggregation_field": "tokens"},
    "MAX": {"aggregation_type": "MAX", "aggregation_field": "tokens"},
    "COUNT_UNIQUE": {"aggregation_type": "COUNT_UNIQUE", "aggregation_field": "user"},
    "LATEST": {"aggregation_type": "LATEST", "aggregation_field": "tokens"},
    "SUM_WITH_MULTIPLIER": {
        "aggregation_type": "SUM_WITH_MULTIPLIER",
        "aggregation_field": "tokens",
        "multiplier": "0.001",
    },
    "WEIGHTED_SUM": {"aggregation_type": "WEIGHTED_SUM", "aggregation_field": "seats"},
    "MAX per HOUR by instance": {
        "aggregation_type": "MAX",
        "aggregation_field": "tokens",
        "bucket_size": "HOUR",
        "group_by": "instance",
    },
    "MAX per HOUR": {"aggregation_type": "MAX", "aggregation_field": "tokens", "bucket_size": "HOUR"},
    "SUM of CEL ceil(tokens/100)": {"aggregation_type": "SUM", "aggregation_expression": "ceil(tokens / 100)"},
    "SUM filtered region=eu": {
        "aggregation_type": "SUM",
        "aggregation_field": "tokens",
        "filters": [{"key": "region", "operator": "in", "values": ["eu"]}],
    },
}

_INSERT = f"""
INSERT INTO {Event._meta.db_table}
    (environment_id, event_id, event_name, external_customer_id, "timestamp", ingested_at, source, properties)
SELECT %(environment)s, 'bench-' || i, %(event_name)s,
       CASE WHEN r < {HEAVY_SHARE} THEN 'heavy-' || (r %% {HEAVY_CUSTOMERS})
            ELSE 'cust-' || (r %% {TYPICAL_CUSTOMERS}) END,
       %(first)s::timestamptz + (i::float8 / %(total)s) * %(span)s::interval,
       now(), 'bench',
       jsonb_build_object(
           'tokens', CASE WHEN r %% 20 = 0 THEN to_jsonb(((r %% 997) + 1)::text) ELSE to_jsonb((r %% 997) + 1) END,
           'user', 'u' || (r %% 50),
           'region', (ARRAY['eu', 'us', 'ap'])[1 + (r / 7) %% 3],
           'instance', 'i' || (r %% 4),
           'seats', (r %% 3) - 1
       )
FROM (SELECT i, (i * 2654435761) %% 1000000 AS r FROM generate_series(%(low)s::bigint, %(high)s::bigint - 1) AS i) g
"""


@dataclass
class BenchmarkRun:
    load_seconds: float | None  # None when a kept database was reused
    rollup_seconds: float | None  # None when timed without rollups
    idle_refresh_seconds: float | None  # a second refresh right after, with nothing new
    events: int
    timings: list[Timing]
    postgres_bytes: int = 0
    clickhouse: SideBySide | None = None


@dataclass
class SideBySide:
    """The same events in ClickHouse (chdb): load, size, (meter, scope) → (p50, p95) ms, and whether every meter
    gave every customer the same month as PostgreSQL."""

    load_seconds: float
    merge_seconds: float  # every month but the newest into one part, as the table does an hour after its writes
    bytes_on_disk: int
    timings: dict[tuple[str, str], tuple[float, float]]
    same_answers: bool
    differences: list[str]


@dataclass
class Timing:
    label: str
    scope: str
    shape: str  # time zone, and the window size when windows are asked for
    p50_ms: float
    p95_ms: float
    runs: int
    raw_p50_ms: float | None = None  # the same query scanning raw events, timed in the same run
    raw_p95_ms: float | None = None


class UsageOverHttp:
    """POST /v1/events/usage/meter on one kept-alive loopback connection, as an API client asks for usage."""

    def __init__(self, base_url: str, key: str, meter_ids: dict[str, str]):
        parts = urlsplit(base_url)
        self.connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
        self.headers = {"x-api-key": key, "content-type": "application/json"}
        self.meter_ids = meter_ids

    def __call__(self, label: str, query: UsageQuery) -> None:
        body = {
            "meter_id": self.meter_ids[label],
            "start_time": query.start.isoformat(),
            "end_time": query.end.isoformat(),
            "timezone": query.zone.key,
            "window_size": query.window_size or None,
            "external_customer_id": query.customer,
        }
        try:
            response = self._post(json.dumps(body))
        except (ConnectionError, http.client.HTTPException):
            # the server may close an idle kept-alive connection between two requests: reconnect once
            self.connection.close()
            response = self._post(json.dumps(body))
        answer = response.read()
        if response.status != 200:
            raise BenchmarkError(f"usage request answered {response.status}: {answer[:500]!r}")

    def _post(self, body: str) -> http.client.HTTPResponse:
        self.connection.request("POST", "/v1/events/usage/meter", body=body, headers=self.headers)
        return self.connection.getresponse()


ZONES = ("UTC", "Asia/Kolkata", "America/New_York")
WINDOW_SIZES = ("", "HOUR", "DAY")


def _register_alias(database_url: str) -> None:
    configured = connections.configure_settings(
        {"default": connections.databases["default"], ALIAS: dj_database_url.parse(database_url)}
    )
    connections.databases[ALIAS] = configured[ALIAS]


def _add_months(moment: dt.datetime, months: int) -> dt.datetime:
    index = moment.month - 1 + months
    return moment.replace(year=moment.year + index // 12, month=index % 12 + 1)


def load_events(
    database_url: str, *, environment_id: int, events: int, batch_size: int, progress: Callable[[int], None]
) -> float:
    """Insert `events` synthetic events without indexes, then build the model's indexes. Returns seconds."""
    months = max(1, round(events / EVENTS_PER_MONTH))
    span = _add_months(FIRST_MONTH, months) - FIRST_MONTH
    started = time.perf_counter()
    connection = connections[ALIAS]
    with event_indexes_deferred(connection), psycopg.connect(database_url, autocommit=True) as raw:
        for low in range(0, events, batch_size):
            high = min(events, low + batch_size)
            raw.execute(
                _INSERT,
                {
                    "environment": environment_id,
                    "event_name": EVENT_NAME,
                    "first": FIRST_MONTH,
                    "total": events,
                    "span": span,
                    "low": low,
                    "high": high,
                },
            )
            progress(high)
    return time.perf_counter() - started


def _time(run: Callable[[], object], repeat: int) -> tuple[float, float]:
    run()  # warm up: plan cache, buffers
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return statistics.median(samples), p95


def _local_month(month: int, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """Month number `month` of the data as `[start, end)` instants, midnight to midnight in `zone`."""
    first = _add_months(FIRST_MONTH, month)
    start = dt.datetime(first.year, first.month, 1, tzinfo=zone)
    following = _add_months(first, 1)
    return start, dt.datetime(following.year, following.month, 1, tzinfo=zone)


def time_queries(
    *,
    environment_id: int,
    month: int,
    repeat: int,
    rollups: bool,
    log: Callable[[str], None],
    zones: tuple[str, ...] = ZONES,
    window_sizes: tuple[str, ...] = WINDOW_SIZES,
    over_http: UsageOverHttp | None = None,
    meters: tuple[str, ...] = tuple(METERS),
) -> list[Timing]:
    """Time every meter for a typical customer, a heavy one and all customers (by customer), one month in each
    time zone, with each window size. With `rollups`, each query is also timed scanning raw events only, with
    fewer runs (the ratio is the point on a noisy machine); all customers take no windows, so they are timed once
    per zone. `over_http`: the queries with rollups go through the API (all customers: the meter's usage without a
    customer, with windows too); the raw-scan figures call the engine in this process."""
    timings = []
    typical = iter(range(10**9))
    for zone_name in zones:
        zone = ZoneInfo(zone_name)
        start, end = _local_month(month, zone)
        for window_size in window_sizes:
            shape = f"{zone_name}{' /' + window_size if window_size else ''}"
            for label in meters:
                definition = METERS[label]
                spec = AggregationSpec.from_meter(Meter(event_name=EVENT_NAME, **definition))

                base = UsageQuery(
                    spec=spec,
                    environment_id=environment_id,
                    start=start,
                    end=end,
                    window_size=window_size,
                    zone=zone,
                )

                def usage(customer=None, by_customer=False, read_rollups=True, base=base, label=label):
                    query = dataclasses.replace(base, customer=customer, by_customer=by_customer)
                    if over_http is not None and read_rollups:
                        return over_http(label, query)
                    return run_usage_queries([query], using=ALIAS, rollups=rollups and read_rollups)

                scopes = [
                    (
                        "typical customer",
                        repeat * 5,
                        lambda **kw: usage(f"cust-{next(typical) % TYPICAL_CUSTOMERS}", **kw),
                    ),
                    ("heavy customer", repeat, lambda **kw: usage(f"heavy-{next(typical) % HEAVY_CUSTOMERS}", **kw)),
                ]
                if over_http is not None:
                    scopes.append(("all customers", max(3, repeat // 4), lambda **kw: usage(**kw)))
                elif not window_size:
                    scopes.append(("all customers", max(3, repeat // 4), lambda **kw: usage(by_customer=True, **kw)))
                for scope, runs, run in scopes:
                    p50, p95 = _time(run, runs)
                    timing = Timing(label=label, scope=scope, shape=shape, p50_ms=p50, p95_ms=p95, runs=runs)
                    if rollups:
                        timing.raw_p50_ms, timing.raw_p95_ms = _time(
                            lambda run=run: run(read_rollups=False), max(2, runs // 5)
                        )
                    timings.append(timing)
                    raw = f"  raw p50 {timing.raw_p50_ms:9.1f} ms" if timing.raw_p50_ms is not None else ""
                    log(f"{shape:<24} {label:<30} {scope:<17} p50 {p50:9.1f} ms  p95 {p95:9.1f} ms{raw}")
    return timings


@contextlib.contextmanager
def _database(database_url: str, *, events: int, keep: bool, reuse: bool) -> Iterator[bool]:
    """Create the benchmark database (or reuse a kept one holding `events` events); yields whether it does."""

    def holds(bench) -> bool:
        return bench.execute(f"SELECT count(*) FROM {Event._meta.db_table}").fetchone()[0] == events

    try:
        with benchmark_database_kept(database_url, keep=keep, reuse=reuse, holds=holds) as loaded:
            yield loaded
    finally:
        connections[ALIAS].close()


def usage_benchmark_run(
    *,
    database_url: str,
    events: int,
    batch_size: int,
    repeat: int,
    keep: bool,
    reuse: bool,
    rollups: bool = True,
    log: Callable[[str], None],
    progress: Callable[[int], None],
    zones: tuple[str, ...] = ZONES,
    window_sizes: tuple[str, ...] = WINDOW_SIZES,
    over_http: bool = False,
    clickhouse_path: str | None = None,
    load_only: bool = False,
    meters: tuple[str, ...] = tuple(METERS),
) -> BenchmarkRun:
    """Create the benchmark database, load events, bring the meters' daily rollups up to date (unless not
    `rollups`: then every query scans raw events), time the queries; drop the database unless `keep`.

    With `reuse`, a kept database that already holds events is timed again without reloading. With `over_http`,
    a granian server (one worker, one thread, bound to 127.0.0.1) answers the queries that read rollups. With
    `load_only`, the database is loaded (and kept) and nothing is built or timed: a later `reuse` run then times the
    first build of the rollups over events loaded ahead (10M events take a while to load). Only `meters` are
    published (the others of a reused database become drafts), so only their rollups are built and timed.
    """
    unknown = set(meters) - set(METERS)
    if unknown:
        raise BenchmarkError(f"unknown meters: {', '.join(sorted(unknown))} (known: {', '.join(METERS)})")
    check_database_url(database_url)
    _register_alias(database_url)
    with _database(database_url, events=events, keep=keep or load_only, reuse=reuse) as loaded:
        load_seconds = None
        if loaded:
            environment = Environment.objects.using(ALIAS).get(slug="bench")
            log("reusing the events already loaded")
        else:
            call_command("migrate", database=ALIAS, verbosity=0)
            environment = Environment.objects.using(ALIAS).create(name="Bench", slug="bench")
            log(f"loading {events:,} events")
            load_seconds = load_events(
                database_url, environment_id=environment.pk, events=events, batch_size=batch_size, progress=progress
            )
            log(f"loaded in {load_seconds:.0f} s ({events / load_seconds:,.0f} events/s incl. index builds)")
        stored = Event.objects.using(ALIAS).count()
        rollup_seconds = idle_refresh_seconds = None
        meters_create(environment, meters)
        if load_only:
            return BenchmarkRun(load_seconds, None, None, stored, [])
        if rollups:
            started = time.perf_counter()
            report = rollups_refresh(using=ALIAS)
            rollup_seconds = time.perf_counter() - started
            log(
                f"rollups: {report.days} days of {report.definitions} definitions, {report.rows:,} rows, "
                f"{report.scans} scans of the events in {rollup_seconds:.1f} s"
            )
            started = time.perf_counter()
            again = rollups_refresh(using=ALIAS)
            idle_refresh_seconds = time.perf_counter() - started
            log(f"a second refresh with nothing new: {again.days} days in {idle_refresh_seconds:.3f} s")
        months = max(1, round(stored / EVENTS_PER_MONTH))
        timing = functools.partial(
            time_queries,
            environment_id=environment.pk,
            month=months // 2,
            repeat=repeat,
            rollups=rollups,
            log=log,
            zones=zones,
            window_sizes=window_sizes,
            meters=meters,
        )
        if over_http:
            env = server_environment(database_url)
            key = manage_run(["create_api_key", "--environment", "bench", "--name", "bench", "--verbosity", "0"], env)
            meter_ids = dict(
                Meter.objects.using(ALIAS).filter(environment=environment).values_list("name", "public_id")
            )
            with wsgi_server(env, workers=1, threads=1) as url:
                timings = timing(over_http=UsageOverHttp(url, key.strip().splitlines()[-1], meter_ids))
        else:
            timings = timing()
        with psycopg.connect(database_url) as bench:
            postgres_bytes = bench.execute(f"SELECT pg_total_relation_size('{Event._meta.db_table}')").fetchone()[0]
        side_by_side = None
        if clickhouse_path:
            side_by_side = _side_by_side(
                clickhouse_path,
                environment_id=environment.pk,
                events=stored,
                batch_size=batch_size,
                month=months // 2,
                zone=ZoneInfo(zones[0] if zones else "UTC"),
                repeat=repeat,
                log=log,
                progress=progress,
            )
    return BenchmarkRun(
        load_seconds=load_seconds,
        rollup_seconds=rollup_seconds,
        idle_refresh_seconds=idle_refresh_seconds,
        events=stored,
        timings=timings,
        postgres_bytes=postgres_bytes,
        clickhouse=side_by_side,
    )


def _side_by_side(
    path: str,
    *,
    environment_id: int,
    events: int,
    batch_size: int,
    month: int,
    zone: ZoneInfo,
    repeat: int,
    log: Callable[[str], None],
    progress: Callable[[int], None],
) -> SideBySide:
    """Load the same events into chdb at `path`, check every meter's month per customer against PostgreSQL, and
    time the month without windows in `zone` for the three scopes."""
    from pathlib import Path

    from benchmarks.clickhouse import clickhouse_load, clickhouse_timings

    months = max(1, round(events / EVENTS_PER_MONTH))
    span = _add_months(FIRST_MONTH, months) - FIRST_MONTH
    log(f"loading the same {events:,} events into ClickHouse (chdb) at {path}")
    load = clickhouse_load(
        Path(path),
        environment_id=environment_id,
        events=events,
        first=FIRST_MONTH,
        span=span,
        batch_size=min(batch_size, 1_000_000),
        progress=progress,
    )
    log(
        f"loaded in {load.seconds:.1f} s, {load.bytes_on_disk / 2**20:.0f} MiB; every month but the newest merged into "
        f"one part (as an hour after its last write) in {load.merge_seconds:.1f} s"
    )
    start, end = _local_month(month, zone)
    differences = []
    for label, definition in METERS.items():
        spec = AggregationSpec.from_meter(Meter(event_name=EVENT_NAME, **definition))
        query = UsageQuery(spec=spec, environment_id=environment_id, start=start, end=end, zone=zone, by_customer=True)
        postgres = run_usage_queries([query], using=ALIAS, rollups=False)[0]
        clickhouse = run_usage_queries([query], backend=load.backend)[0]
        if postgres != clickhouse:
            differences.append(label)
    timings = clickhouse_timings(
        load.backend,
        meters=METERS,
        event_name=EVENT_NAME,
        environment_id=environment_id,
        start=start,
        end=end,
        zone=zone,
        typical=[f"cust-{index}" for index in range(TYPICAL_CUSTOMERS)],
        heavy=[f"heavy-{index}" for index in range(HEAVY_CUSTOMERS)],
        repeat=repeat,
        newest=_local_month(months - 1, zone),
    )
    return SideBySide(
        load_seconds=load.seconds,
        merge_seconds=load.merge_seconds,
        bytes_on_disk=load.bytes_on_disk,
        timings=timings,
        same_answers=not differences,
        differences=differences,
    )


def meters_create(environment: Environment, labels: tuple[str, ...] = tuple(METERS)) -> None:
    """The benchmark's meters `labels` as published meters of its environment, the others as drafts (rollups are
    kept for meters in use only)."""
    meters = Meter.objects.using(ALIAS).filter(environment=environment)
    existing = set(meters.values_list("name", flat=True))
    for index, (label, definition) in enumerate(METERS.items()):
        if label not in existing:
            Meter(
                environment=environment, name=label, event_name=EVENT_NAME, fingerprint=f"bench-{index}", **definition
            ).save(using=ALIAS)
    meters.filter(name__in=labels).update(status=MeterStatus.PUBLISHED)
    meters.exclude(name__in=labels).update(status=MeterStatus.DRAFT)
