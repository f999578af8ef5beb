"""Production smoke test: the README's granian command with DEBUG off, on 127.0.0.1, against a database of its own
(PostgreSQL when DATABASE_URL names one, else an SQLite file). Static files, chunked bodies, slow clients with and
without a valid key, a killed worker, and a database that cannot be reached. Every server stops by itself."""

import contextlib
import json
import os
import re
import shlex
import signal
import socket
import statistics
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.production.server import (
    ROOT,
    documented_command,
    postgres_url_for,
    prepare_database,
    raw_request,
    read_answer,
    start_server,
    stop_server,
)

SLOW_CONNECTIONS = 50
SLOW_SECONDS = 8


@pytest.fixture(scope="module")
def database_url(tmp_path_factory):
    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith(("postgres://", "postgresql://")):
        yield f"sqlite:///{tmp_path_factory.mktemp('production') / 'flexmeter.sqlite3'}"
        return
    url = postgres_url_for(base, "production_smoke")
    name = url.rsplit("/", 1)[1]
    maintenance = postgres_url_for(base, "x").rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(maintenance, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    yield url
    with psycopg.connect(maintenance, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def api_key(database_url):
    return prepare_database(database_url)


@pytest.fixture(scope="module")
def server(database_url, api_key, tmp_path_factory):
    # Short body deadlines so the 408 test is quick: 0.5 s grace, then 1 MB/s, never more than 3 s.
    env = {"REQUEST_BODY_GRACE": "0.5", "REQUEST_BODY_MIN_RATE": "1000000", "REQUEST_BODY_TIMEOUT": "3"}
    running = start_server(database_url, tmp_path_factory.mktemp("logs"), env=env, api_key=api_key)
    yield running
    stop_server(running)


def an_event(**fields) -> dict:
    return {"event_name": "api.calls", "external_customer_id": "acme", "event_id": f"ev-{uuid.uuid4()}", **fields}


def test_the_documented_command_respawns_workers_and_the_systemd_unit_runs_it():
    command = documented_command()
    assert "--respawn-failed-workers" in command
    assert command[command.index("--interface") + 1] == "wsgi"
    assert command[-1] == "flexmeter.wsgi:application"
    unit = (ROOT / "deploy/flexmeter-web.service").read_text()
    exec_start = re.search(r"^ExecStart=(.+)$", unit, re.MULTILINE).group(1)
    assert shlex.split(exec_start) == [word.replace(".venv/", "/srv/flexmeter/.venv/", 1) for word in command]


def test_a_dashboard_page_loads_with_its_css_and_scripts(server):
    server.sign_in()
    response, page = server.request("GET", "/catalog/features/")
    assert response.status == 200
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assets = re.findall(rb'(?:href|src)="(/static/[^"]+)"', page)
    assert b"/static/css/flexmeter.css" in assets
    assert b"/static/django_htmx/htmx-2.min.js" in assets
    for asset in assets:
        response, content = server.request("GET", asset.decode())
        assert response.status == 200, asset
        assert len(content) > 1000, asset
    response, css = server.request("GET", "/static/css/flexmeter.css")
    assert response.headers["Content-Type"].startswith("text/css")
    assert css == (ROOT / "static/css/flexmeter.css").read_bytes()


def test_head_on_a_dashboard_page_answers_like_get(server):
    server.sign_in()
    got, page = server.request("GET", "/customers/")
    head, body = server.request("HEAD", "/customers/")
    assert (got.status, head.status) == (200, 200)
    assert body == b""


def test_the_api_docs_load_their_assets(server):
    response, page = server.request("GET", "/v1/docs")
    assert response.status == 200
    assets = re.findall(rb'(?:href|src)="(/static/[^"]+)"', page)
    assert {b"/static/ninja/swagger-ui.css", b"/static/ninja/swagger-ui-bundle.js"} <= set(assets)
    for asset in assets:
        assert server.request("GET", asset.decode())[0].status == 200, asset


def test_a_bad_host_on_v1_is_the_json_envelope(server):
    response, content = server.request("GET", "/v1/environment", headers={"Host": "evil.example"})
    assert response.status == 400
    assert json.loads(content)["code"] == "validation_error"


def chunked_post(server, path: str, payload: dict, pieces: int = 3) -> tuple[int, dict]:
    body = json.dumps(payload).encode()
    sock = raw_request(
        server.port,
        f"POST {path} HTTP/1.1\nHost: 127.0.0.1\nx-api-key: {server.api_key}\n"
        "content-type: application/json\ntransfer-encoding: chunked\n",
    )
    with sock:
        size = -(-len(body) // pieces)
        for start in range(0, len(body), size):
            piece = body[start : start + size]
            sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            time.sleep(0.05)
        sock.sendall(b"0\r\n\r\n")
        status, _, answer = read_answer(sock)
    return status, json.loads(answer)


def test_a_chunked_event_is_read_and_stored(server):
    event = an_event(properties={"tokens": 12})
    status, answer = chunked_post(server, "/v1/events", event)
    assert (status, answer["event_id"], answer["duplicate"]) == (202, event["event_id"], "false")
    status, found, _ = server.api("GET", f"/v1/events/lookup?id={event['event_id']}")
    assert status == 200
    assert found["event"]["properties"] == {"tokens": 12}


def test_a_chunked_bulk_request_is_read_and_stored(server):
    events = [an_event(properties={"n": n}) for n in range(3)]
    status, answer = chunked_post(server, "/v1/events/bulk", {"events": events}, pieces=5)
    assert (status, answer["accepted"]) == (202, "3")
    for event in events:
        assert server.api("GET", f"/v1/events/lookup?id={event['event_id']}")[0] == 200


def open_slow_posts(port: int, key: str, count: int) -> list[socket.socket]:
    """`count` POST /v1/events that announce 100,000 bytes and then send nothing until trickle()."""
    head = (
        f"POST /v1/events HTTP/1.1\nHost: 127.0.0.1\nx-api-key: {key}\ncontent-type: application/json\n"
        "content-length: 100000\n"
    )
    return [raw_request(port, head) for _ in range(count)]


def trickle(sockets: list[socket.socket], answers: dict[int, bytes]) -> None:
    """One byte on every slow connection; collect what each has answered so far."""
    for index, sock in enumerate(sockets):
        sock.setblocking(False)
        with contextlib.suppress(OSError):
            sock.send(b"{")
        try:
            data = sock.recv(4096)
            if data:
                answers[index] = answers.get(index, b"") + data
        except (BlockingIOError, OSError):
            pass


def test_fifty_slow_bogus_key_connections_do_not_slow_anyone_down(server):
    # Both workers' first requests (imports, first connection) are not what is measured here.
    for _ in range(10):
        assert server.api("POST", "/v1/events", an_event())[0] == 202
        assert server.api("GET", "/v1/environment")[0] == 200
    slow = open_slow_posts(server.port, "fm_bogus-key", SLOW_CONNECTIONS)
    answers: dict[int, bytes] = {}
    latencies = []
    try:
        # The 50 arrive at once, each a request whose key is looked up: let that burst clear (it takes ~0.3 s on a
        # busy 2-core machine), then measure while the connections stay open and keep trickling.
        opened = time.monotonic()
        while len(answers) < SLOW_CONNECTIONS and time.monotonic() - opened < 5:
            trickle(slow, answers)
            time.sleep(0.05)
        started = time.monotonic()
        while time.monotonic() - started < SLOW_SECONDS:
            trickle(slow, answers)
            for _ in range(4):
                began = time.perf_counter()
                status, _, _ = server.api("POST", "/v1/events", an_event())
                latencies.append(time.perf_counter() - began)
                assert status == 202
                began = time.perf_counter()
                status, _, _ = server.api("GET", "/v1/environment")
                latencies.append(time.perf_counter() - began)
                assert status == 200
                time.sleep(0.2)
    finally:
        for sock in slow:
            sock.close()
    print(
        f"{len(latencies)} requests beside {SLOW_CONNECTIONS} slow connections: "
        f"median {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )
    assert len(latencies) >= 40
    # On a quiet machine every request stays under 100 ms (max ~20 ms); a 2-core machine shared with other
    # work adds scheduler hiccups, so the bound is on the 95th percentile, and a frozen server (requests stuck
    # behind held threads for seconds) fails the maximum.
    assert statistics.quantiles(latencies, n=20)[-1] < 0.1
    assert max(latencies) < 1.0
    assert len(answers) == SLOW_CONNECTIONS
    assert all(answer.startswith(b"HTTP/1.1 401 ") for answer in answers.values())
    assert all(b'"code": "unauthorized"' in answer for answer in answers.values())


def test_a_body_with_a_valid_key_that_comes_too_slowly_is_cut_off_with_408(server):
    # 4 × 64 KiB, a piece a second; the server allows 0.5 s + 1 µs a byte, so the second piece is late.
    piece = b" " * 65536
    sock = raw_request(
        server.port,
        f"POST /v1/events HTTP/1.1\nHost: 127.0.0.1\nx-api-key: {server.api_key}\ncontent-type: application/json\n"
        f"content-length: {4 * len(piece)}\n",
    )
    with sock:
        started = time.monotonic()
        sock.sendall(piece)
        time.sleep(1)
        sock.sendall(piece)
        status, _, body = read_answer(sock)
        elapsed = time.monotonic() - started
    assert status == 408
    assert json.loads(body)["code"] == "request_timeout"
    assert 1 <= elapsed < 3
    # The worker that answered early is fine: every later request is served.
    for _ in range(6):
        assert server.api("GET", "/v1/environment")[0] == 200
        assert server.api("POST", "/v1/events", an_event())[0] == 202


def assert_dead_soon(pid: int) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return
        if state in {"Z", "X"}:
            return
        time.sleep(0.02)
    raise AssertionError(f"worker {pid} still alive 5 s after SIGKILL")


def test_a_killed_worker_is_replaced_and_the_server_keeps_answering(database_url, api_key, tmp_path):
    server = start_server(database_url, tmp_path, api_key=api_key)
    try:
        workers = server.worker_pids()
        assert len(workers) == 2, workers
        os.kill(workers[0], signal.SIGKILL)
        assert_dead_soon(workers[0])
        killed_at = time.monotonic()
        outcomes: list[tuple[float, int | str]] = []
        while time.monotonic() - killed_at < 15:
            try:
                outcome = server.api("POST", "/v1/events", an_event(), timeout=5)[0]
            except OSError as exc:
                outcome = type(exc).__name__
            outcomes.append((time.monotonic() - killed_at, outcome))
            current = server.worker_pids()
            if len(outcomes) >= 20 and len(current) == 2 and workers[0] not in current:
                break
            time.sleep(0.1)
        print("after the kill:", [(round(at, 2), outcome) for at, outcome in outcomes])
        assert server.process.poll() is None, server.log()
        # A connection can be reset while granian notices the dead worker (the first moments after the kill);
        # every request after that is served.
        assert all(outcome == 202 for at, outcome in outcomes if at > 1.0), outcomes
        assert sum(outcome == 202 for _, outcome in outcomes) >= 15
        replaced = server.worker_pids()
        assert len(replaced) == 2 and workers[0] not in replaced and workers[1] in replaced
        assert "Respawning worker" in server.log()
        assert server.api("GET", "/v1/environment")[0] == 200
    finally:
        stop_server(server)


def test_an_unreachable_database_answers_503_not_500(tmp_path):
    closed_port = "postgres://postgres@127.0.0.1:1/flexmeter"
    server = start_server(closed_port, tmp_path, env={"DATABASE_POOL_TIMEOUT": "1"}, api_key="fm_any-key")
    try:
        for method, path, payload in [
            ("POST", "/v1/events", an_event()),
            ("GET", "/v1/environment", None),
            ("GET", "/v1/meters", None),
        ]:
            began = time.monotonic()
            status, body, response = server.api(method, path, payload)
            assert time.monotonic() - began < 5
            assert status == 503, (method, path, status, body)
            assert body["code"] == "service_unavailable"
            assert body["http_status_code"] == 503
            assert response.headers["Retry-After"] == "5"
        response, page = server.request("GET", "/login/")
        assert response.status == 503
        assert response.headers["Content-Type"].startswith("text/html")
        assert response.headers["Retry-After"] == "5"
        assert b"Temporarily unavailable" in page
    finally:
        stop_server(server)
