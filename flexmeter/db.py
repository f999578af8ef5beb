"""Database helpers every app shares."""

import psycopg
from django.db import InterfaceError as DjangoInterfaceError
from django.db import connection as default_connection

# SQLSTATEs of a server that is going away or not there yet: connection exceptions (class 08), and
# admin_shutdown, crash_shutdown, cannot_connect_now. Other operational errors (a cancelled statement, a deadlock)
# come from a working database and stay errors.
_UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03")


def server_bound_cursor(connection=None):
    """A Django cursor (queries still logged and counted) that, on PostgreSQL, binds parameters server-side.

    The statement text then stays the same whatever the values, so psycopg prepares it after a few runs and
    PostgreSQL stops parsing and planning it on every request. Other databases get their usual cursor.
    """
    connection = connection or default_connection
    if connection.vendor != "postgresql":
        return connection.cursor()
    connection.ensure_connection()
    raw = psycopg.Cursor(connection.connection)
    return connection.make_debug_cursor(raw) if connection.queries_logged else connection.make_cursor(raw)


def is_database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) says the database cannot be reached, rather than that a query failed.

    Covers a refused or dropped connection, a server shutting down or starting, a connection that is already
    closed, and a pool that found no connection in DATABASE_POOL_TIMEOUT (psycopg_pool.PoolTimeout, itself an
    OperationalError without a SQLSTATE). Django wraps psycopg's errors, so the chain of causes is followed.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, psycopg.InterfaceError | DjangoInterfaceError):
            return True
        if isinstance(current, psycopg.OperationalError):
            sqlstate = getattr(current, "sqlstate", None)
            return sqlstate is None or sqlstate.startswith(_UNAVAILABLE_SQLSTATES)
        current = current.__cause__ or current.__context__
    return False
