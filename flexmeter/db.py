"""Database helpers every app shares."""

import psycopg
from django.db import connection as default_connection


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
