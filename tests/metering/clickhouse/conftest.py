"""A ClickHouse (chdb, in-process) events store per test: one data directory per test run, one database per test."""

import uuid

import pytest

from metering.clickhouse.config import CHDB, EventsBackend, clickhouse_client
from metering.clickhouse.schema import schema_statements


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory):
    # chdb opens one data directory per process: every test shares it and keeps to its own database
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture
def ch_backend(chdb_path):
    database = f"t_{uuid.uuid4().hex[:12]}"
    backend = EventsBackend(kind=CHDB, url=f"chdb://{chdb_path}?database={database}", database=database)
    client = clickhouse_client(backend)
    for statement in schema_statements(database):
        client.command(statement)
    yield backend
    client.command(f"DROP DATABASE IF EXISTS {database}")
