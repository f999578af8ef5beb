"""Reads of webhooks: one environment's endpoints, their messages and the attempt log."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from flexmeter.errors import NotFound, ValidationFailed
from flexmeter.models import Environment
from webhooks.models import MessageStatus, WebhookAttempt, WebhookEndpoint, WebhookMessage


def endpoint_list(*, environment: Environment) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.for_environment(environment).order_by("-created_at", "-id")


def endpoint_get(*, environment: Environment, endpoint_id: str) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.for_environment(environment).filter(public_id=endpoint_id).first()
    if endpoint is None:
        raise NotFound(f"Webhook endpoint {endpoint_id} not found")
    return endpoint


def message_list(
    *, environment: Environment, endpoint: WebhookEndpoint | None = None, status: str | None = None
) -> QuerySet:
    """Messages newest first, each with its endpoint and the number of attempts logged."""
    if status and status not in MessageStatus.values:
        raise ValidationFailed(details={"status": f"must be one of {', '.join(MessageStatus.values)}"})
    messages = WebhookMessage.objects.for_environment(environment).select_related("endpoint")
    if endpoint is not None:
        messages = messages.filter(endpoint=endpoint)
    if status:
        messages = messages.filter(status=status)
    return messages.annotate(attempt_count=Count("attempt_log")).order_by("-created_at", "-id")


def message_get(*, environment: Environment, message_id: str) -> WebhookMessage:
    message = (
        WebhookMessage.objects.for_environment(environment)
        .select_related("endpoint")
        .filter(public_id=message_id)
        .first()
    )
    if message is None:
        raise NotFound(f"Webhook message {message_id} not found")
    return message


def attempt_list(*, message: WebhookMessage) -> QuerySet[WebhookAttempt]:
    """Every attempt of a message, newest first."""
    return message.attempt_log.order_by("-attempted_at", "-id")


def endpoint_stats(*, endpoint: WebhookEndpoint) -> dict[str, int]:
    """How many of the endpoint's messages are in each status."""
    counts = dict(
        WebhookMessage.objects.filter(endpoint=endpoint).values_list("status").annotate(n=Count("id")).order_by()
    )
    return {status: counts.get(status, 0) for status in MessageStatus.values}
