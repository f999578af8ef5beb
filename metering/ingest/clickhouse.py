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

Batches that arrive while another is being written take these steps together, as one group written as if in
turn (metering/ingest/group_commit.py). Reads use `events FINAL`. The inserts are synchronous: when this returns
(and the API answers 202) the rows are written (on a cluster: on the shards, with the quorum). docs/clickhouse.md
discusses the race and cluster.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa
from django.db import connection, transaction
from django.utils import timezone

from metering.clickhouse.config import CLICKHOUSE, EventsBackend, clickhouse_client
from metering.clickhouse.rows import EVENT_COLUMNS, event_columns
from metering.clickhouse.schema import EVENT_KEYS, EVENTS
from metering.ingest.group_commit import GroupCommit
from metering.ingest.marks import usage_marks_write
from metering.ingest.validation import EventInput
from metering.ingest.writer import IngestResult

_TIMESTAMP = pa.timestamp("us", tz="UTC")
_TEXTS = pa.list_(pa.string())
_TEXT_MAP = pa.map_(pa.string(), pa.string())
# Rows go to ClickHouse as Arrow tables, built column by column in C: clickhouse-connect's own Native encoding of
# Python rows cost about as much per request as everything else in the writer together (docs/clickhouse.md).
_EVENT_TYPES = dict(
    zip(
        EVENT_COLUMNS,
        (
            pa.uint64(),
            pa.string(),
            pa.string(),
            pa.string(),
            _TIMESTAMP,
            _TIMESTAMP,
            pa.string(),
            pa.string(),
            _TEXT_MAP,
            _TEXT_MAP,
            _TEXTS,
            _TEXTS,
            pa.uint64(),
            pa.uint8(),
            pa.uint64(),
        ),
        strict=True,
    )
)
_KEY_TYPES = {
    "environment_id": pa.uint64(),
    "event_id": pa.string(),
    "external_customer_id": pa.string(),
    "event_name": pa.string(),
    "timestamp": _TIMESTAMP,
    "version": pa.uint64(),
    "first_version": pa.uint64(),
    "is_deleted": pa.uint8(),
}
_STRIPES = [threading.Lock() for _ in range(256)]
_LOOKUP_CHUNK = 5000


def _stripe(environment_id: int, event_id: str) -> int:
    return zlib.crc32(f"{environment_id}\x00{event_id}".encode())


@contextlib.contextmanager
def _ids_locked(backend: EventsBackend, ids_by_environment: dict[int, list[str]]) -> Iterator[None]:
    """Hold the locks of these ids: stripes in ascending order (no deadlock between batches), and on a server
    shared by several processes the same hashes as PostgreSQL transaction-level advisory locks."""
    hashes = sorted(
        {_stripe(environment_id, event_id) for environment_id, ids in ids_by_environment.items() for event_id in ids}
    )
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
    columns = "event_id, external_customer_id, event_name, timestamp, version, first_version"
    for start in range(0, len(event_ids), _LOOKUP_CHUNK):
        chunk = event_ids[start : start + _LOOKUP_CHUNK]
        parameter: list[str] | str
        if any("\x00" in event_id for event_id in chunk):  # stored ids never hold NUL (flexmeter/text.py)
            ids, parameter = "%(ids)s", chunk
        else:
            # one string to bind and parse instead of a thousand: 6.8 → 4.6 ms for a batch's 1,000 ids
            ids, parameter = "splitByChar('\\0', %(ids)s)", "\x00".join(chunk)
        result = client.query(
            f"SELECT {columns} FROM {backend.database}.{EVENT_KEYS} FINAL "
            f"WHERE environment_id = %(environment)s AND event_id IN {ids}",
            parameters={"environment": environment_id, "ids": parameter},
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


def _table(columns: dict[str, list], types: dict[str, pa.DataType]) -> pa.Table:
    return pa.table({name: pa.array(values, type=types[name]) for name, values in columns.items()})


def _insert(client, backend: EventsBackend, table: str, *parts: pa.Table) -> None:
    data = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
    client.insert_arrow(table, data, database=backend.database, settings=_insert_settings(backend))


@dataclass(frozen=True)
class _Batch:
    """One caller's validated events, with the columns that do not depend on what is stored."""

    environment_id: int
    events: list[EventInput]
    columns: dict[str, list]
    rows: pa.Table


@dataclass(frozen=True)
class _Written:
    result: IngestResult
    left: list[tuple]  # the keys the batch hid: `(event_id, customer, name, timestamp, first_version)`


_group_commits: dict[str, GroupCommit[_Batch, _Written]] = {}
_group_commits_lock = threading.Lock()
# Batches written together hold at most this many events (a bulk request holds up to a thousand): the lookup and
# the two inserts stay bounded.
GROUP_EVENTS = 10_000


def _group_commit(backend: EventsBackend) -> GroupCommit[_Batch, _Written]:
    with _group_commits_lock:
        group_commit = _group_commits.get(backend.url)
        if group_commit is None:
            group_commit = GroupCommit(lambda batches: _write_group(backend, batches), max_size=GROUP_EVENTS)
            _group_commits[backend.url] = group_commit
        return group_commit


def clickhouse_events_store(
    *, backend: EventsBackend, environment_id: int, events: list[EventInput], ingested_at: dt.datetime | None = None
) -> IngestResult:
    """Store validated events; a redelivered id replaces the stored event wherever its key moved (last delivery
    wins) and is counted as a duplicate. Within the batch a repeated id keeps the last occurrence. Batches that
    arrive while another is being written are written together with the others waiting (metering/ingest/
    group_commit.py); this returns when this batch's events are written."""
    if not events:
        return IngestResult(accepted=0, duplicates=0)
    if len({event.event_id for event in events}) != len(events):
        events = list({event.event_id: event for event in events}.values())
    # Everything that does not depend on what is stored is built before the group's locks, by each caller.
    columns = event_columns(environment_id, events, ingested_at or timezone.now())
    batch = _Batch(environment_id, events, columns, _table(columns, _EVENT_TYPES))
    written = _group_commit(backend).write(batch, size=len(events))
    # in the caller's transaction, like the marks of the pairs it wrote (metering/ingest/writer.py)
    _left_marked(environment_id, written.left)
    return written.result


def _write_group(backend: EventsBackend, batches: Sequence[_Batch]) -> list[_Written]:
    """Write the batches as if one after another, in their order, with one lookup per environment and one insert
    per table: a later batch's redelivery of an id an earlier one wrote replaces it (a higher version, and a
    tombstone where the key moved) and counts as a duplicate."""
    client = clickhouse_client(backend)
    ids_by_environment: dict[int, list[str]] = {}
    for batch in batches:
        ids_by_environment.setdefault(batch.environment_id, []).extend(event.event_id for event in batch.events)
    with _ids_locked(backend, ids_by_environment):
        known = {
            (environment_id, event_id): keys
            for environment_id, ids in ids_by_environment.items()
            for event_id, keys in _stored_keys(client, backend, environment_id, list(dict.fromkeys(ids))).items()
        }
        newest = max((version for keys in known.values() for *_, version, _ in keys), default=0)
        next_version = max(time.time_ns(), newest + 1)
        written, key_tables, row_tables = [], [], []
        for version, batch in enumerate(batches, start=next_version):
            # a redelivery keeps the version of the first delivery (the digest reports an event once, by it)
            first_versions = [version] * len(batch.events)
            left: list[tuple] = []
            duplicates = 0
            for index, event in enumerate(batch.events):
                key = (event.external_customer_id, event.event_name, _utc(event.timestamp))
                earlier = known.get((batch.environment_id, event.event_id))
                if earlier:
                    duplicates += 1
                    first_versions[index] = min(first for *_, first in earlier)
                    left.extend(
                        (event.event_id, customer, name, timestamp, first_versions[index])
                        for customer, name, timestamp, *_ in earlier
                        if (customer, name, timestamp) != key
                    )
                stored_as = (*key, version, first_versions[index])
                known[(batch.environment_id, event.event_id)] = [*(earlier or ()), stored_as]
            versions = [version] * len(batch.events)
            key_tables.append(
                _table(
                    {
                        "environment_id": batch.columns["environment_id"],
                        "event_id": [event.event_id for event in batch.events],
                        "external_customer_id": batch.columns["external_customer_id"],
                        "event_name": batch.columns["event_name"],
                        "timestamp": batch.columns["timestamp"],
                        "version": versions,
                        "first_version": first_versions,
                    },
                    _KEY_TYPES,
                )
            )
            rows = batch.rows.append_column("version", pa.array(versions, type=pa.uint64()))
            rows = rows.append_column("is_deleted", pa.array([0] * len(batch.events), type=pa.uint8()))
            row_tables.append(rows.append_column("first_version", pa.array(first_versions, type=pa.uint64())))
            if left:
                row_tables.append(_tombstones(batch.environment_id, left, version))
            written.append(_Written(IngestResult(accepted=len(batch.events), duplicates=duplicates), left))
        _insert(client, backend, EVENT_KEYS, *key_tables)
        _insert(client, backend, EVENTS, *row_tables)
    return written


def _left_marked(environment_id: int, keys: list[tuple]) -> None:
    """Usage marks for the (customer, event name) pairs of the keys a write hid (`(event_id, customer, name, …)`):
    their usage fell. After the events, as the writer marks the pairs it wrote (on the Django database a trigger
    does this)."""
    usage_marks_write(environment_id=environment_id, pairs={(customer, name) for _, customer, name, *_ in keys})


def _tombstones(environment_id: int, keys: list[tuple], version: int) -> pa.Table:
    """Rows that hide the event rows with these sort keys, `(event_id, customer, name, timestamp, first_version)`
    (ReplacingMergeTree's `is_deleted`). Each carries the hidden row's `first_version`, so every row of one sort key
    agrees on it, and a read that filtered on it before FINAL (the digest's window) could not keep a hidden row
    while dropping its tombstone."""
    event_ids, customers, names, timestamps, first_versions = (list(column) for column in zip(*keys, strict=True))
    count = len(keys)
    columns = {
        "environment_id": [environment_id] * count,
        "event_id": event_ids,
        "event_name": names,
        "external_customer_id": customers,
        "timestamp": timestamps,
        "ingested_at": timestamps,
        "source": [""] * count,
        "properties": ["{}"] * count,
        "texts": [{}] * count,
        "numbers": [{}] * count,
        "inexact": [[]] * count,
        "beyond_rule": [[]] * count,
        "version": [version] * count,
        "is_deleted": [1] * count,
        "first_version": first_versions,
    }
    return _table(columns, _EVENT_TYPES)


def clickhouse_events_delete(*, backend: EventsBackend, environment_id: int, event_ids: list[str]) -> int:
    """Delete these events: a tombstone for every key each id was stored under, and its keys written again as
    deleted (so a later delivery of the id is new, not a duplicate). Returns how many events were stored."""
    event_ids = list(dict.fromkeys(event_ids))
    if not event_ids:
        return 0
    client = clickhouse_client(backend)
    with _ids_locked(backend, {environment_id: event_ids}):
        stored = _stored_keys(client, backend, environment_id, event_ids)
        if not stored:
            return 0
        newest = max(version for keys in stored.values() for *_, version, _ in keys)
        version = max(time.time_ns(), newest + 1)
        key_rows = [
            (event_id, customer, name, timestamp, first_version)
            for event_id, keys in stored.items()
            for customer, name, timestamp, _, first_version in keys
        ]
        event_ids, customers, names, timestamps, first_versions = (list(c) for c in zip(*key_rows, strict=True))
        count = len(key_rows)
        keys_deleted: dict[str, list] = {
            "environment_id": [environment_id] * count,
            "event_id": event_ids,
            "external_customer_id": customers,
            "event_name": names,
            "timestamp": timestamps,
            "version": [version] * count,
            "first_version": first_versions,
            "is_deleted": [1] * count,
        }
        _insert(client, backend, EVENT_KEYS, _table(keys_deleted, _KEY_TYPES))
        _insert(client, backend, EVENTS, _tombstones(environment_id, key_rows, version))
    _left_marked(environment_id, key_rows)
    return len(stored)
