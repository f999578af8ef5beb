"""EVENTS_URL parsing, the startup check, and the DDL as text (SPEC §12)."""

import datetime as dt
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from metering.clickhouse.config import (
    CHDB,
    CLICKHOUSE,
    DJANGO,
    clickhouse_client,
    parse_events_url,
)
from metering.clickhouse.schema import schema_statements
from metering.ingest.clickhouse import clickhouse_events_store
from metering.ingest.validation import EventInput

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MONTH_MERGE = "min_age_to_force_merge_seconds = 3600, min_age_to_force_merge_on_partition_only = 1"


def test_an_unset_events_url_means_the_django_database():
    assert parse_events_url("").kind == DJANGO
    assert parse_events_url("  ").kind == DJANGO


def test_clickhouse_and_chdb_urls():
    server = parse_events_url("clickhouse://u:p@ch.internal:8123/metrics", cluster="main")
    assert (server.kind, server.database, server.cluster) == (CLICKHOUSE, "metrics", "main")
    assert parse_events_url("clickhouse://ch.internal:8123").database == "flexmeter"
    local = parse_events_url("chdb:///var/flexmeter/events?database=ev", cluster="ignored")
    assert (local.kind, local.database, local.cluster) == (CHDB, "ev", "")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://db/x", "unknown scheme 'mysql'"),
        ("clickhouse:///nohost", "needs a host"),
        ("chdb://", "needs a data directory"),
        ("clickhouse://h/bad-name", "must be letters, digits and _"),
    ],
)
def test_malformed_events_urls_are_configuration_errors(url, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        parse_events_url(url)


def manage_check(events_url: str) -> subprocess.CompletedProcess:
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "EVENTS_URL": events_url, "DATABASE_URL": ""}
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )


def test_flexmeter_starts_with_events_in_clickhouse_and_refuses_a_malformed_url(tmp_path):
    # every reader (usage, debugger, stream, lists, lookup, import, export) serves from ClickHouse now
    started = manage_check(f"chdb://{tmp_path}/events")
    assert started.returncode == 0, started.stderr
    refused = manage_check("mysql://db/events")
    assert refused.returncode != 0
    assert "unknown scheme 'mysql'" in refused.stderr


def test_single_node_ddl_has_no_cluster_clauses():
    ddl = "\n".join(schema_statements("flexmeter"))
    assert "ON CLUSTER" not in ddl and "Replicated" not in ddl and "Distributed" not in ddl
    assert "ENGINE = ReplacingMergeTree(version, is_deleted) PARTITION BY toYYYYMM(timestamp) " in ddl
    order = "ORDER BY (environment_id, external_customer_id, event_name, timestamp, event_id)"
    assert f"{order} SETTINGS {MONTH_MERGE}" in ddl


def test_cluster_ddl_is_replicated_behind_distributed_tables_sharded_by_environment_and_customer():
    statements = schema_statements("flexmeter", "prod's")
    assert statements[0] == "CREATE DATABASE IF NOT EXISTS flexmeter ON CLUSTER 'prod\\'s'"
    events_local, events = statements[1], statements[2]
    assert events_local.startswith("CREATE TABLE IF NOT EXISTS flexmeter.events_local ON CLUSTER 'prod\\'s' (")
    assert (
        "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/flexmeter/events_local', '{replica}', "
        "version, is_deleted)" in events_local
    )
    assert events == (
        "CREATE TABLE IF NOT EXISTS flexmeter.events ON CLUSTER 'prod\\'s' AS flexmeter.events_local "
        "ENGINE = Distributed('prod\\'s', flexmeter, events_local, cityHash64(environment_id, external_customer_id))"
    )
    keys = statements[4]
    assert keys.endswith(
        "ENGINE = Distributed('prod\\'s', flexmeter, event_keys_local, cityHash64(environment_id, event_id))"
    )
    added = "ADD COLUMN IF NOT EXISTS first_version UInt64 DEFAULT version"
    assert statements[7:11] == [
        f"ALTER TABLE flexmeter.{table} ON CLUSTER 'prod\\'s' {added}"
        for table in ("events_local", "events", "event_keys_local", "event_keys")
    ]
    # months are merged where the parts are: on the local table
    assert MONTH_MERGE in events_local and MONTH_MERGE not in events
    assert statements[11] == f"ALTER TABLE flexmeter.events_local ON CLUSTER 'prod\\'s' MODIFY SETTING {MONTH_MERGE}"
    assert len(statements) == 12


def test_migrate_events_prints_the_cluster_ddl(capsys):
    call_command("migrate_events", "--url", "clickhouse://h:8123/fm", "--cluster", "c1", "--print")
    out = capsys.readouterr().out
    assert "CREATE TABLE IF NOT EXISTS fm.events ON CLUSTER 'c1' AS fm.events_local" in out


def test_migrate_events_creates_the_tables_on_chdb_and_is_idempotent(chdb_path, capsys):
    url = f"chdb://{chdb_path}?database=migrated"
    call_command("migrate_events", "--url", url)
    call_command("migrate_events", "--url", url)
    client = clickhouse_client(parse_events_url(url))
    tables = client.query("SELECT name FROM system.tables WHERE database = 'migrated' ORDER BY name").result_rows
    assert tables == [("copy_progress",), ("event_keys",), ("events",)]
    assert MONTH_MERGE in events_create_statement(client, "migrated")
    client.command("DROP DATABASE migrated")
    assert "events tables ready in migrated on a single node" in capsys.readouterr().out


def test_migrate_events_adds_first_version_to_tables_created_before_it(chdb_path):
    """Tables created before the digest's `first_version` get it, and their rows read their own version as it."""
    url = f"chdb://{chdb_path}?database=older"
    client = clickhouse_client(parse_events_url(url))
    for statement in schema_statements("older"):
        if statement.startswith("CREATE"):
            client.command(statement.replace(",\n    first_version UInt64 DEFAULT version", ""))
    assert "first_version" not in str(client.query("DESCRIBE TABLE older.events").result_rows)
    client.command(f"ALTER TABLE older.events RESET SETTING {MONTH_MERGE.replace(' = 3600', '').replace(' = 1', '')}")
    assert "min_age_to_force_merge" not in events_create_statement(client, "older")
    for table in ("events", "event_keys"):
        client.command(
            f"INSERT INTO older.{table} (environment_id, event_id, event_name, version) VALUES (1, 'e', 'n', 42)"
        )
    call_command("migrate_events", "--url", url, stdout=io.StringIO())
    assert client.query("SELECT event_id, first_version FROM older.events").result_rows == [("e", 42)]
    assert MONTH_MERGE in events_create_statement(client, "older")
    # a redelivery keeps the first delivery's version, read from the older key row
    stored = EventInput(
        event_id="e", event_name="n", external_customer_id="", timestamp=EPOCH, source="", properties={"v": 1}
    )
    clickhouse_events_store(backend=parse_events_url(url), environment_id=1, events=[stored])
    rows = client.query("SELECT first_version, version > 42 FROM older.events FINAL").result_rows
    assert rows == [(42, True)]
    client.command("DROP DATABASE older")


def events_create_statement(client, database: str) -> str:
    return client.query(
        "SELECT create_table_query FROM system.tables WHERE database = %(db)s AND name = 'events'",
        parameters={"db": database},
    ).result_rows[0][0]
