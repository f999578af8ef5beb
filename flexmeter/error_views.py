"""Django's last-resort error views (`handler400`, `handler404`, `handler500`): the JSON envelope under /v1, a
404 page in the dashboard's own frame, and a 503 that asks the client to retry when the database could not be
reached, whether the failure was in a view or a middleware."""

import sys

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views import defaults

from flexmeter.db import CONFLICT_MESSAGE, UNAVAILABLE_MESSAGE, retry_later_message
from flexmeter.envelope import error_response, service_unavailable_response

API_PREFIX = "/v1/"

UNAVAILABLE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Temporarily unavailable · flexmeter</title></head>
<body><h1>Temporarily unavailable</h1><p>{reason} Try again in a moment.</p></body>
</html>
"""
_PAGE_REASONS = {
    UNAVAILABLE_MESSAGE: "The database cannot be reached right now.",
    CONFLICT_MESSAGE: "A change made at the same moment got in the way, and nothing was saved.",
}


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """400 for requests Django refuses before any view runs, e.g. a Host header not in ALLOWED_HOSTS."""
    if request.path.startswith(API_PREFIX):
        return error_response(code="validation_error", message=f"Bad request: {exception}", status=400)
    return defaults.bad_request(request, exception)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """A 404 page, also with DEBUG on (DashboardErrorMiddleware calls this for a dashboard view's Http404, before
    Django's debug page): in the dashboard's frame for a signed-in user, a plain page for anyone else (a portal
    visitor, a signed-out user), so nothing of the dashboard shows to them."""
    if request.path.startswith(API_PREFIX):
        return error_response(code="not_found", message=f"No API endpoint at {request.path}", status=404)
    message = str(exception) if exception is not None and exception.args else ""
    user = getattr(request, "user", None)
    signed_in = bool(user is not None and user.is_authenticated and getattr(request, "environment", None))
    template = "flexmeter/not_found.html" if signed_in else "404.html"
    return render(request, template, {"message": message, "path": request.path}, status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    exception = sys.exc_info()[1]
    retry = retry_later_message(exception) if exception is not None else None
    if retry is not None:
        if request.path.startswith(API_PREFIX):
            return service_unavailable_response(retry)
        response = HttpResponse(UNAVAILABLE_PAGE.format(reason=_PAGE_REASONS[retry]), status=503)
        response["Retry-After"] = str(settings.DATABASE_UNAVAILABLE_RETRY_AFTER)
        return response
    if request.path.startswith(API_PREFIX):
        return error_response(code="internal_error", message="Internal error", status=500)
    return defaults.server_error(request)
