"""JSON in and out for the event endpoints: exact numbers both ways (`metering.exactjson`), domain errors for
bodies that are too large or not JSON."""

from collections.abc import Callable
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse

from flexmeter.errors import PayloadTooLarge, ValidationFailed
from flexmeter.text import json_body_check
from metering import exactjson


def json_response(body, *, status: int = 200, default: Callable[[Any], Any] | None = None) -> HttpResponse:
    """A JSON answer written with the exact encoder (numbers keep every digit); `default` as `exactjson.dumps`'."""
    return HttpResponse(exactjson.dumps(body, default=default), status=status, content_type="application/json")


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
