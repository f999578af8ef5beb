"""Reads behind the event debugger's stream: a page of events with their §7 status, and unmatched event names.

The status of a row is decided in SQL for the whole page at once, with the predicate module's `match_sql` OR-ed
across the published meters. The engine's WHERE clause is built from the same module, so a row marked `processed`
always has a quantity in the debugger and in usage, and the status filter is the same predicate used as a WHERE
clause.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
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
from metering.selectors import (
    customer_ids_by_external_id,
    event_row_condition,
    event_row_value,
    events_matching,
    keyset_page,
    recent_event_names,
)
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


def matched_expression(specs: list[AggregationSpec], *, column: bool = False) -> RawSQL:
    """A boolean ORM expression for an `Event` queryset: does this row count for any published meter? As a
    filter, or with `column` as an annotation (see `event_row_value`)."""
    build = event_row_value if column else event_row_condition
    return build(lambda d, p: any_match_sql(specs, d, p))


def filtered_out_expression(specs: list[AggregationSpec], *, column: bool = False) -> RawSQL:
    """A boolean ORM expression: did every published meter of this row's event name reject it by a filter?"""
    build = event_row_value if column else event_row_condition
    return build(lambda d, p: filtered_out_sql(specs, d, p))


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


#: The three facts a row's status is made of: counted by a published meter (`matched`), left out on purpose by the
#: filters of every meter of its name (`filtered_out`), and sent for an active customer (`known`).
FACTS = ("matched", "filtered_out", "known")
#: What each status requires of those facts (None: either). The row's label (`_status_of`) and the status filter
#: of both backends read this one table, so a row always carries the status whose filter shows it.
STATUS_FACTS: dict[str, tuple[bool | None, bool | None, bool | None]] = {
    STATUS_PROCESSED: (True, None, True),
    STATUS_CUSTOMER_NOT_FOUND: (True, None, False),
    STATUS_UNMATCHED: (False, False, None),
    STATUS_FILTERED_OUT: (False, True, None),
}


def status_requires(status: str) -> dict[str, bool]:
    """The facts the `status` filter keeps rows by, by name (FACTS), leaving out the ones it does not look at."""
    return {fact: wanted for fact, wanted in zip(FACTS, STATUS_FACTS[status], strict=True) if wanted is not None}


def _status_of(matched: bool, filtered_out: bool, customer_id: str | None) -> str:
    row = (matched, filtered_out, customer_id is not None)
    for status, facts in STATUS_FACTS.items():
        if all(wanted is None or wanted == fact for wanted, fact in zip(facts, row, strict=True)):
            return status
    # filtered_out_sql is true only when no meter of the name selects the row, so no meter can count it
    raise AssertionError(f"a row cannot be both counted and filtered out by every meter: {row}")


def event_name_hints(*, environment: Environment, typed: str, specs: list[AggregationSpec]) -> NameHints:
    """Names of the latest NAME_SAMPLE events and of the published meters that the name filter `typed` also
    shows (another case), or that it misses though they differ only by separators or whitespace."""
    names = recent_event_names(environment=environment, limit=NAME_SAMPLE) | {spec.event_name for spec in specs}
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
    specs = published_specs(environment)
    requires = status_requires(status) if status else {}
    backend = events_backend()
    read = _clickhouse_stream_page if backend.is_clickhouse else _django_stream_page
    page = read(
        backend,
        environment=environment,
        specs=specs,
        columns={"event_name_prefix": event_name, "external_customer_id": external_customer_id, "source": source},
        start=start,
        end=end,
        requires=requires,
        cursor=cursor,
        newer_than=newer_than,
        page_size=page_size,
    )
    if event_name and not cursor and not newer_than:
        page = replace(page, name_hints=event_name_hints(environment=environment, typed=event_name, specs=specs))
    return page


def _django_stream_page(
    backend: EventsBackend,
    *,
    environment: Environment,
    specs: list[AggregationSpec],
    columns: dict[str, str | None],
    start: dt.datetime | None,
    end: dt.datetime | None,
    requires: dict[str, bool],
    cursor: str | None,
    newer_than: str | None,
    page_size: int,
) -> StreamPage:
    """The page with events in the Django database: statuses and the active customer of each row in one query."""
    customers = Customer.objects.filter(
        environment_id=OuterRef("environment_id"),
        external_id=OuterRef("external_customer_id"),
        status=CustomerStatus.ACTIVE,
    ).values("public_id")[:1]
    events = events_matching(
        Event.objects.for_environment(environment).between(start, end),
        external_customer_id=columns["external_customer_id"],
        source=columns["source"],
    )
    if columns["event_name_prefix"]:
        events = events.filter(event_name__istartswith=columns["event_name_prefix"])
    # the status filter reads the facts as conditions, the row's label as columns (see `event_row_value`)
    conditions = {"matched": matched_expression, "filtered_out": filtered_out_expression}
    for fact, wanted in requires.items():
        if fact in conditions:
            condition = conditions[fact](specs)
            events = events.filter(condition) if wanted else events.exclude(condition)
    events = events.annotate(
        matched=matched_expression(specs, column=True),
        filtered_out=filtered_out_expression(specs, column=True),
        customer_public_id=Subquery(customers),
    )
    if "known" in requires:
        events = events.filter(customer_public_id__isnull=not requires["known"])
    page = keyset_page(
        events,
        page_size=page_size,
        older_than=cursor,
        older_than_field="cursor",
        newer_than=newer_than,
    )
    rows = [
        StreamRow(
            event=row,
            status=_status_of(bool(row.matched), bool(row.filtered_out), row.customer_public_id),
            customer_id=row.customer_public_id,
        )
        for row in page.events
    ]
    return StreamPage(rows=rows, has_more=page.has_more, first_key=page.first_key, last_key=page.last_key)


def _clickhouse_stream_page(
    backend: EventsBackend,
    *,
    environment: Environment,
    specs: list[AggregationSpec],
    columns: dict[str, str | None],
    start: dt.datetime | None,
    end: dt.datetime | None,
    requires: dict[str, bool],
    cursor: str | None,
    newer_than: str | None,
    page_size: int,
) -> StreamPage:
    """The same page with events in ClickHouse: the same predicates run there, on `events FINAL`, as the columns
    `matched` and `filtered_out`; customers live in the Django database, so a filter on them passes the
    environment's active external ids as one array, and the page's customers are looked up after it."""
    active: list[str] = []
    if "known" in requires:
        active = list(Customer.objects.for_environment(environment).active().values_list("external_id", flat=True))

    def conditions(d, p) -> list[str]:
        parts = clickhouse_reads.column_conditions(d, p, environment_id=environment.pk, start=start, end=end, **columns)
        # `matched` and `filtered_out` are the aliases of the page's extra columns below
        fact_sql = {"matched": "matched", "filtered_out": "filtered_out"}
        if "known" in requires:
            fact_sql["known"] = f"has({p(active)}, e.external_customer_id)"
        return parts + [fact_sql[fact] if wanted else f"NOT {fact_sql[fact]}" for fact, wanted in requires.items()]

    page = clickhouse_reads.events_page(
        backend,
        environment_id=environment.pk,
        conditions=conditions,
        extra_columns=lambda d, p: [
            f"{any_match_sql(specs, d, p)} AS matched",
            f"{filtered_out_sql(specs, d, p)} AS filtered_out",
        ],
        page_size=page_size,
        older_than=cursor,
        newer_than=newer_than,
    )
    customer_ids = customer_ids_by_external_id(
        environment=environment, external_ids={event.external_customer_id for event in page.events}
    )
    rows = []
    for event, (matched, filtered_out) in zip(page.events, page.extras, strict=True):
        customer_id = customer_ids.get(event.external_customer_id)
        status = _status_of(bool(matched), bool(filtered_out), customer_id)
        rows.append(StreamRow(event=event, status=status, customer_id=customer_id))
    return StreamPage(rows=rows, has_more=page.has_more, first_key=page.first_key, last_key=page.last_key)


@dataclass(frozen=True)
class UnmatchedWindow:
    """The events of a window that count for nothing, by reason (`unmatched`: no published meter counted them;
    `customer_not_found`: one did, but the customer is not an active one): (reason, event name, count) groups, most
    events first, and (reason, event id, event name) examples, newest first, at most `examples_per_reason` each."""

    groups: list[tuple[str, str, int]]
    examples: list[tuple[str, str, str]]


def clickhouse_unmatched_window(
    backend: EventsBackend,
    *,
    environment: Environment,
    after_version: int,
    up_to_version: int,
    examples_per_reason: int,
) -> UnmatchedWindow:
    """`UnmatchedWindow` of the events whose first delivery's version lies in `(after_version, up_to_version]`,
    with events in ClickHouse (the events.unmatched digest). `matched` is the predicate module's SQL, as for the
    stream; a redelivery keeps its first version, so an event belongs to one window only."""
    specs = published_specs(environment)
    active = list(Customer.objects.for_environment(environment).active().values_list("external_id", flat=True))
    d = ClickHouseDialect(backend.database)
    p = Params()
    reason = (
        f"multiIf(NOT {any_match_sql(specs, d, p)}, {p(STATUS_UNMATCHED)}, "
        f"NOT has({p(active)}, e.external_customer_id), {p(STATUS_CUSTOMER_NOT_FOUND)}, '')"
    )
    window = (
        f"SELECT e.event_id AS event_id, e.event_name AS event_name, e.first_version AS first_version, "
        f"{reason} AS reason FROM {d.events_source('')} WHERE e.environment_id = {p(environment.pk)} "
        f"AND e.first_version > toUInt64({p(after_version)}) AND e.first_version <= toUInt64({p(up_to_version)})"
    )
    groups = clickhouse_reads.query_rows(
        backend,
        f"SELECT reason, event_name, count() AS events FROM ({window}) WHERE reason != '' "
        f"GROUP BY reason, event_name ORDER BY events DESC, event_name, reason",
        p,
    )
    examples = []
    if groups:
        examples = clickhouse_reads.query_rows(
            backend,
            f"SELECT reason, event_id, event_name FROM ({window}) WHERE reason != '' "
            f"ORDER BY reason, first_version DESC, event_id DESC LIMIT {int(examples_per_reason)} BY reason",
            p,
        )
    return UnmatchedWindow(
        groups=[(reason, name, int(count)) for reason, name, count in groups],
        examples=[(reason, event_id, name) for reason, event_id, name in examples],
    )


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
