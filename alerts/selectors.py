"""Reads of alert states and timelines for the dashboard: a fixed number of statements per page."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Count
from django.utils import timezone

from alerts.models import AlertLevel, AlertLogEntry, AlertState, LimitReached
from alerts.rules import SEVERITY, LevelRule, level_rule
from catalog.models import Feature

TIMELINE_LENGTH = 20
ALARMING_SHOWN = 10


@dataclass(frozen=True)
class FeatureAlerts:
    """A feature's alert rule, how many customers sit at each level in their current period, the most severe of
    them and the latest changes."""

    feature: Feature
    rule: LevelRule | None
    counts: dict[str, int]
    alarming: list[AlertState]
    timeline: list[AlertLogEntry]

    @property
    def level_counts(self) -> list[tuple[str, int]]:
        return [
            (level, self.counts.get(level, 0)) for level in (AlertLevel.CRITICAL, AlertLevel.WARNING, AlertLevel.INFO)
        ]


def feature_alerts(*, feature: Feature, now: dt.datetime | None = None) -> FeatureAlerts:
    now = now or timezone.now()
    current = AlertState.objects.filter(feature=feature, period_start__lte=now, period_end__gt=now)
    counts = Counter({row["level"]: row["n"] for row in current.values("level").annotate(n=Count("id"))})
    alarming = sorted(
        current.exclude(level=AlertLevel.OK).select_related("customer").order_by("-updated_at")[:200],
        key=lambda state: (-SEVERITY[state.level], -state.updated_at.timestamp()),
    )[:ALARMING_SHOWN]
    timeline = list(
        AlertLogEntry.objects.filter(feature=feature)
        .select_related("customer")
        .order_by("-evaluated_at", "-id")[:TIMELINE_LENGTH]
    )
    return FeatureAlerts(feature, level_rule(feature.alert_settings), dict(counts), alarming, timeline)


@dataclass(frozen=True)
class CustomerFeatureAlert:
    """One alerting feature of a customer in a period: its level, the usage, and the thresholds as shares of the
    bar's scale (for the usage-versus-thresholds bar)."""

    feature: Feature
    rule: LevelRule
    level: str
    usage: Decimal | None
    scale: Decimal
    marks: list[tuple[str, Decimal, float]] = field(default_factory=list)

    @property
    def percent(self) -> float:
        used = self.usage or Decimal(0)
        return float(min(Decimal(100), max(Decimal(0), used * 100 / self.scale)))


@dataclass(frozen=True)
class CustomerAlerts:
    features: list[CustomerFeatureAlert]
    timeline: list[AlertLogEntry]
    limits: list[LimitReached]


def customer_alerts(
    *,
    customer,
    period_start: dt.datetime | None = None,
    feature_usage: list[tuple[Feature, Decimal | None]] | None = None,
) -> CustomerAlerts:
    """The customer's alert levels in the period starting at `period_start` (the current one when None) for every
    feature with alerts on — those of `feature_usage` (the page's own usage numbers) when given, else those with a
    state — with the usage against the thresholds; and the customer's latest changes and limits reached. Three
    statements."""
    states = AlertState.objects.filter(customer=customer)
    if period_start is None:
        now = timezone.now()
        states = states.filter(period_start__lte=now, period_end__gt=now)
    else:
        states = states.filter(period_start=period_start)
    by_feature = {state.feature_id: state for state in states.select_related("feature")}
    features: list[CustomerFeatureAlert] = []
    if feature_usage is None:
        feature_usage = [(state.feature, Decimal(state.usage)) for state in by_feature.values()]
    for feature, value in feature_usage:
        rule = level_rule(feature.alert_settings)
        if rule is None:
            continue
        state = by_feature.get(feature.pk)
        top = max([threshold for _, threshold in rule.thresholds] + [value or Decimal(0)])
        scale = top * Decimal("1.15") if top > 0 else Decimal(1)
        marks = [(level, threshold, float(threshold * 100 / scale)) for level, threshold in rule.thresholds]
        level = state.level if state else AlertLevel.OK
        features.append(CustomerFeatureAlert(feature, rule, level, value, scale, marks))
    timeline = list(
        AlertLogEntry.objects.filter(customer=customer)
        .select_related("feature")
        .order_by("-evaluated_at", "-id")[:TIMELINE_LENGTH]
    )
    limits = list(LimitReached.objects.filter(customer=customer).select_related("feature")[:TIMELINE_LENGTH])
    return CustomerAlerts(features, timeline, limits)


@dataclass(frozen=True)
class EnvironmentAlarms:
    """What is in alarm now across an environment: customers per level in their current periods, the most severe
    (feature, customer) states, and the limits reached in windows still running."""

    counts: dict[str, int]
    alarming: list[AlertState]
    limits: list[LimitReached]

    @property
    def level_counts(self) -> list[tuple[str, int]]:
        return [
            (level, self.counts.get(level, 0)) for level in (AlertLevel.CRITICAL, AlertLevel.WARNING, AlertLevel.INFO)
        ]

    @property
    def any(self) -> bool:
        return bool(self.alarming or self.limits)


def environment_alarms(*, environment, now: dt.datetime | None = None) -> EnvironmentAlarms:
    """The overview's alarm panel in three statements."""
    now = now or timezone.now()
    current = AlertState.objects.filter(environment=environment, period_start__lte=now, period_end__gt=now).exclude(
        level=AlertLevel.OK
    )
    counts = Counter({row["level"]: row["n"] for row in current.values("level").annotate(n=Count("id"))})
    alarming = sorted(
        current.select_related("feature", "customer").order_by("-updated_at")[:200],
        key=lambda state: (-SEVERITY[state.level], -state.updated_at.timestamp()),
    )[:ALARMING_SHOWN]
    limits = list(
        LimitReached.objects.filter(environment=environment, period_start__lte=now, period_end__gt=now)
        .select_related("feature", "customer")
        .order_by("-evaluated_at")[:ALARMING_SHOWN]
    )
    return EnvironmentAlarms(dict(counts), alarming, limits)
