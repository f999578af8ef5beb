"""Usage of one meter for many customers, each over its own window, in one SQL statement.

Customers have different billing anchors, so "this period" starts at a different moment for each of them. Rather
than one query per customer (a statement growing with their number), the customers' ranges become a relation —
`(customer, lower, upper)` rows passed as one JSON parameter (arrays on ClickHouse) — joined to the
events, and the engine's own SQL aggregates the joined events grouped by customer. Whole days and quarter hours
that valid rollups answer are read from them the same way (`(customer, first day, day after)` and quarter-range
relations joined to the rollup rows), so the numbers are exactly those of the engine's single-customer query.

Statement text depends on the meter, not on the number of customers: the relations are parameters.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import cast

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

from catalog.models import AggregationType
from flexmeter.db import server_bound_cursor
from flexmeter.errors import InvalidOperation
from metering.clickhouse.config import EventsBackend, events_backend
from metering.models import Event
from metering.usage import engine
from metering.usage.dialects import dialect_for
from metering.usage.dialects.base import Dialect, Params
from metering.usage.dialects.clickhouse import ClickHouseDialect, UnsupportedOnClickHouse
from metering.usage.rollups.read import (
    UTC,
    Coverage,
    Pieces,
    coverage_check_sql,
    coverage_forget,
    coverage_lookup,
    coverage_recent,
    coverage_remember,
    day_fits,
    plan_pieces,
    quarters_fit,
    repeatable_read,
    rollup_fingerprint,
)
from metering.usage.spec import AggregationSpec, UsageQuery

# from this many customers a read gets USAGE_BULK_WORK_MEM_MB for its hashes (see `_bulk_memory`)
BULK_CUSTOMERS = 500
# the lower bound of a range that has none (a meter that never resets counts everything before the end)
_BEGINNING = dt.datetime(1, 1, 2, tzinfo=UTC)
_CLICKHOUSE_BEGINNING = dt.datetime(1900, 1, 1, tzinfo=UTC)  # DateTime64's first moment


@dataclass
class _Billed:
    """The customers billed over one window: they share its query, its bounds and its pieces."""

    customers: list[str]
    query: UsageQuery

    @cached_property
    def encoded(self) -> list[str]:
        """The customers as JSON strings, encoded once for every relation they appear in."""
        return [json.dumps(customer) for customer in self.customers]


# the customers of a window with the rows (without the customer column) each of them has in a relation
_Grouped = list[tuple[_Billed, list[tuple]]]


@dataclass
class _PartRanges:
    """Per part of the query, each window's pieces: raw-event ranges, rolled-up day runs, quarter ranges."""

    groups: list[tuple[_Billed, Pieces]] = field(default_factory=list)

    def grouped(self, kind: str) -> _Grouped:
        return [(billed, rows) for billed, pieces in self.groups if (rows := getattr(pieces, kind))]


class _JoinedDialect:
    """A dialect whose events source is the customers' ranges joined to the events (alias `e` as always)."""

    def __init__(self, d: Dialect, source: str):
        self._d, self._source = d, source

    def __getattr__(self, name: str):
        return getattr(self._d, name)

    def events_source(self, table: str) -> str:
        return self._source


def _raw_source(query: UsageQuery, d: Dialect, p: Params, ranges: _Grouped) -> str:
    """The events of each customer within its ranges: the ranges drive, each one an index range scan."""
    table = Event._meta.db_table
    on = "e.external_customer_id = cw.c AND e.timestamp >= cw.lo AND e.timestamp < cw.hi"
    ranges = [(billed, [(low or _BEGINNING, high) for low, high in rows]) for billed, rows in ranges]
    if d.vendor == "clickhouse":
        # each customer's range a row of a relation built from three array parameters, joined to the events (every
        # customer has one range per part there: ClickHouse has no rollups to cut it into pieces)
        flat = [(customer, *row) for billed, rows in ranges for row in rows for customer in billed.customers]
        customers, lowers, uppers = (list(column) for column in zip(*flat, strict=True))

        def moments(values: list[dt.datetime]) -> str:
            texts = [
                max(value, _CLICKHOUSE_BEGINNING).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") for value in values
            ]
            return f"arrayMap(x -> toDateTime64(x, 6, 'UTC'), CAST({p(texts)} AS Array(String)))"

        relation = (
            f"(SELECT w.1 AS c, w.2 AS lo, w.3 AS hi FROM (SELECT arrayJoin(arrayZip(CAST({p(customers)} AS "
            f"Array(String)), {moments(lowers)}, {moments(uppers)})) AS w)) AS cw"
        )
        return f"{d.events_source(table)} INNER JOIN {relation} ON {on}"
    relation = _rows_relation(d, p, "cw", [("c", "text"), ("lo", "timestamptz"), ("hi", "timestamptz")], ranges)
    if d.vendor == "postgresql":
        # A lateral subquery that cannot be flattened (OFFSET 0) keeps the ranges driving: left to a plain join, the
        # planner misjudges how many events the ranges hold and scans every event of the meter (a parallel scan of
        # the whole table for 10,000 customers' edges of a day each), where index range scans read only those.
        return (
            f"{relation} CROSS JOIN LATERAL (SELECT * FROM {table} e WHERE e.environment_id = "
            f"{p(query.environment_id)} AND e.event_name = {p(query.spec.event_name)} AND {on} OFFSET 0) e"
        )
    # SQLite keeps the left side of a CROSS JOIN as the outer loop: otherwise it may read the JSON ranges once per
    # event (10,000 customers took over a minute)
    return f"{relation} CROSS JOIN {table} e ON {on}"


def _rows_relation(d: Dialect, p: Params, alias: str, columns: list[tuple[str, str]], groups: _Grouped) -> str:
    """Every customer of each group with each of the group's rows, as a relation named `alias` with `columns` (name,
    PostgreSQL type; the customer `c` first), passed as one JSON parameter: psycopg turning 10,000 customers' ranges
    into array parameters took as long as PostgreSQL took to answer. The text is assembled from each row's encoding,
    made once per window rather than once per customer (a tenth of an alert pass at 10,000 customers)."""
    moment = d.connection.ops.adapt_datetimefield_value if d.vendor == "sqlite" else dt.datetime.isoformat
    as_text = {"date": dt.date.isoformat, "timestamp": moment, "timestamptz": moment}
    converters = [as_text[kind] for _, kind in columns[1:]]
    names = [name for name, _ in columns[1:]]
    on_postgresql = d.vendor == "postgresql"
    items: list[str] = []
    for billed, rows in groups:
        for row in rows:
            values = [convert(value) for convert, value in zip(converters, row, strict=True)]
            # the row's encoding after the customer: `"lo": "…", "hi": "…"}` (an object) or `"…", "…"]` (an array)
            rest = json.dumps(dict(zip(names, values, strict=True)) if on_postgresql else values)[1:]
            opening = '{"c": ' if on_postgresql else "["
            items.extend(f"{opening}{customer}, {rest}" for customer in billed.encoded)
    payload = f"[{', '.join(items)}]"
    if on_postgresql:
        # a function's typed columns, like unnest's: expressions over JSON elements would be inlined into the join
        # conditions, where they no longer bound the index scans
        fields = ", ".join(f"{name} {kind}" for name, kind in columns)
        return f"json_to_recordset({p(payload)}::json) AS {alias}({fields})"
    fields = ", ".join(f"json_extract(j.value, '$[{i}]') AS {name}" for i, (name, _) in enumerate(columns))
    return f"(SELECT {fields} FROM json_each({p(payload)}) j) {alias}"


@dataclass(frozen=True)
class _WindowedRollupRead(engine._RollupRead):
    """Rollup rows of every customer within that customer's own day runs and quarter ranges."""

    days_relation: str = ""
    quarters_relation: str = ""

    def _table(self, name: str, *, quarters: bool) -> str:
        relation, alias = (self.quarters_relation, "cq") if quarters else (self.days_relation, "cd")
        return (
            f"{relation} JOIN {name} r ON r.customer = {alias}.c AND r.day >= {alias}.first AND r.day < {alias}.after"
        )

    def _where(self, days) -> str:
        return f"r.definition_id = {self.p(self.definition_id)}"

    def _window_numbers(self, pieces: Pieces, window: str) -> None:
        # each customer's quarter ranges are in the relation (`pieces` only says there are some): every quarter's
        # local window is read
        return None

    def _hours_of_days(self, pieces: Pieces) -> None:
        return None  # as `_window_numbers`

    def _quarters_read(self, name: str, unnested: str, pieces: Pieces) -> str:
        quarter = engine._QUARTER_START
        return (
            f"{self._table(name, quarters=True)}, {unnested} "
            f"WHERE r.definition_id = {self.p(self.definition_id)} AND {quarter} >= cq.lo AND {quarter} < cq.hi"
        )


def _rollup_read(query: UsageQuery, part: int, d: Dialect, p: Params, definition_id: int, ranges: _PartRanges):
    days_relation = quarters_relation = ""
    if days := ranges.grouped("days"):
        days_relation = _rows_relation(d, p, "cd", [("c", "text"), ("first", "date"), ("after", "date")], days)
    if quarters := ranges.grouped("quarters"):
        # the days a quarter range touches, and its bounds as the rollups' UTC wall-clock times
        rows = [
            (billed, [(lo.date(), (hi - dt.timedelta(microseconds=1)).date() + dt.timedelta(days=1),
                       lo.replace(tzinfo=None), hi.replace(tzinfo=None)) for lo, hi in pieces])
            for billed, pieces in quarters
        ]  # fmt: skip
        columns = [("c", "text"), ("first", "date"), ("after", "date"), ("lo", "timestamp"), ("hi", "timestamp")]
        quarters_relation = _rows_relation(d, p, "cq", columns, rows)
    return _WindowedRollupRead(query, part, d, p, definition_id, days_relation, quarters_relation)


def _part_selects(query: UsageQuery, part: int, d: Dialect, p: Params, definition_id: int | None, ranges: _PartRanges):
    """The SELECTs of one part for all customers: raw ranges joined to the events, rolled-up pieces to the rollups,
    shaped like the engine's own parts (`engine._parts`) so its partials combine them."""
    head = f"0 AS tag, {part} AS part"
    raw = ranges.grouped("raw")
    joined = cast(Dialect, _JoinedDialect(d, _raw_source(query, d, p, raw))) if raw else d
    # the windowed reader takes its ranges from the relations: these pieces only say which kinds there are
    pieces = Pieces(
        days=[(dt.date.min, dt.date.min)] if ranges.grouped("days") else [],
        quarters=[(_BEGINNING, _BEGINNING)] if ranges.grouped("quarters") else [],
    )
    rollup = _rollup_read(query, part, d, p, definition_id, ranges) if definition_id is not None else None
    kind = query.spec.aggregation_type
    selects: list[str] = []
    if kind == AggregationType.COUNT_UNIQUE:
        sources = [engine.distinct_values_sql(query, part, joined, p, None, None)] if raw else []
        if rollup is not None:
            sources.extend(rollup.distinct_sql(pieces))
        return [engine._count_distinct_sql(head, sources, d)] if sources else []
    if query.spec.is_bucketed_max and part != engine.CARRY:
        cells = [engine.bucket_cells_sql(query, part, joined, p, None, None)] if raw else []
        if rollup is not None:
            cells.extend(rollup.quarter_cells_sql(pieces))
        if cells:
            selects.append(engine.bucket_maxima_sum_sql(head, cells, d))
    else:
        if raw:
            selects.append(engine.part_sql(query, 0, part, joined, p, None, None))
        if rollup is not None:
            selects.extend(rollup.quarter_rows_sql(head, pieces))
    if rollup is not None:
        selects.extend(rollup.day_rows_sql(head, pieces))
    return selects


def customer_windows_usage(
    spec: AggregationSpec,
    *,
    environment_id: int,
    windows: Mapping[str, tuple[dt.datetime, dt.datetime]],
    using: str = DEFAULT_DB_ALIAS,
    rollups: bool = True,
    backend: EventsBackend | None = None,
) -> dict[str, Decimal | None]:
    """{customer: usage of `spec` over that customer's `[start, end)`} in one statement whatever the number of
    customers (on PostgreSQL with rollups, plus the rollup lookup in the same snapshot). Honours the meter's reset
    as the single-customer query does: for NEVER the value covers everything before the customer's end."""
    if not windows:
        return {}
    customers_of: dict[tuple[dt.datetime, dt.datetime], list[str]] = defaultdict(list)
    for customer, window in windows.items():
        customers_of[window].append(customer)
    billed = [
        _Billed(customers, UsageQuery(spec=spec, environment_id=environment_id, start=start, end=end))
        for (start, end), customers in customers_of.items()
    ]
    backend = backend or events_backend()
    # the shape every customer's query shares: everyone grouped by customer, no windows
    first = billed[0].query
    grouped = UsageQuery(spec=spec, environment_id=environment_id, start=first.start, end=first.end, by_customer=True)
    parts = engine._part_kinds(first)
    if backend.is_clickhouse:
        return _combined(spec, windows, _clickhouse_fetch(grouped, parts, billed, backend))
    connection = connections[using]
    d = dialect_for(connection)
    fingerprint = rollup_fingerprint(spec) if rollups and d.vendor == "postgresql" else None
    wanted = []
    if fingerprint is not None:
        touched = [engine._days_wanted(window.query) for window in billed]
        lowest = None if any(low is None for low, _ in touched) else min(cast(dt.date, low) for low, _ in touched)
        wanted = [(environment_id, fingerprint, lowest, max(stop for _, stop in touched))]

    def fetch(cursor, found: dict[tuple[int, str], Coverage], *, checked: bool = False) -> list | None:
        """The statement's rows reading rollups of `found`; `checked` as in `engine._fetch` (None: not valid)."""
        p = Params()
        coverage = found.get((environment_id, cast(str, fingerprint)))
        selects = []
        fits_day, fits_quarters = day_fits(grouped, window=""), quarters_fit(grouped, window="")
        for part in parts:
            ranges = _PartRanges()
            for window in billed:
                lower, upper = engine._part_bounds(window.query, part)
                if coverage is None:
                    pieces = Pieces(raw=[(lower, upper)])
                else:
                    pieces = plan_pieces(
                        lower,
                        upper,
                        coverage.days,
                        day_fits=fits_day,
                        quarters_fit=fits_quarters,
                        partial=coverage.partial,
                        partial_totals=not spec.is_bucketed_max,
                    )
                ranges.groups.append((window, pieces))
            definition_id = coverage.definition_id if coverage is not None else None
            selects.extend(_part_selects(grouped, part, d, p, definition_id, ranges))
        check = coverage_check_sql(p, found, d.null_timestamp) if checked else None
        return engine.usage_rows(cursor, selects, p, check=check)

    fetched: list | None = None
    with _bulk_memory(connection, len(windows)):
        if not wanted:
            with server_bound_cursor(connection) as cursor:
                fetched = fetch(cursor, {})
        elif (recent := coverage_recent(connection.alias, wanted)) is not None:
            # one statement and no transaction, checking the remembered days in its own snapshot (as the engine does)
            with server_bound_cursor(connection) as cursor:
                fetched = fetch(cursor, recent, checked=True)
            if fetched is None:
                coverage_forget(connection.alias, wanted)
        if fetched is None:
            with repeatable_read(connection, read_only=True), server_bound_cursor(connection) as cursor:
                found = coverage_lookup(cursor, wanted)
                fetched = cast(list, fetch(cursor, found))
            coverage_remember(connection.alias, wanted, found)
    return _combined(spec, windows, fetched)


@contextlib.contextmanager
def _bulk_memory(connection, customers: int):
    """On PostgreSQL, a read for `BULK_CUSTOMERS` or more runs in one REPEATABLE READ transaction (the lookup and
    the statement inside share it) whose work_mem is USAGE_BULK_WORK_MEM_MB: the statement hashes every (customer,
    value) pair it counts, hundreds of thousands for COUNT_UNIQUE over a month, and the default 4 MB spilled them
    to disk. The setting ends with the transaction, so a pooled connection goes back as it came (inside a caller's
    transaction the read joins it, and the setting lasts until that one ends)."""
    megabytes = settings.USAGE_BULK_WORK_MEM_MB
    if connection.vendor != "postgresql" or customers < BULK_CUSTOMERS or not megabytes:
        yield
        return
    with repeatable_read(connection, read_only=True), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('work_mem', %s, true)", [f"{megabytes}MB"])
        yield


def _clickhouse_fetch(grouped: UsageQuery, parts, billed: list[_Billed], backend: EventsBackend) -> list:
    """The rows of one ClickHouse statement: each part's customers' ranges joined to the events, grouped by customer."""
    d = ClickHouseDialect(backend.database)
    p = Params()
    selects = []
    try:
        for part in parts:
            ranges = _PartRanges([(window, Pieces(raw=[engine._part_bounds(window.query, part)])) for window in billed])
            selects.extend(_part_selects(grouped, part, d, p, None, ranges))
    except UnsupportedOnClickHouse as error:
        raise InvalidOperation(str(error)) from error
    return engine.clickhouse_rows(selects, p, backend)


def _combined(
    spec: AggregationSpec, windows: Mapping[str, tuple[dt.datetime, dt.datetime]], fetched
) -> dict[str, Decimal | None]:
    """Each customer's value from the statement's partial aggregates (totals, and carries of a meter that never
    resets)."""
    totals: dict[str, tuple] = {}
    carries: dict[str, Decimal] = {}
    latest = spec.aggregation_type == AggregationType.LATEST
    for _tag, part, _w, customer, n1, n2 in fetched:
        value = (engine._dec(n1), n2 if latest else engine._dec(n2))
        if part == engine.CARRY:
            carries[customer] = engine._add(carries.get(customer), value[0]) or Decimal(0)
        else:
            totals[customer] = engine._merged(spec, totals.get(customer), value)
    combine = engine._combiner(spec)
    return {
        customer: engine._finish(
            combine,
            *totals.get(customer, (None, None)),
            start=start,
            end=end,
            carry=carries.get(customer, Decimal(0)),
        )
        for customer, (start, end) in windows.items()
    }
