"""Reads of plans, entitlements and subscriptions, and the access answers of SPEC §10.

An access answer costs a fixed number of statements whatever the customer holds: active subscriptions (one
query), their plans' entitlements (one query) and the usage of every metered feature asked about (one engine
call: one statement; on PostgreSQL with its rollup lookup in the same snapshot). A batch of checks shares those
statements, and pairs that need the same usage (same meter, customer and window) share one usage query.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Q, QuerySet
from django.utils import timezone

from catalog.models import Feature, FeatureType
from entitlements.models import Entitlement, Plan, Subscription
from entitlements.rules import (
    Access,
    CombinedEntitlement,
    Reason,
    ResetWindow,
    Source,
    access_of,
    combine_sources,
    reset_window,
)
from flexmeter.errors import NotFound
from flexmeter.models import Environment
from metering.models import Customer, CustomerStatus
from metering.usage.engine import AggregationSpec, run_usage_queries
from metering.usage.selectors import usage_query_build

MAX_CHECKS = 100


# --- plain reads ---------------------------------------------------------------------------------------------


def plan_get(*, environment: Environment, plan_id: str) -> Plan:
    """The plan with public id (or lookup key) `plan_id` in `environment`, or `NotFound`."""
    plan = Plan.objects.for_environment(environment).filter(Q(public_id=plan_id) | Q(lookup_key=plan_id)).first()
    if plan is None:
        raise NotFound(f"Plan {plan_id} not found")
    return plan


def plan_list(*, environment: Environment, status: str | None = None, plan_ids: list[str] | None = None) -> QuerySet:
    plans = Plan.objects.for_environment(environment).order_by("display_order", "name", "id")
    if status:
        plans = plans.filter(status=status)
    if plan_ids:
        plans = plans.filter(public_id__in=plan_ids)
    return plans


def entitlement_get(*, environment: Environment, entitlement_id: str) -> Entitlement:
    entitlement = (
        Entitlement.objects.for_environment(environment)
        .select_related("plan", "feature", "feature__meter")
        .filter(public_id=entitlement_id)
        .first()
    )
    if entitlement is None:
        raise NotFound(f"Entitlement {entitlement_id} not found")
    return entitlement


def entitlement_list(
    *, environment: Environment, plan: Plan | None = None, feature_ids: list[str] | None = None
) -> QuerySet:
    entitlements = Entitlement.objects.for_environment(environment).select_related("plan", "feature", "feature__meter")
    if plan is not None:
        entitlements = entitlements.filter(plan=plan)
    if feature_ids:
        entitlements = entitlements.filter(feature__public_id__in=feature_ids)
    return entitlements.order_by("created_at", "id")


def subscription_get(*, environment: Environment, subscription_id: str) -> Subscription:
    subscription = (
        Subscription.objects.for_environment(environment)
        .select_related("customer", "plan")
        .filter(public_id=subscription_id)
        .first()
    )
    if subscription is None:
        raise NotFound(f"Subscription {subscription_id} not found")
    return subscription


def subscription_list(
    *, environment: Environment, customer: Customer | None = None, plan: Plan | None = None, active_at=None
) -> QuerySet:
    subscriptions = Subscription.objects.for_environment(environment).select_related("customer", "plan")
    if customer is not None:
        subscriptions = subscriptions.filter(customer=customer)
    if plan is not None:
        subscriptions = subscriptions.filter(plan=plan)
    if active_at is not None:
        subscriptions = subscriptions.active_at(active_at)
    return subscriptions.order_by("start_date", "id")


# --- access --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureAccess:
    """One answer: the feature (None when not found), its combined entitlement (None without active sources)
    and the access computed from them."""

    customer: Customer | None
    feature_ref: str
    feature: Feature | None
    combined: CombinedEntitlement | None
    access: Access
    as_of: dt.datetime


def _feature_lookup(environment_id: int, refs: Iterable[str]) -> dict[str, Feature]:
    """Visible features by public id and by lookup key, in one query."""
    wanted = {ref for ref in refs if ref}
    if not wanted:
        return {}
    found: dict[str, Feature] = {}
    features = (
        Feature.objects.filter(environment_id=environment_id)
        .visible()
        .filter(Q(public_id__in=wanted) | Q(lookup_key__in=wanted))
        .select_related("meter")
    )
    for feature in features:
        found.setdefault(feature.public_id, feature)
        found.setdefault(feature.lookup_key, feature)
    return found


Grants = dict[int, dict[int, list[Source]]]


def _sources(
    customers: list[Customer], at: dt.datetime, feature_ids: set[int] | None
) -> tuple[list[Subscription], Grants]:
    """The customers' subscriptions active at `at` and {customer pk: {feature pk: sources}} (two queries at most)."""
    if not customers:
        return [], {}
    subscriptions = list(
        Subscription.objects.filter(customer__in=[customer.pk for customer in customers])
        .active_at(at)
        .select_related("plan", "customer")
        .order_by("start_date", "id")
    )
    if not subscriptions:
        return [], {}
    entitlements = Entitlement.objects.filter(plan_id__in={s.plan_id for s in subscriptions}).select_related(
        "feature", "feature__meter"
    )
    if feature_ids is not None:
        entitlements = entitlements.filter(feature_id__in=feature_ids)
    by_plan: dict[int, list[Entitlement]] = defaultdict(list)
    for entitlement in entitlements.order_by("id"):
        by_plan[entitlement.plan_id].append(entitlement)
    grants: dict[int, dict[int, list[Source]]] = defaultdict(lambda: defaultdict(list))
    for subscription in subscriptions:
        for entitlement in by_plan.get(subscription.plan_id, []):
            grants[subscription.customer_id][entitlement.feature_id].append(Source(entitlement, subscription))
    return subscriptions, grants


def _usage_window(combined: CombinedEntitlement, customer: Customer, at: dt.datetime) -> ResetWindow | None:
    if combined.feature.type != FeatureType.METERED or combined.primary is None or combined.feature.meter is None:
        return None
    return reset_window(
        period=combined.primary.entitlement.usage_reset_period,
        subscription=combined.primary.subscription,
        customer=customer,
        at=at,
    )


def _answers(
    pairs: list[tuple[Customer | None, str, Feature | None, list[Source] | None]], at: dt.datetime
) -> list[FeatureAccess]:
    """Combine sources and compute access for every pair, with all usage in one engine call.

    Pairs needing the same usage (meter definition, customer, window) share one usage query.
    """
    combined_list = []
    windows: list[ResetWindow | None] = []
    keys: dict[tuple, int] = {}
    queries = []
    specs: dict[int, AggregationSpec] = {}
    usage_index: list[int | None] = []
    for customer, _ref, feature, sources in pairs:
        combined = combine_sources(feature, sources) if feature is not None and sources else None
        window = _usage_window(combined, customer, at) if combined is not None else None
        combined_list.append(combined)
        windows.append(window)
        if window is None:
            usage_index.append(None)
            continue
        meter = feature.meter
        key = (meter.pk, customer.external_id, window.start, window.end)
        if key not in keys:
            spec = specs.get(meter.pk) or specs.setdefault(meter.pk, AggregationSpec.from_meter(meter))
            keys[key] = len(queries)
            queries.append(
                usage_query_build(
                    spec=spec,
                    environment_id=customer.environment_id,
                    start=window.start,
                    end=window.end,
                    customer_external_id=customer.external_id,
                )
            )
        usage_index.append(keys[key])
    results = run_usage_queries(queries) if queries else []
    answers = []
    for (customer, ref, feature, _), combined, window, index in zip(
        pairs, combined_list, windows, usage_index, strict=True
    ):
        if feature is None:
            access = Access(has_access=False, reason=Reason.FEATURE_NOT_FOUND)
        else:
            usage: Decimal | None = results[index].value if index is not None else None
            access = access_of(combined, usage=usage, window=window)
        answers.append(FeatureAccess(customer, ref, feature, combined, access, as_of=at))
    return answers


def customer_feature_access(*, customer: Customer, feature_ref: str, at: dt.datetime | None = None) -> FeatureAccess:
    """Access of one customer to one feature (public id or lookup key), exact as of now."""
    at = at or timezone.now()
    feature = _feature_lookup(customer.environment_id, [feature_ref]).get(feature_ref)
    grants = _sources([customer], at, {feature.pk})[1] if feature is not None else {}
    sources = grants.get(customer.pk, {}).get(feature.pk) if feature is not None else None
    return _answers([(customer, feature_ref, feature, sources)], at)[0]


def access_check_many(
    *, environment: Environment, pairs: list[tuple[str, str]], at: dt.datetime | None = None
) -> list[FeatureAccess]:
    """Answers for `(external_customer_id, feature)` pairs, in order, with a fixed number of statements.

    An unknown customer holds nothing (`feature_unavailable`); an unknown feature is `feature_not_found`.
    """
    at = at or timezone.now()
    external_ids = {external_id for external_id, _ in pairs}
    customers = {
        customer.external_id: customer
        for customer in Customer.objects.for_environment(environment).filter(
            status=CustomerStatus.ACTIVE, external_id__in=external_ids
        )
    }
    features = _feature_lookup(environment.pk, (ref for _, ref in pairs))
    grants = _sources(list(customers.values()), at, {feature.pk for feature in features.values()})[1]
    resolved = []
    for external_id, ref in pairs:
        customer = customers.get(external_id)
        feature = features.get(ref)
        sources = grants.get(customer.pk, {}).get(feature.pk) if customer and feature else None
        resolved.append((customer, ref, feature, sources))
    return _answers(resolved, at)


@dataclass(frozen=True)
class CustomerEntitlements:
    customer: Customer
    subscriptions: list[Subscription]
    features: list[FeatureAccess]
    as_of: dt.datetime


def customer_entitlements(*, customer: Customer, at: dt.datetime | None = None) -> CustomerEntitlements:
    """Every feature the customer's active subscriptions grant, combined, with access and usage (SPEC §10)."""
    at = at or timezone.now()
    subscriptions, all_grants = _sources([customer], at, None)
    grants = all_grants.get(customer.pk, {})
    features = {}
    for sources in grants.values():
        for source in sources:
            features[source.entitlement.feature_id] = source.entitlement.feature
    ordered = sorted(features.values(), key=lambda feature: (feature.name.lower(), feature.pk))
    pairs = [(customer, feature.public_id, feature, grants[feature.pk]) for feature in ordered]
    return CustomerEntitlements(customer=customer, subscriptions=subscriptions, features=_answers(pairs, at), as_of=at)
