"""Middleware: JSON envelopes for everything under /v1 (and its key and body checks), HEAD on dashboard pages, the
dashboard's current environment, and dashboard-only versions of Django's session, CSRF, authentication and
messages middleware."""

import logging

from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import Http404, HttpRequest, HttpResponseBadRequest, HttpResponseNotFound
from django.middleware.csrf import CsrfViewMiddleware

from flexmeter.auth import api_key_precheck, unauthorized_response
from flexmeter.body import request_body_preload
from flexmeter.db import retry_later_message
from flexmeter.envelope import error_response, service_unavailable_response
from flexmeter.errors import FlexmeterError
from flexmeter.text import text_problem

logger = logging.getLogger(__name__)

API_PREFIX = "/v1/"
JSON_CONTENT_TYPES = {"application/json", ""}
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
SESSION_ENVIRONMENT_KEY = "environment_id"


class HeadAsGetMiddleware:
    """HEAD on a dashboard page answers exactly as GET would, without the body (views that allow only GET would
    answer 405). /v1 keeps its own method rules."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        if request.method != "HEAD" or request.path.startswith(API_PREFIX):
            return self.get_response(request)
        request.method = "GET"
        response = self.get_response(request)
        if not response.streaming:
            response["Content-Length"] = str(len(response.content))
            response.content = b""
        return response


class ApiErrorMiddleware:
    """Keeps /v1 answers JSON and guards request bodies.

    A write (POST, PUT, PATCH, DELETE) without a valid API key is answered 401 before its body is read; bodies are
    then checked (413 oversized, 400 wrong content type) and read under a deadline (408, flexmeter.body), chunked
    ones included. Unknown paths answer 404 and crashes 500 in the envelope; a database that cannot be reached 503.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        if not request.path.startswith(API_PREFIX):
            return self.get_response(request)
        if request.method in WRITE_METHODS:
            if not api_key_precheck(request):
                return unauthorized_response()
            rejection = self._reject_body(request)
            if rejection is not None:
                return rejection
            # Reads (GET…) never have their body read, so they need no deadline.
            try:
                request_body_preload(request)
            except FlexmeterError as exc:
                return error_response(code=exc.code, message=exc.message, status=exc.http_status, details=exc.details)
        response = self.get_response(request)
        if response.status_code == 404 and not response.get("Content-Type", "").startswith("application/json"):
            return error_response(code="not_found", message=f"No API endpoint at {request.path}", status=404)
        if response.status_code == 405 and not response.get("Content-Type", "").startswith("application/json"):
            return error_response(
                code="invalid_operation", message=f"{request.method} is not allowed on {request.path}", status=405
            )
        return response

    def _reject_body(self, request: HttpRequest):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if length > limit:
            return error_response(
                code="validation_error",
                message=f"Request body is {length} bytes; the limit is {limit} bytes",
                status=413,
                details={"body": f"at most {limit} bytes"},
            )
        content_type = request.content_type or ""
        has_body = length or "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
        if has_body and content_type not in JSON_CONTENT_TYPES:
            return error_response(
                code="validation_error",
                message=f"Content-Type must be application/json, not {content_type}",
                status=400,
                details={"Content-Type": "must be application/json"},
            )
        return None

    def process_exception(self, request: HttpRequest, exception: Exception):
        """Crashes of /v1 views outside ninja (POST /v1/events): logged, and answered in the envelope."""
        if request.path.startswith(API_PREFIX):
            retry = retry_later_message(exception)
            if retry is not None:
                logger.warning("%s on %s %s: %s", retry, request.method, request.path, exception)
                return service_unavailable_response(retry)
            logger.error("Unhandled API error on %s %s", request.method, request.path, exc_info=exception)
            message = f"Internal error: {exception}" if settings.DEBUG else "Internal error"
            return error_response(code="internal_error", message=message, status=500)
        return None


class UnstorableTextMiddleware:
    """A NUL character in the URL is answered before any view runs: no database stores it, so a lookup or filter
    with it could only fail (PostgreSQL raises). In the path it names nothing that can exist (404, as any unknown
    id); in a query parameter it is a 400 naming the parameter. Under /v1 both answer the error envelope.

    Query strings cannot carry lone surrogates (Django decodes them with replacement characters); JSON bodies can,
    and are checked where they are parsed (`flexmeter.text.json_body_check`), after the API key.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        api = request.path.startswith(API_PREFIX)
        if text_problem(request.path):
            message = f"Nothing exists at a path with a NUL character ({request.method} {request.path!a})"
            if api:
                return error_response(code="not_found", message=message, status=404)
            return HttpResponseNotFound(message, content_type="text/plain; charset=utf-8")
        problems = _query_text_problems(request)
        if not problems:
            return self.get_response(request)
        message = "; ".join(f"{where}: {problem}" for where, problem in problems.items())
        if api:
            return error_response(code="validation_error", message=message, status=400, details=problems)
        return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")


def _query_text_problems(request: HttpRequest) -> dict[str, str]:
    problems: dict[str, str] = {}
    for key, values in request.GET.lists():
        if problem := text_problem(key):
            problems["query"] = f"a parameter name {problem}"
        for value in values:
            if problem := text_problem(value):
                problems[key] = problem
    return problems


class DashboardErrorMiddleware:
    """A domain error that escapes a dashboard view (a meter stored before a rule that it now breaks, say) is shown
    as a page with its message and status, not as a 500: the user can act on the message. A view's Http404 (an
    unknown event id) is the 404 page, with DEBUG on too: the demo runs with DEBUG and must not show Django's
    debug page for a mistyped id."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception):
        if request.path.startswith(API_PREFIX):
            return None
        if isinstance(exception, Http404):  # a proper page even with DEBUG on, never Django's debug page
            from flexmeter.error_views import not_found

            return not_found(request, exception)
        if not isinstance(exception, FlexmeterError):
            return None
        from django.shortcuts import render

        return render(request, "flexmeter/error.html", {"error": exception}, status=exception.http_status)


class CurrentEnvironmentMiddleware:
    """Sets `request.environment` for dashboard pages from the session (the environment switcher)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        if not request.path.startswith(API_PREFIX) and getattr(request, "session", None) is not None:
            request.environment = _session_environment(request)
        return self.get_response(request)


def _session_environment(request: HttpRequest):
    from flexmeter.models import Environment

    environment_id = request.session.get(SESSION_ENVIRONMENT_KEY)
    environment = None
    if environment_id is not None:
        environment = Environment.objects.filter(pk=environment_id).first()
    if environment is None:
        environment = Environment.objects.order_by("created_at", "id").first()
    return environment


def dashboard_only(middleware_class: type) -> type:
    """`middleware_class`, skipped for /v1 requests.

    The JSON API authenticates every request by API key and keeps no session, so sessions, CSRF tokens, the
    logged-in user and flash messages have nothing to do there; skipping them saves a measurable share of a
    single-event ingest (~40 µs of ~0.8 ms). Without a session nothing under /v1 can be cookie-authenticated,
    which is also why CSRF protection is not needed there (every /v1 view is CSRF-exempt anyway).
    """

    def __call__(self, request: HttpRequest):
        if request.path.startswith(API_PREFIX):
            return self.get_response(request)
        return middleware_class.__call__(self, request)

    namespace = {"__call__": __call__, "__module__": __name__, "__doc__": f"{middleware_class.__name__}, not for /v1."}
    if hasattr(middleware_class, "process_view"):

        def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
            if request.path.startswith(API_PREFIX):
                return None
            return middleware_class.process_view(self, request, view_func, view_args, view_kwargs)

        namespace["process_view"] = process_view
    return type(f"Dashboard{middleware_class.__name__}", (middleware_class,), namespace)


DashboardSessionMiddleware = dashboard_only(SessionMiddleware)
DashboardCsrfViewMiddleware = dashboard_only(CsrfViewMiddleware)
DashboardAuthenticationMiddleware = dashboard_only(AuthenticationMiddleware)
DashboardMessageMiddleware = dashboard_only(MessageMiddleware)
