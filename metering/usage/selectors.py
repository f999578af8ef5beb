"""Public reads of usage: what other modules (API, dashboard, exports) call. All of them go through the engine."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import cast

from django.utils import timezone as django_timezone

from catalog.models import BucketSize, Feature, Meter, ResetUsage
from catalog.selectors import metered_features
from flexmeter.decimals import unit_label
from flexmeter.errors import ValidationFailed
from metering.usage.engine import run_usage_queries
from metering.usage.periods import MonthAnchor, billing_period_at, resolve_timezone, usage_time_problem
from metering.usage.spec import AggregationSpec, UsageQuery, UsageResult


def usage_query_build(
    *,
    spec: AggregationSpec,
    environment_id: int,
    start: dt.datetime,
    end: dt.datetime,
    customer_external_id: str | None = None,
    by_customer: bool = False,
    window_size: str | None = None,
    timezone: str | None = None,
    billing_anchor: dt.datetime | None = None,
) -> UsageQuery:
    """Check the window, window size and time zone of a usage request (400 on nonsense, never a silent default)."""
    errors: dict[str, str] = {}
    moments = {"start_time": start, "end_time": end, "billing_anchor": billing_anchor}
    for name, moment in moments.items():
        if moment is not None and (problem := usage_time_problem(moment)):
            errors[name] = problem
    if not errors and end < start:
        errors["end_time"] = "end_time must not be before start_time"
    size = (window_size or "").strip().upper()
    if size and size not in BucketSize.values:
        errors["window_size"] = f"Unknown window size; use one of {', '.join(BucketSize.values)}"
    if errors:
        raise ValidationFailed(details=errors)
    zone = resolve_timezone(timezone)
    return UsageQuery(
        spec=spec,
        environment_id=environment_id,
        start=start,
        end=end,
        customer=customer_external_id,
        by_customer=by_customer,
        window_size=size,
        zone=zone,
        anchor=MonthAnchor.from_anchor(billing_anchor, zone),
    )


def meter_usage(
    *,
    meter,
    environment=None,
    customer_external_id: str | None = None,
    start: dt.datetime,
    end: dt.datetime,
    window_size: str | None = None,
    timezone: str | None = None,
    billing_anchor: dt.datetime | None = None,
) -> UsageResult:
    """Usage of a meter over `[start, end)` for one customer (or all together), optionally per window.

    Honours the meter's reset: for NEVER the value covers everything before `end` (WEIGHTED_SUM carries the
    level in) while each window still covers only itself.
    """
    query = usage_query_build(
        spec=AggregationSpec.from_meter(meter),
        environment_id=(environment or meter.environment).pk,
        start=start,
        end=end,
        customer_external_id=customer_external_id,
        window_size=window_size,
        timezone=timezone,
        billing_anchor=billing_anchor,
    )
    return cast(UsageResult, run_usage_queries([query])[0])


def meter_usage_by_customer(*, meter, start: dt.datetime, end: dt.datetime) -> dict[str, Decimal | None]:
    """Usage of a meter for every customer with events, in one GROUP BY query: {external_customer_id: value}."""
    query = usage_query_build(
        spec=AggregationSpec.from_meter(meter),
        environment_id=meter.environment_id,
        start=start,
        end=end,
        by_customer=True,
    )
    return cast(dict[str, Decimal | None], run_usage_queries([query])[0])


@dataclass(frozen=True)
class FeatureUsage:
    feature: Feature
    value: Decimal | None
    unit: str
    next_usage_reset_at: dt.datetime | None


@dataclass(frozen=True)
class CustomerUsage:
    customer: object
    period_start: dt.datetime
    period_end: dt.datetime
    features: list[FeatureUsage]


def customer_current_usage(*, customer, at: dt.datetime | None = None) -> CustomerUsage:
    """Current billing period of a customer and the usage of every metered feature in it, in one statement."""
    at = at or django_timezone.now()
    start, end = billing_period_at(anchor=customer.billing_anchor, period=customer.billing_period, at=at)
    features = list(metered_features(environment=customer.environment))
    meters = [cast(Meter, feature.meter) for feature in features]  # metered_features keeps only those with one
    queries = [
        UsageQuery(
            spec=AggregationSpec.from_meter(meter),
            environment_id=customer.environment_id,
            start=start,
            end=end,
            customer=customer.external_id,
        )
        for meter in meters
    ]
    results = cast(list[UsageResult], run_usage_queries(queries))
    return CustomerUsage(
        customer=customer,
        period_start=start,
        period_end=end,
        features=[
            FeatureUsage(
                feature=feature,
                value=result.value,
                unit=unit_label(value=result.value, singular=feature.unit_singular, plural=feature.unit_plural),
                next_usage_reset_at=None if meter.reset_usage == ResetUsage.NEVER else end,
            )
            for feature, meter, result in zip(features, meters, results, strict=True)
        ],
    )
