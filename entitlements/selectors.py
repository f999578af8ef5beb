"""Reads of plans, entitlements and subscriptions, and the access answers of SPEC §10.

An access answer costs a fixed number of statements whatever the customer holds: active subscriptions (one
query), their plans' entitlements (one query) and the usage of every metered feature asked about (one engine
call: one statement; on PostgreSQL with its rollup lookup in the same snapshot). A batch of checks shares those
statements, and pairs that need the same usage (same meter, customer and window) share one usage query.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from django.db import connection
from django.db.models import DEFERRED, Q, QuerySet
from django.utils import timezone

from catalog.models import HIDDEN_FEATURE_STATUSES, Feature, FeatureStatus, FeatureType, Meter
from entitlements.models import Entitlement, Plan, Subscription
from entitlements.rules import (
    Access,
    CombinedEntitlement,
    Reason,
    ResetWindow,
    Source,
    SubscriptionTerms,
    access_of,
    combine_sources,
    reset_window,
)
from flexmeter.db import server_bound_cursor
from flexmeter.errors import NotFound
from flexmeter.models import Environment
from metering.models import Customer, CustomerStatus
from metering.usage.engine import run_usage_queries
from metering.usage.selectors import usage_for_customer_windows, usage_query_build
from metering.usage.spec import AggregationSpec, UsageQuery, UsageResult

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
    and the access computed from them. The customer, the feature and the sources' entitlements carry the columns a
    check reads, the others (timestamps, metadata) deferred as `QuerySet.only` leaves them; the sources'
    subscriptions are `SubscriptionTerms`."""

    customer: Customer | None
    feature_ref: str
    feature: Feature | None
    combined: CombinedEntitlement | None
    access: Access
    as_of: dt.datetime


class _Columns:
    """The concrete columns of a model under a table alias (all of them, or those `only` names, deferring the rest
    as `QuerySet.only` does), and rows turned back into instances with the same conversions the ORM applies (JSON,
    datetimes on SQLite). Hand-written SQL for the per-check reads: building the equivalent ORM queries cost several
    times more than running them."""

    def __init__(self, model, alias: str, *, only: Iterable[str] | None = None):
        self.model, self.alias = model, alias
        fields = model._meta.concrete_fields
        if only is not None:
            by_name = {field.attname: field for field in fields}
            unknown = set(only) - set(by_name)
            assert not unknown, f"{model.__name__} has no columns {sorted(unknown)}"
            fields = [by_name[name] for name in only]  # in the order given
        self.fields = list(fields)
        self.sql = ", ".join(f'{alias}."{field.column}"' for field in self.fields)
        # every concrete field's value in order, DEFERRED for those not selected, as `Model.from_db` fills them
        self._all_names = [field.attname for field in model._meta.concrete_fields]
        self._positions = [self._all_names.index(field.attname) for field in self.fields]
        self._conversions: dict[str, list[tuple[int, list]]] = {}

    def __len__(self) -> int:
        return len(self.fields)

    def converter(self, connection) -> Callable[[Sequence], Sequence]:
        """A function applying the connection's conversions to this model's slice of a row, looked up once (a batch
        converts hundreds of slices; most columns have no conversion at all)."""
        conversions = self._conversions.get(connection.vendor)
        if conversions is None:
            conversions = []
            for index, field in enumerate(self.fields):
                column = field.get_col(self.alias)
                found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
                if found:
                    conversions.append((index, [(converter, column) for converter in found]))
            self._conversions[connection.vendor] = conversions

        def convert(values: Sequence) -> Sequence:
            if not conversions:
                return values
            values = list(values)
            for index, chain in conversions:
                value = values[index]
                for converter, column in chain:
                    value = converter(value, column, connection)
                values[index] = value
            return values

        return convert

    def loader(self, connection) -> Callable[[Sequence], Any]:
        """A function turning this model's slice of a row into an instance."""
        convert = self.converter(connection)
        model, names, positions, alias = self.model, self._all_names, self._positions, connection.alias
        deferred = [DEFERRED] * len(names) if len(positions) < len(names) else None

        def load(values: Sequence) -> Any:
            values = convert(values)
            if deferred is not None:
                selected, values = values, deferred.copy()
                for position, value in zip(positions, selected, strict=True):
                    values[position] = value
            return model.from_db(alias, names, values)

        return load


_FEATURE = _Columns(Feature, "f")
_METER = _Columns(Meter, "m")
_SUBSCRIPTION = _Columns(Subscription, "s")
_PLAN = _Columns(Plan, "p")
_ENTITLEMENT = _Columns(Entitlement, "e")
_CUSTOMER = _Columns(Customer, "c")
# What a check reads of each row, the rest deferred. A batch's rows repeat the feature, its meter, the plans and the
# entitlements on every row, and psycopg decodes every timestamp of every row through Django's loader: the full
# columns of a batch of 100 took 10 ms to fetch, these 4 ms.
_UNREAD = {"created_at", "updated_at"}
_CHECK_CUSTOMER = _Columns(
    Customer,
    "c",
    only=("id", "environment_id", "public_id", "external_id", "billing_anchor", "billing_period", "status"),
)
_CHECK_FEATURE = _Columns(
    Feature, "f", only=[f.attname for f in Feature._meta.concrete_fields if f.name not in _UNREAD]
)
_CHECK_METER = _Columns(Meter, "m", only=[f.attname for f in Meter._meta.concrete_fields if f.name not in _UNREAD])
# a check's subscriptions are SubscriptionTerms: these columns in its fields' order, the plan in place of its id
_CHECK_SUBSCRIPTION = _Columns(
    Subscription, "s", only=("id", "public_id", "start_date", "end_date", "billing_anchor", "plan_id")
)
_CHECK_PLAN = _Columns(Plan, "p", only=("id", "environment_id", "public_id", "name", "lookup_key", "status"))
_CHECK_ENTITLEMENT = _Columns(
    Entitlement, "e", only=[f.attname for f in Entitlement._meta.concrete_fields if f.name not in _UNREAD]
)
VISIBLE_FEATURE_STATUSES = [status for status in FeatureStatus.values if status not in HIDDEN_FEATURE_STATUSES]


def _in(connection, column: str, values: list, params: list) -> str:
    """`column IN (…)`: one array parameter on PostgreSQL (the statement text stays the same for any number of
    values), a list elsewhere. One value or none is spelled as such, so a single check's prepared statement names
    one row: PostgreSQL plans `= ANY(array)` for an unknown number of rows and then re-plans it on every run, which
    took longer than running it."""
    if connection.vendor == "postgresql" and len(values) > 1:
        params.append(list(values))
        return f"{column} = ANY(%s)"
    params.extend(values)
    return f"{column} IN ({', '.join(['%s'] * len(values))})" if values else "1 = 0"


def _feature_with_meter(
    connection, row, offset: int = 0, *, features: _Columns = _FEATURE, meters: _Columns = _METER
) -> Feature:
    feature = features.loader(connection)(row[offset : offset + len(features)])
    meter_values = row[offset + len(features) : offset + len(features) + len(meters)]
    feature.meter = meters.loader(connection)(meter_values) if meter_values[0] is not None else None
    return feature


Grants = dict[int, dict[int, list[Source]]]


@dataclass
class _Resolved:
    customers: dict[str, Customer]  # by public id and by external id
    features: dict[str, Feature]  # by public id and by lookup key
    grants: Grants


def _resolve(
    environment_id: int,
    *,
    at: dt.datetime,
    feature_refs: Iterable[str],
    public_ids: Iterable[str] = (),
    external_ids: Iterable[str] = (),
) -> _Resolved:
    """Customers (by public id, deleted ones too as `GET /v1/customers/{id}` finds them; or active ones by external
    id), the visible features named by id or lookup key, and every active grant of those features to those
    customers — in one statement whatever the number of pairs, plans or sources."""
    refs = sorted({ref for ref in feature_refs if ref})
    public_ids, external_ids = sorted(set(public_ids)), sorted(set(external_ids))
    moment = connection.ops.adapt_datetimefield_value(at)
    params: list = []  # in the order the placeholders appear
    params.append(environment_id)
    by_id = _in(connection, "c.public_id", public_ids, params)
    params.append(environment_id)
    by_external = _in(connection, "c.external_id", external_ids, params)
    statuses = _in(connection, "f.status", VISIBLE_FEATURE_STATUSES, params)
    by_feature_id = _in(connection, "f.public_id", refs, params)
    by_lookup_key = _in(connection, "f.lookup_key", refs, params)
    params += [moment, moment]
    # Each customer is found through its own unique index (the active status is literal text so that the partial
    # index on external ids applies to the prepared statement too). The joins are outer joins in the order
    # customer → its subscriptions → their entitlement of the feature, so the database reaches subscriptions
    # through the customers asked about; joined the other way round, a planner without statistics (a fresh table)
    # walked every subscriber of the feature's plans for each customer (tests/entitlements/test_check_reads.py).
    sql = (
        f"SELECT {_CHECK_CUSTOMER.sql}, {_CHECK_FEATURE.sql}, {_CHECK_METER.sql}, "
        f"{_CHECK_SUBSCRIPTION.sql}, {_CHECK_PLAN.sql}, {_CHECK_ENTITLEMENT.sql} "
        f"FROM (SELECT c.id FROM {Customer._meta.db_table} c WHERE c.environment_id = %s AND {by_id} "
        f"UNION SELECT c.id FROM {Customer._meta.db_table} c WHERE c.environment_id = %s AND {by_external} "
        f"AND c.status = '{CustomerStatus.ACTIVE.value}') found "
        f"JOIN {Customer._meta.db_table} c ON c.id = found.id "
        f"LEFT JOIN ({Feature._meta.db_table} f LEFT JOIN {Meter._meta.db_table} m ON m.id = f.meter_id) "
        f"ON f.environment_id = c.environment_id AND {statuses} AND ({by_feature_id} OR {by_lookup_key}) "
        f"LEFT JOIN {Subscription._meta.db_table} s ON s.customer_id = c.id AND f.id IS NOT NULL "
        f"AND s.start_date <= %s AND (s.end_date IS NULL OR s.end_date > %s) "
        f"LEFT JOIN {Entitlement._meta.db_table} e ON e.plan_id = s.plan_id AND e.feature_id = f.id "
        f"LEFT JOIN {Plan._meta.db_table} p ON p.id = e.plan_id "
        f"ORDER BY c.id, f.id, s.start_date, s.id"
    )
    with server_bound_cursor(connection) as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    resolved = _Resolved(customers={}, features={}, grants=defaultdict(lambda: defaultdict(list)))
    customers: dict[int, Customer] = {}
    features: dict[int, Feature] = {}
    subscriptions: dict[int, SubscriptionTerms] = {}
    # a batch's customers share plans and entitlements: one instance each, not one per row
    plans: dict[int, Plan] = {}
    entitlements: dict[int, Entitlement] = {}
    feature_at = len(_CHECK_CUSTOMER)
    subscription_at = feature_at + len(_CHECK_FEATURE) + len(_CHECK_METER)
    plan_at = subscription_at + len(_CHECK_SUBSCRIPTION)
    entitlement_at = plan_at + len(_CHECK_PLAN)
    customer_of, terms_of = _CHECK_CUSTOMER.loader(connection), _CHECK_SUBSCRIPTION.converter(connection)
    plan_of, entitlement_of = _CHECK_PLAN.loader(connection), _CHECK_ENTITLEMENT.loader(connection)
    for row in rows:
        customer = customers.get(row[0])
        if customer is None:
            customer = customers[row[0]] = customer_of(row[:feature_at])
            resolved.customers[customer.public_id] = customer
            if customer.status == CustomerStatus.ACTIVE:
                resolved.customers[customer.external_id] = customer
        if row[feature_at] is None:
            continue
        feature = features.get(row[feature_at])
        if feature is None:
            feature = features[row[feature_at]] = _feature_with_meter(
                connection, row, feature_at, features=_CHECK_FEATURE, meters=_CHECK_METER
            )
            resolved.features.setdefault(feature.public_id, feature)
            resolved.features.setdefault(feature.lookup_key, feature)
        if row[entitlement_at] is None:
            continue  # no subscription, or one whose plan does not grant the feature
        subscription = subscriptions.get(row[subscription_at])
        if subscription is None:
            pk, public_id, start_date, end_date, billing_anchor, plan_pk = terms_of(row[subscription_at:plan_at])
            plan = plans.get(plan_pk)
            if plan is None:
                plan = plans[plan_pk] = plan_of(row[plan_at:entitlement_at])
            subscription = subscriptions[pk] = SubscriptionTerms(
                pk, public_id, start_date, end_date, billing_anchor, plan
            )
        entitlement = entitlements.get(row[entitlement_at])
        if entitlement is None:
            entitlement = entitlements[row[entitlement_at]] = entitlement_of(row[entitlement_at:])
            entitlement.feature, entitlement.plan = feature, subscription.plan
        resolved.grants[customer.pk][feature.pk].append(Source(entitlement, subscription))
    return resolved


def _sources(customers: list[Customer], at: dt.datetime) -> tuple[list[Subscription], Grants]:
    """The customers' subscriptions active at `at`, with every entitlement of their plans whose feature is visible
    (and the feature's meter), in one statement: (subscriptions in start order, {customer pk: {feature pk:
    sources}})."""
    if not customers:
        return [], {}
    by_pk = {customer.pk: customer for customer in customers}
    moment = connection.ops.adapt_datetimefield_value(at)
    params: list = []  # in the order the placeholders appear
    statuses = _in(connection, "f.status", VISIBLE_FEATURE_STATUSES, params)
    customer_in = _in(connection, "s.customer_id", sorted(by_pk), params)
    params += [moment, moment]
    sql = (
        f"SELECT {_SUBSCRIPTION.sql}, {_PLAN.sql}, {_ENTITLEMENT.sql}, {_FEATURE.sql}, {_METER.sql} "
        f"FROM {Subscription._meta.db_table} s "
        f"JOIN {Plan._meta.db_table} p ON p.id = s.plan_id "
        f"LEFT JOIN ({Entitlement._meta.db_table} e "
        f"JOIN {Feature._meta.db_table} f ON f.id = e.feature_id AND {statuses} "
        f"LEFT JOIN {Meter._meta.db_table} m ON m.id = f.meter_id) ON e.plan_id = s.plan_id "
        f"WHERE {customer_in} AND s.start_date <= %s AND (s.end_date IS NULL OR s.end_date > %s) "
        f"ORDER BY s.start_date, s.id, e.id"
    )
    with server_bound_cursor(connection) as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    subscriptions: dict[int, Subscription] = {}
    plans: dict[int, Plan] = {}
    features: dict[int, Feature] = {}
    grants: Grants = defaultdict(lambda: defaultdict(list))
    widths = [len(_SUBSCRIPTION), len(_PLAN), len(_ENTITLEMENT)]
    plan_at, entitlement_at = widths[0], widths[0] + widths[1]
    feature_at = entitlement_at + widths[2]
    subscription_of, plan_of = _SUBSCRIPTION.loader(connection), _PLAN.loader(connection)
    entitlement_of = _ENTITLEMENT.loader(connection)
    for row in rows:
        subscription = subscriptions.get(row[0])
        if subscription is None:
            subscription = subscription_of(row[:plan_at])
            plan = plans.get(row[plan_at]) or plans.setdefault(row[plan_at], plan_of(row[plan_at:entitlement_at]))
            subscription.plan = plan
            subscription.customer = by_pk[subscription.customer_id]
            subscriptions[subscription.pk] = subscription
        if row[entitlement_at] is None:
            continue
        entitlement = entitlement_of(row[entitlement_at:feature_at])
        feature = features.get(entitlement.feature_id)
        if feature is None:
            feature = features.setdefault(entitlement.feature_id, _feature_with_meter(connection, row, feature_at))
        entitlement.feature = feature
        entitlement.plan = subscription.plan
        grants[subscription.customer_id][entitlement.feature_id].append(Source(entitlement, subscription))
    return list(subscriptions.values()), grants


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
    """Combine sources and compute access for every pair, with the usage of all of them at once.

    Pairs needing the same usage (meter, customer, window) share it. One pair's usage is the engine's single
    query; a batch's is one statement per meter and set of customer windows (`usage_for_customer_windows`: the
    customers' own windows joined to the events), so the statements do not grow with the number of pairs.
    """
    combined_list = []
    windows: list[ResetWindow | None] = []
    usage_keys: list[tuple | None] = []
    meters: dict[int, Meter] = {}
    # per meter, sets of {customer: window}: a customer needing two windows of one meter goes to a second set
    window_sets: dict[int, list[dict[str, tuple[dt.datetime, dt.datetime]]]] = defaultdict(list)
    for customer, _ref, feature, sources in pairs:
        combined = combine_sources(feature, sources) if feature is not None and sources else None
        window = _usage_window(combined, customer, at) if combined is not None else None
        combined_list.append(combined)
        windows.append(window)
        if window is None:
            usage_keys.append(None)
            continue
        meter = feature.meter
        meters[meter.pk] = meter
        key = (meter.pk, customer.external_id, window.start, window.end)
        usage_keys.append(key)
        sets = window_sets[meter.pk]
        if any(found.get(customer.external_id) == (window.start, window.end) for found in sets):
            continue
        free = next((found for found in sets if customer.external_id not in found), None)
        if free is None:
            free = {}
            sets.append(free)
        free[customer.external_id] = (window.start, window.end)
    usage = _usage_of(meters, window_sets)
    answers = []
    for (customer, ref, feature, _), combined, window, key in zip(
        pairs, combined_list, windows, usage_keys, strict=True
    ):
        if feature is None:
            access = Access(has_access=False, reason=Reason.FEATURE_NOT_FOUND)
        else:
            access = access_of(combined, usage=usage[key] if key is not None else None, window=window)
        answers.append(FeatureAccess(customer, ref, feature, combined, access, as_of=at))
    return answers


def _usage_of(
    meters: dict[int, Meter], window_sets: dict[int, list[dict[str, tuple[dt.datetime, dt.datetime]]]]
) -> dict[tuple, Decimal | None]:
    """{(meter pk, customer, start, end): usage}: lone customers of a meter through the engine's single queries
    (all in one statement), sets of several customers through `usage_for_customer_windows`."""
    usage: dict[tuple, Decimal | None] = {}
    singles: list[tuple[tuple, UsageQuery]] = []
    for meter_pk, sets in window_sets.items():
        meter = meters[meter_pk]
        for found in sets:
            if len(found) > 1:
                for customer, value in usage_for_customer_windows(meter=meter, windows=found).items():
                    usage[(meter_pk, customer, *found[customer])] = value
                continue
            ((customer, (start, end)),) = found.items()
            query = usage_query_build(
                spec=AggregationSpec.from_meter(meter),
                environment_id=meter.environment_id,
                start=start,
                end=end,
                customer_external_id=customer,
            )
            singles.append(((meter_pk, customer, start, end), query))
    if singles:
        results = run_usage_queries([query for _, query in singles])
        for (key, _), result in zip(singles, results, strict=True):
            usage[key] = cast(UsageResult, result).value
    return usage


def customer_feature_access(*, customer: Customer, feature_ref: str, at: dt.datetime | None = None) -> FeatureAccess:
    """Access of one customer to one feature (public id or lookup key), exact as of now."""
    return customer_feature_access_by_id(
        environment_id=customer.environment_id, customer_id=customer.public_id, feature_ref=feature_ref, at=at
    )


def customer_feature_access_by_id(
    *, environment_id: int, customer_id: str, feature_ref: str, at: dt.datetime | None = None
) -> FeatureAccess:
    """Access of the customer with public id `customer_id` to one feature, or NotFound for an unknown customer:
    one statement for the customer, the feature and its grants, then the usage (one engine call)."""
    at = at or timezone.now()
    resolved = _resolve(environment_id, at=at, feature_refs=[feature_ref], public_ids=[customer_id])
    customer = resolved.customers.get(customer_id)
    if customer is None:
        raise NotFound(f"Customer {customer_id} not found", details={"id": "no such customer in this environment"})
    feature = resolved.features.get(feature_ref)
    sources = resolved.grants.get(customer.pk, {}).get(feature.pk) if feature is not None else None
    return _answers([(customer, feature_ref, feature, sources)], at)[0]


def access_check_many(
    *, environment: Environment, pairs: list[tuple[str, str]], at: dt.datetime | None = None
) -> list[FeatureAccess]:
    """Answers for `(external_customer_id, feature)` pairs, in order, with a fixed number of statements.

    An unknown customer holds nothing (`feature_unavailable`); an unknown feature is `feature_not_found`.
    """
    at = at or timezone.now()
    resolved = _resolve(
        environment.pk,
        at=at,
        feature_refs=[ref for _, ref in pairs],
        external_ids=[external_id for external_id, _ in pairs],
    )
    answers_in = []
    for external_id, ref in pairs:
        customer = resolved.customers.get(external_id)
        if customer is not None and customer.external_id != external_id:
            customer = None  # a public id that happens to equal the external id asked for
        feature = resolved.features.get(ref)
        sources = resolved.grants.get(customer.pk, {}).get(feature.pk) if customer and feature else None
        answers_in.append((customer, ref, feature, sources))
    return _answers(answers_in, at)


@dataclass(frozen=True)
class CustomerEntitlements:
    customer: Customer
    subscriptions: list[Subscription]
    features: list[FeatureAccess]
    as_of: dt.datetime


def customer_entitlements(*, customer: Customer, at: dt.datetime | None = None) -> CustomerEntitlements:
    """Every feature the customer's active subscriptions grant, combined, with access and usage (SPEC §10)."""
    at = at or timezone.now()
    subscriptions, all_grants = _sources([customer], at)
    grants = all_grants.get(customer.pk, {})
    features = {}
    for sources in grants.values():
        for source in sources:
            features[source.entitlement.feature_id] = source.entitlement.feature
    ordered = sorted(features.values(), key=lambda feature: (feature.name.lower(), feature.pk))
    pairs = [(customer, feature.public_id, feature, grants[feature.pk]) for feature in ordered]
    return CustomerEntitlements(customer=customer, subscriptions=subscriptions, features=_answers(pairs, at), as_of=at)
