"""Alert states, their change log, and the entitlement limits reached (SPEC §11).

Numbers (usage, thresholds, limits) are kept as exact decimal text, as everywhere else. Unique constraints make
"the same crossing never fires twice" a property of the database: one state per (feature, customer, period), one
log row per (state, change number), one limit-reached row per (feature, customer, reset period).

A pass may write tens of thousands of rows in one transaction, so the foreign keys are not database constraints:
PostgreSQL would check each of them row by row at commit (it was most of a pass's time). The evaluator reads the
referenced rows in the same pass, and deletions cascade through the ORM (`on_delete`) as before. Nor do the feature
and customer keys get indexes of their own: each table's composite indexes begin with them, and every extra index is
one more write per row of a pass.
"""

from django.db import models

from catalog.models import Feature
from flexmeter.models import Environment
from metering.models import Customer


class AlertLevel(models.TextChoices):
    OK = "ok"
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlertState(models.Model):
    """The alert level of one feature for one customer in one billing period.

    No row means `ok`: a new period has no row until its first change, so every state returns to `ok` at a period
    boundary. `version` counts the changes; the evaluator updates a state only if the version is still the one it
    read (compare and set), and each change's log row carries the new version.
    """

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    feature = models.ForeignKey(
        Feature, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    level = models.CharField(max_length=16, choices=AlertLevel.choices, default=AlertLevel.OK)
    usage = models.CharField(max_length=100, default="0")
    version = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["feature", "customer", "period_start"], name="alert_state_unique_period")
        ]
        indexes = [models.Index(fields=["customer", "period_end"], name="alert_state_customer")]

    def __str__(self) -> str:
        return f"{self.feature_id}/{self.customer_id} {self.period_start:%Y-%m-%d}: {self.level}"


class AlertLogEntry(models.Model):
    """One state change: from → to, the usage that caused it and the threshold crossed (the threshold of the more
    severe of the two levels), at `evaluated_at`. `sequence` is the state's version after the change."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    feature = models.ForeignKey(
        Feature, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    sequence = models.PositiveIntegerField()
    from_level = models.CharField(max_length=16, choices=AlertLevel.choices)
    to_level = models.CharField(max_length=16, choices=AlertLevel.choices)
    condition = models.CharField(max_length=8)
    usage = models.CharField(max_length=100)
    threshold = models.CharField(max_length=100, blank=True, default="")
    evaluated_at = models.DateTimeField()

    class Meta:
        ordering = ["-evaluated_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["feature", "customer", "period_start", "sequence"], name="alert_log_unique_change"
            )
        ]
        indexes = [
            models.Index(fields=["feature", "-evaluated_at"], name="alert_log_feature"),
            models.Index(fields=["customer", "-evaluated_at"], name="alert_log_customer"),
        ]

    def __str__(self) -> str:
        return f"{self.from_level} → {self.to_level} at {self.usage}"


class LimitReached(models.Model):
    """An entitlement's usage reached its limit (`usage_limit_reached`): raised once per (feature, customer, reset
    period), whatever happens to usage afterwards."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    feature = models.ForeignKey(
        Feature, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    usage = models.CharField(max_length=100)
    usage_limit = models.CharField(max_length=100)
    is_soft_limit = models.BooleanField(default=False)
    evaluated_at = models.DateTimeField()

    class Meta:
        ordering = ["-evaluated_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["feature", "customer", "period_start"], name="limit_reached_unique_period")
        ]
        indexes = [models.Index(fields=["customer", "-evaluated_at"], name="limit_reached_customer")]

    def __str__(self) -> str:
        return f"{self.feature_id}/{self.customer_id} reached {self.usage_limit}"
