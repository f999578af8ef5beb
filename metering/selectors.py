"""Reads of customers and events. The event stream is keyset-paginated so it stays fast on millions of rows."""

import base64
import binascii
import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.db import connection
from django.db.models import BooleanField, Q, QuerySet, TextField
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from flexmeter.errors import NotFound, ValidationFailed
from flexmeter.models import Environment
from flexmeter.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from metering.clickhouse import reads as clickhouse_reads
from metering.clickhouse.config import events_backend
from metering.ingest.validation import text_problem
from metering.models import Customer, CustomerStatus, Event
from metering.usage.dialects import dialect_for
from metering.usage.dialects.base import Dialect, Params
from metering.usage.predicate import filter_sql
from metering.usage.rollups.counts import event_counts_by_day_sql
from metering.usage.spec import Filter

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_NAMED_PARAM = re.compile(r"%\((\w+)\)s")


# Customers ---------------------------------------------------------------------------------------------------


def customer_get(*, environment: Environment, customer_id: str) -> Customer:
    """A customer of this environment by public id (deleted ones included, so references stay resolvable)."""
    customer = None
    if not text_problem(customer_id):
        customer = Customer.objects.for_environment(environment).filter(public_id=customer_id).first()
    if customer is None:
        raise NotFound(f"Customer {customer_id} not found", details={"id": "no such customer in this environment"})
    return customer


def customer_get_active(*, environment: Environment, customer_id: str) -> Customer:
    customer = customer_get(environment=environment, customer_id=customer_id)
    if customer.status != CustomerStatus.ACTIVE:
        raise NotFound(f"Customer {customer_id} was deleted", details={"id": "customer was deleted"})
    return customer


def customer_get_by_external_id(*, environment: Environment, external_id: str) -> Customer:
    """The active customer with this external id (only one can exist)."""
    customer = None
    if not text_problem(external_id):
        customer = Customer.objects.for_environment(environment).active().filter(external_id=external_id).first()
    if customer is None:
        raise NotFound(
            f"No customer with external_id {external_id!r}", details={"external_id": "no such active customer"}
        )
    return customer


CUSTOMER_SORT_FIELDS = ("created_at", "updated_at", "name", "external_id", "email")


def customer_list(
    *,
    environment: Environment,
    external_id: str | None = None,
    status: str | None = CustomerStatus.ACTIVE,
    external_ids: Iterable[str] = (),
    customer_ids: Iterable[str] = (),
    email: str | None = None,
    metadata: dict[str, str] | None = None,
    created_from: dt.datetime | None = None,
    created_before: dt.datetime | None = None,
    sort: Iterable[tuple[str, str]] = (),
):
    """Customers of the environment, newest first unless `sort` says otherwise; `status=None` includes deleted ones.

    Every filter narrows (AND): `external_ids`/`customer_ids` match any of theirs, `metadata` needs every pair,
    `created_from` is inclusive and `created_before` exclusive. `sort` is (field, "asc"|"desc") pairs of
    CUSTOMER_SORT_FIELDS; ties always fall back to newest first.
    """
    customers = Customer.objects.for_environment(environment)
    if status:
        customers = customers.filter(status=status)
    if external_id:
        customers = customers.filter(external_id=external_id)
    if external_ids := list(external_ids):
        customers = customers.filter(external_id__in=external_ids)
    if customer_ids := list(customer_ids):
        customers = customers.filter(public_id__in=customer_ids)
    if email:
        customers = customers.filter(email__iexact=email)
    for index, (key, value) in enumerate((metadata or {}).items()):
        # a key transform per pair works on both databases (SQLite has no JSON `contains`)
        alias = f"metadata_{index}"
        text = Cast(KeyTextTransform(key, "metadata"), output_field=TextField())
        customers = customers.alias(**{alias: text}).filter(**{alias: value})
    if created_from:
        customers = customers.filter(created_at__gte=created_from)
    if created_before:
        customers = customers.filter(created_at__lt=created_before)
    ordering = [f"{'-' if direction == 'desc' else ''}{field}" for field, direction in sort]
    return customers.order_by(*ordering, "-created_at", "-id")


def customer_ids_by_external_id(*, environment: Environment, external_ids: Iterable[str]) -> dict[str, str]:
    """Map external ids to the public ids of their active customers, in one query (unknown ids are absent)."""
    wanted = set(external_ids)
    if not wanted:
        return {}
    rows = (
        Customer.objects.for_environment(environment)
        .active()
        .filter(external_id__in=wanted)
        .values_list("external_id", "public_id")
    )
    return dict(rows)


# Events ------------------------------------------------------------------------------------------------------


RECENT_EVENTS_SAMPLED = 50


def recent_property_keys(*, environment: Environment, event_name: str) -> list[str]:
    """Top-level property keys of the latest events with this name, sorted (the feature wizard's field step).

    Reads at most RECENT_EVENTS_SAMPLED rows through the (environment, event_name, …) index.
    """
    backend = events_backend()
    if backend.is_clickhouse:
        page = clickhouse_reads.events_page(
            backend,
            environment_id=environment.pk,
            conditions=lambda d, p: clickhouse_reads.column_conditions(
                d, p, environment_id=environment.pk, event_name=event_name
            ),
            page_size=RECENT_EVENTS_SAMPLED,
        )
        return sorted(
            {key: None for event in page.events if isinstance(event.properties, dict) for key in event.properties}
        )
    recent = (
        Event.objects.for_environment(environment)
        .filter(event_name=event_name)
        .order_by("-timestamp", "-id")
        .values_list("properties", flat=True)[:RECENT_EVENTS_SAMPLED]
    )
    keys: dict[str, None] = {}
    for properties in recent:
        if isinstance(properties, dict):
            keys.update(dict.fromkeys(properties))
    return sorted(keys)


def recent_event_names(*, environment: Environment, limit: int) -> set[str]:
    """The distinct event names of the environment's latest `limit` events (newest by timestamp)."""
    backend = events_backend()
    if backend.is_clickhouse:
        return clickhouse_reads.recent_event_names(backend, environment_id=environment.pk, limit=limit)
    recent = Event.objects.for_environment(environment).order_by("-timestamp", "-id")
    return set(recent.values_list("event_name", flat=True)[:limit])


def any_event_stored() -> bool:
    """Whether the events backend holds any event, in any environment."""
    backend = events_backend()
    if backend.is_clickhouse:
        return clickhouse_reads.any_event_stored(backend)
    return Event.objects.exists()


def latest_event_customer(*, environment_id: int, event_name: str) -> str | None:
    """The external customer id of the newest event with this name (None when the name has no event)."""
    backend = events_backend()
    if backend.is_clickhouse:
        page = clickhouse_reads.events_page(
            backend,
            environment_id=environment_id,
            conditions=lambda d, p: clickhouse_reads.column_conditions(
                d, p, environment_id=environment_id, event_name=event_name
            ),
            page_size=1,
        )
        return page.events[0].external_customer_id if page.events else None
    events = Event.objects.filter(environment_id=environment_id, event_name=event_name)
    return events.order_by("-timestamp", "-id").values_list("external_customer_id", flat=True).first()


@dataclass(frozen=True)
class EventsPage:
    """One page of the event stream, newest first. `last_key` is the cursor for the next (older) page."""

    events: list[Event]
    customer_ids: dict[str, str]
    has_more: bool
    first_key: str | None
    last_key: str | None

    def customer_id_for(self, event: Event) -> str | None:
        return self.customer_ids.get(event.external_customer_id)


def _event_row_sql(build: Callable[[Dialect, Params], str], template: str) -> tuple[str, list]:
    """`template` around SQL the engine writes about event row `e`, with positional parameters for RawSQL."""
    dialect = dialect_for(connection)
    params = Params()
    predicate = build(dialect, params)
    table = Event._meta.db_table
    values: list = []

    def positional(match: re.Match) -> str:  # named `%(p0)s` → the positional `%s` RawSQL expects
        values.append(params.values[match.group(1)])
        return "%s"

    sql = template.format(table=table, predicate=predicate)
    return _NAMED_PARAM.sub(positional, sql), values


def event_row_condition(build: Callable[[Dialect, Params], str]) -> RawSQL:
    """A boolean ORM expression to filter an `Event` queryset by SQL the engine writes about event row `e` (its
    filters, its per-meter predicate), so lists and the stream decide exactly as usage totals do.

    The engine's fragments address the event as `e`, so the row is looked up again by primary key under that
    alias, as an EXISTS: in a WHERE clause the planner may turn it into a join (a hash join finds a rare status
    in one pass instead of one probe per row walked).
    """
    sql, values = _event_row_sql(build, "EXISTS (SELECT 1 FROM {table} e WHERE e.id = {table}.id AND {predicate})")
    return RawSQL(sql, values, output_field=BooleanField())


def event_row_value(build: Callable[[Dialect, Params], str]) -> RawSQL:
    """The same predicate as a column of each row (`annotate`): a scalar subquery, one index probe per row shown.
    Not EXISTS: in a select list PostgreSQL may answer an EXISTS with a hashed plan over every event that passes
    the predicate — a scan of the whole table for a page of 50 rows (180 ms at 1,000,000 events)."""
    sql, values = _event_row_sql(
        build, "coalesce((SELECT ({predicate}) IS TRUE FROM {table} e WHERE e.id = {table}.id), FALSE)"
    )
    return RawSQL(sql, values, output_field=BooleanField())


def event_cursor_encode(event: Event) -> str:
    """The opaque key of an event in the stream: its (timestamp, id)."""
    delta = event.timestamp - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return base64.urlsafe_b64encode(f"{micros}:{event.pk}".encode()).decode().rstrip("=")


def event_cursor_decode(cursor: str, *, field_name: str = "iter_last_key") -> tuple[dt.datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        micros, pk = raw.split(":")
        return _EPOCH + dt.timedelta(microseconds=int(micros)), int(pk)
    except (ValueError, UnicodeDecodeError, binascii.Error, OverflowError):
        raise ValidationFailed(
            details={field_name: "is not a cursor returned by this API (pass iter_last_key from a previous page)"}
        ) from None


def events_matching(
    events: QuerySet[Event],
    *,
    event_name: str | None = None,
    external_customer_id: str | None = None,
    event_id: str | None = None,
    source: str | None = None,
) -> QuerySet[Event]:
    """Events whose columns equal the given values; a value left empty does not filter."""
    given = {
        "event_name": event_name,
        "external_customer_id": external_customer_id,
        "event_id": event_id,
        "source": source,
    }
    return events.filter(**{column: value for column, value in given.items() if value})


@dataclass(frozen=True)
class KeysetPage:
    """Up to `page_size` events newest first, whether older ones remain, and the keys of the first and last."""

    events: list[Event]
    has_more: bool
    first_key: str | None
    last_key: str | None


def keyset_page(
    events: QuerySet[Event],
    *,
    page_size: int,
    older_than: str | None = None,
    older_than_field: str = "cursor",
    newer_than: str | None = None,
    newer_than_field: str = "newer_than",
) -> KeysetPage:
    """One keyset page of an event queryset, ordered newest first by (timestamp, id).

    `older_than` (the `last_key` of the previous page) continues to older events; `newer_than` (a `first_key`)
    keeps only events after it. A key is the (timestamp, id) of an event, so pages never repeat or skip events
    while new ones arrive. A key that is not ours is a 400 naming `*_field`, the parameter the caller read it from.
    """
    if newer_than:
        timestamp, pk = event_cursor_decode(newer_than, field_name=newer_than_field)
        events = events.filter(Q(timestamp__gte=timestamp) & (Q(timestamp__gt=timestamp) | Q(pk__gt=pk)))
    elif older_than:
        timestamp, pk = event_cursor_decode(older_than, field_name=older_than_field)
        # The redundant `timestamp <= t` bounds the index range scan; the OR only breaks ties within t.
        events = events.filter(Q(timestamp__lte=timestamp) & (Q(timestamp__lt=timestamp) | Q(pk__lt=pk)))
    rows = list(events.order_by("-timestamp", "-id")[: page_size + 1])
    has_more = len(rows) > page_size
    rows = rows[:page_size]
    return KeysetPage(
        events=rows,
        has_more=has_more,
        first_key=event_cursor_encode(rows[0]) if rows else None,
        last_key=event_cursor_encode(rows[-1]) if rows else None,
    )


def events_page(
    *,
    environment: Environment,
    event_name: str | None = None,
    external_customer_id: str | None = None,
    event_id: str | None = None,
    source: str | None = None,
    start_time: dt.datetime | None = None,
    end_time: dt.datetime | None = None,
    property_filters: dict[str, list[str]] | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> EventsPage:
    """Events newest first (timestamp, then insertion order), filtered, one keyset page at a time.

    The cursor is the (timestamp, id) of the last event of the previous page, so pages never repeat or skip
    events while new ones arrive, and no page costs more than `page_size + 1` index entries plus the filtered
    ones. `start_time` is inclusive, `end_time` exclusive. Customer ids are resolved in one extra query.
    """
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValidationFailed(details={"page_size": f"must be between 1 and {MAX_PAGE_SIZE}"})
    filters = [Filter(key=key, operator="in", values=tuple(values)) for key, values in (property_filters or {}).items()]
    backend = events_backend()
    if backend.is_clickhouse:

        def conditions(d, p) -> list[str]:
            columns = clickhouse_reads.column_conditions(
                d,
                p,
                environment_id=environment.pk,
                event_name=event_name,
                external_customer_id=external_customer_id,
                event_id=event_id,
                source=source,
                start=start_time,
                end=end_time,
            )
            return columns + [filter_sql(filter_, d, p) for filter_ in filters]

        page: KeysetPage | clickhouse_reads.ClickHousePage = clickhouse_reads.events_page(
            backend,
            environment_id=environment.pk,
            conditions=conditions,
            page_size=page_size,
            older_than=cursor,
            older_than_field="iter_last_key",
        )
    else:
        events = events_matching(
            Event.objects.for_environment(environment).between(start_time, end_time),
            event_name=event_name,
            external_customer_id=external_customer_id,
            event_id=event_id,
            source=source,
        )
        if filters:
            events = events.filter(
                event_row_condition(lambda d, p: " AND ".join(filter_sql(filter_, d, p) for filter_ in filters))
            )
        page = keyset_page(events, page_size=page_size, older_than=cursor, older_than_field="iter_last_key")
    return EventsPage(
        events=page.events,
        customer_ids=customer_ids_by_external_id(
            environment=environment, external_ids={event.external_customer_id for event in page.events}
        ),
        has_more=page.has_more,
        first_key=page.first_key,
        last_key=page.last_key,
    )


def event_lookup(
    *,
    environment: Environment,
    event_id: str,
    external_customer_id: str | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> Event | None:
    """The stored event with this id in the events backend (None if absent or outside the optional filters).
    On ClickHouse it is an unsaved `Event` read from `events FINAL` (metering.clickhouse.reads)."""
    if not event_id:
        return None
    backend = events_backend()
    if backend.is_clickhouse:
        return clickhouse_reads.event_get(
            backend,
            environment_id=environment.pk,
            event_id=event_id,
            external_customer_id=external_customer_id,
            start=start,
            end=end,
        )
    events = Event.objects.for_environment(environment).filter(event_id=event_id)
    if external_customer_id:
        events = events.filter(external_customer_id=external_customer_id)
    return events.between(start, end).first()


# Activity (event counts for the dashboard) ------------------------------------------------------------------


def _moment(value) -> dt.datetime:
    """A timestamp read by raw SQL: SQLite answers naive UTC text, PostgreSQL an aware datetime."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def event_counts_by_day(
    *, environment: Environment, start: dt.datetime, end: dt.datetime, since: dt.datetime
) -> tuple[dict[dt.date, int], int]:
    """Events per UTC day of their timestamp in `[start, end)` (days without events are absent), and how many of
    them are from `since` on, in one query. On PostgreSQL whole days before `since` come from the per-day event
    counts while they are valid (`metering.usage.rollups.counts`), the other days from the (environment,
    timestamp) index; SQLite reads that index for every day, ClickHouse counts its own events."""
    backend = events_backend()
    if backend.is_clickhouse:
        counted = clickhouse_reads.event_counts_by_day(
            backend, environment_id=environment.pk, start=start, end=end, since=since
        )
        return {day: count for day, count, _ in counted}, sum(recent for _, _, recent in counted)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            sql, params = event_counts_by_day_sql(environment_id=environment.pk, start=start, end=end, since=since)
            cursor.execute(sql, params)
        else:
            cursor.execute(
                "SELECT date(e.timestamp) AS day, count(*), sum(CASE WHEN e.timestamp >= %s THEN 1 ELSE 0 END) "
                f"FROM {Event._meta.db_table} e "
                "WHERE e.environment_id = %s AND e.timestamp >= %s AND e.timestamp < %s GROUP BY 1",
                [since, environment.pk, start, end],
            )
        rows = cursor.fetchall()
    per_day = {(dt.date.fromisoformat(day) if isinstance(day, str) else day): count for day, count, _ in rows}
    return per_day, sum(int(recent or 0) for _, _, recent in rows)


@dataclass(frozen=True)
class CustomerActivity:
    """How many events an external customer id sent since a moment, and when it last sent one (ever)."""

    events: int
    last_seen: dt.datetime | None


_NAMES_CTE = """
WITH RECURSIVE names(name) AS (
    SELECT min(event_name) FROM {table} WHERE environment_id = %s
    UNION ALL
    SELECT (SELECT min(event_name) FROM {table} WHERE environment_id = %s AND event_name > names.name)
    FROM names WHERE names.name IS NOT NULL
)
"""


def event_names(*, environment: Environment) -> list[str]:
    """Every event name the environment has stored, found by skipping through the (environment, event_name, …)
    index one name at a time (a loose index scan): cost grows with the number of names, not of events."""
    sql = _NAMES_CTE.format(table=Event._meta.db_table) + "SELECT name FROM names WHERE name IS NOT NULL"
    with connection.cursor() as cursor:
        cursor.execute(sql, [environment.pk, environment.pk])
        return [name for (name,) in cursor.fetchall()]


def customers_activity(
    *, environment: Environment, external_ids: Iterable[str], since: dt.datetime
) -> dict[str, CustomerActivity]:
    """Events since `since` and last-seen time of each external id, every one in the answer (0 and None when it
    sent nothing), in one statement. The event names are found by a loose index scan (`event_names`); then per
    (event name, customer) pair it reads one range and one entry of the (environment, event name, customer,
    timestamp) index, so the cost follows these customers' recent events and the number of names, not the table."""
    wanted = sorted(set(external_ids))
    activity = {external_id: CustomerActivity(events=0, last_seen=None) for external_id in wanted}
    if not wanted:
        return activity
    backend = events_backend()
    rows: Iterable[tuple]
    if backend.is_clickhouse:
        rows = clickhouse_reads.customers_activity(
            backend, environment_id=environment.pk, external_ids=wanted, since=since
        )
    else:
        rows = _customers_activity_rows(environment=environment, wanted=wanted, since=since)
    for external_id, events, last_seen in rows:
        current = activity[external_id]
        seen = _moment(last_seen) if last_seen is not None else None
        latest = max((moment for moment in (current.last_seen, seen) if moment is not None), default=None)
        activity[external_id] = CustomerActivity(events=current.events + events, last_seen=latest)
    return activity


def _customers_activity_rows(*, environment: Environment, wanted: list[str], since: dt.datetime) -> list[tuple]:
    """(external id, events since, last seen) per event name and wanted customer, from the Django database."""
    table = Event._meta.db_table
    customers = " UNION ALL ".join(["SELECT %s AS customer"] * len(wanted))
    sql = _NAMES_CTE.format(table=table) + (
        f"SELECT w.customer, "
        f"(SELECT count(*) FROM {table} e WHERE e.environment_id = %s AND e.event_name = n.name "
        f"AND e.external_customer_id = w.customer AND e.timestamp >= %s), "
        f"(SELECT max(e.timestamp) FROM {table} e WHERE e.environment_id = %s AND e.event_name = n.name "
        f"AND e.external_customer_id = w.customer) "
        f"FROM names n CROSS JOIN ({customers}) w WHERE n.name IS NOT NULL"
    )
    params = [environment.pk, environment.pk, environment.pk, since, environment.pk, *wanted]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()
