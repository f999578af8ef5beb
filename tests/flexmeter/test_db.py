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
