"""The ClickHouse DDL of the events store, for one server (or chdb) and for a cluster (SPEC §12).

Two tables (docs/clickhouse.md explains why):

- `events`: every delivery's row, ordered for usage queries (environment, customer, event name, time, id), a
  `ReplacingMergeTree(version, is_deleted)`. Reads use `FINAL`: of the rows with one sort key the highest
  version wins and a winning tombstone (`is_deleted = 1`) hides the event. A redelivery with the same key
  replaces the row; one that moves the event (new timestamp, customer or name) gets a tombstone for each
  earlier key from the writer, so no delivery is ever counted twice.
- `event_keys`: every sort key an `(environment, event_id)` ever had, ordered by id: the writer's lookup of
  what to tombstone and whether a delivery is a duplicate. Deleting an event (`check_events --delete`) writes
  its keys again as deleted, so a later delivery of the id is new, as on the Django database.

Both carry `first_version`, the version of the id's first delivery, kept by every redelivery: the unmatched-events
digest reads new events by it (webhooks/digest.py), so a redelivered event is never reported again. Tables created
before it get the column from `ALTER … ADD COLUMN IF NOT EXISTS` (its default, `version`, stands for older rows).

A month of `events` is merged into one part once none of its parts has been written for an hour
(`min_age_to_force_merge_seconds`): `FINAL` then has nothing to merge across parts, and a month no longer written
(an invoice, last month's dashboard) answers about twice as fast (docs/clickhouse.md). `migrate_events` sets it on
older tables.

With a cluster name the same tables become replicated local tables behind distributed ones: `events` sharded by
environment and customer (a customer's usage is answered by one shard), `event_keys` by environment and id.
"""

from __future__ import annotations

from dataclasses import dataclass

EVENTS, EVENT_KEYS, COPY_PROGRESS = "events", "event_keys", "copy_progress"
# A partition whose parts are all this old is merged into one part; a late event into it costs one rewrite of the
# month an hour after it arrived (about 1.4 s per million events on the 2-core development machine).
MONTH_MERGE_AGE_SECONDS = 3600
_MONTH_MERGE = (
    f"min_age_to_force_merge_seconds = {MONTH_MERGE_AGE_SECONDS}, min_age_to_force_merge_on_partition_only = 1"
)

_EVENT_COLUMNS = """
    environment_id UInt64,
    event_id String,
    event_name String,
    external_customer_id String,
    timestamp DateTime64(6, 'UTC'),
    ingested_at DateTime64(6, 'UTC'),
    source String,
    properties String CODEC(ZSTD(1)),
    texts Map(String, String),
    numbers Map(String, String),
    inexact Array(String),
    beyond_rule Array(String),
    version UInt64,
    is_deleted UInt8,
    first_version UInt64 DEFAULT version"""

_KEY_COLUMNS = """
    environment_id UInt64,
    event_id String,
    external_customer_id String,
    event_name String,
    timestamp DateTime64(6, 'UTC'),
    version UInt64,
    is_deleted UInt8 DEFAULT 0,
    first_version UInt64 DEFAULT version"""

_PROGRESS_COLUMNS = """
    source String,
    last_id UInt64,
    copied UInt64,
    updated_at DateTime64(6, 'UTC')"""


@dataclass(frozen=True)
class _Table:
    name: str
    columns: str
    engine: str  # engine name without `Replicated`
    engine_args: str
    tail: str
    sharding_key: str


_TABLES = (
    _Table(
        EVENTS,
        _EVENT_COLUMNS,
        "ReplacingMergeTree",
        "version, is_deleted",
        "PARTITION BY toYYYYMM(timestamp) "
        f"ORDER BY (environment_id, external_customer_id, event_name, timestamp, event_id) SETTINGS {_MONTH_MERGE}",
        "cityHash64(environment_id, external_customer_id)",
    ),
    _Table(
        EVENT_KEYS,
        _KEY_COLUMNS,
        "ReplacingMergeTree",
        "version, is_deleted",
        "ORDER BY (environment_id, event_id, external_customer_id, event_name, timestamp)",
        "cityHash64(environment_id, event_id)",
    ),
    _Table(
        COPY_PROGRESS, _PROGRESS_COLUMNS, "ReplacingMergeTree", "updated_at", "ORDER BY source", "cityHash64(source)"
    ),
)


def schema_statements(database: str, cluster: str = "") -> list[str]:
    """The statements `migrate_events` runs, in order; idempotent (`IF NOT EXISTS`)."""
    on_cluster = f" ON CLUSTER {_quoted(cluster)}" if cluster else ""
    statements = [f"CREATE DATABASE IF NOT EXISTS {database}{on_cluster}"]
    for table in _TABLES:
        if not cluster:
            statements.append(
                f"CREATE TABLE IF NOT EXISTS {database}.{table.name} ({table.columns}\n) "
                f"ENGINE = {table.engine}({table.engine_args}) {table.tail}"
            )
            continue
        local = f"{table.name}_local"
        zookeeper_path = f"'/clickhouse/tables/{{shard}}/{database}/{local}', '{{replica}}'"
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {database}.{local}{on_cluster} ({table.columns}\n) "
            f"ENGINE = Replicated{table.engine}({zookeeper_path}, {table.engine_args}) {table.tail}"
        )
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {database}.{table.name}{on_cluster} AS {database}.{local} "
            f"ENGINE = Distributed({_quoted(cluster)}, {database}, {local}, {table.sharding_key})"
        )
    added = "ADD COLUMN IF NOT EXISTS first_version UInt64 DEFAULT version"
    for base in (EVENTS, EVENT_KEYS):
        # tables created before the column; a no-op for the ones created above (with a cluster: the local tables,
        # then the distributed ones, which must show the column too)
        for name in (f"{base}_local", base) if cluster else (base,):
            statements.append(f"ALTER TABLE {database}.{name}{on_cluster} {added}")
    # tables created before the months were merged (a distributed table has no parts: only the local one)
    merged = f"{EVENTS}_local" if cluster else EVENTS
    statements.append(f"ALTER TABLE {database}.{merged}{on_cluster} MODIFY SETTING {_MONTH_MERGE}")
    return statements


def _quoted(name: str) -> str:
    return "'" + name.replace("\\", "\\\\").replace("'", "\\'") + "'"
