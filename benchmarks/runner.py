"""Orchestrates the ingestion benchmark against its own PostgreSQL database.

1. drop and create the benchmark database (its name must contain "bench"; never the configured database),
   migrate it and create an API key — all through `manage.py` subprocesses pointed at that database;
2. start the WSGI server (granian by default, or gunicorn) bound to 127.0.0.1 on a free port against it;
3. run the load process (`benchmarks.client`, a separate Python process) for bulk requests of
   backfill events (January 2026), then for single-event requests of live events (the last hour, as a metered
   application sends them; events of older days also leave rollup change marks), with the table emptied before each;
4. COPY the same bulk events straight into the same table (one COPY and commit per batch), and INSERT the
   single events one row and one commit at a time, as baselines of what the database alone does in this run;
5. stop the server and drop the database, whatever happened.

`ingest_backends_run` (`bench_ingest --backend clickhouse`) instead sends the same bulk requests twice in one run,
to one server process each time (chdb runs ClickHouse inside the process that opens its data directory): first
with events in PostgreSQL, then with events in a fresh chdb directory (the keys and usage marks still in
PostgreSQL), and counts what each store holds afterwards.
"""

import contextlib
import datetime as dt
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from django.conf import settings

from benchmarks.workload import LIVE_SPREAD_SECONDS, SPREAD_SECONDS, START, bench_event, live_start

COLUMNS = "environment_id, event_id, event_name, external_customer_id, timestamp, ingested_at, source, properties"


class BenchmarkError(Exception):
    pass


@dataclass(frozen=True)
class PhaseResult:
    requests: int
    events: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class BenchmarkResult:
    bulk: PhaseResult
    single: PhaseResult
    copy_events_per_second: float
    insert_rows_per_second: float

    @property
    def copy_ratio(self) -> float:
        return self.bulk.events_per_second / self.copy_events_per_second if self.copy_events_per_second else 0.0

    @property
    def insert_ratio(self) -> float:
        return self.single.requests_per_second / self.insert_rows_per_second if self.insert_rows_per_second else 0.0


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def check_database_url(database_url: str) -> None:
    """Refuse anything that is not a dedicated PostgreSQL benchmark database: it is dropped at the end."""
    if urlsplit(database_url).scheme not in {"postgres", "postgresql"}:
        raise BenchmarkError("The benchmark needs PostgreSQL: pass --database-url postgres://…/flexmeter_bench")
    name = _database_name(database_url)
    if "bench" not in name:
        raise BenchmarkError(f"Refusing to drop database {name!r}: the benchmark database's name must contain 'bench'")
    configured = settings.DATABASES["default"]
    if configured["ENGINE"].endswith("postgresql") and configured["NAME"] == name:
        raise BenchmarkError(f"Refusing to use {name!r}: it is the configured (development) database")


@contextlib.contextmanager
def benchmark_database_kept(
    database_url: str, *, keep: bool, reuse: bool, holds: Callable[[psycopg.Connection], bool]
) -> Iterator[bool]:
    """Create the benchmark database, or with `reuse` keep one that exists and `holds` what the run would load;
    yields whether it was reused (loaded already). Dropped at the end unless `keep`."""
    name = _database_name(database_url)
    admin_url = _with_database(database_url, "postgres")
    loaded = False
    with psycopg.connect(admin_url, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None
        if exists and reuse:
            with psycopg.connect(database_url) as bench:
                loaded = holds(bench)
        if not loaded:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield loaded
    finally:
        if not keep:
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def benchmark_database(database_url: str) -> Iterator[None]:
    name = _database_name(database_url)
    admin_url = _with_database(database_url, "postgres")
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def server_environment(database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(40),
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="false",
        LOG_LEVEL="WARNING",
        DATABASE_POOL_SIZE="8",
        PYTHONPATH=str(settings.BASE_DIR),
    )
    return env


def manage_run(args: list[str], env: dict[str, str]) -> str:
    completed = subprocess.run(
        [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if completed.returncode != 0:
        raise BenchmarkError(f"manage.py {' '.join(args)} failed:\n{completed.stderr[-2000:]}")
    return completed.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


SERVERS = ("granian", "gunicorn")


def _server_command(server: str, port: int, *, workers: int, threads: int, worker_class: str | None) -> list[str]:
    """granian (Rust HTTP, Django on `threads` blocking threads per worker) or gunicorn (sync, or gthread)."""
    if server == "granian":
        return [
            sys.executable, "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--blocking-threads", str(threads), "--log-level", "warning",
            "flexmeter.wsgi:application",
        ]  # fmt: skip
    return [
        sys.executable, "-m", "gunicorn", "flexmeter.wsgi:application", "--chdir", str(settings.BASE_DIR),
        "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
        "--worker-class", worker_class or ("sync" if threads == 1 else "gthread"), "--threads", str(threads),
        "--timeout", "120", "--log-level", "warning",
    ]  # fmt: skip


@contextlib.contextmanager
def wsgi_server(
    env: dict[str, str], *, server: str = "granian", workers: int, threads: int = 1, worker_class: str | None = None
) -> Iterator[str]:
    """The WSGI server on a free loopback port, in its own process group so every worker stops with it.

    For gunicorn, `worker_class` defaults to sync for one thread and gthread otherwise; gthread keeps connections
    alive, as granian does.
    """
    if server not in SERVERS:
        raise BenchmarkError(f"unknown server {server!r}; use one of {', '.join(SERVERS)}")
    port = _free_port()
    command = _server_command(server, port, workers=workers, threads=threads, worker_class=worker_class)
    # A file, not a pipe: nobody reads the log while the server runs, and a full pipe would block the workers.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command, cwd=settings.BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                if process.poll() is not None:
                    log.seek(0)
                    raise BenchmarkError(f"{server} exited: {log.read().decode(errors='replace')[-2000:]}")
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
                if time.monotonic() > deadline:
                    raise BenchmarkError(f"{server} did not start within 30 s")
                time.sleep(0.2)
            yield f"http://127.0.0.1:{port}"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def _load(
    url: str,
    key: str,
    *,
    mode: str,
    requests: int,
    batch_size: int,
    concurrency: int,
    max_seconds: float,
    start: dt.datetime = START,
    spread_seconds: int = SPREAD_SECONDS,
):
    command = [
        sys.executable,
        "-m",
        "benchmarks.client",
        f"--url={url}",
        f"--key={key}",
        f"--mode={mode}",
        f"--requests={requests}",
        f"--batch-size={batch_size}",
        f"--concurrency={concurrency}",
        f"--max-seconds={max_seconds}",
        f"--start={start.isoformat()}",
        f"--spread-seconds={spread_seconds}",
    ]
    try:
        completed = subprocess.run(
            command,
            cwd=settings.BASE_DIR,
            env={**os.environ, "PYTHONPATH": str(settings.BASE_DIR)},
            capture_output=True,
            text=True,
            timeout=max_seconds + 120,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BenchmarkError(f"the load process did not finish within {max_seconds + 120:.0f} s") from None
    if completed.returncode != 0:
        raise BenchmarkError(f"load process failed:\n{completed.stderr[-2000:]}")
    result = json.loads(completed.stdout)
    if result["accepted_requests"] != result["requests"] or result["failures"]:
        raise BenchmarkError(f"the server rejected requests: {result['statuses']} {result['failures']}")
    return result


def _truncate(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE metering_event")
        conn.execute("VACUUM ANALYZE metering_event")


def _rows(
    environment_id: int,
    indexes: range,
    *,
    prefix: str,
    start: dt.datetime = START,
    spread_seconds: int = SPREAD_SECONDS,
) -> list[tuple]:
    now = dt.datetime.now(dt.UTC)
    return [
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
        for event in (
            bench_event(index, prefix=prefix, start=start, spread_seconds=spread_seconds) for index in indexes
        )
    ]


def _environment_id(conn: psycopg.Connection) -> int:
    environment_id = conn.execute("SELECT id FROM flexmeter_environment WHERE slug = 'bench'").fetchone()[0]
    conn.commit()
    return environment_id


def _copy_baseline(database_url: str, *, batches: int, batch_size: int) -> float:
    """Raw COPY of the same events into the same (emptied) table, one COPY and commit per batch: events/s."""
    _truncate(database_url)
    with psycopg.connect(database_url) as conn:
        environment_id = _environment_id(conn)
        rows = [
            _rows(environment_id, range(batch * batch_size, (batch + 1) * batch_size), prefix="bench")
            for batch in range(batches)
        ]
        started = time.perf_counter()
        for batch in rows:
            with conn.cursor() as cursor, cursor.copy(f"COPY metering_event ({COLUMNS}) FROM STDIN") as copy:
                for row in batch:
                    copy.write_row(row)
            conn.commit()
        elapsed = time.perf_counter() - started
    _truncate(database_url)
    return batches * batch_size / elapsed


def _insert_baseline(database_url: str, *, count: int, start: dt.datetime) -> float:
    """Raw single-row INSERTs of the single-phase events, one commit each, one connection: rows/s."""
    _truncate(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = _rows(
            _environment_id(conn), range(count), prefix="single", start=start, spread_seconds=LIVE_SPREAD_SECONDS
        )
        sql = f"INSERT INTO metering_event ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        started = time.perf_counter()
        for row in rows:
            conn.execute(sql, row)
        elapsed = time.perf_counter() - started
    _truncate(database_url)
    return count / elapsed


def ingest_benchmark_run(
    *,
    database_url: str,
    bulk_events: int,
    batch_size: int,
    single_requests: int,
    concurrency: int,
    workers: int,
    threads: int = 1,
    server: str = "granian",
    max_seconds: float,
    log: Callable[[str], None],
) -> BenchmarkResult:
    """Run the whole benchmark (see the module docstring) and return its measurements."""
    check_database_url(database_url)
    batches = max(1, bulk_events // batch_size)
    env = server_environment(database_url)
    with benchmark_database(database_url):
        log(f"created database {_database_name(database_url)}; migrating")
        manage_run(["migrate", "--verbosity", "0"], env)
        key = manage_run(["create_api_key", "--environment", "bench", "--name", "bench", "--verbosity", "0"], env)
        key = key.strip().splitlines()[-1]
        with wsgi_server(env, server=server, workers=workers, threads=threads) as url:
            log(f"{server} with {workers} workers × {threads} threads at {url}; warming up")
            _load(url, key, mode="single", requests=20, batch_size=1, concurrency=2, max_seconds=30)
            _truncate(database_url)
            log(f"bulk: {batches} requests of {batch_size} events, {concurrency} concurrent")
            bulk = _load(
                url,
                key,
                mode="bulk",
                requests=batches,
                batch_size=batch_size,
                concurrency=concurrency,
                max_seconds=max_seconds,
            )
            _truncate(database_url)
            log(f"single: {single_requests} requests of 1 live event (the last hour), {concurrency} concurrent")
            live = live_start()
            single = _load(
                url,
                key,
                mode="single",
                requests=single_requests,
                batch_size=1,
                concurrency=concurrency,
                max_seconds=max_seconds,
                start=live,
                spread_seconds=LIVE_SPREAD_SECONDS,
            )
        log("raw COPY baseline")
        copy_rate = _copy_baseline(database_url, batches=bulk["requests"], batch_size=batch_size)
        log("raw single-row INSERT baseline")
        insert_rate = _insert_baseline(database_url, count=single["requests"], start=live)
    return BenchmarkResult(
        bulk=PhaseResult(
            requests=bulk["requests"],
            events=bulk["requests"] * batch_size,
            seconds=bulk["wall_seconds"],
            p50_ms=bulk["p50_ms"],
            p99_ms=bulk["p99_ms"],
        ),
        single=PhaseResult(
            requests=single["requests"],
            events=single["requests"],
            seconds=single["wall_seconds"],
            p50_ms=single["p50_ms"],
            p99_ms=single["p99_ms"],
        ),
        copy_events_per_second=copy_rate,
        insert_rows_per_second=insert_rate,
    )


@dataclass(frozen=True)
class BackendsResult:
    """Bulk ingestion into each events store, one server process each, the same events: label → phase."""

    phases: dict[str, PhaseResult]
    stored: dict[str, int]


def _phase(result: dict, batch_size: int) -> PhaseResult:
    return PhaseResult(
        requests=result["requests"],
        events=result["requests"] * batch_size,
        seconds=result["wall_seconds"],
        p50_ms=result["p50_ms"],
        p99_ms=result["p99_ms"],
    )


_COUNT_SCRIPT = """
import sys
from metering.clickhouse.config import clickhouse_client, parse_events_url
backend = parse_events_url(sys.argv[1])
print(clickhouse_client(backend).query(f"SELECT count() FROM {backend.database}.events FINAL").result_rows[0][0])
"""


def _clickhouse_count(events_url: str) -> int:
    """The events stored in chdb, counted in a process of its own: a process opens one chdb data directory for
    its lifetime, and this one (a test run, say) may have opened another."""
    completed = subprocess.run(
        [sys.executable, "-c", _COUNT_SCRIPT, events_url],
        cwd=settings.BASE_DIR,
        env={**os.environ, "PYTHONPATH": str(settings.BASE_DIR)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if completed.returncode != 0:
        raise BenchmarkError(f"counting the events in ClickHouse failed:\n{completed.stderr[-2000:]}")
    return int(completed.stdout.strip().splitlines()[-1])


def ingest_backends_run(
    *,
    database_url: str,
    clickhouse_path: Path,
    bulk_events: int,
    batch_size: int,
    concurrency: int,
    threads: int,
    server: str = "granian",
    max_seconds: float,
    log: Callable[[str], None],
) -> BackendsResult:
    """Bulk HTTP ingestion into PostgreSQL, then into ClickHouse (chdb), in one run (see the module docstring)."""
    check_database_url(database_url)
    if clickhouse_path.exists() and any(clickhouse_path.iterdir()):
        raise BenchmarkError(f"{clickhouse_path} is not empty: the ClickHouse phase needs a fresh data directory")
    batches = max(1, bulk_events // batch_size)
    events_url = f"chdb://{clickhouse_path}?database=bench"
    phases: dict[str, PhaseResult] = {}
    stored: dict[str, int] = {}
    with benchmark_database(database_url):
        env = server_environment(database_url)
        log(f"created database {_database_name(database_url)}; migrating")
        manage_run(["migrate", "--verbosity", "0"], env)
        key = manage_run(["create_api_key", "--environment", "bench", "--name", "bench", "--verbosity", "0"], env)
        key = key.strip().splitlines()[-1]
        for label, events_env in (("PostgreSQL", {}), ("ClickHouse (chdb)", {"EVENTS_URL": events_url})):
            if events_env:
                manage_run(["migrate_events", "--url", events_url, "--verbosity", "0"], env)
            with wsgi_server({**env, **events_env}, server=server, workers=1, threads=threads) as url:
                log(f"{label}: {server}, 1 process × {threads} threads at {url}; warming up")
                _load(url, key, mode="bulk", requests=2, batch_size=batch_size, concurrency=1, max_seconds=60)
                log(f"{label}: {batches} bulk requests of {batch_size} events, {concurrency} concurrent")
                result = _load(
                    url,
                    key,
                    mode="bulk",
                    requests=batches,
                    batch_size=batch_size,
                    concurrency=concurrency,
                    max_seconds=max_seconds,
                )
            phases[label] = _phase(result, batch_size)
            if events_env:
                stored[label] = _clickhouse_count(events_url)
            else:
                with psycopg.connect(database_url, autocommit=True) as conn:
                    stored[label] = conn.execute("SELECT count(*) FROM metering_event").fetchone()[0]
    return BackendsResult(phases=phases, stored=stored)
