"""Rollups fine enough for any window, bucket and time zone: each daily rollup row also carries its day's
quarter-hour partials (PostgreSQL only; plain SQL like 0004).

Every IANA time zone in use has an offset that is a whole number of quarter hours, so every window and bucket of
15 minutes or more, in any such zone, is a union of UTC quarter hours. A day row keeps, beside its day totals, the
engine's partials of each quarter hour of the day that has events, as parallel arrays (`quarters` holds the
quarter's number in the day, 0-95): one row per day and customer, however fine the reading.

- `metering_rollup`: `quarters`, `q1`, `q2` (the quarter's n1 and n2), `qkeys` (LATEST: the ordering key of each
  quarter's latest event, an array of three numbers per quarter) and `qgroups` (bucketed MAX: the group of each
  (quarter, group) maximum; `quarters` then repeats a quarter once per group).
- `metering_rollup_distinct`: `quarters`, the quarter hours of the day in which the value occurs.
- The customer `''` (never a valid external customer id: ingestion refuses blank ids) holds the rows of all
  customers together, so usage without a customer reads one row per day, and bucketed MAX takes a bucket's
  maximum across customers.

Rollups built before this migration lack the quarters and are dropped; the next refresh rebuilds them.
"""

from django.db import migrations

CREATE = """
DELETE FROM metering_rollup_definition;
ALTER TABLE metering_rollup
    ADD COLUMN quarters smallint[],
    ADD COLUMN q1 numeric[],
    ADD COLUMN q2 numeric[],
    ADD COLUMN qkeys numeric[],
    ADD COLUMN qgroups text[];
ALTER TABLE metering_rollup_distinct ADD COLUMN quarters smallint[];
"""

DROP = """
DELETE FROM metering_rollup_definition;
ALTER TABLE metering_rollup DROP COLUMN quarters, DROP COLUMN q1, DROP COLUMN q2, DROP COLUMN qkeys,
    DROP COLUMN qgroups;
ALTER TABLE metering_rollup_distinct DROP COLUMN quarters;
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("metering", "0005_event_properties_reads_never_fail")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
