"""Per-day event counts beside the usage rollups (PostgreSQL only; see metering/usage/rollups/counts.py).

- `metering_event_count_day`: the events of one environment whose timestamp falls on one UTC day, counted from the
  snapshot recorded with them. The count is used only while that snapshot saw every change mark of the day
  (`metering_rollup_mark` of 0004 and 0009, any event name of the environment), exactly as a rolled-up usage day is: a late
  event, a redelivery that moves an event to another day or a deletion makes the day read raw events until the
  next refresh. A row with 0 events records a sealed day without events.
- The truncate trigger of 0004 now forgets these counts as well. No foreign key to the environment (Django's flush
  truncates the environments without cascading): the refresh drops the counts of environments that are gone.

Kept outside the model state (plain SQL, like 0004): SQLite always counts raw events.
"""

from django.db import migrations

CREATE = """
CREATE TABLE metering_event_count_day (
    environment_id bigint NOT NULL,
    day date NOT NULL,
    events bigint NOT NULL,
    snapshot pg_snapshot NOT NULL,
    PRIMARY KEY (environment_id, day)
);

CREATE OR REPLACE FUNCTION metering_rollup_forget_all() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM metering_rollup_day;
    DELETE FROM metering_event_count_day;
    RETURN NULL;
END $$;
"""

DROP = """
CREATE OR REPLACE FUNCTION metering_rollup_forget_all() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM metering_rollup_day;
    RETURN NULL;
END $$;
DROP TABLE IF EXISTS metering_event_count_day;
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("metering", "0010_rollup_reads_index_only")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
