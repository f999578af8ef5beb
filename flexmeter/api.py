"""The /v1 REST API root: authentication, the error envelope, and the routers of every app."""

import logging
import re

from django.conf import settings
from django.http import Http404, HttpRequest
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.parser import Parser

from flexmeter.auth import ApiKeyAuth, unauthorized_response
from flexmeter.db import retry_later_message
from flexmeter.envelope import ErrorOut, error_response, pydantic_loc_to_path, service_unavailable_response
from flexmeter.errors import FlexmeterError, ValidationFailed
from flexmeter.text import json_body_check

logger = logging.getLogger(__name__)


class StrictJsonParser(Parser):
    """Request bodies must be JSON objects (or arrays) sent as application/json.

    Numbers keep every digit (`metering.exactjson`): a multiplier sent as the JSON number
    `1.0000000000000000000000000000001` must not arrive as the float `1.0`.
    """

    def parse_body(self, request: HttpRequest):
        from metering import exactjson

        try:
            json_body_check(request.body)
            return exactjson.loads(request.body)
        except RecursionError:
            raise ValidationFailed(details={"body": "is nested too deeply"}) from None


ERROR_ANSWERS = {
    400: "Invalid input: `details` names each offending field by its JSON path",
    401: "Missing, unknown or revoked API key",
    404: "No such resource in this API key's environment",
    405: "The id is the name of another endpoint (`/v1/features/search`), which does not allow this method",
    408: "The request body arrived too slowly",
    409: "Conflicts with an existing resource",
    413: "The request body is too large",
    500: "Internal error",
    503: "The database is unavailable; retry later (see Retry-After)",
}
# Operations that answer 404 without an id in their path: lookups, and requests that name other resources.
_NOT_FOUND_WITHOUT_PATH_ID = {
    ("get", "/v1/events/lookup"),
    ("post", "/v1/events/usage/meter"),
    ("post", "/v1/features"),
    ("post", "/v1/entitlements"),
    ("post", "/v1/entitlements/check"),
    ("post", "/v1/subscriptions"),
    ("get", "/v1/subscriptions"),
    ("get", "/v1/customers/usage"),
    ("put", "/v1/customers"),
    ("get", "/v1/webhooks/messages"),
}
# Creating or changing a resource with a unique key (external id, lookup key, definition) can clash: 409.
_CONFLICTING_WRITE = re.compile(r"/v1/(meters|features|customers|plans|entitlements|subscriptions)(/\{\w+\}(/clone)?)?")


def operation_error_statuses(path: str, method: str) -> list[int]:
    """Every error status an operation can answer: what any request may meet (bad input, key, server, database),
    bodies (too large, too slow), ids that do not exist and resources that clash."""
    statuses = {400, 401, 500, 503}
    if method in {"post", "put", "patch", "delete"}:
        statuses |= {408, 413}
    if "{" in path or (method, path) in _NOT_FOUND_WITHOUT_PATH_ID:
        statuses.add(404)
    if "{" in path:
        statuses.add(405)
    if method in {"post", "put"} and _CONFLICTING_WRITE.fullmatch(path):
        statuses.add(409)
    return sorted(statuses)


class FlexmeterAPI(NinjaAPI):
    """The /v1 API, whose OpenAPI document lists every error answer of every operation with the envelope schema."""

    def get_openapi_schema(self, *, path_prefix: str | None = None, path_params: dict | None = None):
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.setdefault("ErrorOut", ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}"))
        envelope = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
        for path, operations in schema["paths"].items():
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                for status in operation_error_statuses(path, method):
                    responses[status] = {"description": ERROR_ANSWERS[status], "content": envelope}
        return schema


api = FlexmeterAPI(
    title="flexmeter API",
    version="1.0.0",
    description="Usage metering: meters, features, customers, events and usage. Speaks the Flexprice REST dialect.",
    auth=ApiKeyAuth(),
    parser=StrictJsonParser(),
    urls_namespace="v1",
    openapi_url="/openapi.json",
    docs_url="/docs",
)


@api.exception_handler(FlexmeterError)
def handle_domain_error(request, exc: FlexmeterError):
    return error_response(code=exc.code, message=exc.message, status=exc.http_status, details=exc.details)


@api.exception_handler(NinjaValidationError)
def handle_schema_error(request, exc: NinjaValidationError):
    details: dict[str, str] = {}
    for error in exc.errors:
        path = pydantic_loc_to_path(error.get("loc", ()))
        details.setdefault(path, error.get("msg", "invalid value"))
    message = "; ".join(f"{path}: {msg}" for path, msg in details.items()) or "Invalid request"
    return error_response(code="validation_error", message=message, status=400, details=details)


@api.exception_handler(AuthenticationError)
def handle_auth_error(request, exc: AuthenticationError):
    return unauthorized_response()


@api.exception_handler(HttpError)
def handle_http_error(request, exc: HttpError):
    if isinstance(exc.__cause__, FlexmeterError):
        # ninja wraps whatever the body parser raises in "Cannot parse request body"; the parser's own answer names
        # the fields at fault.
        return handle_domain_error(request, exc.__cause__)
    code = {400: "validation_error", 403: "permission_denied", 404: "not_found", 429: "too_many_requests"}
    return error_response(code=code.get(exc.status_code, "invalid_operation"), message=str(exc), status=exc.status_code)


@api.exception_handler(Http404)
def handle_not_found(request, exc: Http404):
    return error_response(code="not_found", message=str(exc) or "Not found", status=404)


@api.exception_handler(Exception)
def handle_unexpected(request, exc: Exception):
    retry = retry_later_message(exc)
    if retry is not None:
        logger.warning("%s on %s %s: %s", retry, request.method, request.path, exc)
        return service_unavailable_response(retry)
    logger.exception("Unhandled API error")
    message = f"Internal error: {exc}" if settings.DEBUG else "Internal error"
    return error_response(code="internal_error", message=message, status=500)


@api.get("/environment", tags=["environments"], summary="The environment this API key belongs to")
def current_environment(request):
    environment = request.environment
    return {"id": environment.public_id, "name": environment.name, "slug": environment.slug}


def _mount_routers() -> None:
    from catalog.api import features_router, meters_router
    from entitlements.api import (
        customer_entitlements_router,
        entitlements_router,
        plans_router,
        subscriptions_router,
    )
    from metering.api.customers import customers_router
    from metering.api.events import events_router
    from metering.api.portal import portal_router
    from metering.api.usage import usage_customers_router, usage_events_router
    from webhooks.api import webhooks_router

    api.add_router("/meters", meters_router)
    api.add_router("/features", features_router)
    # /customers/usage and /customers/portal/… must be matched before /customers/{customer_id} takes them for an id
    api.add_router("/customers", portal_router)
    api.add_router("/customers", usage_customers_router)
    api.add_router("/customers", customers_router)
    api.add_router("/events", events_router)
    api.add_router("/events", usage_events_router)
    api.add_router("/plans", plans_router)
    api.add_router("/entitlements", entitlements_router)
    api.add_router("/subscriptions", subscriptions_router)
    api.add_router("/customers", customer_entitlements_router)
    api.add_router("/webhooks", webhooks_router)


_mount_routers()
