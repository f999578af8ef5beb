"""The usage engine: one SQL statement per request computes exact usage in the database (SPEC §4, §5).

An `AggregationSpec` says what to count (a meter, or an ad-hoc aggregation of /v1/events/usage); a `UsageQuery`
says for whom and when. `run_usage_queries` turns any number of queries into one `UNION ALL` statement whose
rows all have the shape `(tag, part, window, customer, n1, n2)`: partial aggregates as exact decimal text, which
`_finish` combines with exact `Decimal` arithmetic. Events are never loaded into Python.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from operator import itemgetter
from typing import Any, cast

from django.db import DEFAULT_DB_ALIAS, DataError, connections

from catalog.models import AggregationType
from flexmeter.db import server_bound_cursor
from flexmeter.errors import InvalidOperation
from metering.clickhouse.config import EventsBackend, clickhouse_client, events_backend
from metering.models import Event
from metering.usage.dialects import dialect_for
from metering.usage.dialects.base import Dialect, Params
from metering.usage.dialects.clickhouse import NOT_EXACT, ClickHouseDialect, UnsupportedOnClickHouse
from metering.usage.numbers import EXACT, divide, normalize
from metering.usage.periods import UTC, bucket_start_local, buckets_nest, from_local, next_bucket_start_local
from metering.usage.predicate import selection_sql, value_sql
from metering.usage.rollups.read import (
    EVERYONE,
    HOUR_SLOTS,
    QUARTER,
    QUARTERS_PER_DAY,
    WINDOW_QUARTERS,
    AlignedDays,
    Coverage,
    Pieces,
    aligned_days,
    alignment_at,
    coverage_check_sql,
    coverage_forget,
    coverage_lookup,
    coverage_recent,
    coverage_remember,
    day_fits,
    days_touched,
    partials_combined_sql,
    plan_pieces,
    quarters_fit,
    quarters_offset,
    repeatable_read,
    rollup_fingerprint,
    window_alignment,
)
from metering.usage.spec import (
    NULL_WHEN_EMPTY,
    AggregationSpec,
    UsageQuery,
    UsageResult,
    usage_windows,
)

TOTAL, CARRY, WINDOW = 0, 1, 2
# PostgreSQL's SQLSTATE for a result beyond `numeric`'s 131,072 digits (a value × microseconds of WEIGHTED_SUM).
NUMERIC_VALUE_OUT_OF_RANGE = "22003"


# --- SQL -----------------------------------------------------------------------------------------------------


def _where(query: UsageQuery, d: Dialect, p: Params, lower: dt.datetime | None, upper: dt.datetime | None) -> str:
    """The environment, the meter's selection (the predicate module's), the customer and `[lower, upper)`."""
    parts = [f"e.environment_id = {p(query.environment_id)}", *selection_sql(query.spec, d, p)]
    if query.customer is not None:
        parts.append(f"e.external_customer_id = {p(query.customer)}")
    if lower is not None:
        parts.append(f"e.timestamp >= {d.timestamp(p, lower)}")
    if upper is not None:
        parts.append(f"e.timestamp < {d.timestamp(p, upper)}")
    return " AND ".join(parts)


def _part_bounds(query: UsageQuery, part: int) -> tuple[dt.datetime | None, dt.datetime]:
    """The time range a part aggregates: `[lower, upper)`, with no lower bound for "everything before"."""
    spec = query.spec
    if part == CARRY:
        return None, query.start
    if part == TOTAL and spec.is_cumulative and spec.aggregation_type != AggregationType.WEIGHTED_SUM:
        return None, query.end
    return query.start, query.end


def part_sql(
    query: UsageQuery, tag: int, part: int, d: Dialect, p: Params, lower: dt.datetime | None, upper: dt.datetime | None
) -> str:
    """One SELECT of the UNION: raw-event aggregates of `query` for a part (total, carry-in, or per window),
    over `[lower, upper)` (a part's whole range, or the piece of it that rollups do not cover)."""
    spec = query.spec
    kind = spec.aggregation_type
    table = Event._meta.db_table
    if kind == AggregationType.COUNT_UNIQUE:
        return _count_distinct_sql(
            f"{tag} AS tag, {part} AS part", [distinct_values_sql(query, part, d, p, lower, upper)], d
        )
    w = _window_sql(query, part, d, p, lower, upper)
    c = "e.external_customer_id" if query.by_customer else None
    head = f"{tag} AS tag, {part} AS part"
    where = _where(query, d, p, lower, upper)
    v = cast(str, value_sql(spec, d, p))  # None only for COUNT, whose SQL never reads it

    def select(n1: str, n2: str = "NULL", extra_where: str = "", having: str = "") -> str:
        group = _group_by(w, c)
        w_sql = w if w is not None else d.null_timestamp
        c_sql = c if c is not None else "NULL"
        return (
            f"SELECT {head}, {w_sql} AS w, {c_sql} AS c, {n1} AS n1, {n2} AS n2 "
            f"FROM {d.events_source(table)} WHERE {where}{extra_where}{group}{having}"
        )

    if part == CARRY:
        return select(d.as_text(d.agg_sum(v)))
    if kind == AggregationType.COUNT:
        return select(d.as_text("count(*)"), extra_where=_time_index_kept(d, c, lower, upper))
    if kind == AggregationType.MAX and spec.is_bucketed_max:
        return _bucketed_max_sql(query, head, w, c, where, v, d, p)
    if kind == AggregationType.LATEST:
        return _latest_sql(query, head, w, c, where, v, d)
    if kind == AggregationType.AVG:
        having = f" HAVING count({v}) > 0" if part == WINDOW else ""
        return select(d.as_text(d.agg_sum(v)), d.as_text(f"count({v})"), having=having)
    if kind == AggregationType.WEIGHTED_SUM:
        weighted = d.agg_sum(d.multiply(v, d.epoch_micros("e.timestamp")))
        having = f" HAVING {d.agg_sum(v)} IS NOT NULL" if part == WINDOW else ""
        return select(d.as_text(d.agg_sum(v)), d.as_text(weighted), having=having)
    aggregates: dict[str, Callable[[str], str]] = {AggregationType.MIN: d.agg_min, AggregationType.MAX: d.agg_max}
    aggregate = aggregates.get(kind, d.agg_sum)(v)
    # the HAVING repeats the selected aggregate, which PostgreSQL computes once
    return select(d.as_text(aggregate), having=f" HAVING {aggregate} IS NOT NULL" if part == WINDOW else "")


# Raw pieces of a windowed part on PostgreSQL in UTC that span at most this many windows are read one window at a
# time (see `_window_sql`): one more index range each, no more rows.
_WINDOWS_READ_APART = 3


def _one_window(query: UsageQuery, d: Dialect) -> bool:
    """Whether a raw piece of `query` lying in one window can name that window as a constant: on PostgreSQL, in
    UTC, where window starts never go back in time (a DST change can move local time back across a window's start)."""
    return d.vendor == "postgresql" and query.zone.key in ("UTC", "Etc/UTC") and bool(query.windows)


def _window_start(query: UsageQuery, moment: dt.datetime) -> dt.datetime:
    """The (naive UTC) start of the window of `query` holding `moment`; see `_one_window`."""
    return bucket_start_local(moment.astimezone(UTC).replace(tzinfo=None), query.windows, query.anchor)


def _window_sql(
    query: UsageQuery, part: int, d: Dialect, p: Params, lower: dt.datetime | None, upper: dt.datetime | None
) -> str | None:
    """The window column of a part's rows: each event's window, or the window's start as a constant when all of
    `[lower, upper)` lies in one (`_one_window`). Then the planner groups one constant instead of sorting every row
    by a time zone conversion (today's 330,000 raw events in daily windows at 10,000,000 events: the overview's
    engine statement went from 426 ms to 254-368 ms)."""
    if part != WINDOW:
        return None
    if lower is not None and upper is not None and _one_window(query, d):
        start = _window_start(query, lower)
        if start == _window_start(query, upper - dt.timedelta(microseconds=1)):
            return f"{p(start)}::timestamp"
    return d.bucket(p, "e.timestamp", query.windows, query.zone.key, query.anchor)


def _raw_ranges(query: UsageQuery, part: int, d: Dialect, ranges: list) -> list:
    """The raw pieces of a part, those spanning a few windows split at the windows' starts (see `_window_sql`)."""
    if part != WINDOW or not _one_window(query, d):
        return ranges
    split = []
    for first, last in ranges:
        cuts = [first]
        start = _window_start(query, first)
        while len(cuts) <= _WINDOWS_READ_APART:
            start = next_bucket_start_local(start, query.windows, query.anchor)
            if start.replace(tzinfo=UTC) >= last:
                break
            cuts.append(start.replace(tzinfo=UTC))
        if len(cuts) > _WINDOWS_READ_APART:
            split.append((first, last))
        else:
            split.extend(zip(cuts, [*cuts[1:], last], strict=True))
    return split


# At most this long, a range's COUNT per customer reads the range rather than the whole name (`_time_index_kept`).
_SHORT_RANGE = dt.timedelta(days=3)


def _time_index_kept(d: Dialect, c: str | None, lower: dt.datetime | None, upper: dt.datetime | None) -> str:
    """A condition that keeps PostgreSQL on the (environment, event name, timestamp) index for a COUNT per customer
    of a short time range. The (environment, event name, customer, timestamp) index answers it without the table,
    and depending on its statistics PostgreSQL prefers that, but it then walks every entry of the name since the
    first event: 924 ms for two days' 200,000 `api.request` events among 6,000,000 at 10M, against 85 ms through the
    time range and the table (a day's rollup refresh of that COUNT: 1,435 ms against 426). A test of a column
    outside that index, always true, takes the index-only plan away. Over a long range (a first rollup build of a
    month: 8.9 s index-only, 15.9 s through the table) the walk is the better plan, and it is left to the planner."""
    if d.vendor != "postgresql" or c is None or lower is None or upper is None or upper - lower > _SHORT_RANGE:
        return ""
    return " AND e.ingested_at IS NOT NULL"


def _group_by(w: str | None, c: str | None) -> str:
    """GROUP BY the window (output column 3) and/or the customer (column 4) by position."""
    positions = [str(position) for position, key in ((3, w), (4, c)) if key is not None]
    return f" GROUP BY {', '.join(positions)}" if positions else ""


def _bucketed_max_sql(query, head, w, c, where, v, d: Dialect, p: Params) -> str:
    """Σ over buckets (and groups) of the bucket's max (SPEC §5.2)."""
    return bucket_maxima_sum_sql(head, [_bucket_cells_sql(query, w, c, where, v, d, p)], d)


def _bucket_cells_sql(query, w, c, where, v, d: Dialect, p: Params) -> str:
    """The maximum of each (window, customer, bucket, group) cell of bucketed MAX, from raw events."""
    table = Event._meta.db_table
    bucket = cell_bucket_sql(query, w, d, p, "e.timestamp")
    group = d.group_text(d.canonical(p, query.spec.group_by)) if query.spec.group_by else "NULL"
    w_sql = w if w is not None else d.null_timestamp
    c_sql = c if c is not None else "NULL"
    return (
        f"SELECT {w_sql} AS w, {c_sql} AS c, {bucket} AS b, {group} AS g, {d.agg_max(v)} AS m "
        f"FROM {d.events_source(table)} WHERE {where} GROUP BY 1, 2, 3, 4"
    )


def cell_bucket_sql(query: UsageQuery, w: str | None, d: Dialect, p: Params, timestamp: str) -> str:
    """The bucket of a bucketed-MAX cell at `timestamp`. NULL when the cell's window `w` is its bucket (windows of
    the bucket size: bucketed MAX without window_size): the window already tells the cells apart, so no source
    computes the bucket a second time (a heavy customer's hourly month: 11,520 quarter cells, 7 of 32 ms)."""
    if w is not None and query.windows == query.spec.bucket_size:
        return "NULL"
    return d.bucket(p, timestamp, query.spec.bucket_size, query.zone.key, query.anchor)


def bucket_cells_sql(
    query: UsageQuery, part: int, d: Dialect, p: Params, lower: dt.datetime | None, upper: dt.datetime | None
) -> str:
    """`_bucket_cells_sql` of a part over `[lower, upper)`."""
    w = _window_sql(query, part, d, p, lower, upper)
    c = "e.external_customer_id" if query.by_customer else None
    v = cast(str, value_sql(query.spec, d, p))
    return _bucket_cells_sql(query, w, c, _where(query, d, p, lower, upper), v, d, p)


def bucket_maxima_sum_sql(head: str, sources: list[str], d: Dialect) -> str:
    """Sum the cell maxima of all sources together: a cell split between pieces takes its maximum across them."""
    if len(sources) == 1:
        # one source's cells are grouped already, so they are summed as they are: grouping them again cost ClickHouse
        # 40 % of an hourly month of all customers, and PostgreSQL a second pass over the 11,520 quarter-hour cells of
        # a heavy customer's month of MAX per HOUR by instance
        return _cell_maxima_sum_sql(head, sources[0], d)
    union = " UNION ALL ".join(sources)
    cells = f"SELECT u.w, u.c, max(u.m) AS m FROM ({union}) u WHERE u.m IS NOT NULL GROUP BY u.w, u.c, u.b, u.g"
    return _cell_maxima_sum_sql(head, cells, d)


def _cell_maxima_sum_sql(head: str, cells: str, d: Dialect) -> str:
    """The sum of the maxima of `cells` (w, c, m) per window and customer that have one."""
    return (
        f"SELECT {head}, cells.w AS w, cells.c AS c, {d.as_text(d.agg_sum('cells.m'))} AS n1, NULL AS n2 "
        f"FROM ({cells}) cells WHERE cells.m IS NOT NULL GROUP BY cells.w, cells.c"
    )


def distinct_values_sql(
    query: UsageQuery, part: int, d: Dialect, p: Params, lower: dt.datetime | None, upper: dt.datetime | None
) -> str:
    """The distinct canonical texts COUNT_UNIQUE counts, per window and customer, over `[lower, upper)`."""
    table = Event._meta.db_table
    w = _window_sql(query, part, d, p, lower, upper)
    w_sql = w if w is not None else d.null_timestamp
    c_sql = "e.external_customer_id" if query.by_customer else "NULL"
    where = _where(query, d, p, lower, upper)
    value = value_sql(query.spec, d, p)
    return f"SELECT DISTINCT {w_sql} AS w, {c_sql} AS c, {value} AS t FROM {d.events_source(table)} WHERE {where}"


def _count_distinct_sql(head: str, sources: list[str], d: Dialect) -> str:
    """Count the distinct texts of all sources together (a hash, not the sort of count(DISTINCT …) per group)."""
    union = " UNION ".join(sources)
    return (
        f"SELECT {head}, u.w AS w, u.c AS c, {d.as_text('count(u.t)')} AS n1, NULL AS n2 "
        f"FROM ({union}) u GROUP BY u.w, u.c HAVING count(u.t) > 0"
    )


def _latest_sql(query, head, w, c, where, v, d: Dialect) -> str:
    """Value of the latest matching event; ties on timestamp go to the later delivery (then the later row)."""
    table = Event._meta.db_table
    w_sql = w if w is not None else d.null_timestamp
    c_sql = c if c is not None else "NULL"
    group = _group_by(w, c)
    if d.vendor == "clickhouse":
        # no row id: the delivery's version breaks a tie of timestamp and ingestion time, then the event id
        key = "(e.timestamp, e.ingested_at, e.version, e.event_id)"
        having = f" HAVING count({v}) > 0" if group else ""
        return (
            f"SELECT {head}, {w_sql} AS w, {c_sql} AS c, "
            f"if(count({v}) > 0, toString(argMaxIf({v}, {key}, {v} IS NOT NULL)), NULL) AS n1, NULL AS n2 "
            f"FROM {d.events_source(table)} WHERE {where}{group}{having}"
        )
    if d.vendor == "sqlite":
        latest = f"fm_latest(e.timestamp, e.ingested_at, e.id, {v})"
        return (
            f"SELECT * FROM (SELECT {head}, {w_sql} AS w, {c_sql} AS c, {latest} AS n1, NULL AS n2 "
            f"FROM {d.events_source(table)} WHERE {where}{group}) latest WHERE latest.n1 IS NOT NULL"
        )
    # n2 is the winner's ordering key (timestamp, ingested_at, id), to pick the latest among pieces and rollups
    order_key = "ARRAY[EXTRACT(EPOCH FROM e.timestamp), EXTRACT(EPOCH FROM e.ingested_at), e.id::numeric]"
    if w is None and c is None:
        order = "e.timestamp DESC, e.ingested_at DESC, e.id DESC"  # walks the usage index backwards
        inner = (
            f"SELECT {v} AS v, {order_key} AS k FROM {d.events_source(table)} WHERE {where} AND {v} IS NOT NULL "
            f"ORDER BY {order} LIMIT 1"
        )
        return (
            f"SELECT {head}, {w_sql} AS w, NULL AS c, (latest.v)::text AS n1, (latest.k)::text AS n2 "
            f"FROM ({inner}) latest"
        )
    # per group: the greatest (timestamp, ingested_at, id, value) array, one hash aggregate instead of a sort
    key = f"ARRAY[EXTRACT(EPOCH FROM e.timestamp), EXTRACT(EPOCH FROM e.ingested_at), e.id::numeric, {v}]"
    return (
        f"SELECT {head}, {w_sql} AS w, {c_sql} AS c, ((max({key}))[4])::text AS n1, "
        f"((max({key}))[1:3])::text AS n2 FROM {d.events_source(table)} WHERE {where} AND {v} IS NOT NULL{group}"
    )


def _total_from_windows(query: UsageQuery) -> bool:
    """Whether the total can be combined from the per-window rows instead of a second scan."""
    spec = query.spec
    kind = spec.aggregation_type
    if not query.windows or query.by_customer or kind == AggregationType.COUNT_UNIQUE:
        return False
    if spec.is_cumulative and kind != AggregationType.WEIGHTED_SUM:
        return False  # the total also covers everything before the start
    # bucketed MAX sums its bucket maxima: the windows' sums add up to the total where no bucket spans two windows
    return not spec.is_bucketed_max or buckets_nest(spec.bucket_size, query.windows, query.anchor)


def _part_kinds(query: UsageQuery) -> list[int]:
    parts = [] if _total_from_windows(query) else [TOTAL]
    if query.spec.is_cumulative and query.spec.aggregation_type == AggregationType.WEIGHTED_SUM:
        parts.append(CARRY)
    if query.windows and not query.by_customer:
        parts.append(WINDOW)
    return parts


def _parts(query: UsageQuery, tag: int, d: Dialect, p: Params, coverage: Coverage | None) -> list[str]:
    """The SELECTs of a query: per part, rollups for the whole days and quarter hours they can answer (see
    `plan_pieces`), raw events for the rest."""
    selects = []
    head_of = f"{tag} AS tag, {{part}} AS part"
    for part in _part_kinds(query):
        lower, upper = _part_bounds(query, part)
        if coverage is None or _latest_by_index(query, part):
            selects.append(part_sql(query, tag, part, d, p, lower, upper))
            continue
        window = query.windows if part == WINDOW else ""
        pieces = plan_pieces(
            lower,
            upper,
            coverage.days,
            day_fits=day_fits(query, window=window),
            quarters_fit=quarters_fit(query, window=window),
            partial=coverage.partial,
            partial_totals=not query.spec.is_bucketed_max,
        )
        rollup = _RollupRead(query, part, d, p, coverage.definition_id)
        head = head_of.format(part=part)
        raw = _raw_ranges(query, part, d, pieces.raw)
        if query.spec.aggregation_type == AggregationType.COUNT_UNIQUE:
            # distinct values must be counted across pieces: one count over the union of all of them, but for the
            # hour windows inside a UTC day, whose counts the rollups keep (see `aligned_days`)
            aligned = aligned_days(pieces, query.zone, window) if part == WINDOW else None
            sources = [distinct_values_sql(query, part, d, p, first, last) for first, last in raw]
            sources.extend(rollup.distinct_sql(pieces))
            if aligned is not None:
                sources.extend(rollup.aligned_edges_sql(aligned))
                selects.extend(rollup.hour_counts_sql(head, aligned))
            if sources:
                selects.append(_count_distinct_sql(head, sources, d))
            continue
        if query.spec.is_bucketed_max and part != CARRY:
            # a bucket may be split between raw edges and quarter hours: its maximum is taken across both
            cells = [bucket_cells_sql(query, part, d, p, first, last) for first, last in raw]
            cells.extend(rollup.quarter_cells_sql(pieces))
            if cells:
                selects.append(bucket_maxima_sum_sql(head, cells, d))
        else:
            selects.extend(part_sql(query, tag, part, d, p, first, last) for first, last in raw)
            selects.extend(rollup.quarter_rows_sql(head, pieces))
        selects.extend(rollup.day_rows_sql(head, pieces))
    return selects


def _latest_by_index(query: UsageQuery, part: int) -> bool:
    """LATEST of one customer without windows walks the usage index backwards to its first value (see
    `_latest_sql`): cheaper than any rollup (1M events: 10-12 ms raw against 34-44 ms from rollups, loaded machine)."""
    return (
        query.spec.aggregation_type == AggregationType.LATEST
        and part == TOTAL
        and query.customer is not None
        and not query.by_customer
    )


def _days_wanted(query: UsageQuery) -> tuple[dt.date | None, dt.date]:
    """The days any part of `query` could read from rollups."""
    lowers = [_part_bounds(query, part)[0] for part in _part_kinds(query)]
    return days_touched(None if None in lowers else min(cast(list[dt.datetime], lowers)), query.end)


_QUARTER_START = "(r.day + x.quarter * interval '15 minutes')"  # a quarter's start, UTC wall-clock time
# Windows made of whole local hours: a local hour lies in one window of each (weeks and anchored months may start
# within an hour of their own).
_WINDOWS_OF_WHOLE_HOURS = ("", "HOUR", "DAY")


@dataclass(frozen=True)
class _RollupRead:
    """SQL over rollup rows `r` of a definition for one part of a query, shaped like the raw pieces' rows."""

    query: UsageQuery
    part: int
    d: Dialect
    p: Params
    definition_id: int

    def _window(self, start_sql: str) -> str | None:
        query = self.query
        if self.part != WINDOW:
            return None
        return self.d.bucket(self.p, f"({start_sql} AT TIME ZONE 'UTC')", query.windows, query.zone.key, query.anchor)

    def _customer(self) -> tuple[str | None, str]:
        """(customer column, condition): one customer's rows, every customer's rows, or the rows of everyone."""
        query, p = self.query, self.p
        if query.customer is not None:
            return ("r.customer" if query.by_customer else None), f"r.customer = {p(query.customer)}"
        if query.by_customer:
            return "r.customer", f"r.customer <> {p(EVERYONE)}"
        return None, f"r.customer = {p(EVERYONE)}"

    def _table(self, name: str, *, quarters: bool) -> str:
        """The FROM item of rollup table `name` as `r` (a subclass joins it to per-customer ranges)."""
        return f"{name} r"

    def _where(self, days: list[tuple[dt.date, dt.date]]) -> str:
        p = self.p
        within = " OR ".join(f"(r.day >= {p(first)} AND r.day < {p(after)})" for first, after in days)
        return f"r.definition_id = {p(self.definition_id)} AND {self._customer()[1]} AND ({within})"

    def _quarters_read(self, name: str, unnested: str, pieces: Pieces) -> str:
        """FROM items and WHERE of the quarter ranges of `pieces`: rows `r` of rollup table `name` and their quarters
        `unnested` (an unnest call as `x`)."""
        p = self.p
        days, whole, cut = [], [], []
        for start, end in pieces.quarters:
            first, after = start.date(), (end - dt.timedelta(microseconds=1)).date() + dt.timedelta(days=1)
            days.append(f"(r.day >= {p(first)} AND r.day < {p(after)})")
            from_midnight, to_midnight = start.time() == dt.time(0), end.time() == dt.time(0)
            whole_first = first if from_midnight else first + dt.timedelta(days=1)
            if whole_first < end.date():
                whole.append(f"(r.day >= {p(whole_first)} AND r.day < {p(end.date())})")
            if not (from_midnight and to_midnight):
                low, high = p(start.replace(tzinfo=None)), p(end.replace(tzinfo=None))
                cut.append(f"({_QUARTER_START} >= {low} AND {_QUARTER_START} < {high})")
        # The days stand on their own, apart from the quarters: inside one OR with them (a month in Asia/Kolkata has
        # two quarter ranges) they could not bound the index scan, and every rolled-up day of the meter was unnested.
        rows = f"r.definition_id = {p(self.definition_id)} AND {self._customer()[1]} AND ({' OR '.join(days)})"
        table = self._table(name, quarters=True)
        if not cut:
            return f"{table}, {unnested} WHERE {rows}"
        if not whole:
            return f"{table}, {unnested} WHERE {rows} AND ({' OR '.join(cut)})"
        # The quarters of whole days need no test of their own, those of the days a range cuts do. In one join with
        # the rows PostgreSQL tests a condition on every unnested quarter, even one on `r` alone; standing alone in a
        # lateral subquery, that condition is tested once per row (a heavy customer's month of MAX per HOUR by
        # instance unnests 11,520 quarters: 3.8 of 14.7 ms in UTC, where all days are whole; 16.1 -> 13.2 ms in
        # Asia/Kolkata).
        whole_days = " OR ".join(whole)
        split = (
            f"SELECT * FROM {unnested} WHERE {whole_days} "
            f"UNION ALL SELECT * FROM {unnested} WHERE NOT ({whole_days}) AND ({' OR '.join(cut)})"
        )
        return f"{table} CROSS JOIN LATERAL ({split}) x WHERE {rows}"

    def _select(self, head: str, w: str | None, values: tuple[str, str], read: str) -> str:
        """The part's rows of rollup rows `read` (FROM items and WHERE)."""
        c = self._customer()[0]
        w_sql = w if w is not None else self.d.null_timestamp
        c_sql = c if c is not None else "NULL"
        return f"SELECT {head}, {w_sql} AS w, {c_sql} AS c, {self._as_texts(values)} FROM {read}{_group_by(w, c)}"

    def _as_texts(self, values: tuple[str, str]) -> str:
        """The partials `values` as the statement's text columns n1 and n2."""
        n1, n2 = values
        return f"{self.d.as_text(n1)} AS n1, {'NULL' if n2 == 'NULL' else self.d.as_text(n2)} AS n2"

    def day_rows_sql(self, head: str, pieces: Pieces) -> list[str]:
        if not pieces.days:
            return []
        values = partials_combined_sql(
            self.query.spec, carry=self.part == CARRY, n1="r.n1", n2="r.n2", latest="r.latest"
        )
        w = self._window("r.day::timestamp")
        read = f"{self._table('metering_rollup', quarters=False)} WHERE {self._where(pieces.days)}"
        return [self._select(head, w, values, read)]

    def quarter_rows_sql(self, head: str, pieces: Pieces) -> list[str]:
        if not pieces.quarters:
            return []
        latest = "(ARRAY[x.k1, x.k2, x.k3, x.n1])"
        values = partials_combined_sql(self.query.spec, carry=self.part == CARRY, n1="x.n1", n2="x.n2", latest=latest)
        columns = {"quarter": "r.quarters", "n1": "r.q1"}
        if self.query.spec.aggregation_type == AggregationType.LATEST:
            # the quarters' keys (rows of the 2-D `qkeys`) as three columns sliced once per row: `r.qkeys[i][1]`
            # for each quarter detoasted the whole array every time (a heavy customer's month in daily windows:
            # 20 ms, 3.4 ms sliced)
            columns |= {"k1": "r.qkeys[:][1:1]", "k2": "r.qkeys[:][2:2]", "k3": "r.qkeys[:][3:3]"}
        elif values[1] != "NULL":
            # only AVG and WEIGHTED_SUM read a second partial: unnesting the others' empty one cost a heavy
            # customer's hourly month a tenth of its statement
            columns["n2"] = "r.q2"
        unnested = f"unnest({', '.join(columns.values())}) AS x({', '.join(columns)})"
        source = self._quarters_read("metering_rollup", unnested, pieces)
        hourly = self.part == WINDOW and self.query.windows == "HOUR"
        hours = self._hours_of_days(pieces) if hourly else None
        if hours is not None:
            hour, start = hours
            c = self._customer()[0]
            group = f"r.day, {hour}{', 4' if c is not None else ''}"  # the customer is column 4, as in `_select`
            texts = self._as_texts(values)
            return [f"SELECT {head}, {start} AS w, {c or 'NULL'} AS c, {texts} FROM {source} GROUP BY {group}"]
        # Daily windows hold up to 96 quarters each. A typical customer's hourly windows hold about one each, and
        # grouping them by number first was a second grouping for nothing (1.02-1.09 of the time).
        daily = self.part == WINDOW and self.query.windows == "DAY"
        numbered = self._window_numbers(pieces, "DAY") if daily else None
        if numbered is None:
            return [self._select(head, self._window(_QUARTER_START), values, source)]
        number, first_start = numbered
        (n1, n2), c = values, self._customer()[0]
        cells = (
            f"SELECT {number} AS number, {c if c is not None else 'NULL'} AS c, {n1} AS n1, {n2} AS n2 "
            f"FROM {source} GROUP BY 1, 2"
        )
        texts = self._as_texts(("cells.n1", "NULL" if n2 == "NULL" else "cells.n2"))
        return [f"SELECT {head}, {self._window(first_start)} AS w, cells.c AS c, {texts} FROM ({cells}) cells"]

    def quarter_cells_sql(self, pieces: Pieces) -> list[str]:
        """Bucketed MAX: the (window, customer, bucket, group) maxima of the quarter ranges."""
        if not pieces.quarters:
            return []
        query, d, p = self.query, self.d, self.p
        c = self._customer()[0]
        c_sql, g_sql = (c if c is not None else "NULL"), d.group_text("x.g")
        unnested = "unnest(r.quarters, r.q1, r.qgroups) AS x(quarter, m, g)"
        source = self._quarters_read("metering_rollup", unnested, pieces)
        hours_whole = query.spec.bucket_size == "HOUR" and query.windows in _WINDOWS_OF_WHOLE_HOURS
        numbered = self._window_numbers(pieces, "HOUR") if hours_whole else None
        if numbered is None:
            w = self._window(_QUARTER_START)
            bucket = cell_bucket_sql(query, w, d, p, f"({_QUARTER_START} AT TIME ZONE 'UTC')")
            w_sql = w if w is not None else d.null_timestamp
            cell = f"{w_sql} AS w, {c_sql} AS c, {bucket} AS b, {g_sql} AS g"
            return [f"SELECT {cell}, max(x.m) AS m FROM {source} GROUP BY 1, 2, 3, 4"]
        # the quarters grouped by the number of their hour: a heavy customer's month by four instances is 11,520
        # quarter maxima in 2,880 cells
        hour, first_start = numbered
        w = self._window(first_start)
        bucket = cell_bucket_sql(query, w, d, p, f"({first_start} AT TIME ZONE 'UTC')")
        cells = f"SELECT {hour} AS number, {c_sql} AS c, {g_sql} AS g, max(x.m) AS m FROM {source} GROUP BY 1, 2, 3"
        w_sql = w if w is not None else d.null_timestamp
        return [f"SELECT {w_sql} AS w, cells.c AS c, {bucket} AS b, cells.g AS g, cells.m AS m FROM ({cells}) cells"]

    def _window_numbers(self, pieces: Pieces, window: str) -> tuple[str, str] | None:
        """Where local windows of `window` (HOUR or DAY) are runs of quarters all through `pieces.quarters` (see
        `window_alignment`): the SQL of a quarter's window number, and of the start of window `cells.number` as UTC
        wall-clock time. Grouped by that number, a query computes each window's start once instead of for every
        quarter. The start's day and minutes are kept apart, so no interval holds two thousand years (multiplied
        as a float). None: group by each quarter's local window."""
        alignment = window_alignment(pieces, self.query.zone, window)
        if alignment is None:
            return None
        size, per_day = WINDOW_QUARTERS[window], QUARTERS_PER_DAY
        number = f"(((r.day - DATE '0001-01-01') * {per_day} + x.quarter - {alignment} + {size}) / {size})"
        first = f"(cells.number * {size} + {alignment} - {size})"
        return number, f"(DATE '0001-01-01' + {first} / {per_day} + mod({first}, {per_day}) * interval '15 minutes')"

    def _hours_of_days(self, pieces: Pieces) -> tuple[str, str] | None:
        """Where the zone keeps one offset all through `pieces.quarters`, so that local hours are runs of four
        quarters: the SQL of a quarter's hour within its row's UTC day (0-24; hour 0 began the day before), and of
        that hour's local start, computed from integers once per hour rather than from each quarter through the
        zone's rules (a heavy customer's month of SUM in hourly windows: the statement 1.98 -> 1.45 ms, 2.29 -> 1.46 ms
        in Asia/Kolkata). An hour across UTC midnight (Kolkata's begin at :30) is then two groups of one start, which
        `_results` merges as it merges an hour read from two pieces. None: each quarter's local hour is read."""
        offset = quarters_offset(pieces, self.query.zone)
        if offset is None:
            return None
        shift = offset // QUARTER  # whole quarter hours: quarters are read only where the offset is (`quarters_fit`)
        size = WINDOW_QUARTERS["HOUR"]
        alignment = alignment_at(offset, size)  # the quarter of every UTC hour at which local hours begin
        hour = f"((x.quarter + {size - alignment}) / {size})"
        return hour, f"(r.day + ({hour} * {size} + {alignment - size + shift}) * interval '15 minutes')"

    def hour_counts_sql(self, head: str, aligned: AlignedDays) -> list[str]:
        """COUNT_UNIQUE: the rolled-up count of each hour window inside an aligned UTC day (one row a window)."""
        if aligned.quarters_per_window != 4:
            return []
        selects = []
        for alignment, days in aligned.by_alignment.items():
            first = alignment * HOUR_SLOTS + 1
            last = alignment * HOUR_SLOTS + (24 if alignment == 0 else 23)
            start = f"(r.day + ((h.slot - {first}) * 4 + {alignment}) * interval '15 minutes')"
            w = self._window(start)
            selects.append(
                f"SELECT {head}, {w} AS w, NULL AS c, (h.n)::text AS n1, NULL AS n2 "
                f"FROM {self._table('metering_rollup', quarters=False)}, unnest(r.quarters, r.q1) AS h(slot, n) "
                f"WHERE {self._where(days)} AND h.slot >= {first} AND h.slot <= {last}"
            )
        return selects

    def aligned_edges_sql(self, aligned: AlignedDays) -> list[str]:
        """COUNT_UNIQUE: the values of the windows of aligned days that cross midnight, or (DAY windows) of the
        day's two windows, as (w, c, t): a value is in the part of the day before quarter `a` when its first
        quarter is, in the part from quarter `q` on when its last one is (the quarters are sorted)."""
        size = aligned.quarters_per_window
        sources = []
        for alignment, days in aligned.by_alignment.items():
            where = f"FROM {self._table('metering_rollup_distinct', quarters=False)} WHERE {self._where(days)}"
            if alignment > 0:
                w = self._window("r.day::timestamp")
                sources.append(
                    f"SELECT DISTINCT {w} AS w, NULL AS c, r.value AS t {where} AND r.quarters[1] < {alignment}"
                )
            if alignment > 0 or size == QUARTERS_PER_DAY:
                tail = QUARTERS_PER_DAY - size + alignment
                w = self._window(f"(r.day + {tail} * interval '15 minutes')")
                sources.append(
                    f"SELECT DISTINCT {w} AS w, NULL AS c, r.value AS t {where} "
                    f"AND r.quarters[array_upper(r.quarters, 1)] >= {tail}"
                )
        return sources

    def distinct_sql(self, pieces: Pieces) -> list[str]:
        """COUNT_UNIQUE: the rolled-up distinct values of whole days and of quarter ranges, as (w, c, t)."""
        d = self.d
        c = self._customer()[0]
        c_sql = c if c is not None else "NULL"
        sources = []
        if pieces.days:
            w = self._window("r.day::timestamp")
            w_sql = w if w is not None else d.null_timestamp
            sources.append(
                f"SELECT DISTINCT {w_sql} AS w, {c_sql} AS c, r.value AS t "
                f"FROM {self._table('metering_rollup_distinct', quarters=False)} WHERE {self._where(pieces.days)}"
            )
        if pieces.quarters:
            w = self._window(_QUARTER_START)
            w_sql = w if w is not None else d.null_timestamp
            sources.append(
                f"SELECT DISTINCT {w_sql} AS w, {c_sql} AS c, r.value AS t "
                f"FROM {self._quarters_read('metering_rollup_distinct', 'unnest(r.quarters) AS x(quarter)', pieces)}"
            )
        return sources


# --- Execution and assembly -------------------------------------------------------------------------------


Partial = tuple  # (n1, n2): partial aggregates of one group, as the parts return them


@dataclass
class _Rows:
    total: dict[str | None, Partial] = field(default_factory=dict)
    carry: dict[str | None, Decimal] = field(default_factory=dict)
    windows: dict[dt.datetime, Partial] = field(default_factory=dict)


def _dec(value) -> Decimal | None:
    # the parts write their numbers as text (SQLite's counts as integers); a Decimal is immutable, so kept as it is
    if type(value) is str:  # tested first: PostgreSQL's rows hold every number as text, two per row
        return Decimal(value)
    if value is None or type(value) is Decimal:
        return value
    return Decimal(value if type(value) is int else str(value))


def _latest_key(text: str) -> tuple[Decimal, ...]:
    """The `{timestamp,ingested_at,id}` array text of a LATEST row, as a comparable tuple."""
    return tuple(Decimal(item) for item in text.strip("{}").split(","))


def _merged(spec: AggregationSpec, a: Partial | None, b: Partial) -> Partial:
    """Partial aggregates of two disjoint pieces of a group combined into those of their union. For LATEST the
    ordering keys decide, read from their text only here (most rows are never compared: a month of hourly windows
    parsed 720 keys to compare none); without keys (SQLite rows) `b` must be the later piece."""
    if a is None:
        return b
    kind = spec.aggregation_type
    (a1, a2), (b1, b2) = a, b
    if kind == AggregationType.LATEST:
        if a1 is None or b1 is None:
            return b if a1 is None else a
        if a2 is None or b2 is None:
            return b
        return a if _latest_key(a2) >= _latest_key(b2) else b
    if _picks_one(spec):
        present = [value for value in (a1, b1) if value is not None]
        pick = min if kind == AggregationType.MIN else max
        return (pick(present) if present else None), None
    return _add(a1, b1), _add(a2, b2)


def _picks_one(spec: AggregationSpec) -> bool:
    """MIN and MAX (not bucketed MAX, a sum of bucket maxima) keep one of the pieces' values; the additive types
    add both partials."""
    kind = spec.aggregation_type
    return kind == AggregationType.MIN or (kind == AggregationType.MAX and not spec.is_bucketed_max)


def _add(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    if a is None or b is None:
        return b if a is None else a
    return EXACT.add(a, b)


def run_usage_queries(
    queries: list[UsageQuery],
    *,
    using: str = DEFAULT_DB_ALIAS,
    rollups: bool = True,
    backend: EventsBackend | None = None,
) -> list[UsageResult | dict[str, Decimal | None]]:
    """Compute several usage queries with one SQL statement; a `by_customer` query gives {customer: value}.

    On PostgreSQL, whole days that have a valid rollup are read from it (`rollups=False` reads raw events only);
    the rollup lookup and the statement then share one snapshot, so the answer is the same either way. Within a
    minute of the same lookup the statement runs alone, checking in its own snapshot that the days it reads from
    rollups are still valid (one round trip instead of four; the lookup runs again if any is not).
    `backend` overrides the events backend of the settings (the copy command compares both stores).
    """
    if not queries:
        return []
    backend = backend or events_backend()
    if backend.is_clickhouse:
        return _run_on_clickhouse(queries, backend)
    connection = connections[using]
    d = dialect_for(connection)
    use_rollups = rollups and d.vendor == "postgresql"
    fingerprints = [rollup_fingerprint(query.spec) if use_rollups else None for query in queries]
    wanted = [
        (query.environment_id, fingerprint, *_days_wanted(query))
        for query, fingerprint in zip(queries, fingerprints, strict=True)
        if fingerprint is not None
    ]
    if not wanted:
        with server_bound_cursor(connection) as cursor:
            return _results(queries, d, _fetch(cursor, queries, fingerprints, d, {}))
    recent = coverage_recent(connection.alias, wanted)
    if recent is not None:
        # one statement and no transaction: it checks in its own snapshot that the remembered days still hold
        with server_bound_cursor(connection) as cursor:
            fetched = _fetch(cursor, queries, fingerprints, d, recent, checked=True)
        if fetched is not None:
            return _results(queries, d, fetched)
        coverage_forget(connection.alias, wanted)
    with repeatable_read(connection, read_only=True), server_bound_cursor(connection) as cursor:
        coverage = coverage_lookup(cursor, wanted)
        fetched = _fetch(cursor, queries, fingerprints, d, coverage)
    coverage_remember(connection.alias, wanted, coverage)
    return _results(queries, d, fetched)


def _fetch(cursor, queries, fingerprints, d: Dialect, coverage: dict, *, checked: bool = False):
    """The rows of the statement of `queries` reading rollups of `coverage`. `checked`: the statement also counts
    the coverage's days still valid in its snapshot, and None is returned if any is not (see `coverage_check_sql`)."""
    p = Params()
    selects = [
        sql
        for tag, (query, fingerprint) in enumerate(zip(queries, fingerprints, strict=True))
        for sql in _parts(
            query, tag, d, p, None if fingerprint is None else coverage.get((query.environment_id, fingerprint))
        )
    ]
    check = coverage_check_sql(p, coverage, d.null_timestamp) if checked else None
    return usage_rows(cursor, selects, p, check=check)


def usage_rows(cursor, selects: list[str], p: Params, *, check: tuple[str, int] | None = None) -> list | None:
    """The rows of the parts' UNION ALL on the Django database; a number out of the database's range is a clear
    error. With `check` (`coverage_check_sql`: its SELECT and the count it must give) the statement also counts the
    remembered rollup days still valid, and None means some are not: the caller looks coverage up again."""
    statement = " UNION ALL ".join(
        f"SELECT * FROM ({sql}) part{i}" for i, sql in enumerate([*selects, *([check[0]] if check else [])])
    )
    try:
        cursor.execute(statement, p.values)
        fetched = cursor.fetchall()
    except DataError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != NUMERIC_VALUE_OUT_OF_RANGE:
            raise
        raise InvalidOperation(
            "This usage cannot be computed: an intermediate value exceeds the database's number range "
            "(events stored before the limits on property numbers can hold such values)",
            details={"usage": "a value of this window is too large to aggregate"},
        ) from None
    if check is None:
        return fetched
    valid = [int(row[4]) for row in fetched if row[0] == -1]
    return [row for row in fetched if row[0] != -1] if valid == [check[1]] else None


def _run_on_clickhouse(queries: list[UsageQuery], backend: EventsBackend) -> list:
    """The same statement on the ClickHouse events store (no rollups: it scans a month of events fast enough)."""
    d = ClickHouseDialect(backend.database)
    p = Params()
    try:
        selects = [sql for tag, query in enumerate(queries) for sql in _parts(query, tag, d, p, None)]
    except UnsupportedOnClickHouse as error:
        raise InvalidOperation(str(error)) from error
    return _results(queries, d, clickhouse_rows(selects, p, backend))


def clickhouse_rows(selects: list[str], p: Params, backend: EventsBackend) -> list:
    """The rows of the parts' UNION ALL on the ClickHouse events store; an inexact number is a clear error."""
    from clickhouse_connect.driver.exceptions import ClickHouseError  # the optional extra, only when selected

    statement = clickhouse_statement(selects)
    try:
        result = clickhouse_client(backend).query(
            statement,
            parameters=p.values,
            settings={"union_default_mode": "DISTINCT"},
        )
    except ClickHouseError as error:
        if NOT_EXACT in str(error):
            raise InvalidOperation(
                "This usage cannot be computed exactly on the ClickHouse events backend: a value, product or sum "
                "exceeds 56 integer or 20 decimal digits"
            ) from error
        raise
    return result.result_rows


def clickhouse_statement(selects: list[str]) -> str:
    """The parts as one statement. A single part (one meter for one customer or for all of them, the common request)
    goes as it is: wrapped in `SELECT * FROM (…)` as the UNION needs, ClickHouse analyzed and planned one query more,
    0.35-0.65 ms of the 3.7-7.4 ms a typical customer's month cost in chdb at 200,000 events (docs/clickhouse.md)."""
    if len(selects) == 1:
        return selects[0]
    return " UNION ALL ".join(f"SELECT * FROM ({sql}) part{i}" for i, sql in enumerate(selects))


def _results(queries: list[UsageQuery], d: Dialect, fetched) -> list:
    """Partial aggregates of the statement's rows combined into each query's result."""
    rows_by_tag = [_Rows() for _ in queries]
    # what each row needs of its query, looked up once (a month of hourly windows is 720 rows)
    latest = [query.spec.aggregation_type == AggregationType.LATEST for query in queries]
    parse_local = d.parse_local
    for tag, part, w, c, n1, n2 in fetched:
        value = (_dec(n1), n2 if latest[tag] else _dec(n2))
        rows = rows_by_tag[tag]
        if part == WINDOW:
            local = parse_local(w)
            seen = rows.windows.get(local)
            rows.windows[local] = value if seen is None else _merged(queries[tag].spec, seen, value)
        elif part == TOTAL:
            rows.total[c] = _merged(queries[tag].spec, rows.total.get(c), value)
        elif part == CARRY:
            rows.carry[c] = _add(rows.carry.get(c), value[0]) or Decimal(0)
        else:
            raise ValueError(f"a usage statement returned part {part!r}")
    return [_assemble(query, rows) for query, rows in zip(queries, rows_by_tag, strict=True)]


def group_values(
    queries: list[UsageQuery], keys: Sequence[str], *, using: str = DEFAULT_DB_ALIAS
) -> list[list[tuple[str | None, ...]]]:
    """Per query, the distinct combinations of the canonical texts of the property `keys` among its events, in
    one statement; None where an event lacks a key (or its value has no canonical text).

    The events are those the query's total reads: its name, customer and filters over `[start, end)`, or over
    everything before `end` for a meter that never resets. A caller that splits usage by these values with `in`
    filters (and `not_in` every seen value for None) therefore covers every event exactly once.
    """
    if not queries or not keys:
        return [[] for _ in queries]
    backend = events_backend()
    d = ClickHouseDialect(backend.database) if backend.is_clickhouse else dialect_for(connections[using])
    p = Params()
    source = d.events_source(Event._meta.db_table)
    selects = []
    for tag, query in enumerate(queries):
        columns = ", ".join(f"{d.canonical(p, key)} AS k{index}" for index, key in enumerate(keys))
        lower = None if query.spec.is_cumulative else query.start
        where = _where(query, d, p, lower, query.end)
        selects.append(f"SELECT DISTINCT {tag} AS tag, {columns} FROM {source} WHERE {where}")
    statement = " UNION ALL ".join(f"SELECT * FROM ({sql}) part{i}" for i, sql in enumerate(selects))
    if backend.is_clickhouse:
        rows = clickhouse_client(backend).query(statement, parameters=p.values).result_rows
    else:
        with server_bound_cursor(connections[using]) as cursor:
            cursor.execute(statement, p.values)
            rows = cursor.fetchall()
    found: list[list[tuple[str | None, ...]]] = [[] for _ in queries]
    for tag, *values in rows:
        found[tag].append(tuple(values))
    return found


def _assemble(query: UsageQuery, rows: _Rows):
    spec = query.spec
    combine = _combiner(spec)
    if query.by_customer:
        customers = set(rows.total) | set(rows.carry)
        return {
            customer: _finish(
                combine,
                *rows.total.get(customer, (None, None)),
                start=query.start,
                end=query.end,
                carry=rows.carry.get(customer, Decimal(0)),
            )
            for customer in customers
        }
    # by start alone: comparing the (start, partial) pairs themselves cost twice as much
    ordered = sorted(rows.windows.items(), key=itemgetter(0))
    n1, n2 = rows.total.get(None, (None, None)) if not _total_from_windows(query) else _combine_windows(spec, ordered)
    carry = rows.carry.get(None, Decimal(0))
    value = _finish(combine, n1, n2, start=query.start, end=query.end, carry=carry)
    # a month of hourly windows is ~744 of them: one decimal context for all
    with localcontext(EXACT):
        if spec.aggregation_type == AggregationType.WEIGHTED_SUM:
            windows = _weighted_windows(query, ordered, carry)
        else:
            # only WEIGHTED_SUM's combination reads a window's bounds or the level it starts at
            start, end, zone, zero = _micros(query.start), _micros(query.end), query.zone, Decimal(0)
            windows = [(from_local(local, zone), combine(w1, w2, start, end, zero)) for local, (w1, w2) in ordered]
    return UsageResult(value=value, windows=usage_windows(windows))


def _weighted_windows(
    query: UsageQuery, ordered: list[tuple[dt.datetime, Partial]], carry: Decimal
) -> list[tuple[dt.datetime, Decimal | None]]:
    """WEIGHTED_SUM's windows in time order: each weighs its changes over its own bounds within the range, from the
    level it starts at. Every window of a meter that resets starts at zero; one that never resets starts the first at
    `carry` (everything before the range) and each next one where the window before it ended."""
    carried, zone, size, anchor = query.spec.is_cumulative, query.zone, query.windows, query.anchor
    query_start, query_end = _micros(query.start), _micros(query.end)
    level = carry if carried else Decimal(0)
    windows = []
    for local_start, (w1, w2) in ordered:
        first, last = _window_micros(local_start, size, anchor, zone)
        start = first if first > query_start else query_start
        end = last if last < query_end else query_end
        windows.append((from_local(local_start, zone), _weighted_value(w1, w2, start, end, level)))
        if carried and w1:
            level = EXACT.add(level, w1)
    return windows


def _combine_windows(spec: AggregationSpec, ordered: list[tuple[dt.datetime, Partial]]) -> Partial:
    """Partial aggregates of the whole range from those of its windows in time order (see `_total_from_windows`)."""
    if spec.aggregation_type == AggregationType.LATEST:
        # windows are disjoint and ordered by time, the first item of a LATEST key: the last one with a value holds
        # the latest event, without comparing any keys
        return next((partial for _, partial in reversed(ordered) if partial[0] is not None), (None, None))
    if _picks_one(spec):
        combined = None
        for _, partial in ordered:
            combined = _merged(spec, combined, partial)
        return combined or (None, None)
    # the additive types: what `_merged` adds window by window, summed in one pass per partial
    return _exact_sum([n1 for _, (n1, _) in ordered]), _exact_sum([n2 for _, (_, n2) in ordered])


def _exact_sum(values: list[Decimal | None]) -> Decimal | None:
    present = [value for value in values if value is not None]
    if not present:
        return None
    # from the first value, not Decimal(0): a single value comes back untouched (its exponent, a zero's sign), as
    # `_merged` returns it
    with localcontext(EXACT):
        return sum(present[1:], present[0])


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


def _micros(moment: dt.datetime) -> int:
    # integer arithmetic on the parts: `timedelta // timedelta` cost 2 µs, twice per window of a weighted month
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


# Remembered: a month of hourly WEIGHTED_SUM windows asks for 720 windows' bounds, the next customer's for the same.
@functools.lru_cache(maxsize=1 << 14)
def _window_micros(local_start: dt.datetime, size: str, anchor, zone) -> tuple[int, int]:
    """The instants a window of `size` starting at local time `local_start` starts and ends, as `_micros`."""
    end = next_bucket_start_local(local_start, size, anchor)
    return _micros(from_local(local_start, zone)), _micros(from_local(end, zone))


def _finish(combine: Combine, n1, n2, *, start: dt.datetime, end: dt.datetime, carry: Decimal) -> Decimal | None:
    """Combine the partial aggregates of one group into the value of SPEC §5.1 (exact decimal arithmetic), with the
    type's `_combiner`, chosen once by the caller for all its groups."""
    with localcontext(EXACT):
        return combine(n1, n2, _micros(start), _micros(end), carry)


# (n1, n2, start, end, carry) → the value, in the caller's exact decimal context: the partials as the rows give them
# (which of them may be None depends on the type), `start` and `end` in microseconds since the epoch (only
# WEIGHTED_SUM reads them, and the carry)
Combine = Callable[[Any, Any, int, int, Decimal], Decimal | None]


def _weighted_value(n1, n2, start: int, end: int, carry: Decimal) -> Decimal | None:
    """WEIGHTED_SUM's `Combine`: the level at `start` plus each change weighted by the share of `[start, end)` after
    it (`end - start` is never 0: a group spans some time)."""
    if not n1 and not n2:
        # nothing changed, or only by zeros (a third of a typical month's hourly windows)
        return normalize(carry)
    # the quotient is spelled canonically already (see `divide`): only its sum with a non-zero level is spelled again
    quotient = cast(Decimal, divide(end * n1 - n2, end - start))
    return normalize(carry + quotient) if carry else quotient


def _combiner(spec: AggregationSpec) -> Combine:
    """How `_finish` combines a group's partial aggregates for `spec`'s type, chosen once: a month of hourly windows
    combines 720 groups, and choosing per group cost as much as combining."""
    kind = spec.aggregation_type
    if kind == AggregationType.AVG:
        return lambda n1, n2, start, end, carry: divide(n1, n2) if n2 else None
    if kind == AggregationType.WEIGHTED_SUM:
        return _weighted_value
    empty = None if kind in NULL_WHEN_EMPTY else Decimal(0)
    if kind == AggregationType.SUM_WITH_MULTIPLIER:
        multiplier = spec.multiplier
        return lambda n1, n2, start, end, carry: empty if n1 is None else normalize(n1 * multiplier)
    return lambda n1, n2, start, end, carry: empty if n1 is None else normalize(n1)
