"""The JSON error envelope of SPEC §6.1, built in one place for the API, the middleware and the 404/500 handlers."""

from django.conf import settings
from django.http import JsonResponse
from ninja import Field, Schema


class ErrorOut(Schema):
    """The error envelope, as the OpenAPI document describes every error answer."""

    code: str = Field(
        description="validation_error, unauthorized, not_found, already_exists, invalid_operation, permission_denied, "
        "too_many_requests, internal_error, service_unavailable…"
    )
    message: str
    http_status_code: int
    details: dict[str, str] = Field(description="offending field (JSON path) → message")


def error_response(*, code: str, message: str, status: int, details: dict | None = None) -> JsonResponse:
    return JsonResponse(
        {"code": code, "message": message, "http_status_code": status, "details": details or {}},
        status=status,
    )


def service_unavailable_response(message: str) -> JsonResponse:
    """503 for a request the client should send again (`flexmeter.db.retry_later_message` says why)."""
    response = error_response(code="service_unavailable", message=message, status=503)
    response["Retry-After"] = str(settings.DATABASE_UNAVAILABLE_RETRY_AFTER)
    return response


def pydantic_loc_to_path(loc: tuple | list) -> str:
    """('body', 'payload', 'events', 3, 'timestamp') -> 'events[3].timestamp'."""
    parts = list(loc)
    while parts and parts[0] in {"body", "query", "path", "header", "cookie", "form"}:
        parts.pop(0)
    # ninja wraps the whole body under the view's argument name (`payload`, `data`…)
    if len(parts) > 1 and isinstance(parts[0], str) and parts[0] in {"payload", "data", "body", "filters", "params"}:
        parts.pop(0)
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "body"
