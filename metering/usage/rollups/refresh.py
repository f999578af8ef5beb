"""Computing usage rollups (PostgreSQL): `rollups_refresh` is what `manage.py refresh_rollups` and the worker run; it
also brings the per-day event counts of every environment up to date (`counts.py`).

For every meter definition in use it (re)computes the UTC days that are sealed — old enough that every write
to them leaves a change mark, see migration 0004 — and not validly rolled up yet: days never computed, days
with a mark their rollup did not see. The definitions of one event name are refreshed together in one REPEATABLE
READ transaction, reading each stretch of events once, and each rolled-up day records that transaction's snapshot:
a write committed after it leaves a mark the snapshot does not see, and the day falls back to raw events until the
next refresh. The rows are the engine's own partials (`part_sql` with 15-minute windows per customer in UTC, see
migration 0006), combined into day totals and into the rows of all customers together, so a rollup can only ever
say what a raw scan would.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from catalog.models import AggregationType, Meter, MeterStatus
from flexmeter.models import Environment
from metering.models import Event
from metering.usage.dialects import dialect_for
from metering.usage.dialects.base import Dialect, Params
from metering.usage.engine import TOTAL, WINDOW, bucket_cells_sql, distinct_values_sql, part_sql
from metering.usage.periods import UTC
from metering.usage.rollups.counts import (
    COUNTS_OF_GONE_ENVIRONMENTS_DELETE,
    MARKS_SEEN_BY_COUNTS,
    event_counts_refresh,
)
from metering.usage.rollups.read import (
    EVERYONE,
    HOUR_SLOTS,
    SEALED_BEFORE_SQL,
    day_runs,
    day_start,
    day_total_kept,
    has_quarters,
    partials_combined_sql,
    quarter_floor,
    repeatable_read,
    rollup_fingerprint,
    unseen_marks_sql,
)
from metering.usage.spec import AggregationSpec, MeterNotComputable, UsageQuery

# Writes to a UTC day leave change marks from the start of the next day (trigger of migrations 0004 and 0009); a day
# is sealed one hour later, so every write that started before marking began has committed (longer ones are not
# expected: requests and import batches commit within seconds). Only today is left to raw reads after that.
SEAL_MARGIN = dt.timedelta(hours=1)
# Events written more than this after their time mark their day even when it is the current one (migration 0014, by
# the writing statement's clock), so the day in progress is rolled up to `now() - LATE_AFTER - SEAL_MARGIN`: a write
# statement a rollup's snapshot misses started at most SEAL_MARGIN before it (it had not committed yet), and so found
# any event before that moment LATE_AFTER old, and marked its day.
LATE_AFTER = dt.timedelta(hours=1)
_LOCK_NAMESPACE = 7_201_118  # pg_try_advisory_lock(namespace, definition id): one refresher per definition
_MAX_DAYS_PER_STATEMENT = 31


@dataclass
class RefreshReport:
    definitions: int = 0
    days: int = 0
    rows: int = 0
    scans: int = 0  # stretches of events read (the definitions of one event name share each)
    counted_days: int = 0  # days of per-day event counts (re)counted, all environments together
    days_in_progress: int = 0  # definitions whose day in progress was rolled up (to a moment, see LATE_AFTER)
    skipped: list[str] = field(default_factory=list)


def _definitions_sync(cursor, using: str) -> list[tuple[int, int, str, AggregationSpec]]:
    """A definition row for each distinct spec of the meters in use; unused definitions (and their rollups) go."""
    specs: dict[tuple[int, str], AggregationSpec] = {}
    for meter in Meter.objects.using(using).exclude(status=MeterStatus.DRAFT).order_by("pk"):
        try:
            spec = AggregationSpec.from_meter(meter)
        except MeterNotComputable:  # reported by check_events; it counts nothing, so it has nothing to roll up
            continue
        specs.setdefault((meter.environment_id, rollup_fingerprint(spec)), spec)
    environments = [environment_id for environment_id, _ in specs]
    fingerprints = [fingerprint for _, fingerprint in specs]
    names = [spec.event_name for spec in specs.values()]
    cursor.execute(
        """
        DELETE FROM metering_rollup_definition def
        WHERE NOT EXISTS (SELECT 1 FROM unnest(%s::bigint[], %s::text[]) AS used(environment_id, fingerprint)
                          WHERE used.environment_id = def.environment_id AND used.fingerprint = def.fingerprint)
        """,
        [environments, fingerprints],
    )
    cursor.execute(
        """
        INSERT INTO metering_rollup_definition (environment_id, event_name, fingerprint)
        SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[])
        ON CONFLICT (environment_id, fingerprint) DO NOTHING
        """,
        [environments, names, fingerprints],
    )
    cursor.execute("SELECT id, environment_id, fingerprint FROM metering_rollup_definition ORDER BY id")
    return [(pk, environment_id, fp, specs[(environment_id, fp)]) for pk, environment_id, fp in cursor.fetchall()]


_UNSEEN_BY_DONE = unseen_marks_sql(
    environment="%(environment)s", event_name="%(event_name)s", day="candidate.day", snapshot="done.snapshot"
)
_DAYS_TO_COMPUTE = f"""
WITH horizon AS (SELECT {SEALED_BEFORE_SQL} AS sealed_before),
first_event AS (
    SELECT ("timestamp" AT TIME ZONE 'UTC')::date AS day FROM metering_event
    WHERE environment_id = %(environment)s AND event_name = %(event_name)s ORDER BY "timestamp" LIMIT 1
),
candidate AS (
    SELECT g::date AS day FROM first_event, horizon,
        generate_series(first_event.day::timestamp, horizon.sealed_before::timestamp - interval '1 day',
                        interval '1 day') AS g
    UNION
    SELECT mark.day FROM metering_rollup_mark mark, horizon
    WHERE mark.environment_id = %(environment)s AND mark.event_name = %(event_name)s
      AND mark.day < horizon.sealed_before
    UNION  -- a day rolled up while in progress, sealed since (even one without events)
    SELECT partial.day FROM metering_rollup_day partial, horizon
    WHERE partial.definition_id = %(definition)s AND partial.until IS NOT NULL AND partial.day < horizon.sealed_before
)
SELECT candidate.day FROM candidate
LEFT JOIN metering_rollup_day done ON done.definition_id = %(definition)s AND done.day = candidate.day
WHERE done.day IS NULL OR done.until IS NOT NULL OR EXISTS ({_UNSEEN_BY_DONE})
ORDER BY candidate.day
"""

# A mark has done its job once every definition of its event name has a rollup of the day that saw it, and the
# day's event count saw it too.
_MARKS_PRUNE = f"""
DELETE FROM metering_rollup_mark mark
WHERE NOT EXISTS (
    SELECT 1 FROM metering_rollup_definition def
    WHERE def.environment_id = mark.environment_id AND def.event_name = mark.event_name
      AND NOT EXISTS (SELECT 1 FROM metering_rollup_day done
                      WHERE done.definition_id = def.id AND done.day = mark.day
                        AND pg_visible_in_snapshot(mark.xid, done.snapshot)))
  AND {MARKS_SEEN_BY_COUNTS}
"""


@dataclass(frozen=True)
class _Definition:
    id: int
    environment_id: int
    spec: AggregationSpec


def _quarter_of_day(timestamp_sql: str) -> str:
    """The quarter hour (0-95) of a UTC wall-clock timestamp within its day."""
    return f"(extract(hour FROM {timestamp_sql})::int * 4 + extract(minute FROM {timestamp_sql})::int / 15)::smallint"


def _rollup_insert_sql(
    definition: _Definition, start: dt.datetime, end: dt.datetime, dialect: Dialect
) -> tuple[str, dict[str, object]]:
    """INSERT of the rollup rows of `[start, end)` (whole days, or a day from midnight to a quarter hour): per day and
    customer, and for all customers together, the day totals and the quarter-hour partials (for COUNT_UNIQUE: the
    distinct values with their quarter hours, and the distinct counts of the hours inside the day per alignment,
    `HOUR_SLOTS`)."""
    spec = definition.spec
    params = Params()
    query = UsageQuery(
        spec=spec,
        environment_id=definition.environment_id,
        start=start,
        end=end,
        by_customer=True,
        window_size="15MIN",
    )
    definition_id, everyone = params(definition.id), params(EVERYONE)
    if spec.aggregation_type == AggregationType.COUNT_UNIQUE:
        values = distinct_values_sql(query, WINDOW, dialect, params, query.start, query.end)
        slot = f"(a.a * {HOUR_SLOTS} + ({_quarter_of_day('w')} - a.a + 4) / 4)::smallint"
        sql = f"""
            WITH found AS MATERIALIZED (SELECT v.w, v.c, v.t FROM ({values}) v WHERE v.t IS NOT NULL),
            every AS MATERIALIZED (SELECT w, c, t FROM found UNION ALL SELECT DISTINCT w, {everyone}, t FROM found),
            slots AS (SELECT DISTINCT w::date AS day, c, {slot} AS slot, t FROM every, generate_series(0, 3) AS a(a)),
            hours AS (
                INSERT INTO metering_rollup (definition_id, day, customer, quarters, q1)
                SELECT {definition_id}, day, c, array_agg(slot ORDER BY slot), array_agg(n ORDER BY slot)
                FROM (SELECT day, c, slot, count(*) AS n FROM slots
                      WHERE mod(slot, {HOUR_SLOTS}) BETWEEN 1 AND CASE WHEN slot < {HOUR_SLOTS} THEN 24 ELSE 23 END
                      GROUP BY day, c, slot) counts
                GROUP BY day, c)
            INSERT INTO metering_rollup_distinct (definition_id, day, customer, value, quarters)
            SELECT {definition_id}, w::date, c, t, array_agg({_quarter_of_day("w")} ORDER BY w)
            FROM every GROUP BY w::date, c, t"""
        return sql, params.values
    if spec.is_bucketed_max and has_quarters(spec):
        return _bucket_maxima_insert_sql(query, definition_id, everyone, dialect, params), params.values
    if spec.is_bucketed_max:  # minute buckets: day sums of minute maxima only
        by_day = dataclasses.replace(query, window_size="DAY")
        parts = " UNION ALL ".join(
            part_sql(dataclasses.replace(by_day, by_customer=by_customer), 0, WINDOW, dialect, params, *bounds)
            for by_customer, bounds in ((True, (query.start, query.end)), (False, (query.start, query.end)))
        )
        sql = f"""
            INSERT INTO metering_rollup (definition_id, day, customer, n1)
            SELECT {definition_id}, part.w::date, coalesce(part.c, {everyone}), part.n1::numeric FROM ({parts}) part"""
        return sql, params.values
    latest = spec.aggregation_type == AggregationType.LATEST
    cells = part_sql(query, 0, WINDOW, dialect, params, query.start, query.end)
    n1, n2 = partials_combined_sql(spec, carry=False, n1="n1", n2="n2", latest="(n2 || n1)")
    sql = f"""
        WITH cells AS MATERIALIZED (
            SELECT part.w, part.c, part.n1::numeric AS n1, part.n2::numeric{"[]" if latest else ""} AS n2
            FROM ({cells}) part),
        every AS (SELECT w, c, n1, n2 FROM cells UNION ALL SELECT w, {everyone}, {n1}, {n2} FROM cells GROUP BY w)
        INSERT INTO metering_rollup (definition_id, day, customer, n1, n2, latest, quarters, q1, q2, qkeys)
        SELECT {definition_id}, w::date, c, {n1}, {"NULL" if latest else n2}, {"max(n2 || n1)" if latest else "NULL"},
               array_agg({_quarter_of_day("w")} ORDER BY w), array_agg(n1 ORDER BY w),
               {"NULL" if latest else "array_agg(n2 ORDER BY w)"}, {"array_agg(n2 ORDER BY w)" if latest else "NULL"}
        FROM every GROUP BY w::date, c"""
    return sql, params.values


def _bucket_maxima_insert_sql(query: UsageQuery, definition_id: str, everyone: str, dialect: Dialect, params) -> str:
    """Bucketed MAX: each (quarter hour, group) maximum per customer and across customers, and the day's sum of
    bucket maxima on the UTC grid when the buckets never cross a UTC day."""
    spec = query.spec
    quarter_cells = dataclasses.replace(query, spec=dataclasses.replace(spec, bucket_size="15MIN"), window_size="")
    cells = bucket_cells_sql(quarter_cells, TOTAL, dialect, params, query.start, query.end)
    day_total, day_total_join = "NULL", ""
    day_total_cte = ""
    if day_total_kept(spec):
        bucket = dialect.bucket(params, "(b AT TIME ZONE 'UTC')", spec.bucket_size, "UTC", None)
        day_total_cte = f""",
        day_total AS (SELECT day, c, sum(m) AS n1
                      FROM (SELECT b::date AS day, c, {bucket} AS bucket, g, max(m) AS m FROM every GROUP BY 1, 2, 3, 4)
                      AS maxima GROUP BY day, c)"""
        day_total, day_total_join = "t.n1", "LEFT JOIN day_total t ON t.day = q.day AND t.c = q.c"
    return f"""
        WITH cells AS MATERIALIZED (SELECT cell.c, cell.b, cell.g, cell.m FROM ({cells}) cell WHERE cell.m IS NOT NULL),
        every AS (SELECT c, b, g, m FROM cells UNION ALL SELECT {everyone}, b, g, max(m) FROM cells GROUP BY b, g)
        {day_total_cte}
        INSERT INTO metering_rollup (definition_id, day, customer, n1, quarters, q1, qgroups)
        SELECT {definition_id}, q.day, q.c, {day_total}, q.quarters, q.q1, q.qgroups
        FROM (SELECT b::date AS day, c, array_agg({_quarter_of_day("b")} ORDER BY b, g) AS quarters,
                     array_agg(m ORDER BY b, g) AS q1, array_agg(g ORDER BY b, g) AS qgroups
              FROM every GROUP BY b::date, c) q
        {day_total_join}"""


_SCAN_TABLE = "rollup_scan"
_EVENTS_FROM = f"FROM {Event._meta.db_table} e "


def _from_scan(sql: str) -> str:
    """The same statement reading the stretch of events copied into the scan table instead of the events table."""
    assert _EVENTS_FROM in sql
    return sql.replace(_EVENTS_FROM, f"FROM {_SCAN_TABLE} e ")


_UNSEEN_BY_RD = unseen_marks_sql(
    environment="%(environment)s", event_name="%(event_name)s", day="rd.day", snapshot="rd.snapshot"
)
_DAY_IN_PROGRESS_STATE = f"""
SELECT rd.until, NOT EXISTS ({_UNSEEN_BY_RD})
FROM metering_rollup_day rd WHERE rd.definition_id = %(definition)s AND rd.day = %(day)s
"""


def _day_in_progress(cursor) -> tuple[dt.date, dt.datetime] | None:
    """The day not sealed yet that can be rolled up from midnight to a moment, and that moment (a quarter hour), by
    this transaction's clock (its start: the snapshot is taken after it); None when there is none or settings turn
    it off."""
    if not settings.ROLLUPS_DAY_IN_PROGRESS_EVERY:
        return None
    cursor.execute("SELECT now()")
    now = cursor.fetchone()[0].astimezone(UTC)
    until = quarter_floor(now - SEAL_MARGIN - LATE_AFTER)
    day = until.date()
    if day < (now - SEAL_MARGIN).date() or until == day_start(day):
        return None  # that day is sealed (rolled up whole), or nothing of it can be yet
    return day, until


def _day_in_progress_due(cursor, definition: _Definition, day: dt.date, until: dt.datetime) -> bool:
    """Whether the definition's rollup of the day in progress is missing, changed by a late write since, or
    ROLLUPS_DAY_IN_PROGRESS_EVERY behind `until`."""
    cursor.execute(
        _DAY_IN_PROGRESS_STATE,
        {
            "environment": definition.environment_id,
            "event_name": definition.spec.event_name,
            "definition": definition.id,
            "day": day,
        },
    )
    found = cursor.fetchone()
    if found is None:
        return True
    rolled_until, valid = found
    if rolled_until is None:  # rolled up whole already
        return False
    step = dt.timedelta(seconds=settings.ROLLUPS_DAY_IN_PROGRESS_EVERY)
    return not valid or until - rolled_until >= step


# a stretch of events read once for every definition that needs part of it: (start, end, ranges per definition id)
_Stretch = tuple[dt.datetime, dt.datetime, dict[int, list[tuple[dt.datetime, dt.datetime]]]]


def _stretches(
    days: dict[int, list[dt.date]], in_progress: tuple[dt.date, dt.datetime] | None, due: list[int]
) -> list[_Stretch]:
    """Runs of whole days (at most `_MAX_DAYS_PER_STATEMENT` each) and the day in progress up to its moment."""
    stretches: list[_Stretch] = []
    for first, after in day_runs({day for wanted in days.values() for day in wanted}, longest=_MAX_DAYS_PER_STATEMENT):
        readers = {
            definition_id: [(day_start(a), day_start(b)) for a, b in day_runs(d for d in own if first <= d < after)]
            for definition_id, own in days.items()
            if any(first <= day < after for day in own)
        }
        stretches.append((day_start(first), day_start(after), readers))
    if in_progress is not None and due:
        start = day_start(in_progress[0])
        stretches.append((start, in_progress[1], {definition_id: [(start, in_progress[1])] for definition_id in due}))
    return stretches


def _refresh_event_name(
    connection, definitions: list[_Definition], report: RefreshReport
) -> dict[int, tuple[int, int]]:
    """Refresh the definitions of one event name in one snapshot: (days, rows) per definition id. Each stretch of
    days that more than one definition needs is read from the events table once, into a temporary table."""
    environment_id, event_name = definitions[0].environment_id, definitions[0].spec.event_name
    dialect = dialect_for(connection)
    by_id = {definition.id: definition for definition in definitions}
    done: dict[int, tuple[int, int]] = {}
    with repeatable_read(connection, read_only=False), connection.cursor() as cursor:
        days: dict[int, list[dt.date]] = {}
        for definition in definitions:
            cursor.execute(
                _DAYS_TO_COMPUTE,
                {
                    "margin": SEAL_MARGIN,
                    "environment": environment_id,
                    "event_name": event_name,
                    "definition": definition.id,
                },
            )
            days[definition.id] = [day for (day,) in cursor.fetchall()]
        in_progress = _day_in_progress(cursor)
        due = []
        if in_progress is not None:
            # minute maxima have neither quarter hours nor usable totals of part of a day: nothing a read could take
            due = [d.id for d in definitions if has_quarters(d.spec) and _day_in_progress_due(cursor, d, *in_progress)]
        for definition in definitions:
            gone = days[definition.id] + ([in_progress[0]] if in_progress and definition.id in due else [])
            if not gone:
                continue
            for table in ("metering_rollup", "metering_rollup_distinct"):
                cursor.execute(f"DELETE FROM {table} WHERE definition_id = %s AND day = ANY(%s)", [definition.id, gone])
        rows: dict[int, int] = defaultdict(int)
        for start, end, readers in _stretches({k: v for k, v in days.items() if v}, in_progress, due):
            shared = len(readers) > 1
            if shared:
                cursor.execute(
                    f"CREATE TEMPORARY TABLE {_SCAN_TABLE} ON COMMIT DROP AS SELECT * FROM {Event._meta.db_table} "
                    'WHERE environment_id = %s AND event_name = %s AND "timestamp" >= %s AND "timestamp" < %s',
                    [environment_id, event_name, start, end],
                )
            report.scans += 1
            for definition_id, ranges in readers.items():
                for own_start, own_end in ranges:
                    sql, params = _rollup_insert_sql(by_id[definition_id], own_start, own_end, dialect)
                    cursor.execute(_from_scan(sql) if shared else sql, params)
                    rows[definition_id] += cursor.rowcount
            if shared:
                cursor.execute(f"DROP TABLE {_SCAN_TABLE}")
        for definition in definitions:
            wanted: list[tuple[dt.date, dt.datetime | None]] = [(day, None) for day in days[definition.id]]
            if in_progress is not None and definition.id in due:
                wanted.append(in_progress)
            if not wanted:
                continue
            # in REPEATABLE READ the current snapshot is the transaction's: the one the rows above were computed from
            cursor.execute(
                """
                INSERT INTO metering_rollup_day (definition_id, day, until, snapshot)
                SELECT %s, day, until, pg_current_snapshot() FROM unnest(%s::date[], %s::timestamptz[]) AS r(day, until)
                ON CONFLICT (definition_id, day) DO UPDATE SET until = EXCLUDED.until, snapshot = EXCLUDED.snapshot
                """,
                [definition.id, [day for day, _ in wanted], [until for _, until in wanted]],
            )
            done[definition.id] = (len(days[definition.id]), rows[definition.id])
            report.days_in_progress += definition.id in due
    return done


def _try_lock_all(connection, definitions: list[_Definition]) -> list[_Definition]:
    """Take the advisory lock of every definition (in id order), or of none: then the ones held are released."""
    held: list[_Definition] = []
    with connection.cursor() as cursor:
        for definition in sorted(definitions, key=lambda item: item.id):
            cursor.execute("SELECT pg_try_advisory_lock(%s::int, %s::int)", [_LOCK_NAMESPACE, definition.id])
            if not cursor.fetchone()[0]:
                _unlock(connection, held)
                return []
            held.append(definition)
    return held


def _unlock(connection, definitions: list[_Definition]) -> None:
    with connection.cursor() as cursor:
        for definition in definitions:
            cursor.execute("SELECT pg_advisory_unlock(%s::int, %s::int)", [_LOCK_NAMESPACE, definition.id])


def rollups_refresh(*, using: str = DEFAULT_DB_ALIAS, log: Callable[[str], None] | None = None) -> RefreshReport:
    """Bring the rollups of every meter in use up to date; a no-op on databases other than PostgreSQL."""
    report = RefreshReport()
    connection = connections[using]
    if connection.vendor != "postgresql":
        return report
    with transaction.atomic(using=using), connection.cursor() as cursor:
        synced = _definitions_sync(cursor, using)
    by_event_name: dict[tuple[int, str], list[_Definition]] = defaultdict(list)
    for definition_id, environment_id, _, spec in synced:
        by_event_name[(environment_id, spec.event_name)].append(_Definition(definition_id, environment_id, spec))
    for (_, event_name), definitions in by_event_name.items():
        held = _try_lock_all(connection, definitions)
        if not held:
            report.skipped.append(f"{event_name}: another refresh is running")
            continue
        try:
            done = _refresh_event_name(connection, held, report)
        finally:
            _unlock(connection, held)
        report.definitions += len(held)
        for definition in held:
            days, rows = done.get(definition.id, (0, 0))
            report.days += days
            report.rows += rows
            if log and (days or rows):
                log(f"{event_name} {definition.spec.aggregation_type}: {days} days, {rows} rows")
    for environment_id in Environment.objects.using(using).order_by("pk").values_list("pk", flat=True):
        counted = event_counts_refresh(connection, environment_id=environment_id, margin=SEAL_MARGIN)
        if counted is None:
            report.skipped.append(f"event counts of environment {environment_id}: another refresh is running")
            continue
        report.counted_days += counted
        if log and counted:
            log(f"event counts of environment {environment_id}: {counted} days")
    with connection.cursor() as cursor:
        cursor.execute(COUNTS_OF_GONE_ENVIRONMENTS_DELETE)
        cursor.execute(_MARKS_PRUNE, {"margin": f"{SEAL_MARGIN.total_seconds()} seconds"})
        if (report.days or report.days_in_progress) and not connection.in_atomic_block:
            # day totals are read from the index alone (migration 0010) once the visibility map covers the rows
            # just written; autovacuum gets there too, but only after thousands of rows and minutes later
            cursor.execute("VACUUM (ANALYZE) metering_rollup, metering_rollup_distinct")
    return report
