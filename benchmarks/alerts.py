"""Alert evaluation benchmark (issue #14): one evaluation pass for 10,000 active customers × 5 alerting features.

    python -m benchmarks.alerts [--events 1000000] [--customers 10000] [--database-url postgres://…/…bench]
    FLEXMETER_BENCHMARKS=1 .venv/bin/python manage.py bench_alerts   (the same, as a management command)

Development only. It creates its own PostgreSQL database (the name must contain "bench"; dropped at the end unless
`--keep`; `--reuse` times the passes again on a kept database), loads `--events` synthetic events spread over 5 event
names and `--customers` customers in their current billing period (generated inside PostgreSQL), builds the daily
rollups as the worker does, creates one published meter and alerting feature per event name (COUNT, SUM, MAX,
COUNT_UNIQUE, LATEST with a `below` condition), marks every (customer, event name) pair as ingest would, then times:

1. the first pass: every pair evaluated, most of them crossing a threshold (states, log rows written);
2. a second pass over the same pairs marked again, where nothing changes (the steady state).

It prints each pass's seconds, the pairs, the changes and the statement count, with the load average.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from urllib.parse import urlsplit

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/flexmeter_alerts_bench"
TARGET_SECONDS = 5.0
EVENT_NAMES = ("bench.calls", "bench.tokens", "bench.peak", "bench.users", "bench.credits")


def _setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flexmeter.settings")
    import django

    django.setup()


def _load_events(environment_id: int, *, events: int, customers: int, start: dt.datetime, now: dt.datetime) -> None:
    """Events generated in PostgreSQL: event i goes to customer i % customers and name (i // customers) % 5, spread
    evenly over `[start, now)`; `amount` 0–99, `user` one of 37, `balance` falling over the period."""
    from django.db import connection

    from benchmarks.loading import event_indexes_deferred

    span = max(1, int((now - start).total_seconds()))
    with event_indexes_deferred(connection), connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO metering_event (environment_id, event_id, event_name, external_customer_id, "timestamp",
                                        ingested_at, source, properties)
            SELECT %(environment)s, 'evt-' || g, (%(names)s::text[])[1 + (g / %(customers)s) %% 5],
                   'cust-' || (g %% %(customers)s),
                   %(start)s + ((g::bigint * %(span)s) / %(events)s) * interval '1 second', now(), 'bench',
                   jsonb_build_object('amount', g %% 100, 'user', 'u' || (g %% 37),
                                      'balance', 1000 - (g::bigint * 1000 / %(events)s))
            FROM generate_series(0, %(events)s - 1) AS g
            """,
            {
                "environment": environment_id,
                "names": list(EVENT_NAMES),
                "customers": customers,
                "start": start,
                "span": span,
                "events": events,
            },
        )


def _catalog(environment, *, per_pair: float):
    """One meter and alerting feature per event name, with thresholds most customers have crossed."""
    from catalog.models import Feature, Meter

    definitions = [
        ("COUNT", "", {"info": per_pair * 0.2, "warning": per_pair * 0.5, "critical": per_pair * 0.8}, "above"),
        ("SUM", "amount", {"warning": per_pair * 49.5 * 0.5, "critical": per_pair * 49.5 * 0.9}, "above"),
        ("MAX", "amount", {"warning": 50, "critical": 90}, "above"),
        ("COUNT_UNIQUE", "user", {"info": 5, "warning": 20, "critical": 36}, "above"),
        ("LATEST", "balance", {"info": 900, "warning": 500, "critical": 100}, "below"),
    ]
    pairs = zip(EVENT_NAMES, definitions, strict=True)
    for number, (name, (aggregation, field, levels, condition)) in enumerate(pairs):
        meter = Meter.objects.create(
            environment=environment,
            name=f"Bench {aggregation}",
            event_name=name,
            aggregation_type=aggregation,
            aggregation_field=field,
            fingerprint=f"bench-alerts-{number}",
        )
        settings = {"alert_enabled": True}
        for level, threshold in levels.items():
            settings[level] = {"threshold": str(round(threshold)), "condition": condition}
        Feature.objects.create(
            environment=environment,
            name=f"Bench {aggregation}",
            lookup_key=f"bench_{aggregation.lower()}",
            type="metered",
            meter=meter,
            alert_settings=settings,
        )


def _mark_all(environment_id: int, customers: int) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO metering_usage_mark (environment_id, external_customer_id, event_name, version, marked_at)
            SELECT %s, 'cust-' || c, n, 1, now() FROM generate_series(0, %s - 1) AS c, unnest(%s::text[]) AS n
            ON CONFLICT (environment_id, external_customer_id, event_name) DO UPDATE SET version =
                metering_usage_mark.version + 1
            """,
            [environment_id, customers, list(EVENT_NAMES)],
        )


def _timed_pass(now: dt.datetime):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from alerts.services import alerts_evaluate

    with CaptureQueriesContext(connection) as captured:
        started = time.perf_counter()
        report = alerts_evaluate(now=now)
        seconds = time.perf_counter() - started
    slowest = sorted(captured.captured_queries, key=lambda query: -float(query["time"]))[:4]
    for query in slowest:
        print(f"    {float(query['time']):7.2f} s  {query['sql'][:150]}")
    return seconds, report, len(captured.captured_queries)


def _forget_evaluations() -> None:
    """--reuse: back to a database no pass has evaluated, so the first pass records its crossings again."""
    from alerts.models import AlertLogEntry, AlertState, LimitReached
    from webhooks.models import WebhookMessage

    for model in (AlertLogEntry, LimitReached, AlertState, WebhookMessage):
        model.objects.all().delete()


def _timed_passes(environment_id: int, customers: int, now: dt.datetime) -> None:
    from django.db import connection

    from metering.usage.rollups.refresh import rollups_refresh

    started = time.perf_counter()
    report = rollups_refresh()
    print(f"rollups: {report.days} days in {time.perf_counter() - started:.1f} s (as the worker's refresh does)")
    with connection.cursor() as cursor:
        # what autovacuum does between passes in production (this server may run without it): statistics after the
        # bulk load, and the dead rows an earlier run (--reuse) left in the tables every pass writes — 15 reruns
        # left 720,000 in each alert table and 1.5M in the marks, and each pass got slower for it
        cursor.execute("VACUUM ANALYZE metering_usage_mark, alerts_alertstate, alerts_alertlogentry")
        cursor.execute("ANALYZE")
    _mark_all(environment_id, customers)
    first = _timed_pass(now)
    _mark_all(environment_id, customers)
    second = _timed_pass(now)
    print(f"{'pass':<34} {'seconds':>8} {'pairs':>7} {'changes':>8} {'statements':>10}  target")
    for label, (seconds, result, statements) in (
        ("first (crossings recorded)", first),
        ("second (marked again, no change)", second),
    ):
        verdict = "met" if seconds <= TARGET_SECONDS else "NOT met"
        print(
            f"{label:<34} {seconds:>8.2f} {result.pairs:>7,} {result.changes:>8,} {statements:>10}"
            f"  ≤ {TARGET_SECONDS:g} s {verdict}"
        )
    print(f"load average: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")


def rerun(*, customers: int) -> int:
    """--reuse: time the passes again on a database an earlier `--keep` run loaded (migrated to today's schema)."""
    from django.core.management import call_command
    from django.db import connection

    from flexmeter.models import Environment

    call_command("migrate", verbosity=0)
    environment = Environment.objects.get(slug="bench")
    _forget_evaluations()
    _timed_passes(environment.pk, customers, dt.datetime.now(dt.UTC).replace(microsecond=0))
    connection.close()
    return 0


def run(*, database_url: str, events: int, customers: int, keep: bool) -> int:
    from django.core.management import call_command
    from django.db import connection

    from benchmarks.runner import benchmark_database
    from flexmeter.models import Environment
    from metering.models import Customer

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    anchor = (now - dt.timedelta(days=20)).replace(hour=0, minute=0, second=0)
    context = benchmark_database(database_url) if not keep else _created(database_url)
    with context:
        connection.close()
        call_command("migrate", verbosity=0)
        environment = Environment.objects.create(name="Bench", slug="bench")
        Customer.objects.bulk_create(
            (
                Customer(
                    environment=environment,
                    external_id=f"cust-{n}",
                    public_id=f"cust_bench{n}",
                    billing_anchor=anchor + dt.timedelta(minutes=n % 1440),
                )  # fmt: skip
                for n in range(customers)
            ),
            batch_size=5000,
        )
        print(f"loading {events:,} events for {customers:,} customers × {len(EVENT_NAMES)} event names …", flush=True)
        started = time.perf_counter()
        _load_events(environment.pk, events=events, customers=customers, start=anchor + dt.timedelta(days=1), now=now)
        print(f"loaded in {time.perf_counter() - started:.0f} s", flush=True)
        _catalog(environment, per_pair=events / customers / len(EVENT_NAMES))
        _timed_passes(environment.pk, customers, now)
        connection.close()
    return 0


class _created:
    """--keep: create the database, never drop it."""

    def __init__(self, database_url: str):
        self.database_url = database_url

    def __enter__(self):
        import psycopg

        from benchmarks.runner import _database_name, _with_database

        name = _database_name(self.database_url)
        with psycopg.connect(_with_database(self.database_url, "postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')

    def __exit__(self, *exc):
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.alerts", description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help=f"default {DEFAULT_DATABASE_URL}")
    parser.add_argument("--events", type=int, default=1_000_000, help="synthetic events (default 1M)")
    parser.add_argument("--customers", type=int, default=10_000, help="active customers (default 10,000)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", action="store_true", help="time the passes again on a database kept by --keep")
    options = parser.parse_args(argv)
    if options.events < 1 or options.customers < 1:
        parser.error("--events and --customers must be positive")
    parts = urlsplit(options.database_url)
    if parts.scheme not in {"postgres", "postgresql"} or "bench" not in parts.path:
        parser.error("--database-url must name a PostgreSQL database whose name contains 'bench' (it is dropped)")
    _setup_django(options.database_url)
    if options.reuse:
        return rerun(customers=options.customers)
    return run(database_url=options.database_url, events=options.events, customers=options.customers, keep=options.keep)


if __name__ == "__main__":
    sys.exit(main())
