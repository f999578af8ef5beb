"""server_bound_cursor: server-side parameters on PostgreSQL, and still a Django cursor that counts queries;
model_from_row: a hand-written statement's row read as the ORM reads it."""

import datetime as dt

import psycopg
import pytest
from django.db import connection

from catalog.models import Meter
from flexmeter.db import model_columns_sql, model_from_row, server_bound_cursor
from tests.catalog.factories import MeterFactory

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


def test_a_row_of_the_model_columns_reads_as_the_orm_reads_it():
    filters = [{"key": "region", "operator": "in", "values": ["eu", "zürich"]}]
    meter = MeterFactory(
        aggregation_type="SUM_WITH_MULTIPLIER", aggregation_field="tokens", multiplier="0.001", filters=filters
    )
    with server_bound_cursor() as cursor:
        cursor.execute(f"SELECT {model_columns_sql(Meter)} FROM catalog_meter WHERE id = %s", [meter.pk])
        read = model_from_row(Meter, cursor.fetchone())

    expected = Meter.objects.get(pk=meter.pk)
    fields = [field.attname for field in Meter._meta.concrete_fields]
    assert {name: getattr(read, name) for name in fields} == {name: getattr(expected, name) for name in fields}
    assert read.filters == filters  # parsed from the database's JSON text (PostgreSQL's jsonb, SQLite's text)
    assert type(read.created_at) is dt.datetime and read.created_at.utcoffset() == dt.timedelta(0)
    assert read.multiplier == "0.001" and read.environment_id == meter.environment_id

    # a stored row, not a new one: saving it updates that row
    assert read._state.adding is False and read._state.db == "default"
    read.name = "Renamed"
    read.save(update_fields=["name"])
    assert Meter.objects.get(pk=meter.pk).name == "Renamed"
