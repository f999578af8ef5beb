"""Webhook endpoints, the outbox of messages (one per event and endpoint) and the log of delivery attempts."""

from __future__ import annotations

import base64
import datetime as dt
import secrets

from django.db import models
from django.utils import timezone

from flexmeter.ids import new_public_id
from flexmeter.models import Environment


class EventType(models.TextChoices):
    """The event types an endpoint can subscribe to."""

    FEATURE_USAGE_ALERT = "feature.usage.alert"
    ENTITLEMENT_USAGE_LIMIT_REACHED = "entitlement.usage_limit_reached"
    EVENTS_UNMATCHED = "events.unmatched"


TEST_EVENT_TYPE = "webhook.test"
"""Sent by "send test event" to one endpoint, whatever it subscribes to."""

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


class WebhookEndpointQuerySet(models.QuerySet):
    def for_environment(self, environment: Environment) -> WebhookEndpointQuerySet:
        return self.filter(environment=environment)


class WebhookEndpoint(models.Model):
    """A URL that receives the events of one environment it subscribes to, signed with its secret.

    The secret must be kept readable (HMAC signing needs it), but it is shown once: at creation and after a
    rotation. An endpoint that keeps failing for `WEBHOOKS_DISABLE_AFTER` is disabled with a reason;
    `failing_since` is the first failure of the current unbroken run of failures."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    public_id = models.CharField(max_length=40, unique=True, editable=False)
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=255, blank=True, default="")
    secret = models.CharField(max_length=100, editable=False)
    enabled = models.BooleanField(default=True)
    event_types = models.JSONField(default=list, help_text="The event types this endpoint receives.")
    failing_since = models.DateTimeField(null=True, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = WebhookEndpointQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.url

    def save(self, *args, **kwargs):
        if not self.public_id:
            self.public_id = new_public_id("ep")
        if not self.secret:
            self.secret = new_secret()
        super().save(*args, **kwargs)

    def wants(self, event_type: str) -> bool:
        return self.enabled and event_type in (self.event_types or [])


class MessageStatus(models.TextChoices):
    PENDING = "pending"  # waiting for its next attempt (or being attempted under a claim)
    DELIVERED = "delivered"
    FAILED = "failed"  # every scheduled attempt failed; a resend starts the schedule again


class WebhookMessageQuerySet(models.QuerySet):
    def for_environment(self, environment: Environment) -> WebhookMessageQuerySet:
        return self.filter(environment=environment)


class WebhookMessage(models.Model):
    """One event for one endpoint: the outbox row. `public_id` (`msg_…`) is the `webhook-id` of every attempt,
    so a receiver de-duplicates retries and resends on it. `attempts` counts the attempts of the current schedule
    (a resend starts again at zero; the attempt log keeps them all). While a worker delivers it, the message stays
    `pending` with `next_attempt_at` pushed to the end of the claim's lease: a worker that dies mid-delivery leaves
    it due again once the lease runs out."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="messages")
    public_id = models.CharField(max_length=40, unique=True, editable=False)
    event_type = models.CharField(max_length=64)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=MessageStatus.choices, default=MessageStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=32, blank=True, default="")
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = WebhookMessageQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="webhookmsg_due"),
            models.Index(fields=["endpoint", "-created_at"], name="webhookmsg_endpoint_recent"),
            # each endpoint's oldest due messages, for the claim's turns (webhooks/delivery.py)
            models.Index(fields=["endpoint", "status", "next_attempt_at", "id"], name="webhookmsg_endpoint_due"),
        ]

    def __str__(self) -> str:
        return self.public_id

    def save(self, *args, **kwargs):
        if not self.public_id:
            self.public_id = new_public_id("msg")
        super().save(*args, **kwargs)

    def envelope(self) -> dict:
        """The body every attempt sends: the Standard Webhooks shape, identical across retries."""
        return {
            "type": self.event_type,
            "timestamp": self.created_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
            "data": self.payload,
        }


class WebhookAttempt(models.Model):
    """One delivery attempt: when, the status code (none when no answer came), the start of the response body,
    how long it took and the error (timeout, refused connection…)."""

    message = models.ForeignKey(WebhookMessage, on_delete=models.CASCADE, related_name="attempt_log")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="+")
    attempted_at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True, default="")
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True, default="")
    succeeded = models.BooleanField(default=False)

    class Meta:
        ordering = ["-attempted_at", "-id"]
        indexes = [models.Index(fields=["endpoint", "-attempted_at"], name="webhookattempt_endpoint_recent")]

    def __str__(self) -> str:
        return f"{self.message_id} @ {self.attempted_at:%Y-%m-%d %H:%M:%S}"


class UnmatchedDigestCursor(models.Model):
    """How far the `events.unmatched` digest of an environment has read: events with a larger id (with events in
    ClickHouse: whose first delivery has a larger version) are not reported yet. Advanced in the transaction that
    queues the digest, so an event is reported once."""

    environment = models.OneToOneField(Environment, on_delete=models.CASCADE, related_name="+")
    last_event_id = models.BigIntegerField(default=0)
    # ClickHouse's events have no row id: the digest reads them by `first_version` (nanoseconds), up to this one
    last_first_version = models.BigIntegerField(default=0)
    last_sent_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.environment} after event #{self.last_event_id}"
