"""Reading /v1 request bodies: to their end when chunked, and under a deadline.

granian (WSGI) calls the application as soon as a request's headers are in and streams the body behind
`wsgi.input`: `read(n)` blocks the calling request thread, without a timeout, until n bytes have arrived or the body
ends. Two consequences shape this module and flexmeter.middleware:

- A body is only read once the request's API key is known to be valid (the middleware answers 401 first), so a
  client without a key cannot hold a thread however slowly it sends.
- The body is read in pieces of READ_CHUNK_BYTES; after each, a body of N bytes received so far must have taken no
  longer than min(REQUEST_BODY_TIMEOUT, REQUEST_BODY_GRACE + N / REQUEST_BODY_MIN_RATE) seconds, or the answer is
  408. A read cannot be interrupted inside a piece: granian offers no timeout, and answering while another thread
  is still blocked in `wsgi.input.read()` wedges the granian worker (measured with granian 2.8: every later request
  on that worker hangs), so the read stays on the request thread. A client with a valid key that stalls inside a
  piece therefore holds its thread until it sends or disconnects; a proxy that buffers request bodies in front of
  granian (nginx's default) removes that too.

A chunked body (`Transfer-Encoding: chunked`, no Content-Length) is read to its end, which the WSGI server marks
(`wsgi.input_terminated`); Django alone would read it as empty.
"""

import io
import math
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


def read_body(stream, *, length: int | None, limits: BodyLimits) -> bytes:
    """The whole body from `stream` (`length` bytes, or up to its end when None), within `limits`.

    Read in pieces of READ_CHUNK_BYTES, checking the deadline after each: RequestBodyTimeout (408) once the
    bytes received took longer than they may, PayloadTooLarge (413) beyond `limits.max_bytes`, ValidationFailed
    (400) when the client stops before its Content-Length or the read fails.
    """
    started = time.monotonic()
    pieces = []
    received = 0
    while True:
        if length is None:
            # Past the limit by one byte is enough to know the body is too large.
            wanted = min(READ_CHUNK_BYTES, limits.max_bytes + 1 - received)
        else:
            wanted = min(READ_CHUNK_BYTES, length - received)
        if wanted <= 0:
            break
        try:
            piece = stream.read(wanted)
        except OSError as exc:
            raise ValidationFailed(
                f"The request body could not be read: {exc}", details={"body": "could not be read"}
            ) from None
        if not piece:
            break
        pieces.append(piece)
        received += len(piece)
        elapsed = time.monotonic() - started
        if elapsed > limits.seconds_allowed(received):
            raise RequestBodyTimeout(
                f"The request body arrived too slowly ({received} bytes in {elapsed:.1f} s)",
                details={"body": "arrived too slowly"},
            )
    body = b"".join(pieces)
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
