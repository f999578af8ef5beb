"""Plans (bundles of entitlements), entitlements (one feature on one plan) and subscriptions (a customer on a plan).

The rules that govern them — validation, combining several sources, access — live in `entitlements/rules.py`.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db import models
from django.db.models import Q
from django.utils import timezone

from catalog.models import Feature
from flexmeter.ids import new_public_id
from flexmeter.models import Environment
from metering.models import Customer


class PlanStatus(models.TextChoices):
    PUBLISHED = "published"
    ARCHIVED = "archived"


class ResetPeriod(models.TextChoices):
    """Flexprice's reset periods plus BILLING_PERIOD (the customer's own billing period)."""

    BILLING_PERIOD = "BILLING_PERIOD"
    DAILY = "DAILY"
    WEEKLY = "WEEKLY"
    MONTHLY = "MONTHLY"
    QUARTERLY = "QUARTERLY"
    HALF_YEARLY = "HALF_YEARLY"
    ANNUAL = "ANNUAL"
    NEVER = "NEVER"


class SubscriptionBillingPeriod(models.TextChoices):
    """Flexprice's billing periods; stored for compatibility (flexmeter does not invoice)."""

    DAILY = "DAILY"
    WEEKLY = "WEEKLY"
    MONTHLY = "MONTHLY"
    QUARTERLY = "QUARTERLY"
    HALF_YEARLY = "HALF_YEARLY"
    ANNUAL = "ANNUAL"
    ONETIME = "ONETIME"


class PlanQuerySet(models.QuerySet):
    def for_environment(self, environment: Environment) -> PlanQuerySet:
        return self.filter(environment=environment)


class Plan(models.Model):
    """A bundle of entitlements customers subscribe to. Archived plans take no new subscriptions; existing ones
    keep granting until they end."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="plans")
    public_id = models.CharField(max_length=40, unique=True, editable=False)
    name = models.CharField(max_length=255)
    lookup_key = models.CharField(max_length=255)
    description = models.TextField(blank=True, default="")
    display_order = models.IntegerField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=PlanStatus.choices, default=PlanStatus.PUBLISHED)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PlanQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["environment", "lookup_key"], name="plan_unique_lookup_key")]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        if not self.public_id:
            self.public_id = new_public_id("plan")
        super().save(*args, **kwargs)


class EntitlementQuerySet(models.QuerySet):
    def for_environment(self, environment: Environment) -> EntitlementQuerySet:
        return self.filter(environment=environment)


class Entitlement(models.Model):
    """One feature on one plan. Metered: `usage_limit` (decimal text, exact on every database; empty = unlimited)
    per `usage_reset_period`, hard or soft. Static: `static_value`. Config: `config_value` (a JSON object)."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    public_id = models.CharField(max_length=40, unique=True, editable=False)
    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="entitlements")
    feature = models.ForeignKey(Feature, on_delete=models.PROTECT, related_name="entitlements")
    is_enabled = models.BooleanField(default=True)
    usage_limit = models.CharField(max_length=64, blank=True, default="")
    usage_reset_period = models.CharField(
        max_length=16, choices=ResetPeriod.choices, blank=True, default=ResetPeriod.MONTHLY
    )
    is_soft_limit = models.BooleanField(default=False)
    static_value = models.TextField(blank=True, default="")
    config_value = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = EntitlementQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["plan", "feature"], name="entitlement_unique_plan_feature")]

    def __str__(self) -> str:
        return f"{self.feature} on {self.plan}"

    def save(self, *args, **kwargs):
        if not self.public_id:
            self.public_id = new_public_id("ent")
        super().save(*args, **kwargs)

    @property
    def limit(self) -> Decimal | None:
        return Decimal(self.usage_limit) if self.usage_limit else None


class SubscriptionQuerySet(models.QuerySet):
    def for_environment(self, environment: Environment) -> SubscriptionQuerySet:
        return self.filter(environment=environment)

    def active_at(self, moment: dt.datetime) -> SubscriptionQuerySet:
        """Started at or before `moment` and not ended yet (end_date is exclusive)."""
        return self.filter(Q(start_date__lte=moment), Q(end_date__isnull=True) | Q(end_date__gt=moment))


class Subscription(models.Model):
    """A customer on a plan from `start_date` until `end_date` (open-ended when NULL). `billing_anchor` aligns the
    reset periods of the plan's entitlements; `billing_period` and `currency` are stored for Flexprice clients."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    public_id = models.CharField(max_length=40, unique=True, editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="subscriptions")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    start_date = models.DateTimeField(default=timezone.now)
    end_date = models.DateTimeField(null=True, blank=True)
    billing_anchor = models.DateTimeField()
    billing_period = models.CharField(
        max_length=16, choices=SubscriptionBillingPeriod.choices, default=SubscriptionBillingPeriod.MONTHLY
    )
    currency = models.CharField(max_length=8, blank=True, default="")
    lookup_key = models.CharField(max_length=255, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = SubscriptionQuerySet.as_manager()

    class Meta:
        ordering = ["start_date", "id"]
        indexes = [models.Index(fields=["customer", "start_date"], name="subscription_customer_start")]

    def __str__(self) -> str:
        return f"{self.customer} on {self.plan}"

    def save(self, *args, **kwargs):
        if not self.public_id:
            self.public_id = new_public_id("sub")
        super().save(*args, **kwargs)

    def is_active_at(self, moment: dt.datetime) -> bool:
        return self.start_date <= moment and (self.end_date is None or moment < self.end_date)
