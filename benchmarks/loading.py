"""Bulk loading of synthetic events for the benchmarks: without the table's indexes, which are built once after."""

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def event_indexes_deferred(connection) -> Iterator[None]:
    """Drop the events table's indexes and unique constraint for the block, then build them and analyse the table:
    one sorted build is much faster than maintaining every index row by row during a load of millions."""
    from metering.models import Event  # the benchmarks' child processes set Django up before loading

    with connection.schema_editor() as editor:
        for index in Event._meta.indexes:
            editor.remove_index(Event, index)
        for constraint in Event._meta.constraints:
            editor.remove_constraint(Event, constraint)
    yield
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '512MB'")  # same session as the index builds below
    with connection.schema_editor() as editor:
        for index in Event._meta.indexes:
            editor.add_index(Event, index)
        for constraint in Event._meta.constraints:
            editor.add_constraint(Event, constraint)
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM (ANALYZE) {Event._meta.db_table}")
