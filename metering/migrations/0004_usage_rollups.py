"""Daily usage rollups and the change marks that keep them exact (PostgreSQL only; see metering/usage/rollups.py).

- `metering_rollup_definition`: one row per distinct meter definition (its fingerprint) of an environment.
- `metering_rollup`: the engine's own per-day, per-customer partial aggregates of a definition (UTC days);
  `metering_rollup_distinct`: for COUNT_UNIQUE, the distinct values per day and customer instead.
- `metering_rollup_day`: which days of a definition are rolled up, with the snapshot they were computed from.
- `metering_rollup_mark`: appended by a statement trigger, with the writing transaction's id, whenever events
  of a UTC day at least two days old are written, replaced or deleted. A rolled-up day is used only while
  every mark of its (environment, event name, day) is visible in the day's snapshot, so a late event can make
  a day slower, never wrong. Marks are only ever inserted (no shared row to update, so concurrent late writes
  never wait on each other); the refresh deletes those every rollup has seen. Recent days (today and
  yesterday) are never marked.

Kept outside the model state (plain SQL, like the BRIN index of 0003): SQLite always reads raw events.
"""

from django.db import migrations

CREATE = """
CREATE TABLE metering_rollup_mark (
    environment_id bigint NOT NULL,
    event_name varchar(255) NOT NULL,
    day date NOT NULL,
    xid xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX metering_rollup_mark_day ON metering_rollup_mark (environment_id, event_name, day);

CREATE TABLE metering_rollup_definition (
    id bigserial PRIMARY KEY,
    environment_id bigint NOT NULL,
    event_name varchar(255) NOT NULL,
    fingerprint text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (environment_id, fingerprint)
);

CREATE TABLE metering_rollup_day (
    definition_id bigint NOT NULL REFERENCES metering_rollup_definition (id) ON DELETE CASCADE,
    day date NOT NULL,
    snapshot pg_snapshot NOT NULL,
    PRIMARY KEY (definition_id, day)
);

CREATE TABLE metering_rollup (
    definition_id bigint NOT NULL REFERENCES metering_rollup_definition (id) ON DELETE CASCADE,
    day date NOT NULL,
    customer varchar(255) NOT NULL,
    n1 numeric,
    n2 numeric,
    latest numeric[],
    PRIMARY KEY (definition_id, day, customer)
);
CREATE INDEX metering_rollup_customer ON metering_rollup (definition_id, customer, day);

CREATE TABLE metering_rollup_distinct (
    definition_id bigint NOT NULL REFERENCES metering_rollup_definition (id) ON DELETE CASCADE,
    day date NOT NULL,
    customer varchar(255) NOT NULL,
    value text NOT NULL,
    PRIMARY KEY (definition_id, day, customer, value)
);
CREATE INDEX metering_rollup_distinct_customer ON metering_rollup_distinct (definition_id, customer, day);

CREATE FUNCTION metering_rollup_mark_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    sealed_before date := (now() AT TIME ZONE 'UTC')::date - 1;
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

CREATE FUNCTION metering_rollup_forget_all() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM metering_rollup_day;
    RETURN NULL;
END $$;

CREATE TRIGGER metering_event_rollup_insert AFTER INSERT ON metering_event
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION metering_rollup_mark_changed();
CREATE TRIGGER metering_event_rollup_update AFTER UPDATE ON metering_event
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION metering_rollup_mark_changed();
CREATE TRIGGER metering_event_rollup_delete AFTER DELETE ON metering_event
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION metering_rollup_mark_changed();
CREATE TRIGGER metering_event_rollup_truncate AFTER TRUNCATE ON metering_event
    FOR EACH STATEMENT EXECUTE FUNCTION metering_rollup_forget_all();
"""

DROP = """
DROP TRIGGER IF EXISTS metering_event_rollup_insert ON metering_event;
DROP TRIGGER IF EXISTS metering_event_rollup_update ON metering_event;
DROP TRIGGER IF EXISTS metering_event_rollup_delete ON metering_event;
DROP TRIGGER IF EXISTS metering_event_rollup_truncate ON metering_event;
DROP FUNCTION IF EXISTS metering_rollup_mark_changed();
DROP FUNCTION IF EXISTS metering_rollup_forget_all();
DROP TABLE IF EXISTS metering_rollup, metering_rollup_distinct, metering_rollup_day, metering_rollup_definition,
    metering_rollup_mark;
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("metering", "0003_event_timestamp_brin")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
