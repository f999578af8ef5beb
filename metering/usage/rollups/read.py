"""Reading daily usage rollups: which days of a meter definition are rolled up, and SQL over those days.

A rollup row holds, for one meter definition, one UTC day and one customer, the partial aggregates the engine
itself computes for a window (`n1`, `n2`, and for LATEST the ordering key with the value). Summing, taking the
min/max or the latest of them over whole days gives exactly what scanning the raw events of those days gives,
so the engine reads rollups for the whole days of a range and raw events for the rest (edges, recent days,
days changed since they were rolled up). See migration 0004 for the change marks that make a changed day fall
back to raw events, and `metering/usage/rollups/refresh.py` for how rollups are computed. PostgreSQL only.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from dataclasses import dataclass

import psycopg
from django.db import transaction

from catalog.models import AggregationType
from metering.usage.periods import FIXED_STEPS, UTC

# Part of every fingerprint: bump it when the meaning of the engine's SQL changes, so old rollups stop matching.
ROLLUP_FORMAT = 1
DAY = dt.timedelta(days=1)
# bucket sizes whose buckets never cross a UTC day boundary: a day's sum of bucket maxima is a rollup
_WITHIN_A_DAY = frozenset({*FIXED_STEPS, "DAY"})
# query windows made of whole UTC days
_WHOLE_DAY_WINDOWS = frozenset({"DAY", "WEEK", "MONTH"})


def rollup_fingerprint(spec) -> str | None:
    """What a rollup of `spec` depends on, as text; None when day rollups cannot answer it."""
    if spec.is_bucketed_max and spec.bucket_size not in _WITHIN_A_DAY:
        return None
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
        },
        sort_keys=True,
        separators=(",", ":"),
    )


def rollups_answer_windows(query) -> bool:
    """Whether each window of `query` is a union of whole UTC days (so day rollups can fill it)."""
    anchor_at_midnight = query.anchor is None or query.anchor.time == dt.time(0)
    whole_days = query.zone.key == "UTC" and query.windows in _WHOLE_DAY_WINDOWS and anchor_at_midnight
    return whole_days and rollups_answer_totals(query)


def rollups_answer_totals(query) -> bool:
    """Totals combine day rollups, except for bucketed maxima: their buckets follow the query's time zone, and
    without a customer a bucket's maximum is taken across customers, which per-customer rows cannot give."""
    if not query.spec.is_bucketed_max:
        return True
    return query.zone.key == "UTC" and (query.customer is not None or query.by_customer)


@dataclass(frozen=True)
class Coverage:
    definition_id: int
    days: frozenset[dt.date]


def coverage_lookup(cursor, wanted: list[tuple[int, str, dt.date | None, dt.date]]) -> dict[tuple[int, str], Coverage]:
    """Rolled-up days still valid (their snapshot saw every change mark of the day) per (environment id,
    fingerprint), among the days `[first, stop)` asked for each (`first` None: from the beginning)."""
    if not wanted:
        return {}
    columns = list(zip(*wanted, strict=True))
    cursor.execute(
        """
        SELECT def.environment_id, def.fingerprint, def.id, array_remove(array_agg(rd.day), NULL)
        FROM metering_rollup_definition def
        JOIN unnest(%s::bigint[], %s::text[], %s::date[], %s::date[])
            AS wanted(environment_id, fingerprint, first, stop)
          ON wanted.environment_id = def.environment_id AND wanted.fingerprint = def.fingerprint
        LEFT JOIN metering_rollup_day rd ON rd.definition_id = def.id
          AND rd.day >= coalesce(wanted.first, '-infinity'::date) AND rd.day < wanted.stop
          AND NOT EXISTS (SELECT 1 FROM metering_rollup_mark mark
                          WHERE mark.environment_id = def.environment_id AND mark.event_name = def.event_name
                            AND mark.day = rd.day AND NOT pg_visible_in_snapshot(mark.xid, rd.snapshot))
        GROUP BY def.environment_id, def.fingerprint, def.id
        """,
        [list(column) for column in columns],
    )
    return {
        (environment_id, fingerprint): Coverage(definition_id, frozenset(days))
        for environment_id, fingerprint, definition_id, days in cursor.fetchall()
    }


def whole_days(lower: dt.datetime | None, upper: dt.datetime) -> tuple[dt.date | None, dt.date]:
    """The UTC days lying wholly inside `[lower, upper)`, as `[first, stop)` (first None: unbounded)."""
    first = None
    if lower is not None:
        lower = lower.astimezone(UTC)
        first = lower.date() if lower.time() == dt.time(0) else lower.date() + DAY
    return first, upper.astimezone(UTC).date()


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=UTC)


def split_by_coverage(
    lower: dt.datetime | None, upper: dt.datetime, days: frozenset[dt.date]
) -> tuple[list[tuple[dt.datetime | None, dt.datetime]], list[tuple[dt.date, dt.date]]]:
    """Split `[lower, upper)` into raw ranges and runs of rolled-up whole days `[first, after_last)`."""
    first, stop = whole_days(lower, upper)
    inside = sorted(day for day in days if (first is None or day >= first) and day < stop)
    runs: list[tuple[dt.date, dt.date]] = []
    for day in inside:
        if runs and runs[-1][1] == day:
            runs[-1] = (runs[-1][0], day + DAY)
        else:
            runs.append((day, day + DAY))
    raw: list[tuple[dt.datetime | None, dt.datetime]] = []
    cursor = lower
    for run_first, run_after in runs:
        if cursor is None or cursor < _day_start(run_first):
            raw.append((cursor, _day_start(run_first)))
        cursor = _day_start(run_after)
    if cursor is None or cursor < upper:
        raw.append((cursor, upper))
    return raw, runs


def rollup_values_sql(spec, *, carry: bool) -> tuple[str, str]:
    """The (n1, n2) select expressions that combine rollup rows the way the engine combines windows."""
    kind = spec.aggregation_type
    if carry:
        return "(sum(r.n1))::text", "NULL"
    if kind == AggregationType.MIN:
        return "(min(r.n1))::text", "NULL"
    if kind == AggregationType.MAX and not spec.is_bucketed_max:
        return "(max(r.n1))::text", "NULL"
    if kind == AggregationType.LATEST:
        return "((max(r.latest))[4])::text", "((max(r.latest))[1:3])::text"
    return "(sum(r.n1))::text", "(sum(r.n2))::text"


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
