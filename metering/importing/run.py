"""The import itself (`events_import`): batches from a source, written one transaction each, and the report.

On PostgreSQL a worker process (`workers`) reads, validates and formats each batch as COPY text
(`metering.ingest.copy`) while this process writes the previous one; elsewhere a thread reads ahead and batches go
through `metering.ingest.writer.events_store`.
"""

from __future__ import annotations

import csv
import signal
import threading
import time
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import closing, contextmanager
from typing import TextIO

from django.db import connection

from catalog.models import Meter
from flexmeter.errors import ValidationFailed
from flexmeter.models import Environment
from metering.clickhouse import reads as clickhouse_reads
from metering.clickhouse.config import events_backend
from metering.importing.batches import (
    DEFAULT_BATCH_SIZE,
    MAX_BATCH_SIZE,
    BatchWriter,
    PreparedBatch,
    batch_mode,
    batches_prepared,
)
from metering.importing.report import ImportReport
from metering.importing.sources import EventSource, SourceError
from metering.importing.workers import WorkerError, process_workers_available, produced_in_process, produced_in_thread
from metering.models import Customer, Event
from metering.progress import ProgressBar

_SAMPLES = 20


def metered_event_names(environment: Environment) -> frozenset[str]:
    """Event names that at least one published meter of the environment counts (one query)."""
    return frozenset(
        Meter.objects.for_environment(environment).published().values_list("event_name", flat=True).distinct()
    )


def _stored_count(environment: Environment, event_ids: Iterable[str]) -> int:
    backend = events_backend()
    if backend.is_clickhouse:
        return clickhouse_reads.stored_id_count(backend, environment_id=environment.pk, event_ids=list(event_ids))
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


def _producer(make_items: Callable[[], Iterator[PreparedBatch]]) -> Generator[PreparedBatch]:
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
    mode = batch_mode(dry_run)
    writer = BatchWriter(environment, mode)

    def prepare() -> Iterator[PreparedBatch]:
        return batches_prepared(
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
            if batch.customers:
                report.unknown_customers += _unknown_customer_count(environment, batch.customers)
            if batch.event_ids is not None:
                report.stored += batch.unique
                report.duplicates += _stored_count(environment, batch.event_ids) if batch.event_ids else 0
            elif batch.unique:
                with _ctrl_c_deferred():
                    result = writer.store(batch)
                    report.stored += result.accepted
                    report.duplicates += result.duplicates
            if progress is not None:
                progress.update(items=report.records, done=batch.position)
