"""The one outgoing HTTP call of webhooks: POST a signed body to an endpoint and report what came back.

Plain `http.client`: no redirects are followed (a 3xx is a failed attempt, as Standard Webhooks senders do), the
timeout bounds the whole exchange, and only the first `EXCERPT_BYTES` of the answer are read and kept."""

from __future__ import annotations

import base64
import http.client
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

EXCERPT_BYTES = 1024


@dataclass(frozen=True)
class Answer:
    """What one attempt got: a status code and the start of the body, or an error with no status code."""

    status_code: int | None
    excerpt: str
    error: str
    duration_ms: int

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300 and not self.error


def post(url: str, *, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
    started = time.monotonic()
    deadline = started + timeout
    parts = urlsplit(url)
    connection_class = http.client.HTTPSConnection if parts.scheme.lower() == "https" else http.client.HTTPConnection
    headers = dict(headers)
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(credentials).decode()
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection = connection_class(parts.hostname or "", parts.port, timeout=timeout)
    status_code: int | None = None
    chunks: list[bytes] = []
    error = ""
    try:
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        status_code = response.status
        received = 0
        while received < EXCERPT_BYTES:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            if connection.sock is not None:
                connection.sock.settimeout(remaining)
            chunk = response.read1(EXCERPT_BYTES - received)
            if not chunk:
                break
            chunks.append(chunk)
            received += len(chunk)
        if time.monotonic() > deadline:
            raise TimeoutError
    except TimeoutError:
        error = f"timed out: no complete answer within {timeout:g} s"
    except (OSError, http.client.HTTPException, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:500] if str(exc) else type(exc).__name__
    finally:
        connection.close()
    duration_ms = round((time.monotonic() - started) * 1000)
    excerpt = b"".join(chunks).decode("utf-8", errors="replace").replace("\x00", "")
    return Answer(status_code=status_code, excerpt=excerpt, error=error, duration_ms=duration_ms)
