"""JSON in and out for the event endpoints: exact numbers both ways (`metering.exactjson`), domain errors for
bodies that are too large or not JSON."""

import datetime as dt
from collections.abc import Callable
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse

from flexmeter.decimals import rfc3339
from flexmeter.errors import PayloadTooLarge, ValidationFailed
from flexmeter.text import json_body_check
from metering import exactjson


def json_response(body, *, status: int = 200, default: Callable[[Any], Any] | None = None) -> HttpResponse:
    """A JSON answer written with the exact encoder (numbers keep every digit); `default` as `exactjson.dumps`'."""
    return HttpResponse(exactjson.dumps(body, default=default), status=status, content_type="application/json")


def wire_response(body: Any, *, status: int = 200) -> HttpResponse:
    """`body` as JSON, its datetimes written as RFC 3339 UTC by the encoder as it meets them (no walk over the body
    first: a month of hourly windows holds 720)."""
    return json_response(body, status=status, default=_timestamp)


def _timestamp(value: Any) -> str:
    if not isinstance(value, dt.datetime):
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
    return rfc3339(value)


def request_json(request: HttpRequest):
    """The request body as exact JSON; ValidationFailed (400) or PayloadTooLarge (413) otherwise."""
    try:
        body = request.body
    except RequestDataTooBig as exc:
        raise PayloadTooLarge(details={"body": str(exc)}) from None
    json_body_check(body)
    try:
        return exactjson.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationFailed(
            f"Request body is not valid JSON: {exc}", details={"body": "is not valid JSON"}
        ) from None
    except RecursionError:
        raise ValidationFailed(details={"body": "is nested too deeply"}) from None
