"""Exporting events and usage as CSV (SPEC §9).

Events go out in the import format (`import_events` reads the file back unchanged): one row per event, oldest
first, properties as exact JSON. Usage goes out per feature and customer; every number comes from the usage
engine's selectors (`metering.usage.selectors`), never from arithmetic here.
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import TextIO

from catalog.models import Feature
from catalog.selectors import metered_features
from flexmeter.csv_cells import csv_writer
from flexmeter.decimals import decimal_text, rfc3339, unit_label
from flexmeter.errors import ValidationFailed
from flexmeter.models import Environment
from metering import exactjson
from metering.clickhouse import reads as clickhouse_reads
from metering.clickhouse.config import EventsBackend, events_backend
from metering.ingest.validation import parse_timestamp
from metering.models import Customer, Event
from metering.progress import ProgressBar
from metering.selectors import events_matching
from metering.usage.selectors import customer_current_usage, meter_usage, meter_usage_by_customer

EVENT_COLUMNS = ("event_id", "event_name", "external_customer_id", "timestamp", "source", "properties", "ingested_at")
USAGE_COLUMNS = (
    "feature_id",
    "feature_lookup_key",
    "feature_name",
    "meter_id",
    "event_name",
    "aggregation",
    "external_customer_id",
    "customer_id",
    "customer_name",
    "period_start",
    "period_end",
    "usage",
    "unit",
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CHUNK = 5000


def moment_parse(value: str, *, name: str) -> dt.datetime:
    """An RFC 3339 timestamp, or a plain date meaning midnight UTC; ValidationFailed naming the option."""
    text = value.strip()
    try:
        if _DATE.match(text):
            return dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), tzinfo=dt.UTC)
        return parse_timestamp(text)
    except ValueError as exc:
        raise ValidationFailed(details={name: f"{exc} (or a date such as 2026-01-31)"}) from None


def window_check(start: dt.datetime | None, end: dt.datetime | None) -> None:
    if start is not None and end is not None and end <= start:
        raise ValidationFailed(details={"end": "must be after start"})


def events_export_queryset(
    *,
    environment: Environment,
    event_names: Iterable[str] = (),
    external_customer_id: str | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
):
    """The events an export writes: one environment, optional names, customer and half-open window, oldest first."""
    window_check(start, end)
    names = list(event_names)
    backend = events_backend()
    if backend.is_clickhouse:
        return ClickHouseEventSelection(
            backend,
            environment_id=environment.pk,
            conditions=lambda d, p: clickhouse_reads.column_conditions(
                d,
                p,
                environment_id=environment.pk,
                external_customer_id=external_customer_id,
                event_names=names,
                start=start,
                end=end,
            ),
        )
    events = events_matching(
        Event.objects.for_environment(environment).between(start, end), external_customer_id=external_customer_id
    )
    if names:
        events = events.filter(event_name__in=names)
    return events.order_by("timestamp", "id")


@dataclass(frozen=True)
class ClickHouseEventSelection:
    """The events an export writes when they live in ClickHouse: counted, then read oldest first in keyset chunks."""

    backend: EventsBackend
    environment_id: int
    conditions: clickhouse_reads.Conditions

    def count(self) -> int:
        return clickhouse_reads.event_count(self.backend, conditions=self.conditions)

    def rows(self) -> Iterator[tuple]:
        for event in clickhouse_reads.events_oldest_first(
            self.backend, environment_id=self.environment_id, conditions=self.conditions, chunk=_CHUNK
        ):
            yield (
                event.event_id,
                event.event_name,
                event.external_customer_id,
                event.timestamp,
                event.source,
                event.properties,
                event.ingested_at,
            )


def _properties_text(properties) -> str:
    # A row no reader can decode goes out as it is stored: nothing is lost, and importing it again meets the rule
    # of flexmeter/limits.py, which says what is wrong with it.
    if isinstance(properties, exactjson.UnreadableJSON):
        return properties.text
    return exactjson.dumps(properties or {})


def events_export(*, events, out: TextIO, progress: ProgressBar | None = None) -> int:
    """Write `events` (from `events_export_queryset`) as CSV in the import format; returns the number of rows."""
    writer = csv_writer(out, lineterminator="\n")
    writer.writerow(EVENT_COLUMNS)
    if isinstance(events, ClickHouseEventSelection):
        rows: Iterable[tuple] = events.rows()
    else:
        rows = events.values_list(
            "event_id", "event_name", "external_customer_id", "timestamp", "source", "properties", "ingested_at"
        ).iterator(chunk_size=_CHUNK)
    count = 0
    for event_id, name, customer, timestamp, source, properties, ingested_at in rows:
        writer.writerow(
            (
                event_id,
                name,
                customer,
                rfc3339(timestamp),
                source,
                _properties_text(properties),
                rfc3339(ingested_at),
            )
        )
        count += 1
        if progress is not None and count % _CHUNK == 0:
            progress.update(items=count)
    if progress is not None:
        progress.update(items=count)
        progress.finish()
    return count


@dataclass(frozen=True)
class UsageRow:
    feature: Feature
    external_customer_id: str
    customer: Customer | None
    period_start: dt.datetime
    period_end: dt.datetime
    value: Decimal | None

    def cells(self) -> tuple:
        meter = self.feature.meter
        return (
            self.feature.public_id,
            self.feature.lookup_key,
            self.feature.name,
            meter.public_id,
            meter.event_name,
            meter.aggregation_type,
            self.external_customer_id,
            self.customer.public_id if self.customer else "",
            self.customer.name if self.customer else "",
            rfc3339(self.period_start),
            rfc3339(self.period_end),
            "" if self.value is None else decimal_text(self.value),
            unit_label(value=self.value, singular=self.feature.unit_singular, plural=self.feature.unit_plural),
        )


def usage_export_features(*, environment: Environment, features: Iterable[str] = ()) -> list[Feature]:
    """Published metered features of the environment, optionally only those named by public id or lookup key."""
    wanted = list(features)
    found = list(metered_features(environment=environment))
    if not wanted:
        return found
    chosen = [feature for feature in found if feature.public_id in wanted or feature.lookup_key in wanted]
    known = {feature.public_id for feature in chosen} | {feature.lookup_key for feature in chosen}
    missing = [name for name in wanted if name not in known]
    if missing:
        raise ValidationFailed(
            details={"feature": f"no published metered feature {', '.join(missing)} in {environment.slug}"}
        )
    return chosen


def usage_rows(
    *,
    environment: Environment,
    features: Iterable[str] = (),
    external_customer_id: str | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    at: dt.datetime | None = None,
) -> list[UsageRow]:
    """Usage per feature and customer.

    With `start` and `end`: every feature over that window (meters that never reset cover everything before
    `end`), one row per customer with matching events, or exactly one row for `external_customer_id`. Without
    them: each active customer's current billing period at `at` (now), one row per feature.
    """
    if (start is None) != (end is None):
        raise ValidationFailed(details={"start" if start is None else "end": "give both --start and --end, or neither"})
    window_check(start, end)
    chosen = usage_export_features(environment=environment, features=features)
    customers = Customer.objects.for_environment(environment).active().order_by("external_id")
    if external_customer_id:
        customers = customers.filter(external_id=external_customer_id)
    if start is None:
        if external_customer_id and not customers.exists():
            raise ValidationFailed(details={"customer": f"no active customer {external_customer_id}"})
        wanted = {feature.pk for feature in chosen}
        rows = []
        for customer in customers:
            usage = customer_current_usage(customer=customer, at=at)
            rows.extend(
                UsageRow(item.feature, customer.external_id, customer, usage.period_start, usage.period_end, item.value)
                for item in usage.features
                if item.feature.pk in wanted
            )
        return rows
    by_external_id = {customer.external_id: customer for customer in customers}
    rows = []
    for feature in chosen:
        if external_customer_id:
            result = meter_usage(
                meter=feature.meter,
                environment=environment,
                customer_external_id=external_customer_id,
                start=start,
                end=end,
            )
            values = {external_customer_id: result.value}
        else:
            values = meter_usage_by_customer(meter=feature.meter, start=start, end=end)
        rows.extend(
            UsageRow(feature, customer_id, by_external_id.get(customer_id), start, end, values[customer_id])
            for customer_id in sorted(values)
        )
    return rows


def usage_export(*, rows: list[UsageRow], out: TextIO) -> int:
    writer = csv_writer(out, lineterminator="\n")
    writer.writerow(USAGE_COLUMNS)
    writer.writerows(row.cells() for row in rows)
    return len(rows)


def output_open(path: str | None, *, stdout: TextIO):
    """A text stream for an export: stdout for None or "-", a gzip file for paths ending in .gz, else a file.
    The caller closes it unless it is stdout."""
    if path in (None, "-"):
        return stdout
    try:
        if path.endswith(".gz"):
            return gzip.open(path, "wt", encoding="utf-8", newline="")
        return open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed by the caller
    except OSError as exc:
        raise ValidationFailed(details={"output": f"cannot write {path}: {exc.strerror or exc}"}) from None


def stdout_release() -> None:
    """After a reader closed our stdout (`export_events | head`): point stdout at /dev/null so the interpreter's
    final flush does not fail again, and let the command end quietly."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
