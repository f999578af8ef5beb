"""Importing events from files (SPEC §9): JSON Lines or CSV, gzip-compressed or not, from a path or stdin.

Every record goes through the API's own validation (`ingestion.event_clean`) and is stored in batches with the
API's semantics: a redelivered `event_id` replaces the stored event (last delivery wins) and is counted as a
duplicate, never twice. Each batch is one transaction, so an interrupted import leaves whole batches behind and
re-running it simply re-upserts them.

Records without an `event_id` get a stable id derived from their content (and from how many identical records
came before them in the file), so re-importing the same file never double counts either.

Invalid records never stop an import: they are counted, reported with their line numbers and reasons, and
written to a rejects file when asked.

On PostgreSQL a worker process reads, validates and formats each batch as COPY text (`import_copy`) while this
process writes the previous one, so Python and PostgreSQL each get a core; elsewhere a thread reads ahead and
batches go through `ingestion.events_store` (see `import_workers`).
"""

from __future__ import annotations

import codecs
import csv
import enum
import gzip
import hashlib
import io
import json
import os
import signal
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from typing import IO, Any, TextIO

from django.db import connection
from django.utils import timezone

from catalog.models import Meter
from flexmeter.errors import ValidationFailed
from flexmeter.models import Environment
from metering import exactjson
from metering.import_workers import (
    WorkerError,
    process_workers_available,
    produced_in_process,
    produced_in_thread,
)
from metering.ingest.copy import CopyWriter, copy_text
from metering.ingest.validation import EVENT_ID_PREFIX, EventInput, event_clean
from metering.ingest.writer import IngestResult, events_store
from metering.models import Customer, Event
from metering.progress import ProgressBar

FORMATS = ("jsonl", "csv")
DEFAULT_BATCH_SIZE = 5000
MAX_BATCH_SIZE = 100_000
CSV_FIELDS = ("event_id", "event_name", "external_customer_id", "timestamp", "source")
CSV_REQUIRED = ("event_name", "external_customer_id")
PROPERTY_PREFIX = "properties."
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}
_GZIP_MAGIC = b"\x1f\x8b"
_SAMPLES = 20


class SourceError(Exception):
    """The source cannot be read as events at all (missing file, unknown format, CSV header without the
    required columns). Individual bad records are never a SourceError: they are rejected and reported."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that was not imported: its line in the source, the reasons keyed by field, and what was read."""

    line: int
    errors: dict[str, str]
    record: Any = None
    text: str | None = None

    def reason(self) -> str:
        return "; ".join(f"{key}: {message}" if key else message for key, message in self.errors.items())

    def as_json(self) -> str:
        """One line of the rejects file: `{"line", "errors", "event"}`, or `"text"` when the line did not parse."""
        entry: dict[str, Any] = {"line": self.line, "errors": self.errors}
        if self.text is not None:
            entry["text"] = self.text
        else:
            entry["event"] = self.record
        return exactjson.dumps(entry)


class EventSource:
    """An open source of event records: yields `(line, raw_dict)` for records that parsed, `Rejected` otherwise.

    `total_bytes` (None for stdin) and `position()` measure progress in bytes of the file as stored, compressed or
    not. `ignored_columns` names CSV columns that are not event fields (ignored, as the API ignores unknown
    fields).
    """

    def __init__(self, *, name: str, stream: IO[bytes], format: str | None, total_bytes: int | None):
        self.name = name
        self.total_bytes = total_bytes
        self.ignored_columns: tuple[str, ...] = ()
        self._raw = stream
        buffered = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(stream)  # type: ignore[arg-type]
        self.compressed = buffered.peek(2)[:2] == _GZIP_MAGIC
        self._binary: IO[bytes] = gzip.GzipFile(fileobj=buffered, mode="rb") if self.compressed else buffered
        self._counted = buffered
        self.format = format or _format_from_name(name) or self._sniff_format()
        if self.format not in FORMATS:
            raise SourceError(f"unknown format {self.format!r}; use one of {', '.join(FORMATS)}")
        self._check_not_json_array()
        self._csv_reader = None
        self._csv_header: list[str] = []
        if self.format == "csv":
            self._csv_open()

    def position(self) -> int:
        try:
            return self._counted.tell()
        except (OSError, ValueError):
            return 0

    def close(self) -> None:
        self._binary.close()
        self._raw.close()

    def records(self) -> Iterator[tuple[int, Any] | Rejected]:
        if self.format == "csv":
            return self._csv_records()
        return self._jsonl_records()

    def _head(self) -> bytes:
        try:
            head = self._binary.peek(64) if hasattr(self._binary, "peek") else b""
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise SourceError(f"{self.name}: cannot read ({exc})") from None
        return head.removeprefix(codecs.BOM_UTF8).lstrip()

    def _sniff_format(self) -> str:
        head = self._head()
        return "jsonl" if head[:1] in (b"{", b"[", b"") else "csv"

    def _check_not_json_array(self) -> None:
        if self.format == "jsonl" and self._head()[:1] == b"[":
            raise SourceError(
                f"{self.name} looks like one JSON array; import_events reads JSON Lines (one event object per "
                "line): convert it first, e.g. jq -c '.[]' file.json > file.jsonl"
            )

    def _jsonl_records(self) -> Iterator[tuple[int, Any] | Rejected]:
        for number, line in enumerate(self._binary, start=1):
            if number == 1:
                line = line.removeprefix(codecs.BOM_UTF8)
            if not line.strip():
                continue
            try:
                yield number, exactjson.loads(line)
            except UnicodeDecodeError:
                yield Rejected(line=number, errors={"": "is not valid UTF-8"}, text=_line_text(line))
            except json.JSONDecodeError as exc:
                reason = f"is not valid JSON ({exc.msg} at column {exc.colno})"
                yield Rejected(line=number, errors={"": reason}, text=_line_text(line))
            except (ValueError, RecursionError) as exc:
                reason = "is nested too deeply" if isinstance(exc, RecursionError) else f"is not valid JSON ({exc})"
                yield Rejected(line=number, errors={"": reason}, text=_line_text(line))

    def _csv_open(self) -> None:
        text = io.TextIOWrapper(self._binary, encoding="utf-8-sig", errors="surrogateescape", newline="")
        self._csv_reader = csv.reader(text)
        try:
            header = next(self._csv_reader, None)
        except (csv.Error, OSError, EOFError) as exc:
            raise SourceError(f"{self.name}: cannot read the CSV header ({exc})") from None
        if header is None:
            return
        header = [name.strip() for name in header]
        repeated = sorted({name for name in header if header.count(name) > 1})
        if repeated:
            raise SourceError(f"{self.name}: the CSV header repeats {', '.join(repeated)}")
        missing = [name for name in CSV_REQUIRED if name not in header]
        if missing:
            raise SourceError(
                f"{self.name}: the CSV header lacks {', '.join(missing)} (columns: event_id, event_name, "
                "external_customer_id, timestamp, source, and properties as JSON or as properties.<key> columns)"
            )
        if "properties" in header and any(name.startswith(PROPERTY_PREFIX) for name in header):
            raise SourceError(
                f"{self.name}: use either a properties column holding JSON or properties.<key> columns, not both"
            )
        self._csv_header = header
        self.ignored_columns = tuple(
            name
            for name in header
            if name not in CSV_FIELDS
            and name != "properties"
            and not (name.startswith(PROPERTY_PREFIX) and len(name) > len(PROPERTY_PREFIX))
        )

    def _csv_records(self) -> Iterator[tuple[int, Any] | Rejected]:
        if self._csv_reader is None or not self._csv_header:
            return
        reader, header = self._csv_reader, self._csv_header
        width = len(header)
        last_line = reader.line_num
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield Rejected(line=last_line + 1, errors={"": f"is not valid CSV ({exc})"}, text="")
                last_line = reader.line_num
                continue
            line, last_line = last_line + 1, reader.line_num
            if not row:
                continue
            if len(row) != width:
                reason = f"has {len(row)} fields but the header has {width}"
                yield Rejected(line=line, errors={"": reason}, record=_csv_text(row))
                continue
            try:
                "".join(row).encode("utf-8")
            except UnicodeEncodeError:
                yield Rejected(line=line, errors={"": "is not valid UTF-8"}, record=_csv_text(row))
                continue
            yield _csv_record(line, header, row)


def _csv_text(row: list[str]) -> list[str]:
    return [value.encode("utf-8", "surrogateescape").decode("utf-8", "replace") for value in row]


def _csv_record(line: int, header: list[str], row: list[str]) -> tuple[int, Any] | Rejected:
    """A CSV row as the API's JSON object. Empty cells are absent fields; `properties.<key>` cells stay strings
    (a numeric string is a number for every aggregation, SPEC §3)."""
    raw: dict[str, Any] = {}
    properties: dict[str, Any] | None = None
    for name, value in zip(header, row, strict=True):
        if name in CSV_FIELDS:
            if value != "":
                raw[name] = value
        elif name == "properties":
            if value.strip():
                try:
                    raw["properties"] = exactjson.loads(value)
                except (ValueError, RecursionError) as exc:
                    reason = f"is not valid JSON ({getattr(exc, 'msg', exc)})"
                    return Rejected(
                        line=line, errors={"properties": reason}, record=dict(zip(header, row, strict=True))
                    )
        elif name.startswith(PROPERTY_PREFIX) and value != "":
            properties = properties if properties is not None else {}
            properties[name[len(PROPERTY_PREFIX) :]] = value
    if properties is not None:
        raw["properties"] = properties
    return line, raw


def _line_text(line: bytes) -> str:
    return line.decode("utf-8", "replace").rstrip("\r\n")


def _format_from_name(name: str) -> str | None:
    base = name[:-3] if name.lower().endswith(".gz") else name
    return _EXTENSIONS.get(os.path.splitext(base)[1].lower())


def source_open(path: str, *, format: str | None = None, stdin: IO[bytes] | None = None) -> EventSource:
    """Open `path` ("-" for stdin) as an event source. Gzip is detected from the data, the format from
    `format`, else the file name (.jsonl/.ndjson/.json/.csv, optionally .gz), else the first byte."""
    if format is not None and format not in FORMATS:
        raise SourceError(f"unknown format {format!r}; use one of {', '.join(FORMATS)}")
    if path == "-":
        return EventSource(name="<stdin>", stream=stdin, format=format, total_bytes=None)
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed by EventSource.close()
    except OSError as exc:
        raise SourceError(f"cannot open {path}: {exc.strerror or exc}") from None
    try:
        total = os.fstat(stream.fileno()).st_size or None
        return EventSource(name=path, stream=stream, format=format, total_bytes=total)
    except BaseException:
        stream.close()
        raise


# Batching ----------------------------------------------------------------------------------------------------


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


class _Mode(enum.Enum):
    """What a prepared batch carries for the writer: events for `events_store`, COPY text for `CopyWriter`, or
    for a dry run only the ids and customers to look up."""

    EVENTS = "events"
    COPY = "copy"
    DRY_RUN = "dry-run"


@dataclass(slots=True)
class _Prepared:
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


def _prepared_batches(
    source: EventSource, *, batch_size: int, mode: _Mode, environment_id: int, metered: frozenset[str]
) -> Iterator[_Prepared]:
    for batch in _batches(source, batch_size=batch_size):
        unique = {event.event_id: event for event in batch.events}
        prepared = _Prepared(
            records=batch.records,
            position=batch.position,
            rejected=batch.rejected,
            valid=len(batch.events),
            unique=len(unique),
            unmetered=sum(1 for event in batch.events if event.event_name not in metered),
        )
        if mode is _Mode.EVENTS:
            prepared.events = list(unique.values())
        elif mode is _Mode.COPY:
            prepared.copy_data = copy_text(environment_id, sorted(unique.values(), key=_event_id))
        else:
            prepared.event_ids = list(unique)
            prepared.customers = dict(Counter(event.external_customer_id for event in unique.values()))
        yield prepared


def _event_id(event: EventInput) -> str:
    return event.event_id


# The import --------------------------------------------------------------------------------------------------


@dataclass
class ImportReport:
    """What an import did (or, for a dry run, would do). `stored` counts distinct events written; `duplicates`
    how many of them replaced an event already stored; `unmetered` valid events whose event name has no
    published meter in the environment (stored all the same, SPEC §3)."""

    source: str
    environment: str
    dry_run: bool
    records: int = 0
    valid: int = 0
    invalid: int = 0
    stored: int = 0
    duplicates: int = 0
    unmetered: int = 0
    unknown_customers: int | None = None
    seconds: float = 0.0
    samples: list[Rejected] = field(default_factory=list)
    ignored_columns: tuple[str, ...] = ()
    rejects_path: str | None = None

    @property
    def collapsed(self) -> int:
        """Valid records that repeated an `event_id` within one batch: only the last occurrence is kept."""
        return self.valid - self.stored

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        """The human summary printed by `import_events`."""
        if self.dry_run:
            head = (
                f"Dry run: nothing was written. {self.source} holds {self.records:,} records for environment "
                f"{self.environment} (validated in {self.seconds:.1f} s, {self.rate:,.0f} records/s)."
            )
            stored = f"  would store:        {self.stored:,} events ({self.duplicates:,} would replace stored events)"
        else:
            head = (
                f"Imported {self.source} into environment {self.environment}: {self.records:,} records in "
                f"{self.seconds:.1f} s ({self.rate:,.0f} records/s)."
            )
            stored = f"  stored:             {self.stored:,} events ({self.duplicates:,} replaced stored events)"
        lines = [head, stored]
        if self.collapsed:
            lines.append(f"  repeated event_id:  {self.collapsed:,} (the last occurrence in each batch was kept)")
        invalid = f"  invalid:            {self.invalid:,}"
        if self.invalid and self.rejects_path:
            invalid += f" (written to {self.rejects_path})"
        lines.append(invalid)
        lines.append(f"  no published meter: {self.unmetered:,} events (matched by event name; stored all the same)")
        if self.unknown_customers is not None:
            lines.append(f"  unknown customer:   {self.unknown_customers:,} events (stored all the same)")
        if self.ignored_columns:
            lines.append(f"  ignored columns:    {', '.join(self.ignored_columns)}")
        if self.samples:
            more = f" (first {len(self.samples)})" if self.invalid > len(self.samples) else ""
            lines.append(f"Invalid records{more}:")
            lines.extend(f"  line {sample.line}: {sample.reason()}" for sample in self.samples)
        return lines


def metered_event_names(environment: Environment) -> frozenset[str]:
    """Event names that at least one published meter of the environment counts (one query)."""
    return frozenset(
        Meter.objects.for_environment(environment).published().values_list("event_name", flat=True).distinct()
    )


def _stored_count(environment: Environment, event_ids: Iterable[str]) -> int:
    return Event.objects.for_environment(environment).filter(event_id__in=list(event_ids)).count()


def _unknown_customer_count(environment: Environment, by_customer: dict[str, int]) -> int:
    known = set(
        Customer.objects.for_environment(environment)
        .active()
        .filter(external_id__in=list(by_customer))
        .values_list("external_id", flat=True)
    )
    return sum(count for customer, count in by_customer.items() if customer not in known)


def events_import(
    *,
    environment: Environment,
    source: EventSource,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dry_run: bool = False,
    rejects: TextIO | None = None,
    rejects_path: str | None = None,
    progress: ProgressBar | None = None,
) -> ImportReport:
    """Import every record of `source` into `environment`, batch by batch (each batch one transaction).

    A dry run validates everything and reads the database (which events are already stored, which customers
    are unknown) but writes nothing. Invalid records are counted, kept as samples for the report and written
    to `rejects` (JSON Lines, see `Rejected.as_json`).
    """
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValidationFailed(details={"batch_size": f"must be between 1 and {MAX_BATCH_SIZE:,}"})
    report = ImportReport(
        source=source.name,
        environment=environment.slug,
        dry_run=dry_run,
        ignored_columns=source.ignored_columns,
        rejects_path=rejects_path,
        unknown_customers=0 if dry_run else None,
    )
    metered = metered_event_names(environment)
    started = time.monotonic()
    try:
        _import_batches(report, environment, source, metered, batch_size, dry_run, rejects, progress)
    except (OSError, EOFError, zlib.error, csv.Error) as exc:
        raise SourceError(f"{source.name}: reading stopped after {_progress_note(report)} ({exc})") from exc
    except KeyboardInterrupt:
        raise SourceError(f"interrupted after {_progress_note(report)}") from None
    except WorkerError as exc:
        raise SourceError(f"{exc} after {_progress_note(report)}") from exc
    report.seconds = time.monotonic() - started
    if progress is not None:
        progress.finish()
    return report


def _progress_note(report: ImportReport) -> str:
    if report.dry_run:
        return f"{report.records:,} records; nothing was written"
    return (
        f"{report.records:,} records; {report.stored:,} events were stored in committed batches, "
        "and re-running the import is safe"
    )


class BatchWriter:
    """Stores prepared batches: COPY text through `CopyWriter` on PostgreSQL, events through `events_store`
    elsewhere (the API's own write path)."""

    def __init__(self, environment: Environment, mode: _Mode):
        self.environment = environment
        self.copy_writer = CopyWriter(environment.pk) if mode is _Mode.COPY else None

    def store(self, batch: _Prepared) -> IngestResult:
        if self.copy_writer is not None:
            return self.copy_writer.store(batch.copy_data or b"", events=batch.unique)
        return events_store(environment=self.environment, events=batch.events or [])


def _mode(dry_run: bool) -> _Mode:
    if dry_run:
        return _Mode.DRY_RUN
    return _Mode.COPY if connection.vendor == "postgresql" else _Mode.EVENTS


def _producer(make_items: Callable[[], Iterator[_Prepared]]) -> Iterator[_Prepared]:
    """On PostgreSQL the batches are prepared in a worker process (the database runs on the other core); SQLite
    writes under one lock and gains nothing from it, so there a thread reads ahead."""
    if connection.vendor == "postgresql" and process_workers_available():
        return produced_in_process(make_items)
    return produced_in_thread(make_items())


@contextmanager
def _ctrl_c_deferred() -> Iterator[None]:
    """Let a batch that is being written finish (commit or roll back) before a Ctrl-C stops the import, so the
    report's count of stored events is exact; a second Ctrl-C stops at once."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield  # signals can only be handled in the main thread; an ignored or custom Ctrl-C is left alone
        return
    pressed = False

    def handler(signum, frame) -> None:
        nonlocal pressed
        if pressed:
            raise KeyboardInterrupt
        pressed = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed:
        raise KeyboardInterrupt


def _import_batches(report, environment, source, metered, batch_size, dry_run, rejects, progress) -> None:
    mode = _mode(dry_run)
    writer = BatchWriter(environment, mode)

    def prepare() -> Iterator[_Prepared]:
        return _prepared_batches(
            source, batch_size=batch_size, mode=mode, environment_id=environment.pk, metered=metered
        )

    with closing(_producer(prepare)) as batches:
        for batch in batches:
            report.records += batch.records
            report.invalid += len(batch.rejected)
            for rejected in batch.rejected:
                if rejects is not None:
                    rejects.write(rejected.as_json() + "\n")
                if len(report.samples) < _SAMPLES:
                    report.samples.append(rejected)
            report.valid += batch.valid
            report.unmetered += batch.unmetered
            if batch.event_ids is not None:
                report.stored += batch.unique
                report.duplicates += _stored_count(environment, batch.event_ids) if batch.event_ids else 0
                report.unknown_customers += (
                    _unknown_customer_count(environment, batch.customers) if batch.customers else 0
                )
            elif batch.unique:
                with _ctrl_c_deferred():
                    result = writer.store(batch)
                    report.stored += result.accepted
                    report.duplicates += result.duplicates
            if progress is not None:
                progress.update(items=report.records, done=batch.position)
