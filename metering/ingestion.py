"""Event ingestion: validation (SPEC §2.3) and idempotent storage (SPEC §3).

`event_clean` / `events_clean` turn raw JSON objects into `EventInput`s or raise `ValidationFailed` with JSON
paths (`events[3].timestamp`). `events_store` writes a batch in one transaction where a redelivered `event_id`
replaces the stored event (last delivery wins) inside the same statement as the write. On PostgreSQL a large
batch is first COPied straight into the table (the common case: all events new); if the unique constraint
rejects it, the batch goes through a staging table and one `INSERT … ON CONFLICT DO UPDATE`, which counts
duplicates exactly with `xmax = 0`. Small batches use one multi-row upsert. SQLite does the same upsert under
its database-wide write lock.

Validation is plain Python rather than pydantic: it runs for every one of thousands of events per second,
and it must give the same messages to the REST API, the import command and the dashboard's test box.
"""

import datetime as dt
import re
import weakref
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg
from django.db import connection, transaction
from django.utils import timezone
from ulid import ULID

from flexmeter.db import server_bound_cursor
from flexmeter.errors import ValidationFailed
from flexmeter.models import Environment
from flexmeter.services import api_key_authenticate, api_key_ctes
from metering import exactjson
from metering.models import Event

MAX_TEXT_LENGTH = 255
MAX_PROPERTY_KEYS = 100
MAX_PROPERTIES_BYTES = 32 * 1024
MAX_BULK_EVENTS = 1000
MAX_FUTURE = dt.timedelta(hours=24)
EVENT_ID_PREFIX = "event_"

# RFC 3339 date-time: a zone offset or Z is mandatory; fractional seconds of any length (Go sends nanoseconds).
# An escaped NUL in JSON text (not an escaped backslash followed by "u0000"); jsonb rejects it.
_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$",
)


@dataclass(frozen=True, slots=True)
class EventInput:
    """One validated event, ready to store. `properties_json` is the exact JSON text of `properties` (derived
    when not given; `event_clean` passes the text it measured)."""

    event_id: str
    event_name: str
    external_customer_id: str
    timestamp: dt.datetime
    source: str
    properties: dict[str, Any]
    properties_json: str | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.properties_json is None:
            object.__setattr__(self, "properties_json", exactjson.dumps(self.properties))


@dataclass(frozen=True, slots=True)
class IngestResult:
    """`accepted` events were written; `duplicates` of them replaced an event already stored."""

    accepted: int
    duplicates: int

    @property
    def inserted(self) -> int:
        return self.accepted - self.duplicates


def new_event_id() -> str:
    return f"{EVENT_ID_PREFIX}{ULID()}"


def parse_timestamp(value: Any) -> dt.datetime:
    """RFC 3339 with a zone offset or Z → aware UTC datetime (microseconds; extra digits are truncated).

    Raises ValueError with a message fit for the API.
    """
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 string such as 2024-05-01T12:00:00Z")
    value = value.strip()
    if _RFC3339.match(value) is None:
        raise ValueError("must be RFC 3339 with a zone offset or Z, such as 2024-05-01T12:00:00Z")
    # The pattern is the RFC 3339 check; fromisoformat parses what it admits (truncating fractions beyond
    # microseconds) except the lower-case `t` and `z` that RFC 3339 also allows.
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = dt.datetime.fromisoformat(value.upper())
        except ValueError as exc:
            raise ValueError(f"is not a valid date and time ({exc})") from None
    try:
        return parsed if parsed.tzinfo is dt.UTC else parsed.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError("is outside the supported years 0001–9999 once converted to UTC") from None


def text_problem(value: str) -> str | None:
    """PostgreSQL text and jsonb cannot hold NUL, and UTF-8 cannot encode lone surrogates (`"\\ud800"`)."""
    if "\x00" in value:
        return "must not contain NUL (\\u0000) characters"
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            return "must be valid Unicode (it contains a lone surrogate)"
    return None


def _required_text(raw: dict, key: str, errors: dict[str, str]) -> str:
    value = raw.get(key)
    if value is None:
        errors[key] = "is required"
    elif not isinstance(value, str):
        errors[key] = f"must be a string, not {_json_type(value)}"
    elif not value.strip():
        errors[key] = "must not be blank"
    elif len(value) > MAX_TEXT_LENGTH:
        errors[key] = f"must be at most {MAX_TEXT_LENGTH} characters (got {len(value)})"
    elif problem := text_problem(value):
        errors[key] = problem
    else:
        return value
    return ""


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float, Decimal)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def event_clean(raw: Any, *, now: dt.datetime | None = None) -> EventInput:
    """Validate one event (SPEC §2.3). Unknown top-level fields are ignored.

    Raises ValidationFailed whose details map field names (`timestamp`, `properties`) to messages; a
    non-object input is reported under the empty path.
    """
    if not isinstance(raw, dict):
        raise ValidationFailed(details={"": f"an event must be a JSON object, not {_json_type(raw)}"})
    errors: dict[str, str] = {}
    now = now or timezone.now()

    event_name = _required_text(raw, "event_name", errors)
    external_customer_id = _required_text(raw, "external_customer_id", errors)

    event_id = raw.get("event_id")
    if event_id is None or event_id == "":
        event_id = new_event_id()
    elif not isinstance(event_id, str):
        errors["event_id"] = f"must be a string, not {_json_type(event_id)}"
    elif not event_id.strip():
        errors["event_id"] = "must not be blank"
    elif len(event_id) > MAX_TEXT_LENGTH:
        errors["event_id"] = f"must be at most {MAX_TEXT_LENGTH} characters (got {len(event_id)})"
    elif problem := text_problem(event_id):
        errors["event_id"] = problem

    source = raw.get("source")
    if source is None:
        source = ""
    elif not isinstance(source, str):
        errors["source"] = f"must be a string, not {_json_type(source)}"
    elif len(source) > MAX_TEXT_LENGTH:
        errors["source"] = f"must be at most {MAX_TEXT_LENGTH} characters (got {len(source)})"
    elif problem := text_problem(source):
        errors["source"] = problem

    timestamp = raw.get("timestamp")
    if timestamp is None or timestamp == "":
        timestamp = now
    else:
        try:
            timestamp = parse_timestamp(timestamp)
        except ValueError as exc:
            errors["timestamp"] = str(exc)
        else:
            if timestamp - now > MAX_FUTURE:
                errors["timestamp"] = (
                    f"is more than 24 hours in the future ({timestamp.isoformat()} > "
                    f"{(now + MAX_FUTURE).isoformat()}); check the clock and the time zone"
                )

    properties = raw.get("properties")
    properties_json = "{}"
    if properties is None:
        properties = {}
    elif not isinstance(properties, dict):
        errors["properties"] = f"must be a JSON object, not {_json_type(properties)}"
    elif len(properties) > MAX_PROPERTY_KEYS:
        errors["properties"] = f"must have at most {MAX_PROPERTY_KEYS} top-level keys (got {len(properties)})"
    elif properties:
        try:
            properties_json = exactjson.dumps(properties)
        except (TypeError, ValueError) as exc:
            errors["properties"] = f"must be plain JSON ({exc})"
        except RecursionError:
            errors["properties"] = "is nested too deeply"
        else:
            if "\\u0000" in properties_json and _JSON_NUL.search(properties_json):
                errors["properties"] = "must not contain NUL (\\u0000) characters"
            elif problem := text_problem(properties_json):
                errors["properties"] = problem
            else:
                size = len(properties_json) if properties_json.isascii() else len(properties_json.encode())
                if size > MAX_PROPERTIES_BYTES:
                    errors["properties"] = f"must be at most {MAX_PROPERTIES_BYTES} bytes as JSON (got {size})"

    if errors:
        raise ValidationFailed(details=errors)
    return EventInput(
        event_id=event_id,
        event_name=event_name,
        external_customer_id=external_customer_id,
        timestamp=timestamp,
        source=source,
        properties=properties,
        properties_json=properties_json,
    )


def events_clean(
    raw_events: Any, *, now: dt.datetime | None = None, max_events: int | None = None, path: str = "events"
) -> list[EventInput]:
    """Validate a batch all-or-nothing; details use `events[3].timestamp` paths for every invalid event.

    A repeated `event_id` keeps the last occurrence (in that occurrence's position).
    """
    if not isinstance(raw_events, list):
        raise ValidationFailed(details={path: f"must be an array of events, not {_json_type(raw_events)}"})
    if not raw_events:
        raise ValidationFailed(details={path: "must contain at least 1 event"})
    if max_events is not None and len(raw_events) > max_events:
        raise ValidationFailed(
            details={path: f"must contain at most {max_events} events per request (got {len(raw_events)})"}
        )
    now = now or timezone.now()
    errors: dict[str, str] = {}
    by_id: dict[str, EventInput] = {}
    for index, raw in enumerate(raw_events):
        try:
            event = event_clean(raw, now=now)
        except ValidationFailed as exc:
            for key, message in exc.details.items():
                errors[f"{path}[{index}].{key}" if key else f"{path}[{index}]"] = message
            continue
        by_id.pop(event.event_id, None)
        by_id[event.event_id] = event
    if errors:
        invalid = len({key.split("]", 1)[0] for key in errors})
        summary = "; ".join(f"{key}: {message}" for key, message in list(errors.items())[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise ValidationFailed(
            message=f"{invalid} of {len(raw_events)} events are invalid; nothing was stored. {summary}{more}",
            details=errors,
        )
    return list(by_id.values())


def events_store(*, environment: Environment, events: list[EventInput]) -> IngestResult:
    """Write validated events atomically; a redelivered `event_id` replaces the stored row (last delivery wins).

    Returns how many were written and how many of those replaced an existing event. Safe under concurrent
    deliveries of the same id: the database constraint decides, in the same statement as the write.
    """
    if not events:
        return IngestResult(accepted=0, duplicates=0)
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
    if connection.vendor == "postgresql" and 0 < len(events) < _COPY_THRESHOLD:
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
    RETURNING (xmax = 0) AS inserted
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
    """Wrap an upsert so the statement answers one number: how many rows replaced an existing event."""
    return f"WITH {before} written AS ({insert_sql}) SELECT count(*) FILTER (WHERE NOT inserted) FROM written"


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
        f"FROM api_key CROSS JOIN (VALUES {values}) AS v ({_KEYED_VALUES_COLUMNS}) {_UPSERT_TAIL}) "
        "SELECT (SELECT count(*) FROM api_key), count(*) FILTER (WHERE NOT inserted) FROM written"
    )
    with server_bound_cursor() as cursor:  # prepared after a few requests: no parsing or planning per event
        cursor.execute(sql, params)
        authenticated, duplicates = cursor.fetchone()
    if not authenticated:
        return None
    return IngestResult(accepted=len(events), duplicates=duplicates)


def _store_postgresql_batch(environment_id: int, events: list[EventInput], ingested_at: dt.datetime) -> int:
    """Large batches: try a plain COPY into the table; when any id already exists, upsert through staging.

    A COPY into the indexed table costs PostgreSQL about a third less than staging + upsert. It is all or
    nothing: a unique violation (an id already stored, or being stored by a concurrent delivery, which the COPY
    waits for) rolls back just this attempt, and the upsert then replaces those events. Rows go in event_id
    order on both paths so concurrent batches take row locks in the same order and cannot deadlock.
    """
    events = sorted(events, key=lambda event: event.event_id)
    try:
        with (
            transaction.atomic(),
            connection.cursor() as cursor,
            cursor.copy(f"COPY metering_event ({_COLUMNS}) FROM STDIN") as copy,
        ):
            for event in events:
                copy.write_row(_row(environment_id, event, ingested_at))
        return 0
    except psycopg.errors.UniqueViolation:
        return _store_postgresql_upsert(environment_id, events, ingested_at)


def _store_postgresql_upsert(environment_id: int, events: list[EventInput], ingested_at: dt.datetime) -> int:
    """COPY into a session-temporary staging table, then one upsert that also empties it."""
    move = _count_duplicates_sql(
        f"INSERT INTO metering_event ({_COLUMNS}) SELECT {_COLUMNS} FROM staged ORDER BY event_id {_UPSERT_TAIL}",
        before=f"staged AS (DELETE FROM {_STAGING_TABLE} RETURNING *),",
    )
    with transaction.atomic(), connection.cursor() as cursor:
        _ensure_staging_table(cursor)
        with cursor.copy(f"COPY {_STAGING_TABLE} ({_COLUMNS}) FROM STDIN") as copy:
            for event in events:
                copy.write_row(_row(environment_id, event, ingested_at))
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
