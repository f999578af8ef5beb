"""Reads of stored events on the ClickHouse backend: lists, the debugger's stream, lookup and export (SPEC §12).

Every read goes through `events FINAL` (a redelivered event is seen once, at its last key; a tombstone hides it),
and every condition about properties comes from the predicate module with the ClickHouse dialect, as in usage.
Rows come back as unsaved `Event` instances (no primary key), so the callers' code and templates stay the same.

The order of a list is newest first by (timestamp, version, event_id): `version` is the delivery's nanosecond
stamp, so events with one timestamp come in delivery order, as the Django database's row ids give them. A cursor
is that triple, opaque (base64), and marked `ch:` so a cursor of the other backend is refused as such.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from flexmeter.errors import InvalidOperation, ValidationFailed
from metering.clickhouse.config import EventsBackend, clickhouse_client
from metering.clickhouse.schema import EVENT_KEYS
from metering.exactjson import loads_stored
from metering.models import Event
from metering.usage.dialects.base import Params
from metering.usage.dialects.clickhouse import NOT_EXACT, ClickHouseDialect

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_FIELDS = (
    "e.event_id, e.event_name, e.external_customer_id, e.timestamp, e.ingested_at, e.source, e.properties, e.version"
)
_ORDER_DESC = "e.timestamp DESC, e.version DESC, e.event_id DESC"
_ORDER_ASC = "e.timestamp, e.version, e.event_id"
_CURSOR_MARK = "ch"

Conditions = Callable[[ClickHouseDialect, Params], list[str]]


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def event_from_row(environment_id: int, row) -> Event:
    """An unsaved `Event` from the `_FIELDS` of a row (plus the delivery's `version`, for cursors)."""
    event_id, name, customer, timestamp, ingested_at, source, properties, version = row[:8]
    event = Event(
        environment_id=environment_id,
        event_id=event_id,
        event_name=name,
        external_customer_id=customer,
        timestamp=_utc(timestamp),
        ingested_at=_utc(ingested_at),
        source=source,
        properties=loads_stored(properties),
    )
    event.version = version  # type: ignore[attr-defined]
    return event


def cursor_encode(event: Event) -> str:
    delta = event.timestamp - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    raw = f"{_CURSOR_MARK}:{micros}:{event.version}:{event.event_id}"  # type: ignore[attr-defined]
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def cursor_decode(cursor: str, *, field_name: str) -> tuple[dt.datetime, int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        mark, micros, version, event_id = raw.split(":", 3)
        if mark != _CURSOR_MARK:
            raise ValueError(mark)
        return _EPOCH + dt.timedelta(microseconds=int(micros)), int(version), event_id
    except (ValueError, UnicodeDecodeError, binascii.Error, OverflowError):
        raise ValidationFailed(
            details={field_name: "is not a cursor returned by this API (pass the key from a previous page)"}
        ) from None


def column_conditions(
    d: ClickHouseDialect,
    p: Params,
    *,
    environment_id: int,
    event_name: str | None = None,
    external_customer_id: str | None = None,
    event_id: str | None = None,
    source: str | None = None,
    event_names: list[str] | None = None,
    event_name_prefix: str | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> list[str]:
    """Columns equal to the given values (an empty value does not filter), an event name that starts with
    `event_name_prefix` in any case (the debugger stream's name filter), and `start <= timestamp < end`."""
    parts = [f"e.environment_id = {p(environment_id)}"]
    if event_name_prefix:
        # startsWith, not ILIKE: `%` and `_` typed in the filter are characters of the name, not wildcards
        parts.append(f"startsWith(lowerUTF8(e.event_name), lowerUTF8({p(event_name_prefix)}))")
    for column, value in (
        ("event_name", event_name),
        ("external_customer_id", external_customer_id),
        ("event_id", event_id),
        ("source", source),
    ):
        if value:
            parts.append(f"e.{column} = {p(value)}")
    if event_names:
        parts.append(f"has({p(list(event_names))}, e.event_name)")
    if start is not None:
        parts.append(f"e.timestamp >= {d.timestamp(p, start)}")
    if end is not None:
        parts.append(f"e.timestamp < {d.timestamp(p, end)}")
    return parts


@dataclass(frozen=True)
class ClickHousePage:
    """Up to `page_size` events newest first, the extra columns of each, and the keys of the first and last."""

    events: list[Event]
    extras: list[tuple]
    has_more: bool
    first_key: str | None
    last_key: str | None


def events_page(
    backend: EventsBackend,
    *,
    environment_id: int,
    conditions: Conditions,
    page_size: int,
    extra_columns: Callable[[ClickHouseDialect, Params], list[str]] | None = None,
    older_than: str | None = None,
    older_than_field: str = "cursor",
    newer_than: str | None = None,
    newer_than_field: str = "newer_than",
) -> ClickHousePage:
    """One keyset page of the events `conditions` select, newest first, in one query (see the module's order)."""
    d = ClickHouseDialect(backend.database)
    p = Params()
    where = conditions(d, p)
    extras = extra_columns(d, p) if extra_columns else []
    if newer_than:
        timestamp, version, event_id = cursor_decode(newer_than, field_name=newer_than_field)
        key = f"({d.timestamp(p, timestamp)}, toUInt64({p(version)}), {p(event_id)})"
        where += [f"e.timestamp >= {d.timestamp(p, timestamp)}", f"(e.timestamp, e.version, e.event_id) > {key}"]
    elif older_than:
        timestamp, version, event_id = cursor_decode(older_than, field_name=older_than_field)
        key = f"({d.timestamp(p, timestamp)}, toUInt64({p(version)}), {p(event_id)})"
        where += [f"e.timestamp <= {d.timestamp(p, timestamp)}", f"(e.timestamp, e.version, e.event_id) < {key}"]
    columns = ", ".join([_FIELDS, *extras])
    sql = (
        f"SELECT {columns} FROM {d.events_source('')} WHERE {' AND '.join(where)} "
        f"ORDER BY {_ORDER_DESC} LIMIT {int(page_size) + 1}"
    )
    rows = query_rows(backend, sql, p)
    has_more = len(rows) > page_size
    rows = rows[:page_size]
    events = [event_from_row(environment_id, row) for row in rows]
    return ClickHousePage(
        events=events,
        extras=[tuple(row[8:]) for row in rows],
        has_more=has_more,
        first_key=cursor_encode(events[0]) if events else None,
        last_key=cursor_encode(events[-1]) if events else None,
    )


def recent_event_names(backend: EventsBackend, *, environment_id: int, limit: int) -> set[str]:
    """The distinct event names of the environment's latest `limit` events (newest by timestamp, then delivery)."""
    d = ClickHouseDialect(backend.database)
    p = Params()
    sql = (
        f"SELECT DISTINCT event_name FROM (SELECT e.event_name AS event_name FROM {d.events_source('')} "
        f"WHERE e.environment_id = {p(environment_id)} ORDER BY {_ORDER_DESC} LIMIT {int(limit)})"
    )
    return {row[0] for row in query_rows(backend, sql, p)}


def event_counts_by_day(
    backend: EventsBackend, *, environment_id: int, start: dt.datetime, end: dt.datetime, since: dt.datetime
) -> list[tuple[dt.date, int, int]]:
    """(UTC day, events, events from `since` on) for each day of `[start, end)` that has events."""
    d = ClickHouseDialect(backend.database)
    p = Params()
    sql = (
        f"SELECT toDate(e.timestamp, 'UTC') AS day, count(), countIf(e.timestamp >= {d.timestamp(p, since)}) "
        f"FROM {d.events_source('')} WHERE e.environment_id = {p(environment_id)} "
        f"AND e.timestamp >= {d.timestamp(p, start)} AND e.timestamp < {d.timestamp(p, end)} GROUP BY day"
    )
    return [(day, int(count), int(recent)) for day, count, recent in query_rows(backend, sql, p)]


def customers_activity(
    backend: EventsBackend, *, environment_id: int, external_ids: list[str], since: dt.datetime
) -> list[tuple[str, int, dt.datetime]]:
    """(external id, events from `since` on, last timestamp ever) of each of these ids that sent an event; the sort
    key starts with (environment, customer), so only these customers' rows are read."""
    d = ClickHouseDialect(backend.database)
    p = Params()
    sql = (
        f"SELECT e.external_customer_id, countIf(e.timestamp >= {d.timestamp(p, since)}), max(e.timestamp) "
        f"FROM {d.events_source('')} WHERE e.environment_id = {p(environment_id)} "
        f"AND has({p(list(external_ids))}, e.external_customer_id) GROUP BY e.external_customer_id"
    )
    return [(customer, int(events), _utc(last)) for customer, events, last in query_rows(backend, sql, p)]


def any_event_stored(backend: EventsBackend) -> bool:
    """Whether any environment has a stored (not deleted) event."""
    d = ClickHouseDialect(backend.database)
    return bool(query_rows(backend, f"SELECT count() FROM (SELECT 1 FROM {d.events_source('')} LIMIT 1)", {})[0][0])


def event_count(backend: EventsBackend, *, conditions: Conditions) -> int:
    d = ClickHouseDialect(backend.database)
    p = Params()
    sql = f"SELECT count() FROM {d.events_source('')} WHERE {' AND '.join(conditions(d, p))}"
    return int(query_rows(backend, sql, p)[0][0])


def events_oldest_first(
    backend: EventsBackend, *, environment_id: int, conditions: Conditions, chunk: int = 5000
) -> Iterator[Event]:
    """Every event `conditions` select, oldest first, read in keyset chunks (an export of any size)."""
    d = ClickHouseDialect(backend.database)
    after: tuple | None = None
    while True:
        p = Params()
        where = conditions(d, p)
        if after is not None:
            timestamp, version, event_id = after
            key = f"({d.timestamp(p, timestamp)}, toUInt64({p(version)}), {p(event_id)})"
            where += [f"e.timestamp >= {d.timestamp(p, timestamp)}", f"(e.timestamp, e.version, e.event_id) > {key}"]
        sql = (
            f"SELECT {_FIELDS} FROM {d.events_source('')} WHERE {' AND '.join(where)} "
            f"ORDER BY {_ORDER_ASC} LIMIT {int(chunk)}"
        )
        rows = query_rows(backend, sql, p)
        for row in rows:
            yield event_from_row(environment_id, row)
        if len(rows) < chunk:
            return
        last = rows[-1]
        after = (_utc(last[3]), last[7], last[0])


def event_key(backend: EventsBackend, *, environment_id: int, event_id: str) -> tuple[str, str, dt.datetime] | None:
    """The (customer, name, timestamp) an event id was last written under, from the id-ordered `event_keys`."""
    rows = query_rows(
        backend,
        f"SELECT argMax(tuple(external_customer_id, event_name, timestamp), version), count() "
        f"FROM {backend.database}.{EVENT_KEYS} FINAL WHERE environment_id = %(env)s AND event_id = %(id)s",
        {"env": environment_id, "id": event_id},
    )
    key, count = rows[0]
    if not count:
        return None
    customer, name, timestamp = key
    return customer, name, _utc(timestamp)


def key_conditions(
    d: ClickHouseDialect, p: Params, *, environment_id: int, event_id: str, key: tuple[str, str, dt.datetime]
) -> list[str]:
    """The conditions that find one event by its whole sort key: a primary-key lookup, not a scan."""
    customer, name, timestamp = key
    return [
        f"e.environment_id = {p(environment_id)}",
        f"e.external_customer_id = {p(customer)}",
        f"e.event_name = {p(name)}",
        f"e.timestamp = {d.timestamp(p, timestamp)}",
        f"e.event_id = {p(event_id)}",
    ]


def event_get(
    backend: EventsBackend,
    *,
    environment_id: int,
    event_id: str,
    external_customer_id: str | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> Event | None:
    """The stored event with this id (None when it is not stored or does not pass the optional filters)."""
    key = event_key(backend, environment_id=environment_id, event_id=event_id)
    if key is None:
        return None

    def conditions(d: ClickHouseDialect, p: Params) -> list[str]:
        parts = key_conditions(d, p, environment_id=environment_id, event_id=event_id, key=key)
        return parts + column_conditions(
            d, p, environment_id=environment_id, external_customer_id=external_customer_id, start=start, end=end
        )

    page = events_page(backend, environment_id=environment_id, conditions=conditions, page_size=1)
    return page.events[0] if page.events else None


def stored_id_count(backend: EventsBackend, *, environment_id: int, event_ids: list[str]) -> int:
    """How many of these ids are stored (an id ever written has a key; a deleted one has none left)."""
    if not event_ids:
        return 0
    rows = query_rows(
        backend,
        f"SELECT uniqExact(event_id) FROM {backend.database}.{EVENT_KEYS} FINAL "
        f"WHERE environment_id = %(env)s AND event_id IN %(ids)s",
        {"env": environment_id, "ids": list(event_ids)},
    )
    return int(rows[0][0])


NOT_EXACT_MESSAGE = (
    "This cannot be computed exactly on the ClickHouse events backend: a value, product or sum exceeds 56 integer "
    "or 20 decimal digits"
)


def query_rows(backend: EventsBackend, sql: str, params: Params | dict) -> list:
    """Rows of a statement built with the ClickHouse dialect. A value the dialect refuses to compute inexactly
    (its `throwIf` guards) fails as a clear `InvalidOperation`, never as a rounded or wrapped answer."""
    from clickhouse_connect.driver.exceptions import ClickHouseError  # the optional extra, only when selected

    values = params.values if isinstance(params, Params) else params
    try:
        return clickhouse_client(backend).query(sql, parameters=values).result_rows
    except ClickHouseError as error:
        if NOT_EXACT in str(error):
            raise InvalidOperation(NOT_EXACT_MESSAGE) from error
        raise
