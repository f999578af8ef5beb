"""Reading /v1 request bodies so that a slow client never holds one of the server's request threads.

granian (WSGI) calls the application as soon as a request's headers are in and streams the body behind
`wsgi.input`: `read(n)` blocks the calling thread, without a timeout, until n bytes have arrived or the body ends.
A client trickling its body one byte a second would hold a request thread (2 workers × 8 threads in the documented
command) for as long as it likes. So the body is read on a separate reader thread while the request thread waits
with a deadline that grows with the bytes received: a body of N bytes may take
min(REQUEST_BODY_TIMEOUT, REQUEST_BODY_GRACE + N / REQUEST_BODY_MIN_RATE) seconds. Past it the request is answered
408 and its request thread is free again; the reader stays blocked until the client sends more or goes away, but
readers are capped per process (REQUEST_BODY_READERS) and only clients with a valid API key get this far
(flexmeter.middleware checks the key before any body is read).

A chunked body (`Transfer-Encoding: chunked`, no Content-Length) is read to its end, which the WSGI server marks
(`wsgi.input_terminated`); Django alone would read it as empty.
"""

import io
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest

from flexmeter.errors import FlexmeterError, PayloadTooLarge, ValidationFailed

READ_CHUNK_BYTES = 64 * 1024


class RequestBodyTimeout(FlexmeterError):
    code = "request_timeout"
    http_status = 408
    default_message = "The request body arrived too slowly"


class LengthRequired(FlexmeterError):
    code = "validation_error"
    http_status = 411
    default_message = "A request body needs a Content-Length header"


@dataclass(frozen=True)
class BodyLimits:
    timeout: float
    grace: float
    min_rate: float
    max_bytes: int

    @classmethod
    def from_settings(cls) -> "BodyLimits":
        return cls(
            timeout=settings.REQUEST_BODY_TIMEOUT,
            grace=settings.REQUEST_BODY_GRACE,
            min_rate=settings.REQUEST_BODY_MIN_RATE,
            max_bytes=settings.DATA_UPLOAD_MAX_MEMORY_SIZE,
        )

    def seconds_allowed(self, size: int) -> float:
        """How long a body of `size` bytes may take to arrive."""
        by_rate = self.grace + size / self.min_rate if self.min_rate else math.inf
        return min(self.timeout, by_rate)


class _BodyReader:
    """Reads one body in chunks on a reader thread, publishing its progress for the waiting request thread."""

    def __init__(self, stream, length: int | None, max_bytes: int):
        self.stream = stream
        self.length = length
        self.max_bytes = max_bytes
        self.received = 0
        self.awaiting = 0
        self.abandoned = False

    def run(self) -> bytes:
        chunks = []
        while not self.abandoned:
            if self.length is None:
                # Past the limit by one byte is enough to know the body is too large.
                self.awaiting = min(READ_CHUNK_BYTES, self.max_bytes + 1 - self.received)
            else:
                self.awaiting = min(READ_CHUNK_BYTES, self.length - self.received)
            if self.awaiting <= 0:
                break
            chunk = self.stream.read(self.awaiting)
            self.awaiting = 0
            if not chunk:
                break
            chunks.append(chunk)
            self.received += len(chunk)
        return b"".join(chunks)


_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _reader_pool() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        with _executor_lock:
            if _executor is None:
                _executor = ThreadPoolExecutor(settings.REQUEST_BODY_READERS, thread_name_prefix="body-reader")
    return _executor


def read_body(stream, *, length: int | None, limits: BodyLimits) -> bytes:
    """The whole body from `stream` (`length` bytes, or up to its end when None), within `limits`.

    RequestBodyTimeout (408) when it arrives too slowly, PayloadTooLarge (413) beyond `limits.max_bytes`,
    ValidationFailed (400) when the client stops before its Content-Length.
    """
    reader = _BodyReader(stream, length, limits.max_bytes)
    started = time.monotonic()
    future = _reader_pool().submit(reader.run)
    while True:
        remaining = started + limits.seconds_allowed(reader.received + reader.awaiting) - time.monotonic()
        if remaining <= 0:
            reader.abandoned = True
            future.cancel()
            raise RequestBodyTimeout(
                f"The request body did not arrive in time ({reader.received} bytes after "
                f"{time.monotonic() - started:.1f} s)",
                details={"body": "arrived too slowly"},
            )
        try:
            body = future.result(timeout=remaining)
        except FutureTimeout:
            continue  # the reader may have made progress, which extends the deadline
        except OSError as exc:
            raise ValidationFailed(f"The request body could not be read: {exc}", details={"body": str(exc)}) from None
        break
    if length is None and len(body) > limits.max_bytes:
        raise PayloadTooLarge(
            f"Request body is over {limits.max_bytes} bytes", details={"body": f"at most {limits.max_bytes} bytes"}
        )
    if length is not None and len(body) < length:
        raise ValidationFailed(
            f"The request body ended after {len(body)} of {length} bytes", details={"body": "is incomplete"}
        )
    return body


def request_body_preload(request: HttpRequest) -> None:
    """Read `request`'s body under the deadline and leave it where Django's `request.body` finds it.

    A request without a body (no Content-Length, or 0, and not chunked) is left alone.
    """
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise ValidationFailed(details={"Content-Length": "is not a number"}) from None
    chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
    if chunked and not request.META.get("wsgi.input_terminated"):
        raise LengthRequired(details={"Content-Length": "is required"})
    if not chunked and length <= 0:
        return
    body = read_body(request.META["wsgi.input"], length=None if chunked else length, limits=BodyLimits.from_settings())
    # The state Django itself leaves after reading `request.body`.
    request._body = body
    request._stream = io.BytesIO(body)
    request.META["CONTENT_LENGTH"] = str(len(body))
