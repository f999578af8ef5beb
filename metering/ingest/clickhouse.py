"""The writer of events on the ClickHouse backend: SPEC §3's idempotency without a unique constraint.

ClickHouse has no constraint to decide "is this id new?" inside the write, so the decision is made under a lock
on the event ids being written, and recorded so that reads need no lock at all:

1. lock the `(environment, event_id)`s of the batch (process-wide stripes; on a ClickHouse server, also
   PostgreSQL advisory locks, so several API processes serialize on the same ids);
2. read every sort key those ids ever had from `event_keys` (a delivery is a duplicate if there is one);
3. pick a version greater than all of theirs;
4. write the new keys to `event_keys` (first: if the process dies before step 5 the retry still finds them),
   then one insert into `events`: the new rows, and a tombstone (`is_deleted = 1`, same version) for every
   earlier key that differs from the new one, so a redelivery that moved the event in time, to another
   customer or to another name hides the old row; a redelivery with the same key replaces it by version.

Reads use `events FINAL`. The inserts are synchronous: when this returns (and the API answers 202) the rows
are written (on a cluster: on the shards, with the quorum). docs/clickhouse.md discusses the race and cluster.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
import zlib
from collections.abc import Iterator

from django.db import connection, transaction
from django.utils import timezone

from metering.clickhouse.config import CLICKHOUSE, EventsBackend, clickhouse_client
from metering.clickhouse.rows import EVENT_COLUMNS, event_row
from metering.clickhouse.schema import EVENT_KEYS, EVENTS
from metering.ingest.validation import EventInput
from metering.ingest.writer import IngestResult

KEY_COLUMNS = (
    "environment_id",
    "event_id",
    "external_customer_id",
    "event_name",
    "timestamp",
    "version",
    "first_version",
)
_STRIPES = [threading.Lock() for _ in range(256)]
_LOOKUP_CHUNK = 5000


def _stripe(environment_id: int, event_id: str) -> int:
    return zlib.crc32(f"{environment_id}\x00{event_id}".encode())


@contextlib.contextmanager
def _ids_locked(backend: EventsBackend, environment_id: int, event_ids: list[str]) -> Iterator[None]:
    """Hold the locks of these ids: stripes in ascending order (no deadlock between batches), and on a server
    shared by several processes the same hashes as PostgreSQL transaction-level advisory locks."""
    hashes = sorted({_stripe(environment_id, event_id) for event_id in event_ids})
    stripes = sorted({value % len(_STRIPES) for value in hashes})
    with contextlib.ExitStack() as stack:
        for index in stripes:
            stack.enter_context(_STRIPES[index])
        if backend.kind == CLICKHOUSE and connection.vendor == "postgresql":
            stack.enter_context(transaction.atomic())
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(h) FROM unnest(%s::bigint[]) AS h ORDER BY h", [hashes])
        yield


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _stored_keys(client, backend: EventsBackend, environment_id: int, event_ids: list[str]) -> dict[str, list]:
    """Every (customer, name, timestamp) each id was ever stored under, with the version that wrote it and the
    version of the id's first delivery."""
    found: dict[str, list] = {}
    for start in range(0, len(event_ids), _LOOKUP_CHUNK):
        chunk = event_ids[start : start + _LOOKUP_CHUNK]
        result = client.query(
            f"SELECT event_id, external_customer_id, event_name, timestamp, version, first_version "
            f"FROM {backend.database}.{EVENT_KEYS} FINAL "
            f"WHERE environment_id = %(environment)s AND event_id IN %(ids)s",
            parameters={"environment": environment_id, "ids": chunk},
        )
        for event_id, customer, name, timestamp, version, first_version in result.result_rows:
            found.setdefault(event_id, []).append((customer, name, _utc(timestamp), version, first_version))
    return found


def _insert_settings(backend: EventsBackend) -> dict:
    # A batch of history (an import, a bulk backfill, the copy from the Django database) may span any number of
    # monthly partitions, and its tombstones those of every earlier key: ClickHouse's default refusal of more than
    # 100 partitions per insert would fail it (after `event_keys` was written), so the limit is lifted.
    settings: dict = {"max_partitions_per_insert_block": 0}
    if backend.cluster:
        # answer only when the shards have the rows, written by a quorum of replicas
        settings |= {"distributed_foreground_insert": 1, "insert_quorum": "auto"}
    return settings


def clickhouse_events_store(
    *, backend: EventsBackend, environment_id: int, events: list[EventInput], ingested_at: dt.datetime | None = None
) -> IngestResult:
    """Store validated events; a redelivered id replaces the stored event wherever its key moved (last delivery
    wins) and is counted as a duplicate. Within the batch a repeated id keeps the last occurrence."""
    if not events:
        return IngestResult(accepted=0, duplicates=0)
    if len({event.event_id for event in events}) != len(events):
        events = list({event.event_id: event for event in events}.values())
    client = clickhouse_client(backend)
    ingested_at = ingested_at or timezone.now()
    ids = [event.event_id for event in events]
    with _ids_locked(backend, environment_id, ids):
        stored = _stored_keys(client, backend, environment_id, ids)
        newest = max((version for keys in stored.values() for *_, version, _ in keys), default=0)
        version = max(time.time_ns(), newest + 1)
        key_rows = []
        event_rows = []
        for event in events:
            key = (event.external_customer_id, event.event_name, _utc(event.timestamp))
            earlier = stored.get(event.event_id, ())
            # a redelivery keeps the version of the first delivery (the digest reports an event once, by it)
            first_version = min((first for *_, first in earlier), default=version)
            key_rows.append([environment_id, event.event_id, *key, version, first_version])
            event_rows.append(event_row(environment_id, event, ingested_at, version, first_version))
            for customer, name, timestamp, *_ in earlier:
                if (customer, name, timestamp) != key:
                    event_rows.append(
                        _tombstone(environment_id, event.event_id, customer, name, timestamp, version, first_version)
                    )
        settings = _insert_settings(backend)
        client.insert(EVENT_KEYS, key_rows, column_names=KEY_COLUMNS, database=backend.database, settings=settings)
        client.insert(EVENTS, event_rows, column_names=EVENT_COLUMNS, database=backend.database, settings=settings)
    return IngestResult(accepted=len(events), duplicates=len(stored))


def _tombstone(environment_id, event_id, customer, name, timestamp, version, first_version) -> list:
    """A row that hides the event's row with this sort key (ReplacingMergeTree's `is_deleted`). It carries the
    hidden row's `first_version`, so every row of one sort key agrees on it, and a read that filtered on it before
    FINAL (the digest's window) could not keep a hidden row while dropping its tombstone."""
    return [
        environment_id,
        event_id,
        name,
        customer,
        timestamp,
        timestamp,
        "",
        "{}",
        {},
        {},
        [],
        [],
        version,
        1,
        first_version,
    ]


def clickhouse_events_delete(*, backend: EventsBackend, environment_id: int, event_ids: list[str]) -> int:
    """Delete these events: a tombstone for every key each id was stored under, and its keys written again as
    deleted (so a later delivery of the id is new, not a duplicate). Returns how many events were stored."""
    event_ids = list(dict.fromkeys(event_ids))
    if not event_ids:
        return 0
    client = clickhouse_client(backend)
    with _ids_locked(backend, environment_id, event_ids):
        stored = _stored_keys(client, backend, environment_id, event_ids)
        if not stored:
            return 0
        newest = max(version for keys in stored.values() for *_, version, _ in keys)
        version = max(time.time_ns(), newest + 1)
        key_rows, event_rows = [], []
        for event_id, keys in stored.items():
            for customer, name, timestamp, _, first_version in keys:
                key_rows.append([environment_id, event_id, customer, name, timestamp, version, first_version, 1])
                event_rows.append(
                    _tombstone(environment_id, event_id, customer, name, timestamp, version, first_version)
                )
        settings = _insert_settings(backend)
        client.insert(
            EVENT_KEYS,
            key_rows,
            column_names=(*KEY_COLUMNS, "is_deleted"),
            database=backend.database,
            settings=settings,
        )
        client.insert(EVENTS, event_rows, column_names=EVENT_COLUMNS, database=backend.database, settings=settings)
    return len(stored)
