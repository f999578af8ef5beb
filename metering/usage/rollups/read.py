"""Reading usage rollups: which days of a meter definition are rolled up, and which pieces of a range they answer.

A rollup row holds, for one meter definition, one UTC day and one customer (or `EVERYONE`), the partial aggregates
the engine itself computes for that day (`n1`, `n2`, and for LATEST the ordering key with the value), and the same
partials for each quarter hour of the day that has events (migration 0006). Combining them over whole days or whole
quarter hours gives exactly what scanning the raw events of that time gives, so the engine reads a range as
pieces (`plan_pieces`): whole UTC days from day totals where the query's windows and buckets never cut a UTC day,
whole quarter hours from the quarter partials where its windows and buckets never cut a quarter hour (every time
zone whose offset is a whole number of quarter hours), and raw events for the rest (edges finer than a quarter
hour, recent days, days changed since they were rolled up). See migration 0004 for the change marks that make a
changed day fall back to raw events, and `metering/usage/rollups/refresh.py` for how rollups are computed.
PostgreSQL only.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import cast

import psycopg
from django.db import transaction

from catalog.models import AggregationType
from metering.usage.periods import FIXED_STEPS, UTC, bucket_start_local, to_local

# Part of every fingerprint: bump it when the meaning of the engine's SQL or of the rows changes, so old rollups
# stop matching.
ROLLUP_FORMAT = 2
DAY = dt.timedelta(days=1)
QUARTER = dt.timedelta(minutes=15)
QUARTERS_PER_DAY = DAY // QUARTER
# the customer of the rows that hold all customers together (ingestion refuses blank customer ids)
EVERYONE = ""
_MICROSECOND = dt.timedelta(microseconds=1)
# COUNT_UNIQUE rollups also count the distinct values of every hour that lies whole inside the UTC day, for each of
# the four quarter-hour alignments of local hours (`a`, the quarter of the UTC hour where local hours start): slot
# `a * HOUR_SLOTS + k` is the k-th hour window of alignment `a` (window 0, before the first local hour starts, and
# window 24 of a > 0 cross midnight: they are not counted, their values are read from the distinct rows instead).
HOUR_SLOTS = 25
WINDOW_QUARTERS = {"HOUR": 4, "DAY": QUARTERS_PER_DAY}


def rollup_fingerprint(spec) -> str:
    """What a rollup of `spec` depends on, as text."""
    return json.dumps(
        {
            "format": ROLLUP_FORMAT,
            "event_name": spec.event_name,
            "type": spec.aggregation_type,
            "field": spec.field,
            "expression": spec.expression.text if spec.expression is not None else "",
            "bucket_size": spec.bucket_size,
            "group_by": spec.group_by,
            "filters": [[f.key, f.operator, list(f.values)] for f in spec.filters],
            # COUNT_UNIQUE rows gained hourly counts: older ones lack them
            **({"hour_counts": 1} if spec.aggregation_type == AggregationType.COUNT_UNIQUE else {}),
        },
        sort_keys=True,
        separators=(",", ":"),
    )


def has_quarters(spec) -> bool:
    """Whether rollups of `spec` keep quarter-hour partials: all but maxima of minute buckets, which a quarter's
    maximum cannot give (their day rows sum the minute maxima instead)."""
    return not (spec.is_bucketed_max and spec.bucket_size == "MINUTE")


def day_total_kept(spec) -> bool:
    """Whether a day row's totals mean something on their own: for bucketed maxima only when the buckets (on the
    UTC grid) never cross a UTC day; WEEK and MONTH buckets are read from quarter maxima only."""
    return not spec.is_bucketed_max or spec.bucket_size in FIXED_STEPS or spec.bucket_size == "DAY"


# The first UTC day that is not sealed yet (today, or yesterday until SEAL_MARGIN past midnight): every write to an
# earlier day leaves a change mark (migration 0009). SQL, for `%(margin)s` = refresh.SEAL_MARGIN; the usage rollups
# and the per-day event counts both refresh the days before it.
SEALED_BEFORE_SQL = "((now() - %(margin)s::interval) AT TIME ZONE 'UTC')::date"


def unseen_marks_sql(*, environment: str, event_name: str, day: str, snapshot: str) -> str:
    """A SELECT of the change marks of (environment, event name, day) that `snapshot` did not see (SQL expressions):
    while one exists, a rollup of that day taken in that snapshot is stale (marks: migrations 0004, 0009, 0014)."""
    return (
        f"SELECT 1 FROM metering_rollup_mark mark WHERE mark.environment_id = {environment} "
        f"AND mark.event_name = {event_name} AND mark.day = {day} AND NOT pg_visible_in_snapshot(mark.xid, {snapshot})"
    )


@dataclass(frozen=True)
class Coverage:
    """The valid rollups of a definition: whole days, and days rolled up only from midnight to a moment (`partial`,
    the day in progress: its totals are those of midnight to that moment, its quarter hours those before it)."""

    definition_id: int
    days: frozenset[dt.date]
    partial: Mapping[dt.date, dt.datetime] = field(default_factory=dict)


# the stale test of a rolled-up day `rd` of definition `def`
_UNSEEN_BY_ROLLUP_DAY = unseen_marks_sql(
    environment="def.environment_id", event_name="def.event_name", day="rd.day", snapshot="rd.snapshot"
)


def coverage_lookup(cursor, wanted: list[tuple[int, str, dt.date | None, dt.date]]) -> dict[tuple[int, str], Coverage]:
    """Rolled-up days still valid (their snapshot saw every change mark of the day) per (environment id,
    fingerprint), among the days `[first, stop)` asked for each (`first` None: from the beginning)."""
    if not wanted:
        return {}
    columns = list(zip(*wanted, strict=True))
    cursor.execute(
        f"""
        SELECT def.environment_id, def.fingerprint, def.id,
               array_agg(rd.day) FILTER (WHERE rd.day IS NOT NULL AND rd.until IS NULL),
               array_agg(rd.day ORDER BY rd.day) FILTER (WHERE rd.until IS NOT NULL),
               array_agg(rd.until ORDER BY rd.day) FILTER (WHERE rd.until IS NOT NULL)
        FROM metering_rollup_definition def
        JOIN unnest(%s::bigint[], %s::text[], %s::date[], %s::date[])
            AS wanted(environment_id, fingerprint, first, stop)
          ON wanted.environment_id = def.environment_id AND wanted.fingerprint = def.fingerprint
        LEFT JOIN metering_rollup_day rd ON rd.definition_id = def.id
          AND rd.day >= coalesce(wanted.first, '-infinity'::date) AND rd.day < wanted.stop
          AND NOT EXISTS ({_UNSEEN_BY_ROLLUP_DAY})
        GROUP BY def.environment_id, def.fingerprint, def.id
        """,
        [list(column) for column in columns],
    )
    return {
        (environment_id, fingerprint): Coverage(
            definition_id, frozenset(days or ()), dict(zip(partial_days or (), untils or (), strict=True))
        )
        for environment_id, fingerprint, definition_id, days, partial_days, untils in cursor.fetchall()
    }


# Coverage looked up in the last COVERAGE_TTL seconds, per (database alias, what was wanted). A statement built on a
# remembered coverage carries `coverage_check_sql`: in its own snapshot it counts the remembered days that are still
# validly rolled up under the same definition, and the caller trusts its answer only if none is missing (otherwise
# it forgets the entry and looks coverage up afresh). Days rolled up since the lookup are read from raw events
# until the entry expires: slower, never wrong.
COVERAGE_TTL = 60.0
_COVERAGE_MAX_ENTRIES = 1_000
_recent_coverage: dict[tuple, tuple[float, dict[tuple[int, str], Coverage]]] = {}


def coverage_recent(alias: str, wanted: list) -> dict[tuple[int, str], Coverage] | None:
    """The coverage of `wanted` found within the last COVERAGE_TTL seconds, or None."""
    found = _recent_coverage.get((alias, tuple(wanted)))
    if found is None or found[0] < time.monotonic():
        return None
    return found[1]


def coverage_remember(alias: str, wanted: list, coverage: dict[tuple[int, str], Coverage]) -> None:
    if len(_recent_coverage) >= _COVERAGE_MAX_ENTRIES:
        _recent_coverage.clear()
    _recent_coverage[(alias, tuple(wanted))] = (time.monotonic() + COVERAGE_TTL, coverage)


def coverage_forget(alias: str, wanted: list) -> None:
    _recent_coverage.pop((alias, tuple(wanted)), None)


def coverage_check_sql(p, coverage: dict[tuple[int, str], Coverage], null_timestamp: str) -> tuple[str, int] | None:
    """A SELECT shaped like the engine's parts (tag -1) whose n1 counts the days of `coverage` still validly rolled
    up, under definitions of the same fingerprint, in the statement's snapshot; and the count that means "all of
    them". None when the coverage names no day."""
    entries = [
        (found.definition_id, fingerprint, [*((day, None) for day in sorted(found.days)), *found.partial.items()])
        for (_environment_id, fingerprint), found in coverage.items()
        if found.days or found.partial
    ]
    if not entries:
        return None
    # Each definition's fingerprint once rather than once per day: a fingerprint is a long JSON text, and psycopg
    # escapes every element of a text array in Python (a month of days' copies of one took 0.7 ms to send).
    definitions = [definition for definition, _, entry_days in entries for _ in entry_days]
    days = [day for *_, entry_days in entries for day, _ in entry_days]
    untils = [until for *_, entry_days in entries for _, until in entry_days]
    sql = (
        f"SELECT -1 AS tag, 0 AS part, {null_timestamp} AS w, NULL AS c, (count(*))::text AS n1, NULL AS n2 "
        f"FROM unnest({p(definitions)}::bigint[], {p(days)}::date[], {p(untils)}::timestamptz[]) "
        "AS used(definition_id, day, until) "
        f"JOIN unnest({p([entry[0] for entry in entries])}::bigint[], {p([entry[1] for entry in entries])}::text[]) "
        "AS covered(definition_id, fingerprint) ON covered.definition_id = used.definition_id "
        "JOIN metering_rollup_definition def ON def.id = used.definition_id AND def.fingerprint = covered.fingerprint "
        # the very stretch remembered: a plan may have taken a day in progress's totals (midnight to its `until`)
        # and read raw events from `until` on, so a day rolled up further since would count some events twice.
        # Each day is looked up by its key in a subquery of its own (OFFSET 0 keeps it one): once prepared, the
        # generic plan of a plain join read every rolled-up day of the definition for each day remembered (0.7 ms
        # for a month at ~700 rolled-up days, growing with the history; 0.1 ms by key)
        "CROSS JOIN LATERAL (SELECT rd.day, rd.snapshot FROM metering_rollup_day rd "
        "WHERE rd.definition_id = used.definition_id AND rd.day = used.day "
        "AND rd.until IS NOT DISTINCT FROM used.until OFFSET 0) rd "
        f"WHERE NOT EXISTS ({_UNSEEN_BY_ROLLUP_DAY})"
    )
    return sql, len(days)


def days_touched(lower: dt.datetime | None, upper: dt.datetime) -> tuple[dt.date | None, dt.date]:
    """The UTC days that share time with `[lower, upper)`, as `[first, stop)` (first None: unbounded)."""
    first = None if lower is None else lower.astimezone(UTC).date()
    return first, (upper.astimezone(UTC) - _MICROSECOND).date() + DAY


def day_runs(days, *, longest: int | None = None) -> list[tuple[dt.date, dt.date]]:
    """Sorted days as runs of consecutive days `[first, after_last)`, each at most `longest` days long."""
    runs: list[tuple[dt.date, dt.date]] = []
    for day in sorted(days):
        if runs and runs[-1][1] == day and (longest is None or (day - runs[-1][0]).days < longest):
            runs[-1] = (runs[-1][0], day + DAY)
        else:
            runs.append((day, day + DAY))
    return runs


@functools.lru_cache(maxsize=4096)
def day_start(day: dt.date) -> dt.datetime:
    # cached: planning an alert pass's 10,000 customers' windows asks for the same few days 270,000 times
    return dt.datetime(day.year, day.month, day.day, tzinfo=UTC)


Range = tuple[dt.datetime | None, dt.datetime]


@dataclass
class Pieces:
    """A range split into raw-event ranges, runs of whole rolled-up days and ranges of rolled-up quarter hours."""

    raw: list[Range] = field(default_factory=list)
    days: list[tuple[dt.date, dt.date]] = field(default_factory=list)
    quarters: list[tuple[dt.datetime, dt.datetime]] = field(default_factory=list)


def _append(ranges: list, start, end) -> None:
    if ranges and ranges[-1][1] == start:
        ranges[-1] = (ranges[-1][0], end)
    else:
        ranges.append((start, end))


def quarter_floor(moment: dt.datetime) -> dt.datetime:
    midnight = day_start(moment.astimezone(UTC).date())
    return midnight + ((moment - midnight) // QUARTER) * QUARTER


def _covered_between(covered: frozenset[dt.date], first: dt.date | None, stop: dt.date) -> list[dt.date]:
    """The covered days in `[first, stop)`, in order; walks the range when it is the shorter of the two (a period
    of a month against a year of coverage, for each of thousands of customers)."""
    if first is not None and (stop - first).days <= len(covered):
        return [day for day in (first + DAY * n for n in range((stop - first).days)) if day in covered]
    return sorted(day for day in covered if (first is None or day >= first) and day < stop)


_NOTHING_PARTIAL: Mapping[dt.date, dt.datetime] = MappingProxyType({})


def plan_pieces(
    lower: dt.datetime | None,
    upper: dt.datetime,
    covered: frozenset[dt.date],
    *,
    day_fits: Callable[[dt.date], bool],
    quarters_fit: Callable[[dt.date], bool],
    partial: Mapping[dt.date, dt.datetime] = _NOTHING_PARTIAL,
    partial_totals: bool = True,
) -> Pieces:
    """Split `[lower, upper)`: a covered day read whole where `day_fits`, else its whole quarter hours inside the
    range where `quarters_fit`; everything else (and every day not covered) from raw events. A day rolled up only
    until a moment (`partial`) gives its totals (which are those of midnight to the moment) where the range holds
    that whole stretch and `day_fits` and `partial_totals` (not for bucketed maxima, whose bucket across the moment
    must be one), else its quarter hours before the moment."""
    pieces = Pieces()
    cursor = lower
    first, stop = days_touched(lower, upper)
    days = _covered_between(covered, first, stop)
    if partial:
        days = sorted({*days, *(day for day in partial if (first is None or day >= first) and day < stop)})
    for day in days:
        start, end = day_start(day), day_start(day + DAY)
        inside_start, inside_end = (start if lower is None else max(start, lower)), min(end, upper)
        if cursor is None or cursor < inside_start:
            _append(pieces.raw, cursor, inside_start)
        cursor = inside_end
        until = partial.get(day)
        if until is None and (inside_start, inside_end) == (start, end) and day_fits(day):
            _append(pieces.days, day, day + DAY)
            continue
        if until is not None and partial_totals and inside_start == start and inside_end >= until and day_fits(day):
            # one row per customer: cheaper than the quarter hours (or the raw events) of most of a day
            _append(pieces.days, day, day + DAY)
            if until < inside_end:
                _append(pieces.raw, until, inside_end)
            continue
        quarters_start = quarter_floor(inside_start - _MICROSECOND) + QUARTER
        quarters_end = quarter_floor(inside_end if until is None else min(inside_end, until))
        if not quarters_fit(day) or quarters_start >= quarters_end:
            _append(pieces.raw, inside_start, inside_end)
            continue
        if inside_start < quarters_start:
            _append(pieces.raw, inside_start, quarters_start)
        _append(pieces.quarters, quarters_start, quarters_end)
        if quarters_end < inside_end:
            _append(pieces.raw, quarters_end, inside_end)
    if cursor is None or cursor < upper:
        _append(pieces.raw, cursor, upper)
    return pieces


# The day checks below are remembered: planning a month walks its ~30 days for every request (0.3 ms of a typical
# customer's month in hourly windows), and the next request asks about the same days.
@functools.lru_cache(maxsize=1 << 14)
def _offsets(zone, day: dt.date) -> frozenset[dt.timedelta]:
    """The zone's offsets during the UTC day (at most one change a day, so its two ends tell)."""
    ends = (day_start(day), day_start(day + DAY) - _MICROSECOND)
    return frozenset(cast(dt.timedelta, moment.astimezone(zone).utcoffset()) for moment in ends)


@functools.lru_cache(maxsize=1 << 14)
def _offsets_divide(zone, day: dt.date, minutes: int) -> bool:
    """Whether the zone's offset is a whole multiple of `minutes` all through the UTC day."""
    step = dt.timedelta(minutes=minutes)
    return all(offset % step == dt.timedelta(0) for offset in _offsets(zone, day))


@functools.lru_cache(maxsize=1 << 14)
def _in_one_window(zone, day: dt.date, window: str, anchor) -> bool:
    """Whether the whole UTC day lies inside one local window of size `window`."""
    first, last = (to_local(moment, zone) for moment in (day_start(day), day_start(day + DAY) - _MICROSECOND))
    return bucket_start_local(first, window, anchor) == bucket_start_local(last, window, anchor)


def _grain_minutes(size: str) -> int | None:
    """The minutes a grid of `size` buckets repeats on within a day (None: weeks and months, never within one)."""
    return 1440 if size == "DAY" else FIXED_STEPS.get(size)


def day_fits(query, *, window: str) -> Callable[[dt.date], bool]:
    """Whether a whole UTC day can be read from its day totals: it lies inside one window (`window`: the part's
    window size, '' for totals) and, for bucketed maxima, the query's buckets are the UTC ones that day."""
    spec = query.spec

    def fits(day: dt.date) -> bool:
        if spec.is_bucketed_max:
            # a day the offset changes repeats or skips local bucket times: a bucket may span two UTC buckets
            grain = _grain_minutes(spec.bucket_size)
            if grain is None or len(_offsets(query.zone, day)) > 1 or not _offsets_divide(query.zone, day, grain):
                return False
        return not window or _in_one_window(query.zone, day, window, query.anchor)

    return fits


def quarters_fit(query, *, window: str) -> Callable[[dt.date], bool]:
    """Whether the day's quarter hours can be read from rollups: no window or bucket of the query cuts one."""
    spec = query.spec
    sizes = [size for size in (window, spec.bucket_size if spec.is_bucketed_max else "") if size]
    anchor_quarters = query.anchor is None or (
        query.anchor.time.minute % 15 == 0 and query.anchor.time.second == 0 and query.anchor.time.microsecond == 0
    )
    usable = has_quarters(spec) and "MINUTE" not in sizes and anchor_quarters

    def fits(day: dt.date) -> bool:
        return usable and _offsets_divide(query.zone, day, 15)

    return fits


def partials_combined_sql(spec, *, carry: bool, n1: str, n2: str, latest: str) -> tuple[str, str]:
    """The (n1, n2) aggregate expressions that combine partial rows the way the engine combines windows; `latest`
    is a row's LATEST ordering key with the value appended (timestamp, ingested_at, id, value)."""
    kind = spec.aggregation_type
    if carry:
        return f"sum({n1})", "NULL"
    if kind == AggregationType.MIN:
        return f"min({n1})", "NULL"
    if kind == AggregationType.MAX and not spec.is_bucketed_max:
        return f"max({n1})", "NULL"
    if kind == AggregationType.LATEST:
        return f"(max({latest}))[4]", f"(max({latest}))[1:3]"
    if kind in (AggregationType.AVG, AggregationType.WEIGHTED_SUM):
        return f"sum({n1})", f"sum({n2})"
    # the other sums have no second partial (their raw parts select NULL): a sum of NULLs per window cost a fifth of
    # grouping a typical customer's month into hours
    return f"sum({n1})", "NULL"


@contextlib.contextmanager
def repeatable_read(connection, *, read_only: bool):
    """Run the block in one REPEATABLE READ transaction: every statement sees the same snapshot. Inside a
    transaction someone else opened (tests, callers' atomic blocks) the isolation level is theirs to choose."""
    if connection.in_atomic_block:
        yield
        return
    connection.ensure_connection()
    raw = connection.connection
    saved = raw.isolation_level, raw.read_only
    # set on the psycopg connection, the level travels with psycopg's own BEGIN: no extra round trip
    raw.isolation_level, raw.read_only = psycopg.IsolationLevel.REPEATABLE_READ, read_only
    try:
        with transaction.atomic(using=connection.alias):
            yield
    finally:
        raw.isolation_level, raw.read_only = saved


def window_alignment(pieces: Pieces, zone, window: str) -> int | None:
    """Where local windows of `window` (HOUR or DAY) start all through `pieces.quarters`, as the quarter of the UTC day
    modulo their length; None for other sizes, or where the zone's offset changes there: a local hour repeated by the
    change is one window, which only each quarter's local time tells (and Lord Howe Island's half-hour change moves
    where hours start)."""
    quarters = WINDOW_QUARTERS.get(window)
    if quarters is None:
        return None
    offset = quarters_offset(pieces, zone)
    return None if offset is None else alignment_at(offset, quarters)


def quarters_offset(pieces: Pieces, zone) -> dt.timedelta | None:
    """The zone's offset all through `pieces.quarters`, or None where it changes there."""
    offsets: set[dt.timedelta] = set()
    for start, end in pieces.quarters:
        day, last = start.astimezone(UTC).date(), (end - _MICROSECOND).astimezone(UTC).date()
        while day <= last:
            offsets |= _offsets(zone, day)
            day += DAY
    return next(iter(offsets)) if len(offsets) == 1 else None


def alignment_at(offset: dt.timedelta, quarters: int) -> int:
    """Where local windows of `quarters` quarter hours start at `offset`: the quarter of the UTC day, modulo their
    length."""
    return (-(offset // QUARTER)) % quarters


@dataclass
class AlignedDays:
    """COUNT_UNIQUE windows of whole covered UTC days whose offset stays one whole number of quarter hours all day:
    their hour or day windows start at quarter `alignment` of every UTC hour (HOUR) or of the day (DAY)."""

    quarters_per_window: int
    by_alignment: dict[int, list[tuple[dt.date, dt.date]]] = field(default_factory=dict)


def aligned_days(pieces: Pieces, zone, window: str) -> AlignedDays | None:
    """Take the whole UTC days out of `pieces.quarters` that `AlignedDays` can answer (None: no such window size);
    the rest stays in `pieces.quarters` for the quarter-hour reading."""
    size = WINDOW_QUARTERS.get(window)
    if size is None or not pieces.quarters:
        return None
    aligned = AlignedDays(size)
    rest: list[tuple[dt.datetime, dt.datetime]] = []
    for start, end in pieces.quarters:
        cursor = start
        day = start.astimezone(UTC).date()
        while day_start(day) < end:
            whole = day_start(day) >= start and day_start(day + DAY) <= end
            offsets = _offsets(zone, day)
            if whole and len(offsets) == 1:
                (offset,) = offsets
                alignment = alignment_at(offset, size)
                if cursor < day_start(day):
                    _append(rest, cursor, day_start(day))
                days = aligned.by_alignment.setdefault(alignment, [])
                _append(days, day, day + DAY)
                cursor = day_start(day + DAY)
            day += DAY
        if cursor < end:
            _append(rest, cursor, end)
    pieces.quarters = rest
    return aligned
