"""Public reads of usage: what other modules (API, dashboard, exports) call. All of them go through the engine."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import cast

from django.utils import timezone as django_timezone

from catalog.models import BucketSize, Feature, Meter, ResetUsage
from catalog.selectors import metered_features
from flexmeter.decimals import unit_label
from flexmeter.errors import ValidationFailed
from metering.usage.customer_windows import customer_windows_usage
from metering.usage.engine import group_values, run_usage_queries
from metering.usage.periods import MonthAnchor, billing_period_at, resolve_timezone, usage_time_problem
from metering.usage.spec import AggregationSpec, Filter, UsageQuery, UsageResult, UsageWindow


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


def usage_for_customer_windows(
    *, meter, windows: Mapping[str, tuple[dt.datetime, dt.datetime]]
) -> dict[str, Decimal | None]:
    """Usage of a meter for many customers (external ids), each over its own `[start, end)` — customers' billing
    periods start at different moments — in one statement whatever their number: {external id: value}, exactly
    what `meter_usage` gives each of them alone (every customer asked for is in the answer)."""
    errors: dict[str, str] = {}
    for customer, (start, end) in windows.items():
        problems = {name: usage_time_problem(moment) for name, moment in (("start", start), ("end", end))}
        errors.update({f"windows.{customer}.{name}": problem for name, problem in problems.items() if problem})
        if not any(problems.values()) and end < start:
            errors[f"windows.{customer}.end"] = "end must not be before start"
    if errors:
        raise ValidationFailed(details=errors)
    return customer_windows_usage(
        AggregationSpec.from_meter(meter), environment_id=meter.environment_id, windows=windows
    )


@dataclass(frozen=True)
class FeatureUsage:
    feature: Feature
    value: Decimal | None
    unit: str
    next_usage_reset_at: dt.datetime | None
    windows: list[UsageWindow] = field(default_factory=list)


@dataclass(frozen=True)
class CustomerUsage:
    customer: object
    period_start: dt.datetime
    period_end: dt.datetime
    features: list[FeatureUsage]


def customer_current_usage(
    *,
    customer,
    at: dt.datetime | None = None,
    feature_ids: Collection[str] = (),
    lookup_keys: Collection[str] = (),
    window_size: str = "",
) -> CustomerUsage:
    """Current billing period of a customer and the usage of every metered feature in it, in one statement.

    `feature_ids` / `lookup_keys` narrow the features (an id or key naming no metered feature is a 400);
    with a `window_size` every feature also gets its per-window series, from the same statement.
    """
    at = at or django_timezone.now()
    start, end = billing_period_at(anchor=customer.billing_anchor, period=customer.billing_period, at=at)
    features = _metered_features_named(
        environment=customer.environment, feature_ids=feature_ids, lookup_keys=lookup_keys
    )
    meters = [cast(Meter, feature.meter) for feature in features]  # metered_features keeps only those with one
    queries = [
        UsageQuery(
            spec=AggregationSpec.from_meter(meter),
            environment_id=customer.environment_id,
            start=start,
            end=end,
            customer=customer.external_id,
            window_size=window_size,
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
                windows=result.windows,
            )
            for feature, meter, result in zip(features, meters, results, strict=True)
        ],
    )


def _metered_features_named(
    *, environment, feature_ids: Collection[str] = (), lookup_keys: Collection[str] = ()
) -> list[Feature]:
    """The published metered features, or those named by id or lookup key: one naming none of them is a 400, so a
    typo never silently reads as "no usage"."""
    features = list(metered_features(environment=environment, feature_ids=feature_ids, lookup_keys=lookup_keys))
    _check_all_found(features, feature_ids=feature_ids, lookup_keys=lookup_keys)
    return features


def _check_all_found(features: list[Feature], *, feature_ids: Collection[str], lookup_keys: Collection[str]) -> None:
    errors = {}
    if missing := sorted(set(feature_ids) - {feature.public_id for feature in features}):
        errors["feature_ids"] = f"no published metered feature {', '.join(missing)}"
    if missing := sorted(set(lookup_keys) - {feature.lookup_key for feature in features}):
        errors["feature_lookup_keys"] = f"no published metered feature with lookup key {', '.join(missing)}"
    if errors:
        raise ValidationFailed(details=errors)


@dataclass(frozen=True)
class AnalyticsItem:
    """Usage of one feature for one combination of group values (`group`: property key → text, or None for the
    events without it): the total and the series per window."""

    feature: Feature
    group: dict[str, str | None]
    total: Decimal | None
    windows: list[UsageWindow]


def usage_analytics(
    *,
    environment,
    start: dt.datetime,
    end: dt.datetime,
    external_customer_id: str | None = None,
    feature_ids: Collection[str] = (),
    group_by: Sequence[str] = (),
    property_filters: dict[str, list[str]] | None = None,
    window_size: str | None = None,
) -> list[AnalyticsItem]:
    """Per metered feature (all published ones, or `feature_ids`), usage over `[start, end)` split by the
    properties `group_by`, with `property_filters` (canonical text `in` values) narrowing the events.

    Each feature's meter applies as in every other usage number (its filters and reset). One statement finds the
    groups, one more computes every (feature, group) through the engine; groups with no events do not appear.
    """
    features = _metered_features_named(environment=environment, feature_ids=feature_ids)
    narrowing = tuple(
        Filter(key=key, operator="in", values=tuple(values)) for key, values in (property_filters or {}).items()
    )
    base_queries = []
    for feature in features:
        spec = AggregationSpec.from_meter(feature.meter)
        spec = replace(spec, filters=spec.filters + narrowing)
        base_queries.append(
            usage_query_build(
                spec=spec,
                environment_id=environment.pk,
                start=start,
                end=end,
                customer_external_id=external_customer_id,
                window_size=window_size,
            )
        )
    keys = list(group_by)
    found: list[list[tuple[str | None, ...]]] = (
        group_values(base_queries, keys) if keys else [[()] for _ in base_queries]
    )
    split: list[tuple[Feature, dict[str, str | None], UsageQuery]] = []
    for feature, query, combinations in zip(features, base_queries, found, strict=True):
        for combination in sorted(combinations, key=_group_order):
            group = dict(zip(keys, combination, strict=True))
            filters = tuple(
                item for key, value in group.items() if (item := _group_filter(key, value, combinations, keys))
            )
            split.append(
                (feature, group, replace(query, spec=replace(query.spec, filters=query.spec.filters + filters)))
            )
    results = cast(list[UsageResult], run_usage_queries([query for _, _, query in split]))
    return [
        AnalyticsItem(feature=feature, group=group, total=result.value, windows=result.windows)
        for (feature, group, _), result in zip(split, results, strict=True)
    ]


def _group_order(combination: tuple[str | None, ...]) -> tuple:
    """Groups sorted by their values, the group without a value after those with one."""
    return tuple((value is None, value or "") for value in combination)


def _group_filter(key: str, value: str | None, combinations, keys: list[str]) -> Filter | None:
    """`in` the group's value; for the group without one, `not_in` every value seen (so missing and null match),
    or no filter at all when no event has a value for the key."""
    if value is not None:
        return Filter(key=key, operator="in", values=(value,))
    index = keys.index(key)
    seen = tuple(sorted({combination[index] for combination in combinations if combination[index] is not None}))
    return Filter(key=key, operator="not_in", values=seen) if seen else None
