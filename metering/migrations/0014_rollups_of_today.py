"""Rollups of the current day up to a sealed moment (PostgreSQL only): `metering_rollup_day.until`, and change marks
for every write of an event more than an hour old.

Until now the current UTC day was always read from raw events: up to 24 hours of a meter's events (25 in the hour
after midnight) for every alert pass, access check and dashboard page. A row of `metering_rollup_day` with `until`
set holds the day's partials from midnight to `until` only: readers use its totals where they read exactly that
stretch, else its quarter hours before `until` (`read.plan_pieces`); a row without `until` is a whole, sealed day.

For such a row to stay exact, a write that reaches its time after it was computed must leave a mark. The trigger now
marks, besides every day before the writing statement's day (migration 0009), the day of every event whose
timestamp is more than LATE_AFTER older than the writing statement's start. The refresh rolls a day up only to
`now() - LATE_AFTER - SEAL_MARGIN` (refresh.py): a write its snapshot did not see started at most SEAL_MARGIN
before it, so any event before that moment was already LATE_AFTER old for the write, and marked.
Events sent within an hour of their time (nearly all) leave no mark, so marks stay rare; late ones mark their day.
"""

from django.db import migrations

# how old an event must be, when written, to mark its day: refresh.LATE_AFTER says the same to the refresh
LATE_AFTER = "1 hour"


def _mark_function(condition: str) -> str:
    """The trigger function of migrations 0004 and 0009, marking the day of each written row meeting `condition`
    (SQL over the row's "timestamp")."""
    return f"""
CREATE OR REPLACE FUNCTION metering_rollup_mark_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO metering_rollup_mark (environment_id, event_name, day)
        SELECT DISTINCT environment_id, event_name, ("timestamp" AT TIME ZONE 'UTC')::date FROM new_rows
        WHERE {condition};
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO metering_rollup_mark (environment_id, event_name, day)
        SELECT DISTINCT environment_id, event_name, ("timestamp" AT TIME ZONE 'UTC')::date
        FROM (SELECT environment_id, event_name, "timestamp" FROM old_rows
              UNION ALL
              SELECT environment_id, event_name, "timestamp" FROM new_rows) changed
        WHERE {condition};
    ELSE
        INSERT INTO metering_rollup_mark (environment_id, event_name, day)
        SELECT DISTINCT environment_id, event_name, ("timestamp" AT TIME ZONE 'UTC')::date FROM old_rows
        WHERE {condition};
    END IF;
    RETURN NULL;
END $$;
"""


_BEFORE_TODAY = "(\"timestamp\" AT TIME ZONE 'UTC')::date < (now() AT TIME ZONE 'UTC')::date"
# by the statement's clock rather than the transaction's: a superset of 0009's marks, and the refresh's argument then
# only needs a write to commit within SEAL_MARGIN of its statement, however long its transaction
_LATE = (
    "((\"timestamp\" AT TIME ZONE 'UTC')::date < (statement_timestamp() AT TIME ZONE 'UTC')::date"
    f" OR \"timestamp\" < statement_timestamp() - interval '{LATE_AFTER}')"
)


def forward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("ALTER TABLE metering_rollup_day ADD COLUMN until timestamptz", params=None)
    schema_editor.execute(_mark_function(_LATE), params=None)


def backward(apps, schema_editor):
    """Back to 0009's trigger: rollups of a day in progress would no longer see its late writes, so they go."""
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(_mark_function(_BEFORE_TODAY), params=None)
    schema_editor.execute("DELETE FROM metering_rollup_day WHERE until IS NOT NULL", params=None)
    schema_editor.execute("ALTER TABLE metering_rollup_day DROP COLUMN until", params=None)


class Migration(migrations.Migration):
    dependencies = [("metering", "0013_usage_marks_for_moved_and_deleted_events")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
