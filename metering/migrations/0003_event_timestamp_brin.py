"""A BRIN index on event timestamps for usage queries over all customers (PostgreSQL only).

Events arrive roughly in time order, so a month of events lies in a narrow range of table pages; BRIN finds
those pages at almost no storage or write cost, where the btree `event_usage_lookup` would read every index entry
of the event name. SQLite has no BRIN: nothing to do there. Kept outside the model state on purpose (Django has
no BRIN on SQLite), so `makemigrations --check` stays clean on both databases.
"""

from django.db import migrations

INDEX = "event_timestamp_brin"


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f'CREATE INDEX IF NOT EXISTS {INDEX} ON metering_event USING brin ("timestamp")')


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("metering", "0002_event_properties_exact_numbers")]

    operations = [migrations.RunPython(create_index, drop_index, elidable=False)]
