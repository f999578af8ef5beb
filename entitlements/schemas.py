"""Wire shapes of plans, entitlements, subscriptions and access answers (SPEC §10), Flexprice's where it has them.

Limits, usage, balance and overage are JSON numbers with every digit (written by `metering.exactjson` through
`metering.api.http.wire_response`); timestamps are RFC 3339 UTC. `tenant_id` is the catalog's constant.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from catalog.schemas import feature_to_wire, tenant_id
from entitlements.models import Entitlement, Plan, Subscription
from entitlements.rules import CombinedEntitlement, Source, subscription_period_at
from entitlements.selectors import CustomerEntitlements, FeatureAccess
from flexmeter.models import Environment


def _number(text: str | Decimal | None) -> Decimal | int | None:
    """Decimal text as a JSON number (empty: None): integers as ints (Flexprice's `usage_limit` is an integer: `5`,
    never `5.0`), other values with every digit."""
    if text is None or text == "":
        return None
    number = Decimal(text) if not isinstance(text, Decimal) else text
    return int(number) if number == number.to_integral_value() else number


def plan_to_wire(plan: Plan, *, environment: Environment, entitlements: list[Entitlement] | None = None) -> dict:
    wire = {
        "id": plan.public_id,
        "name": plan.name,
        "lookup_key": plan.lookup_key,
        "description": plan.description,
        "display_order": plan.display_order,
        "metadata": plan.metadata or {},
        "status": plan.status,
        "tenant_id": tenant_id(),
        "environment_id": environment.public_id,
        "created_at": plan.created_at,
        "updated_at": plan.updated_at,
    }
    if entitlements is not None:
        wire["entitlements"] = [entitlement_to_wire(item, environment=environment) for item in entitlements]
    return wire


def entitlement_to_wire(entitlement: Entitlement, *, environment: Environment, expand_feature: bool = True) -> dict:
    wire = {
        "id": entitlement.public_id,
        "plan_id": entitlement.plan.public_id,
        "entity_type": "PLAN",
        "entity_id": entitlement.plan.public_id,
        "feature_id": entitlement.feature.public_id,
        "feature_type": entitlement.feature.type,
        "is_enabled": entitlement.is_enabled,
        "usage_limit": _number(entitlement.usage_limit),
        "usage_reset_period": entitlement.usage_reset_period,
        "is_soft_limit": entitlement.is_soft_limit,
        "static_value": entitlement.static_value,
        "config_value": entitlement.config_value,
        "status": "published",
        "tenant_id": tenant_id(),
        "environment_id": environment.public_id,
        "created_at": entitlement.created_at,
        "updated_at": entitlement.updated_at,
    }
    if expand_feature:
        wire["feature"] = feature_to_wire(entitlement.feature, environment=environment)
    return wire


def subscription_to_wire(subscription: Subscription, *, environment: Environment, at: dt.datetime) -> dict:
    period = subscription_period_at(subscription, at)
    ended = subscription.end_date is not None and subscription.end_date <= at
    return {
        "id": subscription.public_id,
        "customer_id": subscription.customer.public_id,
        "external_customer_id": subscription.customer.external_id,
        "plan_id": subscription.plan.public_id,
        "status": "published",
        "subscription_status": "cancelled" if ended else "active",
        "is_active": subscription.is_active_at(at),
        "start_date": subscription.start_date,
        "end_date": subscription.end_date,
        "billing_anchor": subscription.billing_anchor,
        "billing_period": subscription.billing_period,
        "billing_period_count": 1,
        "current_period_start": period[0] if period else None,
        "current_period_end": period[1] if period else None,
        "currency": subscription.currency,
        "lookup_key": subscription.lookup_key,
        "metadata": subscription.metadata or {},
        "tenant_id": tenant_id(),
        "environment_id": environment.public_id,
        "created_at": subscription.created_at,
        "updated_at": subscription.updated_at,
    }


def source_to_wire(source: Source) -> dict:
    entitlement, subscription = source.entitlement, source.subscription
    return {
        "entitlement_id": entitlement.public_id,
        "entity_type": "plan",
        "entity_id": subscription.plan.public_id,
        "entity_name": subscription.plan.name,
        "subscription_id": subscription.public_id,
        "is_enabled": entitlement.is_enabled,
        "usage_limit": _number(entitlement.usage_limit),
        "usage_reset_period": entitlement.usage_reset_period,
        "is_soft_limit": entitlement.is_soft_limit,
        "static_value": entitlement.static_value,
        "config_value": entitlement.config_value,
        "quantity": 1,
    }


def combined_to_wire(combined: CombinedEntitlement) -> dict:
    return {
        "is_enabled": combined.is_enabled,
        "usage_limit": _number(combined.usage_limit),
        "is_soft_limit": combined.is_soft_limit,
        "usage_reset_period": combined.usage_reset_period,
        "static_values": combined.static_values,
        "config_values": combined.config_values,
    }


def access_to_wire(answer: FeatureAccess) -> dict:
    """The check answer of SPEC §10."""
    feature, combined, access = answer.feature, answer.combined, answer.access
    window = access.window
    return {
        "feature_id": feature.public_id if feature else None,
        "lookup_key": feature.lookup_key if feature else None,
        "type": feature.type if feature else None,
        "has_access": access.has_access,
        "reason": access.reason,
        "is_enabled": bool(combined and combined.is_enabled),
        "usage": _number(access.usage),
        "usage_limit": _number(combined.usage_limit) if combined else None,
        "balance": _number(access.balance),
        "overage": _number(access.overage),
        "is_soft_limit": bool(combined and combined.is_soft_limit),
        "usage_reset_period": combined.usage_reset_period if combined else None,
        "period_start": window.start if window else None,
        "period_end": window.next_reset_at if window else None,
        "next_reset_at": window.next_reset_at if window else None,
        "static_value": combined.static_values[0] if combined and combined.static_values else None,
        "static_values": combined.static_values if combined else [],
        "config": combined.config_values if combined else [],
        "sources": [source_to_wire(source) for source in combined.sources] if combined else [],
        "as_of": answer.as_of,
    }


def customer_entitlements_to_wire(result: CustomerEntitlements, *, environment: Environment) -> dict:
    """Flexprice's customer entitlements (`features[].feature/entitlement/sources`) plus our `access` per feature."""
    return {
        "customer_id": result.customer.public_id,
        "features": [
            {
                "feature": feature_to_wire(answer.feature, environment=environment),
                "entitlement": combined_to_wire(answer.combined),
                "sources": [source_to_wire(source) for source in answer.combined.sources],
                "access": access_to_wire(answer),
            }
            for answer in result.features
        ],
        "subscriptions": [
            subscription_to_wire(subscription, environment=environment, at=result.as_of)
            for subscription in result.subscriptions
        ],
        "as_of": result.as_of,
    }
