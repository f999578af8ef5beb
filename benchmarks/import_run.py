"""The import benchmark (`bench_import`): `import_events` end to end against a raw COPY, in one run.

1. drop and create the benchmark database (its name must contain "bench"; never the configured database) and
   migrate it through a `manage.py` subprocess pointed at it;
2. preload the events table with other events, so the import lands in a table that already holds data;
3. write the workload once as JSON Lines (what `import_events` reads) and as COPY text (what the baseline sends);
4. baseline: COPY the same rows straight into the same indexed table, timed, then roll back and vacuum so the
   import meets exactly the preloaded table;
5. time `manage.py import_events` on the JSON Lines file as a subprocess — process start, parsing, validation
   and storage included — and check that every event arrived; optionally time a second run (all duplicates);
6. drop the database, whatever happened.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from django.conf import settings

from benchmarks.runner import COLUMNS, BenchmarkError, benchmark_database, check_database_url
from benchmarks.workload import bench_event

ENVIRONMENT_SLUG = "bench"
TARGET_EVENTS_PER_SECOND = 25_000
_COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class ImportRun:
    seconds: float
    report: str

    def rate(self, events: int) -> float:
        return events / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class ImportBenchmarkResult:
    events: int
    preloaded: int
    file_bytes: int
    copy_seconds: float
    foreign_key_seconds: float
    first: ImportRun
    again: ImportRun | None
    load_before: tuple[float, float, float] | None = None
    load_after: tuple[float, float, float] | None = None

    @property
    def copy_rate(self) -> float:
        return self.events / self.copy_seconds if self.copy_seconds else 0.0

    @property
    def import_rate(self) -> float:
        return self.first.rate(self.events)

    @property
    def ratio(self) -> float:
        return self.import_rate / self.copy_rate if self.copy_rate else 0.0


def load_average() -> tuple[float, float, float] | None:
    """The 1, 5 and 15 minute load averages (None where the system has none): on a shared 2-core machine the
    figures only mean something next to them."""
    try:
        return os.getloadavg()
    except OSError:
        return None


def _copy_text(value: object) -> str:
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def workload_write(directory: Path, *, events: int, environment_id: int, prefix: str = "import") -> tuple[Path, Path]:
    """The same events as JSON Lines and as COPY text rows of `metering_event`."""
    jsonl, copy_rows = directory / "events.jsonl", directory / "events.copy"
    ingested_at = dt.datetime.now(dt.UTC).isoformat()
    with jsonl.open("w", encoding="utf-8") as lines, copy_rows.open("w", encoding="utf-8") as rows:
        for index in range(events):
            event = bench_event(index, prefix=prefix)
            lines.write(json.dumps(event, separators=(",", ":")) + "\n")
            values = (
                environment_id,
                event["event_id"],
                event["event_name"],
                event["external_customer_id"],
                event["timestamp"],
                ingested_at,
                event["source"],
                json.dumps(event["properties"], separators=(",", ":")),
            )
            rows.write("\t".join(_copy_text(value) for value in values) + "\n")
    return jsonl, copy_rows


def _environment_create(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "INSERT INTO flexmeter_environment (public_id, name, slug, created_at) "
            "VALUES ('env_bench_import', 'Bench', %s, now()) RETURNING id",
            [ENVIRONMENT_SLUG],
        ).fetchone()[0]


def _preload(database_url: str, *, environment_id: int, events: int) -> None:
    now = dt.datetime.now(dt.UTC)
    with psycopg.connect(database_url) as conn:
        with conn.cursor() as cursor, cursor.copy(f"COPY metering_event ({COLUMNS}) FROM STDIN") as copy:
            for index in range(events):
                event = bench_event(index, prefix="preload")
                copy.write_row(
                    (
                        environment_id,
                        event["event_id"],
                        event["event_name"],
                        event["external_customer_id"],
                        dt.datetime.fromisoformat(event["timestamp"]),
                        now,
                        event["source"],
                        json.dumps(event["properties"], separators=(",", ":")),
                    )
                )
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE metering_event")


def _copy_baseline(database_url: str, copy_rows: Path, *, batch_size: int) -> tuple[float, float]:
    """COPY the rows straight into the indexed table, one COPY per batch like the import's batches, all in one
    transaction that is rolled back afterwards. Returns the seconds the COPYs took, and separately the seconds
    of the deferred foreign-key checks that committing them would have run (the import commits every batch and
    pays them; the rolled-back baseline would not)."""
    with psycopg.connect(database_url) as conn, copy_rows.open("rb") as source:
        started = time.perf_counter()
        with conn.cursor() as cursor:
            while True:
                lines = [line for _, line in zip(range(batch_size), source, strict=False)]
                if not lines:
                    break
                with cursor.copy(f"COPY metering_event ({COLUMNS}) FROM STDIN") as copy:
                    copy.write(b"".join(lines))
        elapsed = time.perf_counter() - started
        conn.execute("SET CONSTRAINTS ALL IMMEDIATE")  # runs the checks deferred to the commit
        foreign_keys = time.perf_counter() - started - elapsed
        conn.rollback()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE metering_event")
    return elapsed, foreign_keys


def _manage(args: list[str], *, database_url: str, capture_stderr: bool = True) -> str:
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(settings.BASE_DIR)}
    completed = subprocess.run(
        [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if capture_stderr else None,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise BenchmarkError(f"manage.py {' '.join(args)} failed:\n{(completed.stderr or completed.stdout)[-2000:]}")
    return completed.stdout


def _import(database_url: str, path: Path, *, batch_size: int, show_progress: bool) -> ImportRun:
    args = ["import_events", str(path), "--environment", ENVIRONMENT_SLUG, "--batch-size", str(batch_size)]
    started = time.perf_counter()
    report = _manage(args, database_url=database_url, capture_stderr=not show_progress)
    return ImportRun(seconds=time.perf_counter() - started, report=report.strip())


def _stored(database_url: str, environment_id: int) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT count(*) FROM metering_event WHERE environment_id = %s", [environment_id]
        ).fetchone()[0]


def import_benchmark_run(
    *,
    database_url: str,
    events: int,
    preload: int,
    batch_size: int,
    again: bool = False,
    show_progress: bool = False,
    log: Callable[[str], None] = lambda message: None,
) -> ImportBenchmarkResult:
    check_database_url(database_url)
    load_before = load_average()
    with benchmark_database(database_url), tempfile.TemporaryDirectory(prefix="flexmeter-import-bench-") as tmp:
        log("migrating the benchmark database")
        _manage(["migrate", "--verbosity", "0"], database_url=database_url)
        environment_id = _environment_create(database_url)
        log(f"preloading {preload:,} events")
        _preload(database_url, environment_id=environment_id, events=preload)
        log(f"writing {events:,} events as JSON Lines and COPY rows")
        jsonl, copy_rows = workload_write(Path(tmp), events=events, environment_id=environment_id)
        log("raw COPY baseline")
        copy_seconds, foreign_key_seconds = _copy_baseline(database_url, copy_rows, batch_size=batch_size)
        log("import_events")
        first = _import(database_url, jsonl, batch_size=batch_size, show_progress=show_progress)
        stored = _stored(database_url, environment_id)
        if stored != preload + events:
            raise BenchmarkError(f"expected {preload + events:,} events after the import, found {stored:,}")
        second = None
        if again:
            log("import_events again (every event a duplicate)")
            second = _import(database_url, jsonl, batch_size=batch_size, show_progress=show_progress)
            if _stored(database_url, environment_id) != stored:
                raise BenchmarkError("re-importing changed the number of stored events")
        return ImportBenchmarkResult(
            events=events,
            preloaded=preload,
            file_bytes=jsonl.stat().st_size,
            copy_seconds=copy_seconds,
            foreign_key_seconds=foreign_key_seconds,
            first=first,
            again=second,
            load_before=load_before,
            load_after=load_average(),
        )
