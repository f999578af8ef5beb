"""Runs the README's production command (granian, DEBUG off) on 127.0.0.1 for the production tests, and talks to
it with the standard library only: http.client for ordinary requests, raw sockets for slow and chunked ones."""

import http.client
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
SECRET_KEY = "production-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
PASSWORD = "production smoke password"
SETUP_SCRIPT = """
import django
django.setup()
from django.contrib.auth import get_user_model
from django.core.management import call_command
from flexmeter.services import api_key_create, environment_get_or_create
call_command("migrate", verbosity=0)
get_user_model().objects.create_superuser("admin", "admin@example.com", {password!r})
print(api_key_create(environment=environment_get_or_create(slug="production"), name="smoke")[1])
"""


def documented_command() -> list[str]:
    """The granian line of the README's *Production* section, word for word."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Production\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith(".venv/bin/granian ")]
    assert len(lines) == 1, "the README's Production section must show exactly one granian command"
    return shlex.split(lines[0])


def bound_to(command: list[str], port: int) -> list[str]:
    """`command` with its --host and --port pointed at 127.0.0.1:`port`; every other word as documented."""
    bound = list(command)
    bound[bound.index("--host") + 1] = "127.0.0.1"
    bound[bound.index("--port") + 1] = str(port)
    return bound


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def base_environment(database_url: str) -> dict[str, str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GRANIAN_", "REQUEST_BODY_", "CSP", "SECURE_", "DJANGO_SETTINGS_MODULE"))
    }
    environment.update(
        DEBUG="false",
        SECRET_KEY=SECRET_KEY,
        ALLOWED_HOSTS="127.0.0.1",
        DATABASE_URL=database_url,
        # Signing in over plain HTTP, as the tests do.
        SESSION_COOKIE_SECURE="false",
        CSRF_COOKIE_SECURE="false",
        LOG_LEVEL="ERROR",
    )
    return environment


def prepare_database(database_url: str) -> str:
    """Migrate `database_url`, add the user `admin` and return a fresh API key of the `production` environment."""
    result = subprocess.run(
        [sys.executable, "-c", SETUP_SCRIPT.format(password=PASSWORD)],
        cwd=ROOT,
        env={**base_environment(database_url), "DJANGO_SETTINGS_MODULE": "flexmeter.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


@dataclass
class Server:
    port: int
    process: subprocess.Popen
    log_path: Path
    api_key: str = ""
    cookies: dict[str, str] = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None, timeout: float = 10
    ) -> tuple[http.client.HTTPResponse, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            all_headers = dict(headers or {})
            if self.cookies:
                all_headers.setdefault("Cookie", "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
            connection.request(method, path, body=body, headers=all_headers)
            response = connection.getresponse()
            content = response.read()
            for header in response.headers.get_all("Set-Cookie") or []:
                name, _, rest = header.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
            return response, content
        finally:
            connection.close()

    def api(self, method: str, path: str, payload=None, timeout: float = 10):
        body = json.dumps(payload).encode() if payload is not None else None
        headers = {"x-api-key": self.api_key, "content-type": "application/json"}
        response, content = self.request(method, path, body, headers, timeout=timeout)
        return response.status, (json.loads(content) if content else None), response

    def sign_in(self) -> None:
        response, page = self.request("GET", "/login/")
        assert response.status == 200
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1).decode()
        form = f"csrfmiddlewaretoken={token}&username=admin&password={PASSWORD.replace(' ', '+')}".encode()
        response, _ = self.request(
            "POST", "/login/", form, {"content-type": "application/x-www-form-urlencoded", "referer": "/login/"}
        )
        assert response.status == 302, response.status
        assert "sessionid" in self.cookies

    def worker_pids(self) -> list[int]:
        """granian's worker processes: the children of the main process we started."""
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid:
                children.append(int(stat.parent.name))
        return sorted(children)


def start_server(
    database_url: str,
    log_dir: Path,
    *,
    env: dict | None = None,
    api_key: str = "",
    wait_path: str = "/static/css/flexmeter.css",
) -> Server:
    port = free_port()
    log_path = log_dir / f"granian-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            bound_to(documented_command(), port),
            cwd=ROOT,
            env={**base_environment(database_url), **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(port=port, process=process, log_path=log_path, api_key=api_key)
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, f"granian exited: {server.log()}"
        try:
            response, _ = server.request("GET", wait_path, timeout=2)
            if response.status == 200:
                return server
        except OSError:
            pass
        assert time.monotonic() < deadline, f"granian did not answer in 30 s: {server.log()}"
        time.sleep(0.2)


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(5)


def postgres_url_for(base_url: str, suffix: str) -> str:
    parts = urlsplit(base_url)
    return parts._replace(path=f"{parts.path.rstrip('/')}_{suffix}").geturl()


def raw_request(port: int, head: str) -> socket.socket:
    """A socket that has sent `head` (request line and headers, CRLF line ends added) and nothing else yet."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n")
    return sock


def read_answer(sock: socket.socket, timeout: float = 10) -> tuple[int, dict, bytes]:
    """Status, headers and body of the answer on `sock` (Content-Length or chunked)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before an answer: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (h.partition(":") for h in header_lines)}
    if "content-length" in headers:
        while len(rest) < int(headers["content-length"]):
            rest += sock.recv(65536)
        body = rest[: int(headers["content-length"])]
    else:
        while not rest.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        body, remaining = b"", rest
        while remaining:
            size_line, _, remaining = remaining.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                break
            body, remaining = body + remaining[:size], remaining[size + 2 :]
    return int(status_line.split()[1]), headers, body
