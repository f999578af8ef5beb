"""The one writer of events (SPEC §3): idempotent storage of validated events.

`events_store` writes a batch in one transaction where a redelivered `event_id` replaces the stored event (last
delivery wins) inside the same statement as the write. On PostgreSQL a large batch is first COPied straight into
the table (the common case: all events new); if the unique constraint rejects it, the batch goes through a
staging table and one `INSERT … ON CONFLICT DO UPDATE`, which counts duplicates exactly with `xmax = 0`. Small
batches use one multi-row upsert. SQLite does the same upsert under its database-wide write lock.
"""

import datetime as dt
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from django.db import connection, transaction
from django.utils import timezone

from flexmeter.db import server_bound_cursor
from flexmeter.models import Environment
from flexmeter.services import api_key_authenticate, api_key_ctes
from metering.clickhouse.config import events_backend
from metering.ingest.marks import marks_cte, pairs_from_copy_text, usage_marks_write
from metering.ingest.validation import EventInput
from metering.models import Event


@dataclass(frozen=True, slots=True)
class IngestResult:
    """`accepted` events were written; `duplicates` of them replaced an event already stored."""

    accepted: int
    duplicates: int

    @property
    def inserted(self) -> int:
        return self.accepted - self.duplicates


def events_store(*, environment: Environment, events: list[EventInput]) -> IngestResult:
    """Write validated events atomically; a redelivered `event_id` replaces the stored row (last delivery wins).

    Returns how many were written and how many of those replaced an existing event. Safe under concurrent
    deliveries of the same id: the database constraint decides, in the same statement as the write.
    """
    if not events:
        return IngestResult(accepted=0, duplicates=0)
    backend = events_backend()
    if backend.is_clickhouse:
        from metering.ingest.clickhouse import clickhouse_events_store  # the optional extra, only when selected

        result = clickhouse_events_store(backend=backend, environment_id=environment.pk, events=events)
        # After the events, not in their transaction (ClickHouse has none with the Django database): an evaluator
        # pass that reads the mark then sees the events; if the process dies in between, the client got no 202
        # and its retry writes the marks.
        usage_marks_write(
            environment_id=environment.pk, pairs={(event.external_customer_id, event.event_name) for event in events}
        )
        return result
    if len({event.event_id for event in events}) != len(events):
        events = list({event.event_id: event for event in events}.values())
    ingested_at = timezone.now()
    if connection.vendor == "postgresql":
        if len(events) >= _COPY_THRESHOLD:
            duplicates = _store_postgresql_batch(environment.pk, events, ingested_at)
        else:
            duplicates = _store_postgresql_values(environment.pk, events, ingested_at)
    else:
        duplicates = _store_generic(environment, events, ingested_at)
    return IngestResult(accepted=len(events), duplicates=duplicates)


def events_store_for_key(*, raw_key: str, events: list[EventInput]) -> IngestResult | None:
    """`events_store` for the environment of the API key `raw_key`; None (and nothing stored) if the key is
    missing, unknown or revoked.

    On PostgreSQL a small batch (one event per request is the common case) is authenticated and written by one
    statement in autocommit: a single round trip and commit instead of a key lookup, then the write.
    """
    if not raw_key:
        return None
    if connection.vendor == "postgresql" and 0 < len(events) < _COPY_THRESHOLD and not events_backend().is_clickhouse:
        if len({event.event_id for event in events}) != len(events):
            events = list({event.event_id: event for event in events}.values())
        return _store_postgresql_values_for_key(raw_key, events, timezone.now())
    api_key = api_key_authenticate(raw_key)
    if api_key is None:
        return None
    return events_store(environment=api_key.environment, events=events)


# PostgreSQL --------------------------------------------------------------------------------------------------

# Below this size one multi-row INSERT is a single round trip; above it COPY into a staging table is cheaper.
_COPY_THRESHOLD = 50
_COLUMNS = 'environment_id, event_id, event_name, external_customer_id, "timestamp", ingested_at, source, properties'
_UPSERT_TAIL = """
    ON CONFLICT (environment_id, event_id) DO UPDATE SET
        event_name = EXCLUDED.event_name,
        external_customer_id = EXCLUDED.external_customer_id,
        "timestamp" = EXCLUDED."timestamp",
        ingested_at = EXCLUDED.ingested_at,
        source = EXCLUDED.source,
        properties = EXCLUDED.properties
    RETURNING (xmax = 0) AS inserted, environment_id, external_customer_id, event_name
"""
_STAGING_TABLE = "metering_event_staging"
# Raw psycopg connections that already have the session's staging table (one per pooled connection).
_connections_with_staging: "weakref.WeakSet" = weakref.WeakSet()


def _row(environment_id: int, event: EventInput, ingested_at: dt.datetime) -> tuple:
    return (environment_id, *_values(event, ingested_at))


def _values(event: EventInput, ingested_at: dt.datetime) -> tuple:
    return (
        event.event_id,
        event.event_name,
        event.external_customer_id,
        event.timestamp,
        ingested_at,
        event.source,
        event.properties_json,
    )


def _count_duplicates_sql(insert_sql: str, *, before: str = "") -> str:
    """Wrap an upsert so the statement answers one number: how many rows replaced an existing event. The same
    statement marks the written (customer, event name) pairs for the alert evaluator."""
    return (
        f"WITH {before} written AS ({insert_sql}), {marks_cte('written')} "
        "SELECT count(*) FILTER (WHERE NOT inserted) FROM written"
    )


def _store_postgresql_values(environment_id: int, events: list[EventInput], ingested_at: dt.datetime) -> int:
    """Small batches: one multi-row `INSERT … ON CONFLICT DO UPDATE`, a single statement (atomic by itself)."""
    events = sorted(events, key=lambda event: event.event_id)  # a fixed lock order avoids deadlocks
    placeholders = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s::jsonb)"] * len(events))
    params = [value for event in events for value in _row(environment_id, event, ingested_at)]
    sql = _count_duplicates_sql(f"INSERT INTO metering_event ({_COLUMNS}) VALUES {placeholders} {_UPSERT_TAIL}")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


_KEYED_VALUES_ROW = "(%s, %s, %s, %s::timestamptz, %s::timestamptz, %s, %s::jsonb)"
_KEYED_VALUES_COLUMNS = 'event_id, event_name, external_customer_id, "timestamp", ingested_at, source, properties'


def _store_postgresql_values_for_key(
    raw_key: str, events: list[EventInput], ingested_at: dt.datetime
) -> IngestResult | None:
    """The same upsert for the environment of an active API key, authenticated by the same statement: the
    events are joined to the key's row, so an unknown or revoked key writes nothing. Rows keep event_id order."""
    events = sorted(events, key=lambda event: event.event_id)
    key_ctes, params = api_key_ctes(raw_key)
    params.extend(value for event in events for value in _values(event, ingested_at))
    values = ", ".join([_KEYED_VALUES_ROW] * len(events))
    sql = (
        f"WITH {key_ctes}, written AS ("
        f"INSERT INTO metering_event ({_COLUMNS}) SELECT api_key.environment_id, v.* "
        f"FROM api_key CROSS JOIN (VALUES {values}) AS v ({_KEYED_VALUES_COLUMNS}) {_UPSERT_TAIL}), "
        f"{marks_cte('written')} "
        "SELECT (SELECT count(*) FROM api_key), count(*) FILTER (WHERE NOT inserted) FROM written"
    )
    with server_bound_cursor() as cursor:  # prepared after a few requests: no parsing or planning per event
        cursor.execute(sql, params)
        authenticated, duplicates = cursor.fetchone()
    if not authenticated:
        return None
    return IngestResult(accepted=len(events), duplicates=duplicates)


def _store_postgresql_batch(environment_id: int, events: list[EventInput], ingested_at: dt.datetime) -> int:
    """Large batches: COPY rows written by psycopg (see `_copy_or_upsert`), in event_id order."""
    events = sorted(events, key=lambda event: event.event_id)

    def write(copy) -> None:
        for event in events:
            copy.write_row(_row(environment_id, event, ingested_at))

    pairs = {(event.external_customer_id, event.event_name) for event in events}
    return _copy_or_upsert(write, _COLUMNS, direct=True, marks=(environment_id, pairs))


def events_store_copy_text(data: bytes, *, columns: str, direct: bool) -> int:
    """Store ready-made PostgreSQL COPY text (rows of `columns`, unique ids in event_id order, `ingested_at`
    included) with the same semantics as `events_store`; returns how many replaced a stored event. `direct`
    first tries a plain COPY into the table, worth it when the ids are probably all new. The rows must share one
    environment (an import's batches do)."""
    marks = None
    if direct and data:
        environment_id = int(data[: data.index(b"\t")])
        marks = (environment_id, pairs_from_copy_text(data, columns))
    return _copy_or_upsert(lambda copy: copy.write(data), columns, direct=direct, marks=marks)


def _copy_or_upsert(
    write: Callable[[Any], None], columns: str, *, direct: bool, marks: tuple[int, set[tuple[str, str]]] | None
) -> int:
    """Try a plain COPY into the table (when `direct`); when any id already exists, upsert through staging.

    A COPY into the indexed table costs PostgreSQL about a third less than staging + upsert. It is all or
    nothing: a unique violation (an id already stored, or being stored by a concurrent delivery, which the COPY
    waits for) rolls back just this attempt, and the upsert then replaces those events. Rows go in event_id
    order on both paths so concurrent batches take row locks in the same order and cannot deadlock. `write`
    writes the rows into a psycopg `Copy`; it may be called twice. `marks` (environment id, customer and event name
    pairs) are the usage marks of a direct COPY; the upsert marks what it wrote in its own statement.
    """
    if direct:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                with cursor.copy(f"COPY metering_event ({columns}) FROM STDIN") as copy:
                    write(copy)
                if marks is not None:
                    usage_marks_write(environment_id=marks[0], pairs=marks[1])
            return 0
        except psycopg.errors.UniqueViolation:
            pass
    move = _count_duplicates_sql(
        f"INSERT INTO metering_event ({_COLUMNS}) SELECT {_COLUMNS} FROM staged ORDER BY event_id {_UPSERT_TAIL}",
        before=f"staged AS (DELETE FROM {_STAGING_TABLE} RETURNING *),",
    )
    with transaction.atomic(), connection.cursor() as cursor:
        _ensure_staging_table(cursor)
        with cursor.copy(f"COPY {_STAGING_TABLE} ({columns}) FROM STDIN") as copy:
            write(copy)
        cursor.execute(move)
        return cursor.fetchone()[0]


def _ensure_staging_table(cursor) -> None:
    raw_connection = connection.connection
    if raw_connection in _connections_with_staging:
        return
    cursor.execute(
        f"""
        CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGING_TABLE} (
            environment_id bigint NOT NULL,
            event_id varchar(255) NOT NULL,
            event_name varchar(255) NOT NULL,
            external_customer_id varchar(255) NOT NULL,
            "timestamp" timestamptz NOT NULL,
            ingested_at timestamptz NOT NULL,
            source varchar(255) NOT NULL,
            properties jsonb NOT NULL
        ) ON COMMIT DELETE ROWS
        """
    )
    # Remember it only once the creating transaction commits; a rollback would undo the CREATE.
    transaction.on_commit(lambda: _connections_with_staging.add(raw_connection))


# SQLite and others -------------------------------------------------------------------------------------------

_SQLITE_CHUNK = 500
_GENERIC_UPSERT = f"""
    INSERT INTO metering_event ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (environment_id, event_id) DO UPDATE SET
        event_name = excluded.event_name,
        external_customer_id = excluded.external_customer_id,
        "timestamp" = excluded."timestamp",
        ingested_at = excluded.ingested_at,
        source = excluded.source,
        properties = excluded.properties
"""


def _store_generic(environment: Environment, events: list[EventInput], ingested_at: dt.datetime) -> int:
    """The same upsert as one `INSERT … ON CONFLICT DO UPDATE` run with executemany (the statement the ORM's
    `bulk_create(update_conflicts=True)` generates, without building a model instance per event: ~6x faster).
    Values are adapted exactly as the ORM writes them. SQLite runs writes under one database lock (IMMEDIATE
    transactions), so reading which ids exist inside the write transaction is race-free there."""
    adapt_datetime = connection.ops.adapt_datetimefield_value
    ingested = adapt_datetime(ingested_at)
    duplicates = 0
    with transaction.atomic(), connection.cursor() as cursor:
        usage_marks_write(
            environment_id=environment.pk, pairs={(event.external_customer_id, event.event_name) for event in events}
        )
        for start in range(0, len(events), _SQLITE_CHUNK):
            chunk = events[start : start + _SQLITE_CHUNK]
            duplicates += Event.objects.filter(
                environment=environment, event_id__in=[event.event_id for event in chunk]
            ).count()
            cursor.executemany(
                _GENERIC_UPSERT,
                [
                    (
                        environment.pk,
                        event.event_id,
                        event.event_name,
                        event.external_customer_id,
                        adapt_datetime(event.timestamp),
                        ingested,
                        event.source,
                        event.properties_json,
                    )
                    for event in chunk
                ],
            )
    return duplicates


def events_delete(*, environment_slug: str, event_ids: list[str]) -> int:
    """Delete these events of one environment (`check_events --delete`); returns how many rows went. Rollups see the
    deletion through the events table's change marks, as they see every write."""
    backend = events_backend()
    if backend.is_clickhouse:
        from metering.ingest.clickhouse import clickhouse_events_delete  # the optional extra, only when selected

        environment = Environment.objects.get(slug=environment_slug)
        return clickhouse_events_delete(backend=backend, environment_id=environment.pk, event_ids=event_ids)
    deleted, _ = Event.objects.filter(environment__slug=environment_slug, event_id__in=event_ids).delete()
    return deleted
