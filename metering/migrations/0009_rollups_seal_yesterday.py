"""Change marks from the first day in the past (PostgreSQL only): writes to yesterday's events now leave a mark too,
so yesterday can be sealed and rolled up an hour after midnight instead of a day later (refresh.SEAL_MARGIN).

Until now only days at least two days old were marked, so every usage read scanned today's and yesterday's raw
events: up to two days of a meter's events for each alert pass and access check. Marks stay append-only (no shared
row, so concurrent writes still never wait on each other); what this adds is one mark row per statement that
writes events of yesterday, pruned by the next refresh.
"""

from django.db import migrations


def _mark_function(marked_before: str) -> str:
    """The trigger function of migration 0004, marking the days before `marked_before` (an SQL date)."""
    return f"""
CREATE OR REPLACE FUNCTION metering_rollup_mark_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    sealed_before date := {marked_before};
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO metering_rollup_mark (environment_id, event_name, day)
        SELECT DISTINCT environment_id, event_name, ("timestamp" AT TIME ZONE 'UTC')::date FROM new_rows
        WHERE ("timestamp" AT TIME ZONE 'UTC')::date < sealed_before;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO metering_rollup_mark (environment_id, event_name, day)
        SELECT * FROM (SELECT environment_id, event_name, ("timestamp" AT TIME ZONE 'UTC')::date AS day FROM old_rows
                       UNION
                       SELECT environment_id, event_name, ("timestamp" AT TIME ZONE 'UTC')::date FROM new_rows) changed
        WHERE changed.day < sealed_before;
    ELSE
        INSERT INTO metering_rollup_mark (environment_id, event_name, day)
        SELECT DISTINCT environment_id, event_name, ("timestamp" AT TIME ZONE 'UTC')::date FROM old_rows
        WHERE ("timestamp" AT TIME ZONE 'UTC')::date < sealed_before;
    END IF;
    RETURN NULL;
END $$;
"""


def mark_yesterday(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_mark_function("(now() AT TIME ZONE 'UTC')::date"), params=None)


def mark_from_two_days(apps, schema_editor):
    """Back to 0004's trigger: yesterday's rollups would no longer see its writes, so they go."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_mark_function("(now() AT TIME ZONE 'UTC')::date - 1"), params=None)
        schema_editor.execute(
            "DELETE FROM metering_rollup_day WHERE day >= (now() AT TIME ZONE 'UTC')::date - 1", params=None
        )


class Migration(migrations.Migration):
    dependencies = [("metering", "0008_usage_marks")]

    operations = [migrations.RunPython(mark_yesterday, mark_from_two_days, elidable=False)]
