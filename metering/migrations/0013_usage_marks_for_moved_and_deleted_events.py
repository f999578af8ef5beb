"""Usage marks for the pair an event leaves: a redelivery that moves an event to another customer or event name, and
a deletion, lower the usage of the (customer, event name) the event had, so that pair is marked for the alert
evaluator too (the writers mark the pairs they write; only the database sees the row an update replaces).

Triggers, so every path is covered whatever wrote or deleted the row (the API's upserts, COPY through staging, an
import, `check_events --delete`, the admin): statement triggers with transition tables on PostgreSQL (one mark
statement per write statement, and none for an insert), row triggers on SQLite. Marks are upserts that bump the
version, as the writers' own are, so an evaluator pass already reading the pair evaluates it again.
"""

import django.db.models.deletion
from django.db import migrations, models

_MARK_UPSERT = (
    "INSERT INTO metering_usage_mark (environment_id, external_customer_id, event_name, version, marked_at) {rows} "
    "ON CONFLICT (environment_id, external_customer_id, event_name) DO UPDATE SET "
    "version = metering_usage_mark.version + 1, marked_at = excluded.marked_at"
)

# the pairs an update moved events away from, and the pairs of deleted events, in sorted order as the writers lock
# theirs
_MOVED_AWAY = _MARK_UPSERT.format(
    rows="SELECT DISTINCT o.environment_id, o.external_customer_id, o.event_name, 1, now() "
    "FROM old_rows o JOIN new_rows n ON n.id = o.id "
    "WHERE (o.external_customer_id, o.event_name) IS DISTINCT FROM (n.external_customer_id, n.event_name) "
    "ORDER BY 1, 2, 3"
)
_DELETED = _MARK_UPSERT.format(
    rows="SELECT DISTINCT environment_id, external_customer_id, event_name, 1, now() FROM old_rows ORDER BY 1, 2, 3"
)
_POSTGRESQL = f"""
CREATE FUNCTION metering_usage_mark_left() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        {_MOVED_AWAY};
    ELSE
        {_DELETED};
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER metering_usage_mark_moved AFTER UPDATE ON metering_event
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION metering_usage_mark_left();
CREATE TRIGGER metering_usage_mark_deleted AFTER DELETE ON metering_event
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION metering_usage_mark_left();
"""

_POSTGRESQL_REVERSE = """
DROP TRIGGER metering_usage_mark_moved ON metering_event;
DROP TRIGGER metering_usage_mark_deleted ON metering_event;
DROP FUNCTION metering_usage_mark_left();
"""

# SQLite stores the ORM's own UTC text for timestamps
_SQLITE_ROW = (
    "VALUES (OLD.environment_id, OLD.external_customer_id, OLD.event_name, 1, strftime('%Y-%m-%d %H:%M:%f', 'now'))"
)
_SQLITE = [
    "CREATE TRIGGER metering_usage_mark_moved AFTER UPDATE OF external_customer_id, event_name ON metering_event "
    "WHEN OLD.external_customer_id IS NOT NEW.external_customer_id OR OLD.event_name IS NOT NEW.event_name "
    f"BEGIN {_MARK_UPSERT.format(rows=_SQLITE_ROW)}; END",
    f"CREATE TRIGGER metering_usage_mark_deleted AFTER DELETE ON metering_event "
    f"BEGIN {_MARK_UPSERT.format(rows=_SQLITE_ROW)}; END",
]
_SQLITE_REVERSE = ["DROP TRIGGER metering_usage_mark_moved", "DROP TRIGGER metering_usage_mark_deleted"]
_STATEMENTS = {"postgresql": ([_POSTGRESQL], [_POSTGRESQL_REVERSE]), "sqlite": (_SQLITE, _SQLITE_REVERSE)}


def _run(schema_editor, *, forward: bool) -> None:
    create, drop = _STATEMENTS.get(schema_editor.connection.vendor, ([], []))
    for statement in create if forward else drop:
        schema_editor.execute(statement, params=None)


def create_triggers(apps, schema_editor):
    _run(schema_editor, forward=True)


def drop_triggers(apps, schema_editor):
    _run(schema_editor, forward=False)


class Migration(migrations.Migration):
    dependencies = [("flexmeter", "0001_initial"), ("metering", "0012_event_name_time_index")]

    operations = [
        # the marks outlive their environment for a moment when it is deleted (see UsageMark): no constraint
        migrations.AlterField(
            model_name="usagemark",
            name="environment",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="flexmeter.environment",
            ),
        ),
        migrations.RunPython(create_triggers, drop_triggers, elidable=False),
    ]
