"""REST endpoints of webhooks under /v1/webhooks (SPEC §11). Thin: parse, call one selector or service, serialize.
Every lookup is scoped to the API key's environment. The secret is in the answer of a create and of a rotation
only; no read ever shows it."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Body, Query, Router, Schema, Status
from pydantic import Field

from flexmeter.pagination import DEFAULT_PAGE_SIZE, MAX_OFFSET, MAX_PAGE_SIZE
from metering.api.schemas import timestamp_out
from webhooks import selectors, services
from webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage

webhooks_router = Router(tags=["webhooks"])

JsonObject = dict[str, Any]


class PageQuery(Schema):
    limit: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)


class MessageListQuery(PageQuery):
    endpoint_id: str | None = Field(None, max_length=40)
    status: str | None = Field(None, max_length=16)


def endpoint_to_wire(endpoint: WebhookEndpoint, *, secret: bool = False) -> dict:
    wire = {
        "id": endpoint.public_id,
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": list(endpoint.event_types or []),
        "enabled": endpoint.enabled,
        "failing_since": timestamp_out(endpoint.failing_since),
        "disabled_at": timestamp_out(endpoint.disabled_at),
        "disabled_reason": endpoint.disabled_reason,
        "created_at": timestamp_out(endpoint.created_at),
        "updated_at": timestamp_out(endpoint.updated_at),
    }
    if secret:
        wire["secret"] = endpoint.secret
    return wire


def attempt_to_wire(attempt: WebhookAttempt) -> dict:
    return {
        "attempted_at": timestamp_out(attempt.attempted_at),
        "status_code": attempt.status_code,
        "succeeded": attempt.succeeded,
        "duration_ms": attempt.duration_ms,
        "response_excerpt": attempt.response_excerpt,
        "error": attempt.error,
    }


def message_to_wire(message: WebhookMessage, *, attempts: list[WebhookAttempt] | None = None) -> dict:
    wire = {
        "id": message.public_id,
        "endpoint_id": message.endpoint.public_id,
        "event_type": message.event_type,
        "status": message.status,
        "attempts": message.attempts,
        "next_attempt_at": timestamp_out(message.next_attempt_at),
        "last_attempt_at": timestamp_out(message.last_attempt_at),
        "delivered_at": timestamp_out(message.delivered_at),
        "created_at": timestamp_out(message.created_at),
        "payload": message.envelope(),
    }
    if attempts is not None:
        wire["attempt_log"] = [attempt_to_wire(attempt) for attempt in attempts]
    return wire


def _page(queryset, page: PageQuery, to_wire) -> dict:
    total = queryset.count()
    items = list(queryset[page.offset : page.offset + page.limit])
    return {
        "items": [to_wire(item) for item in items],
        "pagination": {"total": total, "limit": page.limit, "offset": page.offset},
    }


@webhooks_router.post("/endpoints", response={201: JsonObject}, summary="Create an endpoint (its secret is shown once)")
def create_endpoint(request: HttpRequest, body: Body[JsonObject]):
    endpoint = services.endpoint_create(environment=request.environment, data=body)
    return Status(201, endpoint_to_wire(endpoint, secret=True))


@webhooks_router.get("/endpoints", summary="List endpoints (never with their secrets)")
def list_endpoints(request: HttpRequest, query: Query[PageQuery]):
    return _page(selectors.endpoint_list(environment=request.environment), query, endpoint_to_wire)


@webhooks_router.get("/endpoints/{endpoint_id}", summary="An endpoint (never with its secret)")
def get_endpoint(request: HttpRequest, endpoint_id: str):
    return endpoint_to_wire(selectors.endpoint_get(environment=request.environment, endpoint_id=endpoint_id))


@webhooks_router.put("/endpoints/{endpoint_id}", summary="Change the given fields of an endpoint")
def update_endpoint(request: HttpRequest, endpoint_id: str, body: Body[JsonObject]):
    endpoint = selectors.endpoint_get(environment=request.environment, endpoint_id=endpoint_id)
    return endpoint_to_wire(services.endpoint_update(endpoint=endpoint, data=body))


@webhooks_router.delete(
    "/endpoints/{endpoint_id}", response={204: None}, summary="Delete an endpoint with its messages"
)
def delete_endpoint(request: HttpRequest, endpoint_id: str):
    endpoint = selectors.endpoint_get(environment=request.environment, endpoint_id=endpoint_id)
    services.endpoint_delete(endpoint=endpoint)
    return Status(204, None)


@webhooks_router.post(
    "/endpoints/{endpoint_id}/rotate-secret", summary="Replace the secret (the new one is shown once)"
)
def rotate_endpoint_secret(request: HttpRequest, endpoint_id: str):
    endpoint = selectors.endpoint_get(environment=request.environment, endpoint_id=endpoint_id)
    return endpoint_to_wire(services.endpoint_rotate_secret(endpoint=endpoint), secret=True)


@webhooks_router.post(
    "/endpoints/{endpoint_id}/test", response={202: JsonObject}, summary="Queue a `webhook.test` event to an endpoint"
)
def test_endpoint(request: HttpRequest, endpoint_id: str):
    endpoint = selectors.endpoint_get(environment=request.environment, endpoint_id=endpoint_id)
    message = services.endpoint_send_test(endpoint=endpoint)
    return Status(202, message_to_wire(message))


@webhooks_router.get("/messages", summary="Deliveries, newest first (filters: endpoint_id, status)")
def list_messages(request: HttpRequest, query: Query[MessageListQuery]):
    endpoint = (
        selectors.endpoint_get(environment=request.environment, endpoint_id=query.endpoint_id)
        if query.endpoint_id
        else None
    )
    messages = selectors.message_list(environment=request.environment, endpoint=endpoint, status=query.status)
    return _page(messages, query, message_to_wire)


@webhooks_router.get("/messages/{message_id}", summary="A delivery with every attempt (newest first)")
def get_message(request: HttpRequest, message_id: str):
    message = selectors.message_get(environment=request.environment, message_id=message_id)
    return message_to_wire(message, attempts=list(selectors.attempt_list(message=message)))


@webhooks_router.get("/messages/{message_id}/attempts", summary="The attempts of a delivery (newest first)")
def list_attempts(request: HttpRequest, message_id: str, query: Query[PageQuery]):
    message = selectors.message_get(environment=request.environment, message_id=message_id)
    return _page(selectors.attempt_list(message=message), query, attempt_to_wire)


@webhooks_router.post(
    "/messages/{message_id}/resend",
    response={202: JsonObject},
    summary="Send a delivery again now (same webhook-id and body, a fresh retry schedule)",
)
def resend_message(request: HttpRequest, message_id: str):
    message = selectors.message_get(environment=request.environment, message_id=message_id)
    return Status(202, message_to_wire(services.message_resend(message=message)))
