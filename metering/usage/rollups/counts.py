"""Per-day event counts of an environment (PostgreSQL): the overview's "events received" without a scan of raw
events for every sealed day.

They follow the usage rollups' rule (`refresh.py`, migrations 0004 and 0009): only sealed UTC days (before today,
from `SEAL_MARGIN` past midnight: `SEALED_BEFORE_SQL`) are counted, each count records the snapshot it was taken in,
and a count is used only while that snapshot saw every change mark of its environment and day — of any event name,
since every event counts. A late event, a redelivery that moves an event to another day, or a deletion leaves a
mark, so the day is counted from raw events until the next refresh recounts it: never stale, at worst slower. Counts
are refreshed with the usage rollups (`rollups_refresh`: `manage.py refresh_rollups` and the worker's periodic job),
and a mark is pruned only once these counts have seen it too (`MARKS_SEEN_BY_COUNTS`).
"""

from __future__ import annotations

import datetime as dt

from metering.models import Event
from metering.usage.rollups.read import SEALED_BEFORE_SQL, day_runs, day_start, repeatable_read

_LOCK_NAMESPACE = 7_201_119  # pg_try_advisory_lock(namespace, environment id): one counter per environment
_MAX_DAYS_PER_STATEMENT = 31
_EVENTS = Event._meta.db_table

# The marks of the (environment, day) that a count's snapshot did not see: while one exists the count is stale.
_UNSEEN_MARK = """
    SELECT 1 FROM metering_rollup_mark mark
    WHERE mark.environment_id = {count}.environment_id AND mark.day = {count}.day
      AND NOT pg_visible_in_snapshot(mark.xid, {count}.snapshot)"""

#: A condition on `mark` for `refresh._MARKS_PRUNE` (with `%(margin)s`): the counts no longer need this mark (the
#: day's count saw it, the environment is gone, or the day is not sealed yet: it will be counted afresh, and no
#: count running now can be counting it, its horizon being no later than this statement's).
MARKS_SEEN_BY_COUNTS = f"""
    (mark.day >= {SEALED_BEFORE_SQL} OR NOT EXISTS (
        SELECT 1 FROM flexmeter_environment env
        WHERE env.id = mark.environment_id
          AND NOT EXISTS (SELECT 1 FROM metering_event_count_day counted
                          WHERE counted.environment_id = mark.environment_id AND counted.day = mark.day
                            AND pg_visible_in_snapshot(mark.xid, counted.snapshot))))"""

_DAYS_TO_COUNT = f"""
WITH horizon AS (SELECT {SEALED_BEFORE_SQL} AS sealed_before),
first_event AS (
    SELECT ("timestamp" AT TIME ZONE 'UTC')::date AS day FROM {_EVENTS}
    WHERE environment_id = %(environment)s ORDER BY "timestamp" LIMIT 1
),
candidate AS (
    SELECT g::date AS day FROM first_event, horizon,
        generate_series(first_event.day::timestamp, horizon.sealed_before::timestamp - interval '1 day',
                        interval '1 day') AS g
    UNION
    SELECT mark.day FROM metering_rollup_mark mark, horizon
    WHERE mark.environment_id = %(environment)s AND mark.day < horizon.sealed_before
)
SELECT candidate.day FROM candidate
LEFT JOIN metering_event_count_day done ON done.environment_id = %(environment)s AND done.day = candidate.day
WHERE done.day IS NULL OR EXISTS ({_UNSEEN_MARK.format(count="done")})
ORDER BY candidate.day
"""

# In REPEATABLE READ the current snapshot is the transaction's: the one the counts were taken from.
_COUNT_INSERT = f"""
INSERT INTO metering_event_count_day (environment_id, day, events, snapshot)
SELECT %(environment)s, wanted.day, coalesce(counted.events, 0), pg_current_snapshot()
FROM unnest(%(days)s::date[]) AS wanted(day)
LEFT JOIN (
    SELECT ("timestamp" AT TIME ZONE 'UTC')::date AS day, count(*) AS events FROM {_EVENTS}
    WHERE environment_id = %(environment)s AND "timestamp" >= %(start)s AND "timestamp" < %(end)s
    GROUP BY 1
) counted ON counted.day = wanted.day
ON CONFLICT (environment_id, day) DO UPDATE SET events = EXCLUDED.events, snapshot = EXCLUDED.snapshot
"""


#: The counts of environments that no longer exist.
COUNTS_OF_GONE_ENVIRONMENTS_DELETE = """
DELETE FROM metering_event_count_day counted
WHERE NOT EXISTS (SELECT 1 FROM flexmeter_environment env WHERE env.id = counted.environment_id)
"""


def event_counts_refresh(connection, *, environment_id: int, margin: dt.timedelta) -> int | None:
    """Count the sealed days of one environment that have no valid count yet, in one snapshot. Returns the number
    of days counted, or None when another refresh holds the environment."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s::int, %s::int)", [_LOCK_NAMESPACE, environment_id])
        if not cursor.fetchone()[0]:
            return None
    try:
        with repeatable_read(connection, read_only=False), connection.cursor() as cursor:
            cursor.execute(_DAYS_TO_COUNT, {"margin": margin, "environment": environment_id})
            days = [day for (day,) in cursor.fetchall()]
            for first, after in day_runs(days, longest=_MAX_DAYS_PER_STATEMENT):
                run = [first + dt.timedelta(days=n) for n in range((after - first).days)]
                cursor.execute(
                    _COUNT_INSERT,
                    {"environment": environment_id, "days": run, "start": day_start(first), "end": day_start(after)},
                )
        return len(days)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s::int, %s::int)", [_LOCK_NAMESPACE, environment_id])


# A counted day takes its events from its count and reads raw events only for its events from `since` on (its recent
# ones). The counted day that holds `since` (yesterday, for the last 24 hours) reads whichever side of `since` is
# shorter: from `since` to its end, or from its start to `since` (`early_day`), its recent events then being its
# count less those. A valid count is the day's events in this snapshot, so either side gives the same number.
_COUNTS_READ = f"""
WITH counted AS (
    SELECT c.day, c.events FROM metering_event_count_day c
    WHERE c.environment_id = %(environment)s AND c.day >= %(whole_first)s AND c.day < %(whole_stop)s
      AND NOT EXISTS ({_UNSEEN_MARK.format(count="c")})
)
SELECT g.day::date, coalesce(counted.events, raw.events),
       CASE WHEN early.day IS NOT NULL THEN counted.events - raw.events ELSE raw.recent END
FROM generate_series(%(first)s::timestamp, %(last)s::timestamp, interval '1 day') AS g(day)
LEFT JOIN counted ON counted.day = g.day::date
LEFT JOIN (SELECT %(early_day)s::date AS day) early ON early.day = counted.day
CROSS JOIN LATERAL (
    SELECT count(*) AS events, count(*) FILTER (WHERE e."timestamp" >= %(since)s) AS recent FROM {_EVENTS} e
    WHERE e.environment_id = %(environment)s
      AND e."timestamp" >= greatest(g.day AT TIME ZONE 'UTC', %(start)s,
                                    CASE WHEN counted.day IS NOT NULL AND early.day IS NULL THEN %(since)s END)
      AND e."timestamp" < least((g.day + interval '1 day') AT TIME ZONE 'UTC', %(end)s,
                                CASE WHEN early.day IS NOT NULL THEN %(since)s END)
) raw
WHERE coalesce(counted.events, raw.events) > 0
"""


def event_counts_by_day_sql(
    *, environment_id: int, start: dt.datetime, end: dt.datetime, since: dt.datetime
) -> tuple[str, dict[str, object]]:
    """One statement giving (UTC day, events, events from `since` on) for the days of `[start, end)` that have
    events: whole days from valid counts and their events from `since` on from raw events (for the day that holds
    `since`, its count less its events before `since` when that side is shorter), every other day from raw events
    (one range of the (environment, timestamp) index per day), decided in the statement's own snapshot."""
    first = start.astimezone(dt.UTC).date()
    last = (end.astimezone(dt.UTC) - dt.timedelta(microseconds=1)).date()
    whole_first = first if day_start(first) >= start else first + dt.timedelta(days=1)
    whole_stop = end.astimezone(dt.UTC).date()  # the day that holds `end` is not whole
    since_day = since.astimezone(dt.UTC).date()
    # before noon the part of its day before `since` is the shorter one to read
    early = since - day_start(since_day) < day_start(since_day + dt.timedelta(days=1)) - since
    params: dict[str, object] = {
        "environment": environment_id,
        "start": start,
        "end": end,
        "since": since,
        "first": day_start(first).replace(tzinfo=None),
        "last": day_start(last).replace(tzinfo=None),
        "whole_first": whole_first,
        "whole_stop": whole_stop,
        "early_day": since_day if early else None,
    }
    return _COUNTS_READ, params
