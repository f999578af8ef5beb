"""Writes of plans, entitlements and subscriptions. Each validates through `entitlements.rules`.

Uniqueness is left to the database (a plan's lookup key per environment, one entitlement per plan and feature):
the save runs in a savepoint and the IntegrityError becomes a 409 `AlreadyExists`, never a check-then-write race.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from catalog.models import Feature, FeatureStatus
from entitlements import rules
from entitlements.models import Entitlement, Plan, PlanStatus, Subscription
from flexmeter.errors import AlreadyExists, InvalidOperation, ValidationFailed
from flexmeter.models import Environment
from metering.models import Customer, CustomerStatus


def _save_unique(obj, *, message: str, details: dict[str, str]) -> None:
    try:
        with transaction.atomic():
            obj.save()
    except IntegrityError:
        raise AlreadyExists(message, details=details) from None


# --- plans ---------------------------------------------------------------------------------------------------


def plan_state_of(plan: Plan) -> dict:
    return {
        "name": plan.name,
        "lookup_key": plan.lookup_key,
        "description": plan.description,
        "display_order": plan.display_order,
        "metadata": plan.metadata,
        "status": plan.status,
    }


def _plan_apply(plan: Plan, values: dict) -> Plan:
    for name, value in values.items():
        setattr(plan, name, value)
    _save_unique(
        plan,
        message=f"A plan with lookup_key {plan.lookup_key!r} already exists in this environment",
        details={"lookup_key": "already used by another plan"},
    )
    return plan


def plan_create(*, environment: Environment, data: dict[str, Any]) -> Plan:
    """Create a published plan (name required; lookup key derived from the name when absent, unique: 409)."""
    values = rules.plan_clean({**data, "status": None})
    return _plan_apply(Plan(environment=environment), values)


def plan_update(*, plan: Plan, data: dict[str, Any]) -> Plan:
    """Change the given fields; omitted ones stay."""
    return _plan_apply(plan, rules.plan_clean(data, current=plan_state_of(plan)))


def plan_archive(*, plan: Plan) -> Plan:
    """Archive: no new subscriptions; existing subscriptions keep their entitlements until they end."""
    plan.status = PlanStatus.ARCHIVED
    plan.save(update_fields=["status", "updated_at"])
    return plan


# --- entitlements --------------------------------------------------------------------------------------------


def entitlement_state_of(entitlement: Entitlement) -> dict:
    return {
        "is_enabled": entitlement.is_enabled,
        "usage_limit": entitlement.usage_limit,
        "usage_reset_period": entitlement.usage_reset_period,
        "is_soft_limit": entitlement.is_soft_limit,
        "static_value": entitlement.static_value,
        "config_value": entitlement.config_value,
    }


def _plan_of(environment: Environment, data: dict) -> Plan:
    """The plan named by `plan_id`, or by Flexprice's `entity_type: PLAN` + `entity_id`."""
    plan_id = data.get("plan_id")
    entity_type = str(data.get("entity_type") or "PLAN").upper()
    if not plan_id and entity_type == "PLAN":
        plan_id = data.get("entity_id")
    if entity_type != "PLAN":
        raise ValidationFailed(details={"entity_type": "only PLAN entitlements are supported"})
    if not isinstance(plan_id, str) or not plan_id:
        raise ValidationFailed(details={"plan_id": "is required"})
    plan = Plan.objects.for_environment(environment).filter(public_id=plan_id).first()
    if plan is None:
        raise ValidationFailed(details={"plan_id": f"no plan {plan_id} in this environment"})
    return plan


def _feature_of(environment: Environment, feature_id: Any) -> Feature:
    if not isinstance(feature_id, str) or not feature_id:
        raise ValidationFailed(details={"feature_id": "is required"})
    feature = (
        Feature.objects.for_environment(environment)
        .filter(public_id=feature_id, status=FeatureStatus.PUBLISHED)
        .select_related("meter")
        .first()
    )
    if feature is None:
        raise ValidationFailed(details={"feature_id": f"no published feature {feature_id} in this environment"})
    return feature


def entitlement_create(*, environment: Environment, data: dict[str, Any]) -> Entitlement:
    """Put a feature on a plan with its type's settings (SPEC §10). A second one for the pair is a 409."""
    plan = _plan_of(environment, data)
    feature = _feature_of(environment, data.get("feature_id"))
    values = rules.entitlement_clean(data, feature=feature)
    entitlement = Entitlement(environment=environment, plan=plan, feature=feature, **values)
    _save_unique(
        entitlement,
        message=f"Plan {plan.public_id} already has an entitlement for feature {feature.public_id}; update it instead",
        details={"feature_id": "already on this plan"},
    )
    return entitlement


def entitlement_update(*, entitlement: Entitlement, data: dict[str, Any]) -> Entitlement:
    """Change the settings; `plan_id`, `feature_id` and `feature_type` may only be resent unchanged."""
    for name, current in (("plan_id", entitlement.plan.public_id), ("feature_id", entitlement.feature.public_id)):
        if data.get(name) not in (None, current):
            raise ValidationFailed(details={name: "cannot change; delete this entitlement and create another"})
    values = rules.entitlement_clean(data, feature=entitlement.feature, current=entitlement_state_of(entitlement))
    for name, value in values.items():
        setattr(entitlement, name, value)
    entitlement.save()
    return entitlement


def entitlement_delete(*, entitlement: Entitlement) -> None:
    entitlement.delete()


# --- subscriptions -------------------------------------------------------------------------------------------


def _customer_of(environment: Environment, data: dict) -> Customer:
    customer_id, external_id = data.get("customer_id"), data.get("external_customer_id")
    if not customer_id and not external_id:
        raise ValidationFailed(details={"customer_id": "customer_id or external_customer_id is required"})
    customers = Customer.objects.for_environment(environment).filter(status=CustomerStatus.ACTIVE)
    customer = None
    if customer_id:
        customer = customers.filter(public_id=str(customer_id)).first()
        path = "customer_id"
    else:
        customer = customers.filter(external_id=str(external_id)).first()
        path = "external_customer_id"
    if customer is None:
        raise ValidationFailed(details={path: "no active customer with this id in this environment"})
    if customer_id and external_id and customer.external_id != external_id:
        raise ValidationFailed(details={"external_customer_id": "does not belong to customer_id"})
    return customer


def subscription_create(*, environment: Environment, data: dict[str, Any], now: dt.datetime | None = None):
    """Subscribe a customer to a published plan (SPEC §10). Pricing fields are accepted and ignored."""
    now = now or timezone.now()
    errors: dict[str, str] = {}
    customer = plan = None
    try:
        customer = _customer_of(environment, data)
    except ValidationFailed as exc:
        errors.update(exc.details)
    try:
        plan = _plan_of(environment, data)
        if plan.status != PlanStatus.PUBLISHED:
            errors["plan_id"] = "this plan is archived and takes no new subscriptions"
    except ValidationFailed as exc:
        errors.update(exc.details)
    try:
        values = rules.subscription_clean(data, now=now)
    except ValidationFailed as exc:
        errors.update(exc.details)
    if errors:
        raise ValidationFailed(details=errors)
    return Subscription.objects.create(environment=environment, customer=customer, plan=plan, **values)


def subscription_update(*, subscription: Subscription, data: dict[str, Any]) -> Subscription:
    """Change the end date (None reopens), lookup key or metadata. Plan, customer and start are fixed."""
    for name in ("plan_id", "customer_id", "external_customer_id", "start_date"):
        if name in data and data[name] is not None:
            raise InvalidOperation(
                f"{name} cannot change; end this subscription and create another", details={name: "cannot change"}
            )
    if "end_date" in data:
        subscription.end_date = rules.subscription_end_clean(data["end_date"], start=subscription.start_date)
    if data.get("metadata") is not None or data.get("lookup_key") is not None:
        values = rules.subscription_clean(
            {"metadata": data.get("metadata", subscription.metadata), "lookup_key": data.get("lookup_key")},
            now=subscription.start_date,
        )
        subscription.metadata = values["metadata"]
        subscription.lookup_key = values["lookup_key"] or subscription.lookup_key
    subscription.save()
    return subscription


def subscription_cancel(*, subscription: Subscription, now: dt.datetime | None = None) -> Subscription:
    """End a subscription now (a subscription that has not started ends at its start, granting nothing)."""
    now = now or timezone.now()
    if subscription.end_date is None or subscription.end_date > now:
        subscription.end_date = max(now, subscription.start_date)
        subscription.save(update_fields=["end_date", "updated_at"])
    return subscription
