"""/v1 write bodies: the key is checked before the body is read, and bodies are read under a deadline, chunked ones
included (flexmeter.body, flexmeter.middleware.ApiErrorMiddleware)."""

import io
import json
import time

import pytest
from django.db import connection
from django.http import HttpResponse
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from flexmeter.auth import PRECHECK_TTL, _recently_valid
from flexmeter.body import READ_CHUNK_BYTES, BodyLimits, RequestBodyTimeout, read_body
from flexmeter.errors import PayloadTooLarge, ValidationFailed
from flexmeter.middleware import ApiErrorMiddleware
from flexmeter.services import api_key_revoke

pytestmark = pytest.mark.django_db

EVENT = {"event_name": "api.calls", "external_customer_id": "acme"}


class UntouchableStream:
    """A wsgi.input that fails the test if anything reads it."""

    def read(self, *args):
        raise AssertionError("the body was read")

    readline = read


class TricklingStream:
    """Hands out `data` `piece` bytes at a time, sleeping `pause` seconds before each piece, like a slow client."""

    def __init__(self, data: bytes, *, piece: int, pause: float):
        self.data = data
        self.piece = piece
        self.pause = pause
        self.position = 0

    def read(self, size: int) -> bytes:
        out = b""
        while len(out) < size and self.position < len(self.data):
            time.sleep(self.pause)
            take = min(self.piece, size - len(out))
            out += self.data[self.position : self.position + take]
            self.position += take
        return out


def limits(*, timeout=5.0, grace=0.2, min_rate=1_000_000.0, max_bytes=1_000_000) -> BodyLimits:
    return BodyLimits(timeout=timeout, grace=grace, min_rate=min_rate, max_bytes=max_bytes)


def test_time_allowed_grows_with_the_size_up_to_the_timeout():
    rules = limits(timeout=60, grace=5, min_rate=10_000)
    assert rules.seconds_allowed(0) == 5
    assert rules.seconds_allowed(100_000) == 15
    assert rules.seconds_allowed(32 * 1024 * 1024) == 60


def test_a_body_whose_pieces_come_too_slowly_is_cut_off_after_the_late_piece():
    # 64 KiB after 0.2 s, where 1 MB/s after a 0.1 s grace allows 0.166 s.
    slow = TricklingStream(b"x" * (4 * READ_CHUNK_BYTES), piece=READ_CHUNK_BYTES, pause=0.2)
    started = time.monotonic()
    with pytest.raises(RequestBodyTimeout) as caught:
        read_body(slow, length=4 * READ_CHUNK_BYTES, limits=limits(grace=0.1, min_rate=1_000_000))
    assert 0.2 <= time.monotonic() - started < 0.39
    assert slow.position == READ_CHUNK_BYTES
    assert caught.value.http_status == 408
    assert caught.value.code == "request_timeout"
    assert caught.value.details == {"body": "arrived too slowly"}


def test_the_total_timeout_caps_a_body_that_keeps_coming():
    # 64 KiB every 0.1 s keeps ahead of the rate, but the whole body would need 1.6 s.
    steady = TricklingStream(b"x" * (16 * READ_CHUNK_BYTES), piece=READ_CHUNK_BYTES, pause=0.1)
    started = time.monotonic()
    with pytest.raises(RequestBodyTimeout):
        read_body(steady, length=16 * READ_CHUNK_BYTES, limits=limits(timeout=0.35, grace=0.3, min_rate=1_000_000))
    assert time.monotonic() - started < 0.8
    assert steady.position < 16 * READ_CHUNK_BYTES


def test_progress_extends_the_deadline_beyond_the_grace():
    # Four pieces at 0.15 s each take 0.6 s, twice the grace, at ~437 KB/s: above the 200 KB/s minimum rate.
    data = bytes(range(256)) * (4 * READ_CHUNK_BYTES // 256)
    steady = TricklingStream(data, piece=READ_CHUNK_BYTES, pause=0.15)
    started = time.monotonic()
    assert read_body(steady, length=len(data), limits=limits(grace=0.3, min_rate=200_000)) == data
    assert time.monotonic() - started >= 0.6


def test_a_chunked_body_is_read_to_its_end():
    data = json.dumps(EVENT).encode()
    assert read_body(io.BytesIO(data), length=None, limits=limits()) == data


def test_a_chunked_body_over_the_limit_is_413():
    with pytest.raises(PayloadTooLarge):
        read_body(io.BytesIO(b"x" * 101), length=None, limits=limits(max_bytes=100))
    assert read_body(io.BytesIO(b"x" * 100), length=None, limits=limits(max_bytes=100)) == b"x" * 100


def test_a_body_shorter_than_its_content_length_is_400():
    with pytest.raises(ValidationFailed) as caught:
        read_body(io.BytesIO(b"x" * 10), length=20, limits=limits())
    assert caught.value.details == {"body": "is incomplete"}


def api_request(method: str, body: bytes, *, key: str | None, chunked: bool = False, stream=None):
    headers = {"HTTP_X_API_KEY": key} if key else {}
    request = RequestFactory().generic(method, "/v1/meters", body, content_type="application/json", **headers)
    if chunked:
        del request.META["CONTENT_LENGTH"]
        request.META["HTTP_TRANSFER_ENCODING"] = "chunked"
        request.META["wsgi.input_terminated"] = True
        request.META["wsgi.input"] = io.BytesIO(body)
    if stream is not None:
        request.META["wsgi.input"] = stream
    return request


def run_middleware(request) -> tuple[HttpResponse, list]:
    seen = []

    def view(request):
        seen.append(request.body)
        return HttpResponse("ok")

    return ApiErrorMiddleware(view)(request), seen


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("key", [None, "fm_bogus"])
def test_a_write_without_a_valid_key_is_401_before_its_body_is_read(method, key):
    request = api_request(method, b'{"name": "x"}', key=key, stream=UntouchableStream())
    response, seen = run_middleware(request)
    assert response.status_code == 401
    assert json.loads(response.content)["code"] == "unauthorized"
    assert seen == []


def test_a_write_with_a_valid_key_reaches_the_view_with_its_body(api_key):
    response, seen = run_middleware(api_request("POST", b'{"name": "x"}', key=api_key.raw_key))
    assert response.status_code == 200
    assert seen == [b'{"name": "x"}']


def test_a_chunked_write_reaches_the_view_with_its_body(api_key):
    request = api_request("POST", b'{"name": "chunked"}', key=api_key.raw_key, chunked=True)
    response, seen = run_middleware(request)
    assert response.status_code == 200
    assert seen == [b'{"name": "chunked"}']
    assert request.META["CONTENT_LENGTH"] == str(len(b'{"name": "chunked"}'))


def test_a_chunked_body_without_an_end_marker_is_411(api_key):
    request = api_request("POST", b"{}", key=api_key.raw_key, chunked=True)
    request.META["wsgi.input_terminated"] = False
    response, seen = run_middleware(request)
    assert response.status_code == 411
    assert seen == []


def test_a_slow_body_with_a_valid_key_is_408_in_the_envelope(api_key, settings):
    settings.REQUEST_BODY_GRACE = 0.2
    settings.REQUEST_BODY_MIN_RATE = 1_000_000
    body = b'{"name": "' + b"x" * 200 + b'"}'
    request = api_request("POST", body, key=api_key.raw_key, stream=TricklingStream(body, piece=len(body), pause=0.4))
    response, seen = run_middleware(request)
    assert response.status_code == 408
    payload = json.loads(response.content)
    assert payload["message"].startswith("The request body arrived too slowly (212 bytes in 0.")
    assert payload == {
        "code": "request_timeout",
        "message": payload["message"],
        "http_status_code": 408,
        "details": {"body": "arrived too slowly"},
    }
    assert seen == []


def test_reads_never_have_their_body_read(anonymous_api):
    request = RequestFactory().generic("GET", "/v1/environment", b"{}", content_type="application/json")
    request.META["wsgi.input"] = UntouchableStream()
    response, seen = run_middleware(request)
    assert response.status_code == 200


def test_a_key_revoked_after_its_precheck_still_gets_401(api, api_key):
    assert api.post("/v1/meters", {"name": "n", "event_name": "e", "aggregation": {"type": "COUNT"}}).status_code == 201
    api_key_revoke(api_key=api_key)
    # Within PRECHECK_TTL the body is read, but both the lean ingest view and ninja refuse the key themselves.
    assert api.post("/v1/events", EVENT).status_code == 401
    assert api.post("/v1/meters", {"name": "m", "event_name": "e", "aggregation": {"type": "COUNT"}}).status_code == 401


def test_a_valid_key_is_rechecked_after_the_ttl(api, api_key, monkeypatch):
    assert api.post("/v1/events", EVENT).status_code == 202
    assert any(expiry > time.monotonic() for expiry in _recently_valid.values())
    api_key_revoke(api_key=api_key)
    real_monotonic = time.monotonic
    monkeypatch.setattr(time, "monotonic", lambda: real_monotonic() + PRECHECK_TTL + 1)
    request = api_request("POST", json.dumps(EVENT).encode(), key=api_key.raw_key, stream=UntouchableStream())
    response, seen = run_middleware(request)
    assert response.status_code == 401
    assert seen == []


def test_a_prechecked_key_costs_ninja_no_second_lookup(api):
    _recently_valid.clear()
    with CaptureQueriesContext(connection) as captured:
        assert api.post("/v1/customers", {"external_id": "acme", "name": "Acme"}).status_code == 201
    key_lookups = [query["sql"] for query in captured.captured_queries if "key_hash" in query["sql"]]
    assert len(key_lookups) == 1
