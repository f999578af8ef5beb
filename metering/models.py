"""Customers (who consumes) and raw usage events (what happened). Usage is always computed from events."""

from django.db import models
from django.db.models import Q
from django.db.models.fields.json import KeyTransform
from django.utils import timezone

from flexmeter.ids import new_public_id
from flexmeter.models import Environment
from metering.exactjson import ExactJSONDecoder, ExactJSONEncoder, loads_stored


class StoredJSONField(models.JSONField):
    """JSON whose numbers keep every digit, and whose reads never fail: a stored value no reader can show comes
    back as `exactjson.UnreadableJSON` (an empty object saying why), so one bad row never breaks a list."""

    def from_db_value(self, value, expression, connection):
        if value is None or (isinstance(expression, KeyTransform) and not isinstance(value, str)):
            return value
        return loads_stored(value)


class BillingPeriod(models.TextChoices):
    DAILY = "DAILY"
    WEEKLY = "WEEKLY"
    MONTHLY = "MONTHLY"
    QUARTERLY = "QUARTERLY"
    ANNUAL = "ANNUAL"


class CustomerStatus(models.TextChoices):
    ACTIVE = "active"
    DELETED = "deleted"


class CustomerQuerySet(models.QuerySet):
    def for_environment(self, environment: Environment) -> "CustomerQuerySet":
        return self.filter(environment=environment)

    def active(self) -> "CustomerQuerySet":
        return self.filter(status=CustomerStatus.ACTIVE)


class Customer(models.Model):
    """Who consumes. Events name customers by `external_id`, so events may arrive before the customer exists."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="customers")
    public_id = models.CharField(max_length=40, unique=True, editable=False)
    external_id = models.CharField(max_length=255)
    name = models.CharField(max_length=255, blank=True, default="")
    email = models.EmailField(max_length=255, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    billing_anchor = models.DateTimeField(default=timezone.now)
    billing_period = models.CharField(max_length=16, choices=BillingPeriod.choices, default=BillingPeriod.MONTHLY)
    status = models.CharField(max_length=16, choices=CustomerStatus.choices, default=CustomerStatus.ACTIVE)
    # Customer portal tokens carry the epoch they were issued in; raising it revokes every token issued before.
    portal_epoch = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CustomerQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "external_id"],
                condition=Q(status="active"),
                name="customer_unique_external_id",
            )
        ]

    def __str__(self) -> str:
        return self.name or self.external_id

    def save(self, *args, **kwargs):
        if not self.public_id:
            self.public_id = new_public_id("cust")
        super().save(*args, **kwargs)


class EventQuerySet(models.QuerySet):
    def for_environment(self, environment: Environment) -> "EventQuerySet":
        return self.filter(environment=environment)

    def between(self, start, end) -> "EventQuerySet":
        """Half-open window: start <= timestamp < end. Either bound may be None."""
        qs = self
        if start is not None:
            qs = qs.filter(timestamp__gte=start)
        if end is not None:
            qs = qs.filter(timestamp__lt=end)
        return qs


class Event(models.Model):
    """One raw usage fact, stored as delivered. `(environment, event_id)` is unique; a redelivery replaces the row.

    `timestamp` is the client's time of the fact, `ingested_at` the server time of the (last) delivery.
    """

    # no index of its own: every index below starts with the environment
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+", db_index=False)
    event_id = models.CharField(max_length=255)
    event_name = models.CharField(max_length=255)
    external_customer_id = models.CharField(max_length=255)
    timestamp = models.DateTimeField()
    ingested_at = models.DateTimeField(default=timezone.now)
    source = models.CharField(max_length=255, blank=True, default="")
    # Numbers keep every digit (jsonb numeric on PostgreSQL; exact text on SQLite): usage math is exact decimal.
    properties = StoredJSONField(default=dict, blank=True, encoder=ExactJSONEncoder, decoder=ExactJSONDecoder)

    objects = EventQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["environment", "event_id"], name="event_unique_event_id")]
        indexes = [
            models.Index(
                fields=["environment", "event_name", "external_customer_id", "timestamp"], name="event_usage_lookup"
            ),
            models.Index(fields=["environment", "-timestamp", "-id"], name="event_stream"),
            # one event name over a time range for all customers (the raw part of usage without a customer: the
            # overview, the usage index, a feature's page): event_usage_lookup has the customer before the time, so
            # such a read walked every entry of the name (1.3 s for today's 170,000 events among 6,000,000)
            models.Index(fields=["environment", "event_name", "timestamp"], name="event_name_time"),
        ]

    def __str__(self) -> str:
        return f"{self.event_name} {self.event_id}"


class UsageMark(models.Model):
    """A (environment, customer, event name) that ingest wrote events for since the alert evaluator last read it.

    Written by every events writer in the same transaction as the events (one upsert per batch); `version` grows on
    every touch, so the evaluator deletes only the marks no write touched after it read them (SPEC §11). The
    evaluator lives in `alerts`; metering never imports it.

    No foreign key constraint in the database: deleting an environment deletes its events, whose triggers (migration
    0013) mark the pairs they leave after its marks were already deleted, and the constraint then refused the
    environment's deletion (and SQLite's test flush). The evaluator consumes a mark of a deleted environment like
    any mark that names no customer.
    """

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    external_customer_id = models.CharField(max_length=255)
    event_name = models.CharField(max_length=255)
    version = models.PositiveBigIntegerField(default=1)
    marked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "metering_usage_mark"
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "external_customer_id", "event_name"], name="usage_mark_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.external_customer_id} {self.event_name} v{self.version}"
