"""Django's last-resort error views (`handler400`, `handler500`): the JSON envelope under /v1, and a 503 that asks
the client to retry when the database could not be reached, whether the failure was in a view or a middleware."""

import sys

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views import defaults

from flexmeter.db import is_database_unavailable
from flexmeter.envelope import error_response, service_unavailable_response

API_PREFIX = "/v1/"

UNAVAILABLE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Temporarily unavailable · flexmeter</title></head>
<body><h1>Temporarily unavailable</h1><p>The database cannot be reached right now. Try again in a moment.</p></body>
</html>
"""


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """400 for requests Django refuses before any view runs, e.g. a Host header not in ALLOWED_HOSTS."""
    if request.path.startswith(API_PREFIX):
        return error_response(code="validation_error", message=f"Bad request: {exception}", status=400)
    return defaults.bad_request(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    exception = sys.exc_info()[1]
    if exception is not None and is_database_unavailable(exception):
        if request.path.startswith(API_PREFIX):
            return service_unavailable_response()
        response = HttpResponse(UNAVAILABLE_PAGE, status=503)
        response["Retry-After"] = str(settings.DATABASE_UNAVAILABLE_RETRY_AFTER)
        return response
    if request.path.startswith(API_PREFIX):
        return error_response(code="internal_error", message="Internal error", status=500)
    return defaults.server_error(request)
