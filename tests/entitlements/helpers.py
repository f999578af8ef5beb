"""Building blocks for entitlement tests: plans, entitlements and subscriptions written through the services (so the
rules apply), customers with a known billing anchor, and events through the real ingestion path."""

from __future__ import annotations

import itertools

from catalog.models import FeatureType
from entitlements import services
from entitlements.models import Entitlement, Plan, Subscription
from tests.catalog.factories import FeatureFactory, MeterFactory
from tests.metering.factories import CustomerFactory
from tests.metering.usage.helpers import at

_numbers = itertools.count()


def metered_feature(environment, *, event_name: str = "api.calls", lookup_key: str = "api_calls", **meter):
    meter = MeterFactory(environment=environment, event_name=event_name, **meter)
    return FeatureFactory(environment=environment, type=FeatureType.METERED, meter=meter, lookup_key=lookup_key)


def plain_feature(environment, *, type: str, lookup_key: str):
    return FeatureFactory(environment=environment, type=type, meter=None, lookup_key=lookup_key)


def customer(environment, *, external_id: str = "cust-1", anchor: str = "2025-01-01T00:00", period: str = "MONTHLY"):
    return CustomerFactory(
        environment=environment, external_id=external_id, billing_anchor=at(anchor), billing_period=period
    )


def plan(environment, name: str | None = None) -> Plan:
    number = next(_numbers)
    return services.plan_create(environment=environment, data={"name": name or f"Plan {number}"})


def grant(
    environment,
    customer,
    feature,
    *,
    start: str | None = None,
    end: str | None = None,
    anchor: str | None = None,
    plan_obj: Plan | None = None,
    **settings,
) -> tuple[Entitlement, Subscription]:
    """A new plan with one entitlement of `feature` (settings as in the API) and a subscription of `customer`."""
    start = start or "2025-01-01T00:00"
    plan_obj = plan_obj or plan(environment)
    entitlement = services.entitlement_create(
        environment=environment, data={"plan_id": plan_obj.public_id, "feature_id": feature.public_id, **settings}
    )
    data = {"customer_id": customer.public_id, "plan_id": plan_obj.public_id, "start_date": at(start).isoformat()}
    if end:
        data["end_date"] = at(end).isoformat()
    if anchor:
        data["billing_anchor"] = at(anchor).isoformat()
    subscription = services.subscription_create(environment=environment, data=data, now=at(start))
    return entitlement, subscription
