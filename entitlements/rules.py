"""Every rule of SPEC §10 in one module: validating plans, entitlements and subscriptions, the reset window of an
entitlement, combining several sources of one feature, and the access answer.

The REST API, the dashboard forms, Django admin and the check endpoints all call these functions. Validation
functions take raw input (decoded JSON or form data) and return normalized values, or raise
`ValidationFailed(details={json_path: message})` naming every offending field. Nothing here touches the database
except through the objects it is handed; lookups and uniqueness live in `entitlements/services.py` and
`entitlements/selectors.py`.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from catalog.models import Feature, FeatureType
from catalog.rules import lookup_key_from_name, metadata_clean
from catalog.rules.common import NAME_MAX_LENGTH, Errors, choice_value, decimal_value, text_value
from entitlements.models import (
    Entitlement,
    Plan,
    PlanStatus,
    ResetPeriod,
    Subscription,
    SubscriptionBillingPeriod,
)
from metering.usage.periods import add_months, billing_period_at

CURRENCY_MAX_LENGTH = 8
# An event may be stamped up to 24 hours ahead (SPEC §2.3); a window that never resets must still count it.
FUTURE_ALLOWANCE = dt.timedelta(hours=24, seconds=1)


class Reason:
    """Why access is denied (SPEC §10)."""

    FEATURE_NOT_FOUND = "feature_not_found"
    FEATURE_UNAVAILABLE = "feature_unavailable"
    USAGE_LIMIT_REACHED = "usage_limit_reached"


# --- validation ----------------------------------------------------------------------------------------------


def _boolean(value: Any, path: str, errors: Errors, *, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        errors.add(path, "must be true or false")
        return default
    return value


def _timestamp(value: Any, path: str, errors: Errors) -> dt.datetime | None:
    """An RFC 3339 timestamp (or a datetime) with a zone offset; None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            errors.add(path, f"must be an RFC 3339 timestamp such as 2026-01-31T00:00:00Z (got {value!r})")
            return None
    if not isinstance(value, dt.datetime):
        errors.add(path, "must be an RFC 3339 timestamp")
        return None
    if value.tzinfo is None:
        errors.add(path, "must carry a time zone offset or Z")
        return None
    return value.astimezone(dt.UTC)


def plan_clean(data: dict, *, current: dict | None = None) -> dict:
    """Name, lookup key (derived from the name when absent), description, display order, metadata and status.

    With `current` (an update), omitted fields keep their current values.
    """
    errors = Errors()
    given = {key: value for key, value in data.items() if value is not None}
    merged = {**(current or {}), **given}
    name = text_value(merged.get("name"), "name", errors, required=True)
    key = text_value(merged.get("lookup_key"), "lookup_key", errors)
    if key and re.search(r"\s", key):
        errors.add("lookup_key", "must not contain whitespace")
    if not key and name:
        key = lookup_key_from_name(name)
        if not key:
            errors.add("lookup_key", "cannot be derived from the name (it has no letters or digits); give one")
    description = text_value(merged.get("description"), "description", errors, max_length=10_000, single_line=False)
    display_order = merged.get("display_order")
    if display_order is not None and (isinstance(display_order, bool) or not isinstance(display_order, int)):
        errors.add("display_order", "must be an integer")
    metadata = errors.collect(metadata_clean, merged.get("metadata") or {})
    status = choice_value(merged.get("status"), "status", errors, PlanStatus.values, upper=False)
    errors.raise_if_any()
    return {
        "name": name,
        "lookup_key": key,
        "description": description,
        "display_order": display_order,
        "metadata": metadata or {},
        "status": status or PlanStatus.PUBLISHED,
    }


def usage_limit_clean(value: Any, path: str, errors: Errors) -> str:
    """A non-negative decimal (a JSON number or a numeric string) as exact text; `""` (unlimited) when absent."""
    if value is None or value == "":
        return ""
    text = decimal_value(value, path, errors)
    if text and Decimal(text) < 0:
        errors.add(path, "must not be negative (leave it empty for unlimited)")
        return ""
    return text


def entitlement_clean(data: dict, *, feature: Feature, current: dict | None = None) -> dict:
    """The feature-type-specific settings of an entitlement of `feature` (SPEC §10).

    Metered: `usage_limit` (None = unlimited), `usage_reset_period` (default MONTHLY), `is_soft_limit`. Static:
    `static_value`. Config: `config_value` (a JSON object). Settings of another feature type are rejected.
    With `current` (an update) omitted fields keep their values; `feature_type` may be resent unchanged.
    """
    errors = Errors()
    merged = {**(current or {}), **data}
    kind = feature.type
    sent_type = data.get("feature_type")
    if sent_type not in (None, ""):
        normalized = choice_value(sent_type, "feature_type", errors, FeatureType.values, upper=False)
        if normalized and normalized != kind:
            errors.add("feature_type", f"must match the feature's type ({kind})")
    is_enabled = _boolean(merged.get("is_enabled"), "is_enabled", errors, default=True)
    result: dict[str, Any] = {
        "is_enabled": is_enabled,
        "usage_limit": "",
        "usage_reset_period": ResetPeriod.MONTHLY,
        "is_soft_limit": False,
        "static_value": "",
        "config_value": None,
    }
    if kind == FeatureType.METERED:
        result["usage_limit"] = usage_limit_clean(merged.get("usage_limit"), "usage_limit", errors)
        period = choice_value(
            merged.get("usage_reset_period"), "usage_reset_period", errors, ResetPeriod.values, upper=True
        )
        result["usage_reset_period"] = period or ResetPeriod.MONTHLY
        result["is_soft_limit"] = _boolean(merged.get("is_soft_limit"), "is_soft_limit", errors, default=False)
    else:
        if data.get("usage_limit") not in (None, ""):
            errors.add("usage_limit", "is only for metered features")
        if data.get("is_soft_limit"):
            errors.add("is_soft_limit", "is only for metered features")
    if kind == FeatureType.STATIC:
        result["static_value"] = text_value(merged.get("static_value"), "static_value", errors, max_length=10_000)
    elif data.get("static_value") not in (None, ""):
        errors.add("static_value", "is only for static features")
    if kind == FeatureType.CONFIG:
        config = merged.get("config_value")
        if config is None:
            config = {}
        if not isinstance(config, dict):
            errors.add("config_value", "must be a JSON object")
        result["config_value"] = config
    elif data.get("config_value") is not None:
        errors.add("config_value", "is only for config features")
    errors.raise_if_any()
    return result


def subscription_clean(data: dict, *, now: dt.datetime) -> dict:
    """Dates, billing period and anchor, currency, lookup key and metadata of a new subscription.

    `start_date` defaults to now, `billing_anchor` to the start; `end_date` must come after the start. Pricing
    fields of Flexprice (line items, coupons, …) are not read here: flexmeter does not price.
    """
    errors = Errors()
    start = _timestamp(data.get("start_date"), "start_date", errors) or now
    end = _timestamp(data.get("end_date"), "end_date", errors)
    if end is not None and end <= start:
        errors.add("end_date", "must be after start_date")
    anchor = _timestamp(data.get("billing_anchor"), "billing_anchor", errors) or start
    period = choice_value(
        data.get("billing_period"), "billing_period", errors, SubscriptionBillingPeriod.values, upper=True
    )
    currency = text_value(data.get("currency"), "currency", errors, max_length=CURRENCY_MAX_LENGTH)
    lookup_key = text_value(data.get("lookup_key"), "lookup_key", errors, max_length=NAME_MAX_LENGTH)
    metadata = errors.collect(metadata_clean, data.get("metadata") or {})
    errors.raise_if_any()
    return {
        "start_date": start,
        "end_date": end,
        "billing_anchor": anchor,
        "billing_period": period or SubscriptionBillingPeriod.MONTHLY,
        "currency": currency.lower(),
        "lookup_key": lookup_key,
        "metadata": metadata or {},
    }


def subscription_end_clean(value: Any, *, start: dt.datetime) -> dt.datetime | None:
    """A new end date for an existing subscription (None reopens it)."""
    errors = Errors()
    end = _timestamp(value, "end_date", errors)
    if end is not None and end <= start:
        errors.add("end_date", "must be after start_date")
    errors.raise_if_any()
    return end


# --- reset windows -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResetWindow:
    """Where usage against a limit is counted: `[start, end)`. `next_reset_at` is None for NEVER."""

    start: dt.datetime
    end: dt.datetime
    next_reset_at: dt.datetime | None


def _half_year_at(anchor: dt.datetime, at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """Half-year periods from the anchor: the anchored year containing `at`, split at anchor + 6 months (clamped)."""
    year_start, year_end = billing_period_at(anchor=anchor, period="ANNUAL", at=at)
    anchor = anchor.astimezone(dt.UTC)
    months = (year_start.year - anchor.year) * 12 + (year_start.month - anchor.month)
    middle = add_months(anchor, months + 6)
    return (year_start, middle) if at < middle else (middle, year_end)


def reset_window(
    *, period: str, subscription: Subscription | SubscriptionTerms, customer, at: dt.datetime
) -> ResetWindow:
    """The current window of an entitlement's reset period (SPEC §10).

    BILLING_PERIOD is the customer's billing period; DAILY … ANNUAL are aligned to the subscription's billing
    anchor with month-end clamping; NEVER counts everything since the subscription started (up to its end, or
    far enough ahead to include every event stamped in the allowed future).
    """
    if period == ResetPeriod.NEVER:
        end = at + FUTURE_ALLOWANCE
        if subscription.end_date is not None:
            end = min(end, subscription.end_date)
        return ResetWindow(start=subscription.start_date, end=end, next_reset_at=None)
    if period == ResetPeriod.BILLING_PERIOD:
        return _billing_window(customer.billing_anchor, customer.billing_period, at)
    if period == ResetPeriod.HALF_YEARLY:
        start, end = _half_year_at(subscription.billing_anchor, at)
        return ResetWindow(start=start, end=end, next_reset_at=end)
    return _billing_window(subscription.billing_anchor, period, at)


# A batch of checks asks at one moment, and customers often share an anchor (the first of a month): each distinct
# window is computed once. Windows are immutable; the moment in the key lets old ones age out.
@functools.lru_cache(maxsize=1024)
def _billing_window(anchor: dt.datetime, period: str, at: dt.datetime) -> ResetWindow:
    start, end = billing_period_at(anchor=anchor, period=period, at=at)
    return ResetWindow(start=start, end=end, next_reset_at=end)


def subscription_period_at(subscription: Subscription, at: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
    """The subscription's current billing period (for Flexprice's `current_period_*`); None for ONETIME."""
    period = subscription.billing_period
    if period == SubscriptionBillingPeriod.ONETIME:
        return None
    if period == SubscriptionBillingPeriod.HALF_YEARLY:
        return _half_year_at(subscription.billing_anchor, at)
    return billing_period_at(anchor=subscription.billing_anchor, period=period, at=at)


# --- combining sources ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubscriptionTerms:
    """What an access check reads of a subscription: its dates and its plan. A batch of checks reads hundreds of
    subscriptions, and this costs a tenth of building a model instance."""

    pk: int
    public_id: str
    start_date: dt.datetime
    end_date: dt.datetime | None
    billing_anchor: dt.datetime
    plan: Plan


@dataclass(frozen=True)
class Source:
    """One entitlement reaching a customer through one subscription."""

    entitlement: Entitlement
    subscription: Subscription | SubscriptionTerms


@dataclass
class CombinedEntitlement:
    """What all active sources of one feature grant together (SPEC §10, *combining sources*).

    Disabled sources count for nothing. Metered: the limit is the sum of the enabled sources' limits (None =
    unlimited if any is unlimited), soft if any is soft. The reset window is that of the *primary* source — the
    enabled source of the earliest-started subscription — so the combined view has one usage number.
    """

    feature: Feature
    sources: list[Source]
    is_enabled: bool = False
    usage_limit: Decimal | None = None
    is_soft_limit: bool = False
    static_values: list[str] = field(default_factory=list)
    config_values: list[dict] = field(default_factory=list)
    primary: Source | None = None

    @property
    def usage_reset_period(self) -> str | None:
        return self.primary.entitlement.usage_reset_period if self.primary else None


def combine_sources(feature: Feature, sources: list[Source]) -> CombinedEntitlement:
    ordered = sorted(sources, key=lambda s: (s.subscription.start_date, s.subscription.pk, s.entitlement.pk))
    combined = CombinedEntitlement(feature=feature, sources=ordered)
    enabled = [source for source in ordered if source.entitlement.is_enabled]
    combined.is_enabled = bool(enabled)
    if not enabled:
        return combined
    combined.primary = enabled[0]
    if feature.type == FeatureType.METERED:
        limits = [source.entitlement.limit for source in enabled]
        combined.usage_limit = None if any(limit is None for limit in limits) else sum(limits, Decimal(0))
        combined.is_soft_limit = any(source.entitlement.is_soft_limit for source in enabled)
    elif feature.type == FeatureType.STATIC:
        for source in enabled:
            if source.entitlement.static_value not in combined.static_values:
                combined.static_values.append(source.entitlement.static_value)
    elif feature.type == FeatureType.CONFIG:
        combined.config_values = [source.entitlement.config_value or {} for source in enabled]
    return combined


# --- access --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    """The answer of a check (SPEC §10). Usage fields are None for features that are not metered."""

    has_access: bool
    reason: str | None
    usage: Decimal | None = None
    balance: Decimal | None = None
    overage: Decimal | None = None
    window: ResetWindow | None = None


def access_of(
    combined: CombinedEntitlement | None, *, usage: Decimal | None = None, window: ResetWindow | None = None
) -> Access:
    """Access to a feature from its combined entitlement and (metered) the usage in the primary's window.

    No combined entitlement (no active source) or no enabled source → `feature_unavailable`. Metered: access
    while the limit is soft, unlimited, or not reached (`usage < limit`); `balance = max(0, limit − usage)`,
    `overage = max(0, usage − limit)` (None and 0 when unlimited). An empty measurement counts as 0.
    """
    if combined is None or not combined.is_enabled:
        return Access(has_access=False, reason=Reason.FEATURE_UNAVAILABLE)
    if combined.feature.type != FeatureType.METERED:
        return Access(has_access=True, reason=None)
    used = usage if usage is not None else Decimal(0)
    limit = combined.usage_limit
    if limit is None:
        return Access(has_access=True, reason=None, usage=used, balance=None, overage=Decimal(0), window=window)
    within = used < limit
    return Access(
        has_access=within or combined.is_soft_limit,
        reason=None if within or combined.is_soft_limit else Reason.USAGE_LIMIT_REACHED,
        usage=used,
        balance=max(Decimal(0), limit - used),
        overage=max(Decimal(0), used - limit),
        window=window,
    )
