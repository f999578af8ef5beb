"""SQL dialects of the usage engine, one module per database, with the same meaning on both (SPEC §3, §4).

PostgreSQL (`postgres`) works on `jsonb` and `numeric`: exact by construction. SQLite (`sqlite`) has neither exact
decimals nor a number type it would not turn into a float, so every number travels as decimal *text* and the
arithmetic is done by functions registered on each SQLite connection, which apply metering/usage/numbers.py.
`dialect_for` picks the dialect of a connection.
"""

from __future__ import annotations

from django.db import connection as default_connection

from metering.usage.dialects.base import Dialect
from metering.usage.dialects.postgres import PostgresDialect
from metering.usage.dialects.sqlite import SqliteDialect


def dialect_for(connection=None) -> Dialect:
    connection = connection or default_connection
    if connection.vendor == "postgresql":
        return PostgresDialect(connection)
    if connection.vendor == "sqlite":
        return SqliteDialect(connection)
    raise NotImplementedError(f"the usage engine does not support {connection.vendor}")
