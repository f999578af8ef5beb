"""Writes of webhooks: endpoints (create, change, delete, rotate the secret), test events and resends."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from flexmeter.errors import InvalidOperation
from flexmeter.models import Environment
from webhooks import rules
from webhooks.models import (
    TEST_EVENT_TYPE,
    MessageStatus,
    WebhookEndpoint,
    WebhookMessage,
    new_secret,
)


def _values_of(endpoint: WebhookEndpoint) -> rules.EndpointValues:
    return rules.EndpointValues(
        url=endpoint.url,
        description=endpoint.description,
        event_types=list(endpoint.event_types or []),
        enabled=endpoint.enabled,
    )


def _apply(endpoint: WebhookEndpoint, values: rules.EndpointValues) -> WebhookEndpoint:
    was_enabled = endpoint.pk is not None and endpoint.enabled
    endpoint.url = values.url
    endpoint.description = values.description
    endpoint.event_types = values.event_types
    if values.enabled and not was_enabled:
        # Enabling (again) starts a new run: the failures before it no longer count towards disabling.
        endpoint.failing_since = None
        endpoint.disabled_at = None
        endpoint.disabled_reason = ""
    elif not values.enabled and was_enabled:
        endpoint.disabled_at = timezone.now()
        endpoint.disabled_reason = "disabled by a user"
    endpoint.enabled = values.enabled
    endpoint.save()
    return endpoint


def endpoint_create(*, environment: Environment, data: dict[str, Any]) -> WebhookEndpoint:
    """Create an endpoint with a new secret; the caller shows the secret once."""
    return _apply(WebhookEndpoint(environment=environment), rules.endpoint_clean(data))


def endpoint_update(*, endpoint: WebhookEndpoint, data: dict[str, Any]) -> WebhookEndpoint:
    """Change the given fields; omitted ones stay. Enabling resumes the pending messages that are due."""
    return _apply(endpoint, rules.endpoint_clean(data, current=_values_of(endpoint)))


def endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Delete the endpoint with its messages and their attempt log."""
    endpoint.delete()


def endpoint_rotate_secret(*, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """Replace the secret; the next attempt is signed with the new one. The caller shows it once."""
    endpoint.secret = new_secret()
    endpoint.save(update_fields=["secret", "updated_at"])
    return endpoint


def endpoint_send_test(*, endpoint: WebhookEndpoint) -> WebhookMessage:
    """Queue a `webhook.test` message to this endpoint (whatever it subscribes to), delivered like any other."""
    if not endpoint.enabled:
        raise InvalidOperation("The endpoint is disabled: enable it before sending a test event")
    now = timezone.now()
    return WebhookMessage.objects.create(
        environment_id=endpoint.environment_id,
        endpoint=endpoint,
        event_type=TEST_EVENT_TYPE,
        payload={
            "endpoint_id": endpoint.public_id,
            "message": "A test event sent from flexmeter.",
            "sent_at": now.isoformat(),
        },
        next_attempt_at=now,
    )


def message_resend(*, message: WebhookMessage) -> WebhookMessage:
    """Send a message again, with the same `webhook-id` and body, now and along a fresh retry schedule (the attempt
    log keeps the earlier attempts). A message still waiting for an attempt is simply made due now."""
    with transaction.atomic():
        message = WebhookMessage.objects.select_for_update().select_related("endpoint").get(pk=message.pk)
        if not message.endpoint.enabled:
            raise InvalidOperation("The endpoint is disabled: enable it before resending")
        message.status = MessageStatus.PENDING
        message.attempts = 0
        message.next_attempt_at = timezone.now()
        message.claim_token = ""
        message.save(update_fields=["status", "attempts", "next_attempt_at", "claim_token"])
    return message
