"""Batches of the import: records read from a source, validated with the API's own `event_clean`, and prepared
for the writer (events for `events_store`, COPY text for `CopyWriter`, or ids and customers for a dry run).

Records without an `event_id` get a stable id derived from their content (and from how many identical records
came before them in the file), so re-importing the same file never double counts either.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.utils import timezone

from flexmeter.errors import ValidationFailed
from flexmeter.models import Environment
from metering.clickhouse.config import events_backend
from metering.importing.sources import EventSource, Rejected
from metering.ingest.copy import CopyWriter, copy_text
from metering.ingest.validation import EVENT_ID_PREFIX, EventInput, event_clean
from metering.ingest.writer import IngestResult, events_store

DEFAULT_BATCH_SIZE = 5000
MAX_BATCH_SIZE = 100_000


@dataclass(slots=True)
class _Batch:
    """Up to `batch_size` records as read: the valid ones validated, the invalid ones rejected."""

    events: list[EventInput]
    rejected: list[Rejected]
    records: int
    position: int


class _ContentIds:
    """Stable ids for records without an `event_id`: a hash of the record plus how many identical ones came
    before it, so the same file always yields the same ids."""

    def __init__(self) -> None:
        self.seen: dict[bytes, int] = {}

    def assign(self, raw: dict[str, Any]) -> dict[str, Any]:
        content = json.dumps(raw, sort_keys=True, default=str, separators=(",", ":")).encode()
        digest = hashlib.sha256(content).digest()
        occurrence = self.seen.get(digest, 0)
        self.seen[digest] = occurrence + 1
        event_id = hashlib.sha256(digest + occurrence.to_bytes(8, "big")).hexdigest()[:32]
        return {**raw, "event_id": f"{EVENT_ID_PREFIX}{event_id}"}


def _batches(source: EventSource, *, batch_size: int) -> Iterator[_Batch]:
    events: list[EventInput] = []
    rejected: list[Rejected] = []
    records = 0
    ids = _ContentIds()
    now = timezone.now()
    for item in source.records():
        records += 1
        if isinstance(item, Rejected):
            rejected.append(item)
        else:
            line, raw = item
            if isinstance(raw, dict) and raw.get("event_id") in (None, ""):
                raw = ids.assign(raw)
            try:
                events.append(event_clean(raw, now=now))
            except ValidationFailed as exc:
                rejected.append(Rejected(line=line, errors=dict(exc.details), record=raw))
        if records >= batch_size:
            yield _Batch(events=events, rejected=rejected, records=records, position=source.position())
            events, rejected, records = [], [], 0
            now = timezone.now()
    if records:
        yield _Batch(events=events, rejected=rejected, records=records, position=source.position())


class BatchMode(enum.Enum):
    """What a prepared batch carries for the writer: events for `events_store`, COPY text for `CopyWriter`, or
    for a dry run only the ids to look up. Every mode carries the customers, counted per external id."""

    EVENTS = "events"
    COPY = "copy"
    DRY_RUN = "dry-run"


@dataclass(slots=True)
class PreparedBatch:
    """A batch ready for the writer. `unique` counts its distinct event ids (a repeated id keeps its last
    occurrence in the batch); `valid` counts valid records including repeats."""

    records: int
    position: int
    rejected: list[Rejected]
    valid: int
    unique: int
    unmetered: int
    events: list[EventInput] | None = None
    copy_data: bytes | None = None
    event_ids: list[str] | None = None
    customers: dict[str, int] | None = None


def batches_prepared(
    source: EventSource, *, batch_size: int, mode: BatchMode, environment_id: int, metered: frozenset[str]
) -> Iterator[PreparedBatch]:
    for batch in _batches(source, batch_size=batch_size):
        unique = {event.event_id: event for event in batch.events}
        prepared = PreparedBatch(
            records=batch.records,
            position=batch.position,
            rejected=batch.rejected,
            valid=len(batch.events),
            unique=len(unique),
            unmetered=sum(1 for event in batch.events if event.event_name not in metered),
        )
        # every mode reports unknown customers, so a dry run and a real run print the same summary
        prepared.customers = dict(Counter(event.external_customer_id for event in unique.values()))
        if mode is BatchMode.EVENTS:
            prepared.events = list(unique.values())
        elif mode is BatchMode.COPY:
            prepared.copy_data = copy_text(environment_id, sorted(unique.values(), key=_event_id))
        else:
            prepared.event_ids = list(unique)
        yield prepared


def _event_id(event: EventInput) -> str:
    return event.event_id


class BatchWriter:
    """Stores prepared batches: COPY text through `CopyWriter` on PostgreSQL, events through `events_store`
    elsewhere (the API's own write path)."""

    def __init__(self, environment: Environment, mode: BatchMode):
        self.environment = environment
        self.copy_writer = CopyWriter(environment.pk) if mode is BatchMode.COPY else None

    def store(self, batch: PreparedBatch) -> IngestResult:
        if self.copy_writer is not None:
            return self.copy_writer.store(batch.copy_data or b"", events=batch.unique)
        return events_store(environment=self.environment, events=batch.events or [])


def batch_mode(dry_run: bool) -> BatchMode:
    if dry_run:
        return BatchMode.DRY_RUN
    # COPY writes PostgreSQL's events table: with events in ClickHouse every batch goes through `events_store`
    if connection.vendor == "postgresql" and not events_backend().is_clickhouse:
        return BatchMode.COPY
    return BatchMode.EVENTS
