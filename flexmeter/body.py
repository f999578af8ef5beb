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
import queue
import threading
import time
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


class _BodyRead:
    """One body read in chunks on a reader thread; `received` and `awaiting` let the request thread see progress."""

    __slots__ = ("stream", "length", "max_bytes", "received", "awaiting", "abandoned", "done", "body", "error")

    def __init__(self, stream, length: int | None, max_bytes: int):
        self.stream = stream
        self.length = length
        self.max_bytes = max_bytes
        self.received = 0
        self.awaiting = 0
        self.abandoned = False
        # Held until the read is over: a plain lock is the cheapest thing for the request thread to wait on.
        self.done = threading.Lock()
        self.done.acquire()
        self.body = b""
        self.error: BaseException | None = None

    def run(self) -> None:
        chunks = []
        try:
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
            self.body = b"".join(chunks)
        except BaseException as exc:  # handed to the waiting request thread
            self.error = exc
        finally:
            self.done.release()


class _ReaderPool:
    """Daemon threads that run body reads: a new one starts whenever none is idle, up to `size`; beyond that,
    reads wait in the queue (under their deadline).

    Not a ThreadPoolExecutor: its threads are joined when the interpreter exits, so a reader blocked on a client
    that never finishes its body would keep a granian worker from stopping; its futures also cost more per request.
    """

    def __init__(self, size: int):
        self._size = size
        self._reads: queue.SimpleQueue[_BodyRead] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0

    def submit(self, read: _BodyRead) -> None:
        with self._lock:
            start_thread = self._idle == 0 and self._threads < self._size
            if start_thread:
                self._threads += 1
            elif self._idle:
                self._idle -= 1
        self._reads.put(read)
        if start_thread:
            threading.Thread(target=self._work, name="body-reader", daemon=True).start()

    def _work(self) -> None:
        while True:
            self._reads.get().run()
            with self._lock:
                self._idle += 1


_pool: _ReaderPool | None = None
_pool_lock = threading.Lock()


def _reader_pool() -> _ReaderPool:
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = _ReaderPool(settings.REQUEST_BODY_READERS)
    return _pool


def read_body(stream, *, length: int | None, limits: BodyLimits) -> bytes:
    """The whole body from `stream` (`length` bytes, or up to its end when None), within `limits`.

    RequestBodyTimeout (408) when it arrives too slowly, PayloadTooLarge (413) beyond `limits.max_bytes`,
    ValidationFailed (400) when the client stops before its Content-Length or the read fails.
    """
    read = _BodyRead(stream, length, limits.max_bytes)
    started = time.monotonic()
    _reader_pool().submit(read)
    while True:
        remaining = started + limits.seconds_allowed(read.received + read.awaiting) - time.monotonic()
        if remaining <= 0:
            read.abandoned = True
            raise RequestBodyTimeout(
                f"The request body did not arrive in time ({read.received} bytes after "
                f"{time.monotonic() - started:.1f} s)",
                details={"body": "arrived too slowly"},
            )
        # Waking up does not mean done: the reader may only have made progress, which extends the deadline.
        if read.done.acquire(timeout=min(remaining, 1.0)):
            break
    if read.error is not None:
        raise ValidationFailed(
            f"The request body could not be read: {read.error}", details={"body": "could not be read"}
        ) from None
    body = read.body
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
