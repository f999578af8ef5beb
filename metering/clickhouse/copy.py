"""Moving an installation's events from the Django database into ClickHouse: resumable, idempotent, verified.

Events are read in primary-key order in batches and written by the ClickHouse writer (so a re-copied event is a
redelivery of itself: replaced, never counted twice). After each batch the last copied key is recorded in
ClickHouse (`copy_progress`), so an interrupted copy resumes where it stopped. Verification computes, for every
published meter of every environment, the usage of every customer over all time on both stores with the same
engine and compares them to the last digit.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connection
from django.utils import timezone

from catalog.expressions import ExpressionError
from catalog.models import Meter
from flexmeter.errors import FlexmeterError
from metering.clickhouse.config import DJANGO, EventsBackend, clickhouse_client
from metering.clickhouse.schema import COPY_PROGRESS, EVENTS
from metering.ingest.clickhouse import clickhouse_events_store
from metering.models import Event
from metering.usage.engine import run_usage_queries
from metering.usage.selectors import usage_query_build
from metering.usage.spec import AggregationSpec

ALL_TIME = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def copy_source() -> str:
    """The name this Django database's progress is recorded under."""
    return f"django:{connection.vendor}:{connection.settings_dict.get('NAME')}"


def copied_up_to(backend: EventsBackend) -> tuple[int, int]:
    """(last copied primary key, events copied so far) of this database, (0, 0) before any copy."""
    rows = (
        clickhouse_client(backend)
        .query(
            f"SELECT last_id, copied FROM {backend.database}.{COPY_PROGRESS} FINAL WHERE source = %(source)s",
            parameters={"source": copy_source()},
        )
        .result_rows
    )
    return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)


def events_to_copy(after: int) -> int:
    return Event.objects.filter(pk__gt=after).count()


def copy_events(
    backend: EventsBackend, *, batch_size: int = 10_000, restart: bool = False, on_batch: Callable[[int], None]
) -> int:
    """Copy every event after the recorded progress (all of them with `restart`); returns how many were copied."""
    last_id, copied = (0, 0) if restart else copied_up_to(backend)
    client = clickhouse_client(backend)
    done = 0
    for batch in _batches(last_id, batch_size):
        by_environment: dict[int, list[Event]] = defaultdict(list)
        for event in batch:
            by_environment[event.environment_id].append(event)
        for environment_id, events in by_environment.items():
            clickhouse_events_store(backend=backend, environment_id=environment_id, events=events)  # type: ignore[arg-type]
        done += len(batch)
        client.insert(
            COPY_PROGRESS,
            [[copy_source(), batch[-1].pk, copied + done, timezone.now()]],
            column_names=("source", "last_id", "copied", "updated_at"),
            database=backend.database,
        )
        on_batch(done)
    return done


def _batches(after: int, size: int) -> Iterator[list[Event]]:
    while True:
        batch = list(Event.objects.filter(pk__gt=after).order_by("pk")[:size])
        if not batch:
            return
        yield batch
        after = batch[-1].pk


@dataclass
class Verification:
    """What both stores answered: event counts per environment and every meter's usage per customer."""

    events: dict[int, tuple[int, int]] = field(default_factory=dict)  # environment → (django, clickhouse)
    meters_compared: int = 0
    differences: list[str] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return not self.differences


def verify_copy(backend: EventsBackend) -> Verification:
    """Compare the two stores: events per environment, and for every published meter the all-time usage of every
    customer (one engine statement per store and meter)."""
    result = Verification()
    django = EventsBackend(kind=DJANGO)
    counts = (
        clickhouse_client(backend)
        .query(f"SELECT environment_id, count() FROM {backend.database}.{EVENTS} FINAL GROUP BY environment_id")
        .result_rows
    )
    in_clickhouse = {int(environment): int(count) for environment, count in counts}
    environments = set(in_clickhouse) | set(Event.objects.values_list("environment_id", flat=True).distinct())
    for environment_id in sorted(environments):
        mine = Event.objects.filter(environment_id=environment_id).count()
        result.events[environment_id] = (mine, in_clickhouse.get(environment_id, 0))
        if mine != in_clickhouse.get(environment_id, 0):
            result.differences.append(
                f"environment {environment_id}: {mine} events in the Django database, "
                f"{in_clickhouse.get(environment_id, 0)} in ClickHouse"
            )
    end = timezone.now() + dt.timedelta(days=2)  # events may lie up to a day in the future
    for meter in Meter.objects.filter(status="published").order_by("pk"):
        try:
            spec = AggregationSpec.from_meter(meter)
        except (ExpressionError, ArithmeticError, ValueError):
            continue
        query = usage_query_build(
            spec=spec, environment_id=meter.environment_id, start=ALL_TIME, end=end, by_customer=True
        )
        result.meters_compared += 1
        before = run_usage_queries([query], backend=django)[0]
        try:
            after = run_usage_queries([query], backend=backend)[0]
        except FlexmeterError as error:
            result.differences.append(f"meter {meter.public_id}: {error}")
            continue
        if _normalized(before) != _normalized(after):
            result.differences.append(f"meter {meter.public_id}: usage per customer differs")
    return result


def _normalized(values) -> dict[str, Decimal | None]:
    return {customer: value for customer, value in values.items() if value not in (None, Decimal(0))}
