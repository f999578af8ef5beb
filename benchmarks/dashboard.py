"""Dashboard benchmark: server time of the overview, customer, debugger and usage pages with 1,000,000 events
(`--events`) in PostgreSQL.

The parent process creates a throw-away database (its name must contain `bench`), runs itself again with
`DATABASE_URL` pointing there (so nothing can touch the development database), and drops the database at the
end unless `keep`. The inner run migrates, loads synthetic events inside PostgreSQL (`generate_series`, indexes
built afterwards, then VACUUM ANALYZE), and renders each page through Django's test Client, timing the whole
request. With `reuse`, a kept database holding the same number of events is migrated and timed again without
reloading (its events end when it was loaded: the pages then show fewer events for today).

The data: 700 customers (50 of them unknown to flexmeter), events over the last 30 days ending now; 60% are
`api.request` (COUNT feature and an EU-filtered SUM feature), 30% `llm.request` (SUM of tokens; 1 in 100 has a
non-numeric value), 10% misspelled names that nothing meters.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection

from benchmarks.loading import event_indexes_deferred
from benchmarks.runner import BenchmarkError, benchmark_database_kept, check_database_url
from metering.usage.rollups.refresh import rollups_refresh

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/flexmeter_dash_bench"
CUSTOMERS = 700
UNKNOWN_CUSTOMERS = 50
SPAN = dt.timedelta(days=30)

_INSERT = """
INSERT INTO metering_event
    (environment_id, event_id, event_name, external_customer_id, "timestamp", ingested_at, source, properties)
SELECT %(environment)s, 'dash-' || i,
       CASE WHEN r %% 10 < 6 THEN 'api.request' WHEN r %% 10 < 9 THEN 'llm.request'
            WHEN r %% 2 = 0 THEN 'API.request' ELSE 'llm_request' END,
       'cust-' || (r %% %(customers)s),
       %(first)s::timestamptz + (i::float8 / %(total)s) * %(span)s::interval,
       now(), CASE WHEN r %% 3 = 0 THEN 'worker' ELSE 'api' END,
       jsonb_build_object(
           'tokens', CASE WHEN r %% 100 = 0 THEN to_jsonb('n/a'::text)
                          WHEN r %% 20 = 0 THEN to_jsonb(((r %% 997) + 1)::text) ELSE to_jsonb((r %% 997) + 1) END,
           'region', (ARRAY['eu', 'us', 'ap'])[1 + (r / 7) %% 3],
           'model', (ARRAY['gpt-4o', 'gpt-4o-mini', 'claude'])[1 + (r / 11) %% 3],
           'path', '/v1/items/' || (r %% 50)
       )
FROM (SELECT i, (i * 2654435761) %% 1000003 AS r FROM generate_series(%(low)s::bigint, %(high)s::bigint - 1) AS i) g
"""


@dataclass
class PageTiming:
    label: str
    path: str
    queries: int
    p50_ms: float
    p95_ms: float
    runs: int


def dashboard_benchmark_run(
    *,
    database_url: str,
    events: int,
    repeat: int,
    log: Callable[[str], None],
    manage_py: Path | None = None,
    keep: bool = False,
    reuse: bool = False,
) -> None:
    """Create the database (or reuse a kept one), run the measurement in a child process against it, drop the
    database unless `keep`."""
    try:
        check_database_url(database_url)
    except BenchmarkError as exc:
        raise BenchmarkError(str(exc)) from None
    env = dict(os.environ)
    env.update(DATABASE_URL=database_url, DEBUG="false", SECRET_KEY=secrets.token_urlsafe(40),
               ALLOWED_HOSTS="testserver", SECURE_SSL_REDIRECT="false", LOG_LEVEL="WARNING",
               FLEXMETER_BENCHMARKS="1")  # fmt: skip
    manage_py = manage_py or Path(settings.BASE_DIR) / "manage.py"
    name = database_url.rsplit("/", 1)[-1]

    def holds(bench) -> bool:
        found = bench.execute("SELECT to_regclass('metering_event') IS NOT NULL").fetchone()[0]
        return found and bench.execute("SELECT count(*) FROM metering_event").fetchone()[0] == events

    with benchmark_database_kept(database_url, keep=keep, reuse=reuse, holds=holds) as loaded:
        if loaded:
            log(f"reusing {name} ({events:,} events)")
        else:
            log(f"created {name}; loading {events:,} events (a minute or two)…")
        command = [sys.executable, str(manage_py), "bench_dashboard", "--inner", "--events", str(events),
                   "--repeat", str(repeat), *(["--reuse"] if loaded else [])]  # fmt: skip
        completed = subprocess.run(command, env=env, timeout=3600, check=False)
        if completed.returncode != 0:
            raise BenchmarkError(f"the measurement failed (exit {completed.returncode})")
    log(f"kept {name} (time it again with --reuse)" if keep else "dropped the benchmark database")


def _load(*, events: int, environment_id: int, log: Callable[[str], None]) -> float:

    started = time.perf_counter()
    first = dt.datetime.now(dt.UTC) - SPAN
    batch = 250_000
    with event_indexes_deferred(connection), connection.cursor() as cursor:
        for low in range(0, events, batch):
            high = min(events, low + batch)
            cursor.execute(_INSERT, {"environment": environment_id, "customers": CUSTOMERS, "first": first,
                                     "total": events, "span": SPAN - dt.timedelta(minutes=1), "low": low,
                                     "high": high})  # fmt: skip
            log(f"  {high:,} events")
    return time.perf_counter() - started


def _catalog(environment):
    """Three metered features and 650 of the 700 customers, anchored on different days."""
    from catalog.models import Feature, FeatureType, Meter
    from metering.models import Customer

    def feature(name, lookup_key, unit, **meter):
        meter = Meter.objects.create(environment=environment, name=name, fingerprint=lookup_key, **meter)
        return Feature.objects.create(environment=environment, name=name, lookup_key=lookup_key,
                                      type=FeatureType.METERED, meter=meter, unit_singular=unit,
                                      unit_plural=f"{unit}s")  # fmt: skip

    requests = feature("API requests", "api_requests", "request", event_name="api.request")
    feature("EU requests", "eu_requests", "request", event_name="api.request",
            filters=[{"key": "region", "operator": "in", "values": ["eu"]}])  # fmt: skip
    tokens = feature("LLM tokens", "llm_tokens", "token", event_name="llm.request", aggregation_type="SUM",
                     aggregation_field="tokens")  # fmt: skip
    now = dt.datetime.now(dt.UTC)
    Customer.objects.bulk_create(
        Customer(
            environment=environment,
            public_id=f"cust_bench{n:05d}",
            external_id=f"cust-{n}",
            name=f"Customer {n}",
            billing_anchor=now - dt.timedelta(days=40 + n % 28, hours=n % 24),
        )  # fmt: skip
        for n in range(CUSTOMERS - UNKNOWN_CUSTOMERS)
    )
    return requests, tokens


def _time(client, path: str, repeat: int) -> tuple[int, list[float]]:
    statements = []

    def count(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        response = client.get(path)
    if response.status_code != 200:
        raise BenchmarkError(f"{path} answered {response.status_code}")
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(path)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return len(statements), samples


def dashboard_benchmark_measure(
    *, events: int, repeat: int, log: Callable[[str], None], reuse: bool = False
) -> list[PageTiming]:
    """Inside the child process: migrate, load (unless `reuse`), bring the rollups up to date, render every page
    `repeat` times. Returns the timings."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from flexmeter.models import Environment
    from metering.models import Event

    name = connection.settings_dict["NAME"]
    if connection.vendor != "postgresql" or "bench" not in name:
        raise BenchmarkError(f"refusing to load events into {name!r}: not a PostgreSQL benchmark database")
    call_command("migrate", verbosity=0)
    if reuse:
        environment = Environment.objects.get(slug="bench")
        requests = environment.features.get(lookup_key="api_requests")
        tokens = environment.features.get(lookup_key="llm_tokens")
    else:
        environment = Environment.objects.create(slug="bench", name="Bench")
        requests, tokens = _catalog(environment)
        seconds = _load(events=events, environment_id=environment.pk, log=log)
        log(f"loaded {events:,} events and built indexes in {seconds:.0f} s")
    started = time.perf_counter()
    report = rollups_refresh()
    elapsed = time.perf_counter() - started
    log(f"rollups of {report.definitions} meters ({report.days} days) and event counts brought up to date in "
        f"{elapsed:.1f} s")  # fmt: skip
    with connection.cursor() as cursor:  # this server runs without autovacuum: the planner needs the new rows counted
        cursor.execute("ANALYZE")
    user = get_user_model().objects.filter(username="bench").first() or get_user_model().objects.create_user(
        "bench", password=secrets.token_urlsafe(12)
    )
    client = Client()
    client.force_login(user)
    processed = Event.objects.filter(event_name="llm.request").order_by("-timestamp").values_list("event_id", flat=True)
    customer = environment.customers.get(external_id="cust-7")
    pages = [
        ("overview (home)", "/"),
        ("usage index (3 features, 30 days)", "/usage/"),
        ("customers list (25, events + last seen)", "/customers/"),
        ("customer detail (recent events, status)", f"/customers/{customer.public_id}/"),
        ("feature detail (usage summary)", f"/catalog/features/{requests.public_id}/"),
        ("stream", "/events/"),
        ("stream, unmatched only", "/events/?status=unmatched"),
        ("stream, one customer", "/events/?external_customer_id=cust-7"),
        ("event detail", f"/events/detail/?id={processed[0]}"),
        ("unmatched names, 24 h", "/events/unmatched/?range=24h"),
        ("feature usage (COUNT), 7 days", f"/usage/features/{requests.public_id}/?window=7d"),
        ("feature usage (COUNT), 30 days", f"/usage/features/{requests.public_id}/?window=30d"),
        ("feature usage (SUM), 30 days", f"/usage/features/{tokens.public_id}/?window=30d"),
        ("customer usage, current period", f"/usage/customers/{customer.public_id}/"),
    ]
    timings = []
    for label, path in pages:
        count, samples = _time(client, path, repeat)
        samples.sort()
        p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
        timings.append(PageTiming(label, path, count, statistics.median(samples), p95, len(samples)))
        log(f"{label:<42} {statistics.median(samples):8.1f} ms p50 {p95:8.1f} ms p95   {count:2d} queries")
    return timings
