"""server_bound_cursor: server-side parameters on PostgreSQL, and still a Django cursor that counts queries."""

import psycopg
import pytest
from django.db import connection

from flexmeter.db import server_bound_cursor

pytestmark = pytest.mark.django_db


def test_queries_are_counted_and_values_bound(django_assert_num_queries):
    with django_assert_num_queries(1), server_bound_cursor() as cursor:
        cursor.execute("SELECT %s || 'b'", ["a"])
        assert cursor.fetchone()[0] == "ab"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="server-side binding is a PostgreSQL notion")
def test_postgresql_binds_parameters_on_the_server():
    with server_bound_cursor() as cursor:
        assert type(cursor.cursor) is psycopg.Cursor  # not psycopg.ClientCursor, which inlines the values


@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements are a PostgreSQL notion")
def test_a_statement_run_again_and_again_is_prepared_once_and_then_only_executed():
    # Django switches psycopg's prepared statements off; settings turn them back on for these cursors only
    statement = "SELECT %s::int + 40 AS prepared_probe"
    for _ in range(6):
        with server_bound_cursor() as cursor:
            cursor.execute(statement, [2])
            assert cursor.fetchone()[0] == 42
    with connection.cursor() as cursor:
        for _ in range(6):
            cursor.execute("SELECT %s::int + 41 AS client_probe", [1])
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE statement LIKE '%%_probe'")
        prepared = [row[0] for row in cursor.fetchall()]
    assert prepared == ["SELECT $1::int + 40 AS prepared_probe"]
