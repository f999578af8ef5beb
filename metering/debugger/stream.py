"""Reads behind the event debugger's stream: a page of events with their §7 status, and unmatched event names.

The status of a row is decided in SQL for the whole page at once, with the predicate module's `match_sql` OR-ed
across the published meters. The engine's WHERE clause is built from the same module, so a row marked `processed`
always has a quantity in the debugger and in usage, and the status filter is the same predicate used as a WHERE
clause.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection
from django.db.models import OuterRef, Subquery
from django.db.models.expressions import RawSQL

from catalog.expressions import ExpressionError
from catalog.models import Meter
from catalog.rules import name_likeness_key, similar_names
from flexmeter.errors import ValidationFailed
from flexmeter.models import Environment
from metering.clickhouse import reads as clickhouse_reads
from metering.clickhouse.config import EventsBackend, events_backend
from metering.debugger.explain import (
    CAUSE_FILTERED_OUT,
    CAUSE_NO_METER,
    CAUSE_NO_VALUE,
    STATUS_CUSTOMER_NOT_FOUND,
    STATUS_FILTERED_OUT,
    STATUS_PROCESSED,
    STATUS_UNMATCHED,
)
from metering.exactjson import UnreadableJSON
from metering.models import Customer, CustomerStatus, Event
from metering.selectors import customer_ids_by_external_id, event_row_condition, events_matching, keyset_page
from metering.usage.dialects import dialect_for
from metering.usage.dialects.base import Params
from metering.usage.dialects.clickhouse import ClickHouseDialect
from metering.usage.predicate import any_match_sql, filtered_out_sql
from metering.usage.spec import AggregationSpec

#: The statuses the stream shows: the §7 three, with `unmatched` split into broken (`unmatched`) and left out on
#: purpose by a meter's filter (`filtered_out`), as `DebugReport.shown_status` does for one event.
STATUSES = (STATUS_PROCESSED, STATUS_CUSTOMER_NOT_FOUND, STATUS_UNMATCHED, STATUS_FILTERED_OUT)
STREAM_PAGE_SIZE = 50
#: How many of the latest events the name filter looks at to point out other spellings of a name.
NAME_SAMPLE = 5000


# --- the published meters -----------------------------------------------------------------------------------


def published_specs(environment: Environment) -> list[AggregationSpec]:
    """Specs of the environment's published meters; a meter whose definition cannot compile counts nothing."""
    specs = []
    for meter in Meter.objects.for_environment(environment).published().order_by("created_at", "id"):
        try:
            specs.append(AggregationSpec.from_meter(meter))
        except (ExpressionError, ArithmeticError, ValueError):
            continue
    return specs


def matched_expression(specs: list[AggregationSpec]) -> RawSQL:
    """A boolean ORM expression for an `Event` queryset: does this row count for any published meter?"""
    return event_row_condition(lambda d, p: any_match_sql(specs, d, p))


def filtered_out_expression(specs: list[AggregationSpec]) -> RawSQL:
    """A boolean ORM expression: did every published meter of this row's event name reject it by a filter?"""
    return event_row_condition(lambda d, p: filtered_out_sql(specs, d, p))


# --- the stream ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamRow:
    """One event of the stream with its §7 status and the customer it resolved to (if any)."""

    event: Event
    status: str
    customer_id: str | None

    @property
    def preview(self) -> str:
        return properties_preview(self.event.properties)


@dataclass(frozen=True)
class NameHints:
    """For a typed event-name filter: the other spellings it also shows (`LLM.tokens` for `llm.tokens`), and
    names that differ from it only by separators or whitespace, which it does not show (`llm_tokens`)."""

    also_shown: list[str]
    near: list[str]


@dataclass(frozen=True)
class StreamPage:
    rows: list[StreamRow]
    has_more: bool
    first_key: str | None
    last_key: str | None
    name_hints: NameHints | None = None


def properties_preview(properties, *, limit: int = 80) -> str:
    """`tokens=120 · model=gpt-4o · region=eu`: top-level keys in order, nested values abbreviated."""
    if isinstance(properties, UnreadableJSON):
        return f"(properties cannot be shown: {properties.reason})"
    if not isinstance(properties, dict) or not properties:
        return ""
    parts = []
    for key, value in properties.items():
        if isinstance(value, dict):
            text = "{…}"
        elif isinstance(value, list):
            text = "[…]"
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif value is None:
            text = "null"
        elif isinstance(value, Decimal):
            text = format(value, "f")
        else:
            text = str(value)
        parts.append(f"{key}={text}")
    preview = " · ".join(parts)
    return preview if len(preview) <= limit else preview[: limit - 1].rstrip() + "…"


def _status_of(matched: bool, filtered_out: bool, customer_id: str | None) -> str:
    if not matched:
        return STATUS_FILTERED_OUT if filtered_out else STATUS_UNMATCHED
    return STATUS_PROCESSED if customer_id else STATUS_CUSTOMER_NOT_FOUND


def event_name_hints(*, environment: Environment, typed: str, specs: list[AggregationSpec]) -> NameHints:
    """Names of the latest NAME_SAMPLE events and of the published meters that the name filter `typed` also
    shows (another case), or that it misses though they differ only by separators or whitespace."""
    recent = Event.objects.for_environment(environment).order_by("-timestamp", "-id")
    names = set(recent.values_list("event_name", flat=True)[:NAME_SAMPLE]) | {spec.event_name for spec in specs}
    wanted = typed.casefold()
    shown = sorted(name for name in names if name.casefold().startswith(wanted) and name != typed)
    key = name_likeness_key(typed)
    near = sorted(
        name
        for name in names
        if not name.casefold().startswith(wanted) and key and name_likeness_key(name).startswith(key)
    )
    return NameHints(also_shown=shown[:10], near=near[:10])


def event_stream_page(
    *,
    environment: Environment,
    event_name: str | None = None,
    external_customer_id: str | None = None,
    source: str | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    status: str | None = None,
    cursor: str | None = None,
    newer_than: str | None = None,
    page_size: int = STREAM_PAGE_SIZE,
) -> StreamPage:
    """A keyset page of events, newest first, each with its status, in one query.

    `cursor` continues to older events (the `last_key` of the previous page); `newer_than` instead returns only
    events after that key (the stream's `first_key`), for auto-refresh. `status` keeps rows of one status,
    decided by the same predicate that labels them. `event_name` keeps names that start with it, in any case
    (`llm.tokens` also shows `LLM.tokens`); a first page also says which other names that showed or missed
    (`name_hints`).
    """
    if status and status not in STATUSES:
        raise ValidationFailed(details={"status": f"must be one of {', '.join(STATUSES)}"})
    backend = events_backend()
    if backend.is_clickhouse:
        return _clickhouse_stream_page(
            backend,
            environment=environment,
            filters={"event_name": event_name, "external_customer_id": external_customer_id, "source": source},
            start=start,
            end=end,
            status=status,
            cursor=cursor,
            newer_than=newer_than,
            page_size=page_size,
        )
    customers = Customer.objects.filter(
        environment_id=OuterRef("environment_id"),
        external_id=OuterRef("external_customer_id"),
        status=CustomerStatus.ACTIVE,
    ).values("public_id")[:1]
    specs = published_specs(environment)
    events = events_matching(
        Event.objects.for_environment(environment).between(start, end),
        external_customer_id=external_customer_id,
        source=source,
    )
    if event_name:
        events = events.filter(event_name__istartswith=event_name)
    events = events.annotate(
        matched=matched_expression(specs),
        filtered_out=filtered_out_expression(specs),
        customer_public_id=Subquery(customers),
    )
    if status == STATUS_UNMATCHED:
        events = events.filter(matched=False, filtered_out=False)
    elif status == STATUS_FILTERED_OUT:
        events = events.filter(filtered_out=True)
    elif status == STATUS_PROCESSED:
        events = events.filter(matched=True, customer_public_id__isnull=False)
    elif status == STATUS_CUSTOMER_NOT_FOUND:
        events = events.filter(matched=True, customer_public_id__isnull=True)
    page = keyset_page(events, page_size=page_size, older_than=cursor, older_than_field="cursor", newer_than=newer_than)
    stream_rows = [
        StreamRow(
            event=row,
            status=_status_of(bool(row.matched), bool(row.filtered_out), row.customer_public_id),
            customer_id=row.customer_public_id,
        )
        for row in page.events
    ]
    hints = None
    if event_name and not cursor and not newer_than:
        hints = event_name_hints(environment=environment, typed=event_name, specs=specs)
    return StreamPage(
        rows=stream_rows, has_more=page.has_more, first_key=page.first_key, last_key=page.last_key, name_hints=hints
    )


def _clickhouse_stream_page(
    backend: EventsBackend,
    *,
    environment: Environment,
    filters: dict[str, str | None],
    start: dt.datetime | None,
    end: dt.datetime | None,
    status: str | None,
    cursor: str | None,
    newer_than: str | None,
    page_size: int,
) -> StreamPage:
    """The same page with events in ClickHouse: the status predicate runs there, on `events FINAL`; customers live
    in the Django database, so a status filter passes the environment's active external ids as one array."""
    specs = published_specs(environment)
    active: list[str] = []
    if status in (STATUS_PROCESSED, STATUS_CUSTOMER_NOT_FOUND):
        active = list(Customer.objects.for_environment(environment).active().values_list("external_id", flat=True))

    def conditions(d, p) -> list[str]:
        parts = clickhouse_reads.column_conditions(d, p, environment_id=environment.pk, start=start, end=end, **filters)
        if status == STATUS_UNMATCHED:
            parts.append(f"NOT {any_match_sql(specs, d, p)}")
        elif status:
            known = f"has({p(active)}, e.external_customer_id)"
            parts += [any_match_sql(specs, d, p), known if status == STATUS_PROCESSED else f"NOT {known}"]
        return parts

    page = clickhouse_reads.events_page(
        backend,
        environment_id=environment.pk,
        conditions=conditions,
        extra_columns=lambda d, p: [f"{any_match_sql(specs, d, p)} AS matched"],
        page_size=page_size,
        older_than=cursor,
        newer_than=newer_than,
    )
    customer_ids = customer_ids_by_external_id(
        environment=environment, external_ids={event.external_customer_id for event in page.events}
    )
    rows = []
    for event, (matched,) in zip(page.events, page.extras, strict=True):
        customer_id = customer_ids.get(event.external_customer_id)
        rows.append(StreamRow(event=event, status=_status_of(bool(matched), customer_id), customer_id=customer_id))
    return StreamPage(rows=rows, has_more=page.has_more, first_key=page.first_key, last_key=page.last_key)


def _aware(value) -> dt.datetime:
    """A timestamp read by raw SQL: SQLite answers naive UTC text, PostgreSQL an aware datetime."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


# --- unmatched event names ----------------------------------------------------------------------------------


#: The order of the unmatched page's groups: broken events first, events left out on purpose last.
UNMATCHED_CAUSES = (CAUSE_NO_VALUE, CAUSE_NO_METER, CAUSE_FILTERED_OUT)


@dataclass(frozen=True)
class UnmatchedName:
    """Events of one name that no published meter counted, for one cause (CAUSE_*): how many, when last, how
    many customers sent them and how many meters read the name."""

    event_name: str
    cause: str
    count: int
    last_seen: dt.datetime
    customers: int
    meters_with_name: int
    did_you_mean: list[str]


@dataclass(frozen=True)
class UnmatchedGroup:
    cause: str
    names: list[UnmatchedName]

    @property
    def count(self) -> int:
        return sum(name.count for name in self.names)


def unmatched_event_names(
    *, environment: Environment, start: dt.datetime | None = None, end: dt.datetime | None = None
) -> list[UnmatchedName]:
    """Unmatched events grouped by event name and cause, most frequent first, in one query (the stream's
    predicates): filtered out by every meter of the name, or broken (no usable value, or no meter for the name)."""
    specs = published_specs(environment)
    backend = events_backend()
    dialect = ClickHouseDialect(backend.database) if backend.is_clickhouse else dialect_for(connection)
    params = Params()
    filtered = f"CASE WHEN {filtered_out_sql(specs, dialect, params)} THEN 1 ELSE 0 END"
    where = [f"e.environment_id = {params(environment.pk)}", f"NOT {any_match_sql(specs, dialect, params)}"]
    if start is not None:
        where.append(f"e.timestamp >= {dialect.timestamp(params, start)}")
    if end is not None:
        where.append(f"e.timestamp < {dialect.timestamp(params, end)}")
    sql = (
        f"SELECT e.event_name, {filtered} AS filtered_out, count(*), max(e.timestamp), "
        f"count(DISTINCT e.external_customer_id) "
        f"FROM {dialect.events_source(Event._meta.db_table)} WHERE {' AND '.join(where)} "
        f"GROUP BY e.event_name, filtered_out ORDER BY count(*) DESC, e.event_name"
    )
    if backend.is_clickhouse:
        rows = clickhouse_reads.query_rows(backend, sql, params)
    else:
        with connection.cursor() as cursor:
            cursor.execute(sql, params.values)
            rows = cursor.fetchall()
    per_name: dict[str, int] = {}
    for spec in specs:
        per_name[spec.event_name] = per_name.get(spec.event_name, 0) + 1
    names = []
    for name, filtered_out, count, last, customers in rows:
        cause = CAUSE_FILTERED_OUT if filtered_out else (CAUSE_NO_VALUE if per_name.get(name) else CAUSE_NO_METER)
        names.append(
            UnmatchedName(
                event_name=name,
                cause=cause,
                count=count,
                last_seen=_aware(last),
                customers=customers,
                meters_with_name=per_name.get(name, 0),
                did_you_mean=similar_names(name, per_name),
            )
        )
    return names


def unmatched_groups(names: list[UnmatchedName]) -> list[UnmatchedGroup]:
    """`names` by cause, in UNMATCHED_CAUSES order, leaving out causes without events."""
    groups = [UnmatchedGroup(cause, [name for name in names if name.cause == cause]) for cause in UNMATCHED_CAUSES]
    return [group for group in groups if group.names]
