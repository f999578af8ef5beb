"""Access-check benchmark (issue #13): entitlement checks over HTTP against PostgreSQL holding 1M+ events.

    python -m benchmarks.entitlements [--events 1000000] [--repeat 300] [--database-url postgres://…/…bench]
                                      [--keep] [--reuse]

Development only. It creates its own database (the name must contain "bench"; dropped at the end unless `--keep`;
`--reuse` times again on a kept one holding the same number of events, loaded the same day), loads synthetic
events with the usage benchmark's loader (`benchmarks.usage.load_events`: 700 typical customers with ~1,000
events a month, 3 heavy ones with ~100,000), a million a month, the last month being the customers' current billing
period (the last 30 days) and the months before it history (10M events: nine months of history); builds the daily
rollups as `refresh_rollups` does in production, and gives every customer two plans (a base plan with a metered
limit and a boolean feature, an add-on raising the limit). It then serves Django with granian on
127.0.0.1 and times, one request at a time over a keep-alive connection:

- `GET /v1/customers/{id}/entitlements/api_calls` for typical customers (p50, p95) and heavy ones (p95);
- `POST /v1/entitlements/check` with 100 pairs (100 typical customers).
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import time
from urllib.parse import urlsplit

SINGLE_TYPICAL_P95_MS = 15.0
BATCH_MS = 50.0
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/flexmeter_entitlements_bench"
BASE_LIMIT, ADDON_LIMIT = 2000, 500


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flexmeter.settings")
    import django

    django.setup()


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _catalog(alias: str, environment, start: dt.datetime, event_name: str) -> dict:
    """One COUNT meter and feature, a boolean feature, a base plan and an add-on, with customers subscribed."""
    from benchmarks.usage import HEAVY_CUSTOMERS, TYPICAL_CUSTOMERS
    from catalog.models import Feature, Meter
    from entitlements.models import Entitlement, Plan, Subscription
    from metering.models import Customer

    meter = Meter(environment=environment, name="API requests", event_name=event_name, fingerprint="bench-count")
    meter.save(using=alias)
    calls = Feature(environment=environment, name="API calls", lookup_key="api_calls", type="metered", meter=meter)
    calls.save(using=alias)
    sso = Feature(environment=environment, name="SSO", lookup_key="sso", type="boolean")
    sso.save(using=alias)
    base = Plan(environment=environment, name="Base", lookup_key="base")
    base.save(using=alias)
    addon = Plan(environment=environment, name="More calls", lookup_key="more_calls")
    addon.save(using=alias)
    for plan, feature, limit in ((base, calls, BASE_LIMIT), (base, sso, ""), (addon, calls, ADDON_LIMIT)):
        Entitlement(
            environment=environment,
            plan=plan,
            feature=feature,
            usage_limit=str(limit),
            usage_reset_period="BILLING_PERIOD",
        ).save(using=alias)
    external_ids = [f"cust-{i}" for i in range(TYPICAL_CUSTOMERS)] + [f"heavy-{i}" for i in range(HEAVY_CUSTOMERS)]
    customers = []
    for external_id in external_ids:
        customer = Customer(environment=environment, external_id=external_id, name=external_id, billing_anchor=start)
        customer.save(using=alias)
        customers.append(customer)
    for customer in customers:
        for plan in (base, addon):
            Subscription(
                environment=environment, customer=customer, plan=plan, start_date=start, billing_anchor=start
            ).save(using=alias)
    return {customer.external_id: customer.public_id for customer in customers}


class Client:
    """Sequential requests over one keep-alive connection; returns (milliseconds, decoded body)."""

    def __init__(self, base_url: str, key: str):
        parts = urlsplit(base_url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        self.headers = {"x-api-key": key, "content-type": "application/json"}

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[float, dict]:
        payload = json.dumps(body).encode() if body is not None else None
        started = time.perf_counter()
        self.connection.request(method, path, body=payload, headers=self.headers)
        response = self.connection.getresponse()
        data = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200:
            raise RuntimeError(f"{method} {path} answered {response.status}: {data[:500]!r}")
        return elapsed, json.loads(data)


def _measure(request, *, typical: list[str], heavy: list[str], typical_external: list[str], repeat: int, rng):
    """Time the three requests with `request(method, path, body) -> (ms, body)`; returns {label: samples}."""
    # warm up connections, plans and buffers: every customer once, as a check service that runs all day has them
    # (right after another benchmark had filled the caches, 20 customers left the typical p50 at ~6 ms for 4)
    for public_id in typical + heavy:
        request("GET", f"/v1/customers/{public_id}/entitlements/api_calls", None)
    samples: dict[str, list[float]] = {"typical": [], "heavy": [], "batch": []}
    heavy_usage = []
    for _ in range(repeat):
        samples["typical"].append(
            request("GET", f"/v1/customers/{rng.choice(typical)}/entitlements/api_calls", None)[0]
        )
    for _ in range(repeat):
        elapsed, body = request("GET", f"/v1/customers/{rng.choice(heavy)}/entitlements/api_calls", None)
        samples["heavy"].append(elapsed)
        heavy_usage.append(body["usage"])
    for _ in range(max(20, repeat // 5)):
        pairs = [
            {"external_customer_id": external_id, "feature": "api_calls"}
            for external_id in rng.sample(typical_external, 100)
        ]
        elapsed, body = request("POST", "/v1/entitlements/check", {"checks": pairs})
        assert len(body["results"]) == 100
        samples["batch"].append(elapsed)
    return samples, heavy_usage


def _server_time(repeat: int) -> None:
    """Child process pointed at the benchmark database: the same requests through Django's test client, i.e.
    the server's own time without HTTP, printed as JSON for the parent."""
    from django.test import Client

    from metering.models import Customer

    key = os.environ["FLEXMETER_BENCH_KEY"]
    client = Client()
    headers = {"HTTP_X_API_KEY": key}

    def request(method: str, path: str, body: dict | None):
        started = time.perf_counter()
        if method == "GET":
            response = client.get(path, **headers)
        else:
            response = client.post(path, json.dumps(body), content_type="application/json", **headers)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"{method} {path} answered {response.status_code}")
        return elapsed, json.loads(response.content)

    customers = dict(Customer.objects.values_list("external_id", "public_id"))
    typical = [public_id for external_id, public_id in customers.items() if external_id.startswith("cust-")]
    heavy = [public_id for external_id, public_id in customers.items() if external_id.startswith("heavy-")]
    typical_external = [external_id for external_id in customers if external_id.startswith("cust-")]
    samples, _ = _measure(
        request, typical=typical, heavy=heavy, typical_external=typical_external, repeat=repeat, rng=random.Random(7)
    )
    print(json.dumps(samples))


def run(
    *, database_url: str, events: int, repeat: int, workers: int, threads: int, keep: bool = False, reuse: bool = False
) -> int:
    import psycopg
    from django.core.management import call_command

    import benchmarks.usage as usage_bench
    from benchmarks.runner import (
        benchmark_database_kept,
        check_database_url,
        server_environment,
        wsgi_server,
    )
    from flexmeter.models import ApiKey, Environment, generate_raw_api_key, hash_api_key
    from metering.models import Customer, Event
    from metering.usage.rollups.refresh import rollups_refresh

    check_database_url(database_url)
    usage_bench._register_alias(database_url)
    alias = usage_bench.ALIAS
    now = dt.datetime.now(dt.UTC)
    start = (now - dt.timedelta(days=29)).replace(hour=0, minute=0, second=0, microsecond=0)
    if start.day > 28:  # the loader adds a month with replace(month=…): start on the 1st after
        start = (start + dt.timedelta(days=4)).replace(day=1)
    # The loader spreads a month per million events from FIRST_MONTH on. The last of those months is the current
    # billing period of customers anchored at `start` (ending a day or two ahead of now, as events stamped ahead
    # may); the months before it are history the checks must not count.
    months = max(1, round(events / usage_bench.EVENTS_PER_MONTH))
    usage_bench.FIRST_MONTH = usage_bench._add_months(start, 1 - months)
    rng = random.Random(13)

    def holds(bench: psycopg.Connection) -> bool:
        found = bench.execute("SELECT to_regclass('entitlements_subscription') IS NOT NULL").fetchone()[0]
        return found and bench.execute(f"SELECT count(*) FROM {Event._meta.db_table}").fetchone()[0] == events

    with benchmark_database_kept(database_url, keep=keep, reuse=reuse, holds=holds) as loaded:
        call_command("migrate", database=alias, verbosity=0)
        if loaded:
            environment = Environment.objects.using(alias).get(slug="bench")
            customers = dict(
                Customer.objects.using(alias).filter(environment=environment).values_list("external_id", "public_id")
            )
            print(f"reusing {events:,} events and {len(customers):,} customers", flush=True)
        else:
            environment = Environment(name="Bench", slug="bench")
            environment.save(using=alias)
            first = usage_bench.FIRST_MONTH
            print(f"loading {events:,} events from {first:%Y-%m-%d}, this period from {start:%Y-%m-%d} …", flush=True)
            seconds = usage_bench.load_events(
                database_url, environment_id=environment.pk, events=events, batch_size=1_000_000,
                progress=lambda _: None,
            )  # fmt: skip
            print(f"loaded in {seconds:.0f} s")
            with psycopg.connect(database_url, autocommit=True) as raw:
                raw.execute(f"VACUUM ANALYZE {Event._meta.db_table}")  # what autovacuum does after a load
            customers = _catalog(alias, environment, start, usage_bench.EVENT_NAME)
        # a key per run: only its hash is stored, so a reused database's earlier key cannot be read back
        raw_key = generate_raw_api_key()
        ApiKey(environment=environment, name="bench", prefix=raw_key[:12], key_hash=hash_api_key(raw_key)).save(
            using=alias
        )
        started = time.perf_counter()
        report = rollups_refresh(using=alias)
        print(f"rollups: {report.days} days in {time.perf_counter() - started:.1f} s (as refresh_rollups does)")
        with psycopg.connect(database_url, autocommit=True) as raw:
            # the statistics autovacuum gathers in production (this server may run without it): customers, plans,
            # subscriptions and rollup rows were all written after the events' ANALYZE above
            raw.execute("ANALYZE")
        typical = [public_id for external_id, public_id in customers.items() if external_id.startswith("cust-")]
        heavy = [public_id for external_id, public_id in customers.items() if external_id.startswith("heavy-")]
        typical_external = [external_id for external_id in customers if external_id.startswith("cust-")]

        with wsgi_server(server_environment(database_url), workers=workers, threads=threads) as base_url:
            client = Client(base_url, raw_key)
            samples, heavy_usage = _measure(
                lambda method, path, body: client.request(method, path, body),
                typical=typical,
                heavy=heavy,
                typical_external=typical_external,
                repeat=repeat,
                rng=rng,
            )
            client.connection.close()
        child = subprocess.run(
            [sys.executable, "-m", "benchmarks.entitlements", "--server-time", "--repeat", str(repeat)],
            env={**server_environment(database_url), "FLEXMETER_BENCH_KEY": raw_key, "ALLOWED_HOSTS": "testserver"},
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        server = json.loads(child.stdout.strip().splitlines()[-1])

    rows = [
        ("single check, typical customer", "typical", "p50", 5.0),
        ("single check, typical customer", "typical", "p95", SINGLE_TYPICAL_P95_MS),
        ("single check, heavy customer", "heavy", "p95", 15.0),
        ("batch of 100 checks", "batch", "p95", BATCH_MS),
    ]
    print(f"heavy customers' usage this period: {min(heavy_usage):,}–{max(heavy_usage):,} events (limit 2,500)")
    print(f"{'measurement':<32} {'HTTP p50':>9} {'p95':>7} {'server p50':>11} {'p95':>7} {'runs':>5}  target (HTTP)")
    for label, key, statistic, target in rows:
        p50, p95 = _percentiles(samples[key])
        server_p50, server_p95 = _percentiles(server[key])
        measured = p50 if statistic == "p50" else p95
        verdict = "met" if measured <= target else "NOT met"
        print(
            f"{label:<32} {p50:>9.2f} {p95:>7.2f} {server_p50:>11.2f} {server_p95:>7.2f} {len(samples[key]):>5}"
            f"  {statistic} ≤ {target:g} ms {verdict}"
        )
    print(f"load average during the run: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.entitlements", description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help=f"default {DEFAULT_DATABASE_URL}")
    parser.add_argument("--events", type=int, default=1_000_000, help="synthetic events (default 1M a month)")
    parser.add_argument("--repeat", type=int, default=300, help="timed single checks per customer kind")
    parser.add_argument("--workers", type=int, default=1, help="granian workers (default 1)")
    parser.add_argument("--threads", type=int, default=2, help="blocking threads per worker (default 2)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", action="store_true", help="time again on a database --keep left with these events")
    parser.add_argument("--server-time", action="store_true", help=argparse.SUPPRESS)  # the child measurement
    options = parser.parse_args(argv)
    if options.events < 1 or options.repeat < 1:
        parser.error("--events and --repeat must be positive")
    _setup_django()
    if options.server_time:
        _server_time(options.repeat)
        return 0
    return run(
        database_url=options.database_url,
        events=options.events,
        repeat=options.repeat,
        workers=options.workers,
        threads=options.threads,
        keep=options.keep,
        reuse=options.reuse,
    )


if __name__ == "__main__":
    sys.exit(main())
