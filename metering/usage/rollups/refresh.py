"""Computing daily usage rollups (PostgreSQL): `rollups_refresh` is what `manage.py refresh_rollups` runs.

For every meter definition in use it (re)computes the UTC days that are sealed — old enough that every write
to them leaves a change mark, see migration 0004 — and not validly rolled up yet: days never computed, days
with a mark their rollup did not see. Each definition is refreshed in one REPEATABLE READ transaction and each
rolled-up day records that transaction's snapshot: a write committed after it leaves a mark the snapshot does
not see, and the day falls back to raw events until the next refresh. The rows are the engine's own window partials
(`part_sql` with DAY windows per customer in UTC), so a rollup can only ever say what a raw scan would.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from catalog.models import AggregationType, Meter, MeterStatus
from metering.usage.dialects import dialect_for
from metering.usage.dialects.base import Params
from metering.usage.engine import WINDOW, distinct_values_sql, part_sql
from metering.usage.periods import UTC
from metering.usage.rollups.read import repeatable_read, rollup_fingerprint
from metering.usage.spec import AggregationSpec, MeterNotComputable, UsageQuery

# Writes to a UTC day leave change marks from the start of the day after next (trigger of migration 0004); a day is
# sealed one hour later, so every write that started before marking began has committed (longer ones are not
# expected: requests and import batches commit within seconds).
SEAL_MARGIN = dt.timedelta(hours=1)
_LOCK_NAMESPACE = 7_201_118  # pg_try_advisory_lock(namespace, definition id): one refresher per definition
_MAX_DAYS_PER_STATEMENT = 31


@dataclass
class RefreshReport:
    definitions: int = 0
    days: int = 0
    rows: int = 0
    skipped: list[str] = field(default_factory=list)


def _definitions_sync(cursor, using: str) -> list[tuple[int, int, str, AggregationSpec]]:
    """A definition row for each distinct spec of the meters in use; unused definitions (and their rollups) go."""
    specs: dict[tuple[int, str], AggregationSpec] = {}
    for meter in Meter.objects.using(using).exclude(status=MeterStatus.DRAFT).order_by("pk"):
        try:
            spec = AggregationSpec.from_meter(meter)
        except MeterNotComputable:  # reported by check_events; it counts nothing, so it has nothing to roll up
            continue
        fingerprint = rollup_fingerprint(spec)
        if fingerprint is not None:
            specs.setdefault((meter.environment_id, fingerprint), spec)
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


_DAYS_TO_COMPUTE = """
WITH horizon AS (SELECT ((now() - %(margin)s::interval) AT TIME ZONE 'UTC')::date - 1 AS sealed_before),
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
)
SELECT candidate.day FROM candidate
LEFT JOIN metering_rollup_day done ON done.definition_id = %(definition)s AND done.day = candidate.day
WHERE done.day IS NULL OR EXISTS (
    SELECT 1 FROM metering_rollup_mark mark
    WHERE mark.environment_id = %(environment)s AND mark.event_name = %(event_name)s AND mark.day = candidate.day
      AND NOT pg_visible_in_snapshot(mark.xid, done.snapshot))
ORDER BY candidate.day
"""

# A mark has done its job once every definition of its event name has a rollup of the day that saw it.
_MARKS_PRUNE = """
DELETE FROM metering_rollup_mark mark
WHERE NOT EXISTS (
    SELECT 1 FROM metering_rollup_definition def
    WHERE def.environment_id = mark.environment_id AND def.event_name = mark.event_name
      AND NOT EXISTS (SELECT 1 FROM metering_rollup_day done
                      WHERE done.definition_id = def.id AND done.day = mark.day
                        AND pg_visible_in_snapshot(mark.xid, done.snapshot)))
"""


def _runs(days: list[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """Consecutive days as `[first, after_last)` runs of at most `_MAX_DAYS_PER_STATEMENT` days."""
    runs: list[tuple[dt.date, dt.date]] = []
    for day in days:
        if runs and runs[-1][1] == day and (day - runs[-1][0]).days < _MAX_DAYS_PER_STATEMENT:
            runs[-1] = (runs[-1][0], day + dt.timedelta(days=1))
        else:
            runs.append((day, day + dt.timedelta(days=1)))
    return runs


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=UTC)


def _rollup_insert_sql(definition_id: int, environment_id: int, spec: AggregationSpec, first, after, connection):
    """INSERT of the engine's DAY-window partials per customer over `[first, after)`, as rollup rows
    (for COUNT_UNIQUE: the distinct values per day and customer)."""
    d = dialect_for(connection)
    p = Params()
    query = UsageQuery(
        spec=spec,
        environment_id=environment_id,
        start=_midnight(first),
        end=_midnight(after),
        by_customer=True,
        window_size="DAY",
    )
    definition = p(definition_id)
    if spec.aggregation_type == AggregationType.COUNT_UNIQUE:
        values = distinct_values_sql(query, WINDOW, d, p, query.start, query.end)
        sql = (
            "INSERT INTO metering_rollup_distinct (definition_id, day, customer, value) "
            f"SELECT {definition}, src.w::date, src.c, src.t FROM ({values}) src WHERE src.t IS NOT NULL"
        )
        return sql, p.values
    part = part_sql(query, 0, WINDOW, d, p, query.start, query.end)
    latest = spec.aggregation_type == AggregationType.LATEST
    n2 = "NULL" if latest else "part.n2::numeric"
    key = "part.n2::numeric[] || part.n1::numeric" if latest else "NULL"
    sql = (
        "INSERT INTO metering_rollup (definition_id, day, customer, n1, n2, latest) "
        f"SELECT {definition}, part.w::date, part.c, part.n1::numeric, {n2}, {key} FROM ({part}) part"
    )
    return sql, p.values


def _refresh_definition(connection, definition_id: int, environment_id: int, spec: AggregationSpec) -> tuple[int, int]:
    with repeatable_read(connection, read_only=False), connection.cursor() as cursor:
        cursor.execute(
            _DAYS_TO_COMPUTE,
            {
                "margin": SEAL_MARGIN,
                "environment": environment_id,
                "event_name": spec.event_name,
                "definition": definition_id,
            },
        )
        days = [day for (day,) in cursor.fetchall()]
        if not days:
            return 0, 0
        for table in ("metering_rollup", "metering_rollup_distinct"):
            cursor.execute(f"DELETE FROM {table} WHERE definition_id = %s AND day = ANY(%s)", [definition_id, days])
        rows = 0
        for first, after in _runs(days):
            sql, params = _rollup_insert_sql(definition_id, environment_id, spec, first, after, connection)
            cursor.execute(sql, params)
            rows += cursor.rowcount
        # in REPEATABLE READ the current snapshot is the transaction's: the one the rows above were computed from
        cursor.execute(
            """
            INSERT INTO metering_rollup_day (definition_id, day, snapshot)
            SELECT %s, day, pg_current_snapshot() FROM unnest(%s::date[]) AS day
            ON CONFLICT (definition_id, day) DO UPDATE SET snapshot = EXCLUDED.snapshot
            """,
            [definition_id, days],
        )
    return len(days), rows


def rollups_refresh(*, using: str = DEFAULT_DB_ALIAS, log: Callable[[str], None] | None = None) -> RefreshReport:
    """Bring the rollups of every meter in use up to date; a no-op on databases other than PostgreSQL."""
    report = RefreshReport()
    connection = connections[using]
    if connection.vendor != "postgresql":
        return report
    with transaction.atomic(using=using), connection.cursor() as cursor:
        definitions = _definitions_sync(cursor, using)
    for definition_id, environment_id, _, spec in definitions:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s::int, %s::int)", [_LOCK_NAMESPACE, definition_id])
            if not cursor.fetchone()[0]:
                report.skipped.append(f"definition {definition_id}: another refresh is running")
                continue
        try:
            days, rows = _refresh_definition(connection, definition_id, environment_id, spec)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s::int, %s::int)", [_LOCK_NAMESPACE, definition_id])
        report.definitions += 1
        report.days += days
        report.rows += rows
        if log and days:
            log(f"{spec.event_name} {spec.aggregation_type}: {days} days, {rows} rows")
    with connection.cursor() as cursor:
        cursor.execute(_MARKS_PRUNE)
    return report
