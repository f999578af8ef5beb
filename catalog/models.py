"""Meters (how usage is measured) and features (what is sold). The rules that govern them live in catalog/rules.py."""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from flexmeter.ids import new_public_id
from flexmeter.models import Environment


class AggregationType(models.TextChoices):
    """Labels are the dashboard's words (its pages, the wizard and admin all read them from here)."""

    COUNT = "COUNT", "Count"
    SUM = "SUM", "Sum"
    AVG = "AVG", "Average"
    MIN = "MIN", "Minimum"
    MAX = "MAX", "Maximum"
    COUNT_UNIQUE = "COUNT_UNIQUE", "Count unique"
    LATEST = "LATEST", "Latest"
    SUM_WITH_MULTIPLIER = "SUM_WITH_MULTIPLIER", "Sum with multiplier"
    WEIGHTED_SUM = "WEIGHTED_SUM", "Weighted sum"


class BucketSize(models.TextChoices):
    MINUTE = "MINUTE"
    MIN15 = "15MIN", "15 minutes"
    MIN30 = "30MIN", "30 minutes"
    HOUR = "HOUR"
    HOUR3 = "3HOUR", "3 hours"
    HOUR6 = "6HOUR", "6 hours"
    HOUR12 = "12HOUR", "12 hours"
    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"


class ResetUsage(models.TextChoices):
    """Labels are the dashboard's words (the wizard's reset step), so admin says the same thing."""

    BILLING_PERIOD = "BILLING_PERIOD", "Periodic (resets each billing period)"
    NEVER = "NEVER", "Cumulative (never resets)"


class MeterStatus(models.TextChoices):
    DRAFT = "draft"
    PUBLISHED = "published"
    ARCHIVED = "archived"


class FeatureType(models.TextChoices):
    METERED = "metered"
    BOOLEAN = "boolean"
    STATIC = "static"
    CONFIG = "config"


class FeatureStatus(models.TextChoices):
    DRAFT = "draft"
    PUBLISHED = "published"
    ARCHIVED = "archived"
    DELETED = "deleted"


class MeterQuerySet(models.QuerySet):
    def for_environment(self, environment: Environment) -> "MeterQuerySet":
        return self.filter(environment=environment)

    def published(self) -> "MeterQuerySet":
        return self.filter(status=MeterStatus.PUBLISHED)


class Meter(models.Model):
    """How usage is measured: which events count (event name + filters) and how they aggregate.

    `filters` is a list of `{"key", "operator", "values"}` objects. `multiplier` is kept as decimal text so it
    stays exact on every database. `fingerprint` hashes the counting definition so the database itself rejects
    a second published meter that would count exactly the same thing.
    """

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="meters")
    public_id = models.CharField(max_length=40, unique=True, editable=False)
    name = models.CharField(max_length=255)
    event_name = models.CharField(max_length=255)
    # Verbose names are the dashboard's words for these fields (admin's labels and columns).
    aggregation_type = models.CharField(
        "aggregation", max_length=32, choices=AggregationType.choices, default=AggregationType.COUNT
    )
    aggregation_field = models.CharField("field", max_length=255, blank=True, default="")
    aggregation_expression = models.TextField("expression", blank=True, default="")
    multiplier = models.CharField(max_length=64, blank=True, default="")
    bucket_size = models.CharField(max_length=16, choices=BucketSize.choices, blank=True, default="")
    group_by = models.CharField(max_length=255, blank=True, default="")
    filters = models.JSONField(default=list, blank=True)
    reset_usage = models.CharField(
        "usage reset", max_length=32, choices=ResetUsage.choices, default=ResetUsage.BILLING_PERIOD
    )
    status = models.CharField(max_length=16, choices=MeterStatus.choices, default=MeterStatus.PUBLISHED)
    fingerprint = models.CharField(max_length=64, blank=True, default="", editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = MeterQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["environment", "event_name", "status"], name="meter_env_event_status")]
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "fingerprint"],
                condition=Q(status="published"),
                name="meter_unique_published_definition",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.event_name})"

    def save(self, *args, **kwargs):
        if not self.public_id:
            self.public_id = new_public_id("meter")
        super().save(*args, **kwargs)


# Statuses a user never sees in the catalog: soft-deleted features and unfinished wizard drafts.
HIDDEN_FEATURE_STATUSES = (FeatureStatus.DELETED, FeatureStatus.DRAFT)


class FeatureQuerySet(models.QuerySet):
    def for_environment(self, environment: Environment) -> "FeatureQuerySet":
        return self.filter(environment=environment)

    def visible(self) -> "FeatureQuerySet":
        """Features a user sees in the catalog: not soft-deleted and not wizard drafts."""
        return self.exclude(status__in=HIDDEN_FEATURE_STATUSES)

    def metered(self) -> "FeatureQuerySet":
        return self.filter(type=FeatureType.METERED)


class Feature(models.Model):
    """What is sold. A metered feature points at exactly one meter; drafts back the Add Feature wizard.

    `alert_settings` is `{"alert_enabled", "critical"?, "warning"?, "info"?}` with decimal thresholds kept as
    strings; `metadata` is a string-to-string map. `wizard_step` remembers where a draft's wizard stopped.
    """

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="features")
    public_id = models.CharField(max_length=40, unique=True, editable=False)
    name = models.CharField(max_length=255)
    lookup_key = models.CharField(max_length=255, blank=True, default="")
    type = models.CharField(max_length=16, choices=FeatureType.choices)
    description = models.TextField(blank=True, default="")
    meter = models.ForeignKey(Meter, on_delete=models.PROTECT, null=True, blank=True, related_name="features")
    value = models.TextField(blank=True, default="")
    unit_singular = models.CharField(max_length=64, blank=True, default="")
    unit_plural = models.CharField(max_length=64, blank=True, default="")
    alert_settings = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=FeatureStatus.choices, default=FeatureStatus.PUBLISHED)
    wizard_step = models.CharField(max_length=32, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = FeatureQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "lookup_key"],
                condition=Q(status__in=["published", "archived"]),
                name="feature_unique_lookup_key",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        if not self.public_id:
            self.public_id = new_public_id("feat")
        super().save(*args, **kwargs)
