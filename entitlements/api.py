"""REST endpoints of plans, entitlements, subscriptions and access checks (SPEC §10). Thin: parse, call one
selector or service, serialize. Every lookup is scoped to the API key's environment (other environments: 404).

Bodies are read as plain JSON objects; `entitlements.rules` checks every field, so the API reports the same
messages under the same paths as the dashboard and admin.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from ninja import Body, Query, Router, Schema
from pydantic import Field

from entitlements import selectors, services
from entitlements.models import PlanStatus
from entitlements.schemas import (
    access_to_wire,
    customer_entitlements_to_wire,
    entitlement_to_wire,
    plan_to_wire,
    subscription_to_wire,
)
from flexmeter.errors import ValidationFailed
from metering.api.http import wire_response
from metering.selectors import customer_get, customer_get_by_external_id

plans_router = Router(tags=["plans"])
entitlements_router = Router(tags=["entitlements"])
subscriptions_router = Router(tags=["subscriptions"])
customer_entitlements_router = Router(tags=["entitlements"])

JsonObject = dict[str, Any]
MAX_LIMIT = 100
DEFAULT_LIMIT = 50


class PageQuery(Schema):
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    offset: int = Field(0, ge=0)


def _ids(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _page(queryset, page: PageQuery, to_wire) -> dict:
    total = queryset.count()
    items = list(queryset[page.offset : page.offset + page.limit])
    return {
        "items": [to_wire(item) for item in items],
        "pagination": {"total": total, "limit": page.limit, "offset": page.offset},
    }


# --- plans ---------------------------------------------------------------------------------------------------


@plans_router.post("", summary="Create a plan")
def create_plan(request: HttpRequest, body: Body[JsonObject]):
    plan = services.plan_create(environment=request.environment, data=body)
    return wire_response(plan_to_wire(plan, environment=request.environment, entitlements=[]), status=201)


class PlanListQuery(PageQuery):
    status: str | None = None
    plan_ids: str | None = None


@plans_router.get("", summary="List plans")
def list_plans(request: HttpRequest, query: Query[PlanListQuery]):
    if query.status and query.status not in PlanStatus.values:
        raise ValidationFailed(details={"status": f"must be one of {', '.join(PlanStatus.values)}"})
    plans = selectors.plan_list(environment=request.environment, status=query.status, plan_ids=_ids(query.plan_ids))
    return wire_response(_page(plans, query, lambda plan: plan_to_wire(plan, environment=request.environment)))


@plans_router.get("/{plan_id}", summary="Get a plan with its entitlements")
def get_plan(request: HttpRequest, plan_id: str):
    plan = selectors.plan_get(environment=request.environment, plan_id=plan_id)
    entitlements = list(selectors.entitlement_list(environment=request.environment, plan=plan))
    return wire_response(plan_to_wire(plan, environment=request.environment, entitlements=entitlements))


@plans_router.put("/{plan_id}", summary="Change the given fields of a plan")
def update_plan(request: HttpRequest, plan_id: str, body: Body[JsonObject]):
    plan = selectors.plan_get(environment=request.environment, plan_id=plan_id)
    plan = services.plan_update(plan=plan, data=body)
    return wire_response(plan_to_wire(plan, environment=request.environment))


@plans_router.delete("/{plan_id}", summary="Archive a plan (existing subscriptions keep it until they end)")
def delete_plan(request: HttpRequest, plan_id: str):
    plan = selectors.plan_get(environment=request.environment, plan_id=plan_id)
    plan = services.plan_archive(plan=plan)
    return wire_response(plan_to_wire(plan, environment=request.environment))


@plans_router.get("/{plan_id}/entitlements", summary="The entitlements of a plan")
def get_plan_entitlements(request: HttpRequest, plan_id: str, query: Query[PageQuery]):
    plan = selectors.plan_get(environment=request.environment, plan_id=plan_id)
    entitlements = selectors.entitlement_list(environment=request.environment, plan=plan)
    return wire_response(_page(entitlements, query, lambda e: entitlement_to_wire(e, environment=request.environment)))


# --- entitlements --------------------------------------------------------------------------------------------


@entitlements_router.post("", summary="Put a feature on a plan (one entitlement per plan and feature)")
def create_entitlement(request: HttpRequest, body: Body[JsonObject]):
    entitlement = services.entitlement_create(environment=request.environment, data=body)
    return wire_response(entitlement_to_wire(entitlement, environment=request.environment), status=201)


class EntitlementListQuery(PageQuery):
    plan_ids: str | None = None
    feature_ids: str | None = None


@entitlements_router.get("", summary="List entitlements")
def list_entitlements(request: HttpRequest, query: Query[EntitlementListQuery]):
    entitlements = selectors.entitlement_list(environment=request.environment, feature_ids=_ids(query.feature_ids))
    if plan_ids := _ids(query.plan_ids):
        entitlements = entitlements.filter(plan__public_id__in=plan_ids)
    return wire_response(_page(entitlements, query, lambda e: entitlement_to_wire(e, environment=request.environment)))


class CheckPairIn(Schema):
    external_customer_id: str = Field(min_length=1, max_length=255)
    feature: str = Field(min_length=1, max_length=255, description="feature id or lookup key")


class CheckIn(Schema):
    checks: list[CheckPairIn] = Field(min_length=1, max_length=selectors.MAX_CHECKS)


@entitlements_router.post(
    "/check",
    summary=f"Check access for up to {selectors.MAX_CHECKS} (customer, feature) pairs, answered in order",
)
def check_entitlements(request: HttpRequest, body: CheckIn):
    answers = selectors.access_check_many(
        environment=request.environment,
        pairs=[(pair.external_customer_id, pair.feature) for pair in body.checks],
    )
    results = []
    for pair, answer in zip(body.checks, answers, strict=True):
        item = access_to_wire(answer)
        item["external_customer_id"] = pair.external_customer_id
        item["customer_id"] = answer.customer.public_id if answer.customer else None
        item["feature"] = pair.feature
        results.append(item)
    return wire_response({"results": results, "as_of": answers[0].as_of})


@entitlements_router.get("/{entitlement_id}", summary="Get an entitlement")
def get_entitlement(request: HttpRequest, entitlement_id: str):
    entitlement = selectors.entitlement_get(environment=request.environment, entitlement_id=entitlement_id)
    return wire_response(entitlement_to_wire(entitlement, environment=request.environment))


@entitlements_router.put("/{entitlement_id}", summary="Change an entitlement's settings (limit, reset, …)")
def update_entitlement(request: HttpRequest, entitlement_id: str, body: Body[JsonObject]):
    entitlement = selectors.entitlement_get(environment=request.environment, entitlement_id=entitlement_id)
    entitlement = services.entitlement_update(entitlement=entitlement, data=body)
    return wire_response(entitlement_to_wire(entitlement, environment=request.environment))


@entitlements_router.delete("/{entitlement_id}", summary="Remove a feature from a plan")
def delete_entitlement(request: HttpRequest, entitlement_id: str):
    entitlement = selectors.entitlement_get(environment=request.environment, entitlement_id=entitlement_id)
    services.entitlement_delete(entitlement=entitlement)
    return wire_response({"message": f"Entitlement {entitlement_id} deleted"})


# --- subscriptions -------------------------------------------------------------------------------------------


@subscriptions_router.post("", summary="Subscribe a customer to a plan (pricing fields are accepted and ignored)")
def create_subscription(request: HttpRequest, body: Body[JsonObject]):
    subscription = services.subscription_create(environment=request.environment, data=body)
    wire = subscription_to_wire(subscription, environment=request.environment, at=timezone.now())
    return wire_response(wire, status=201)


class SubscriptionListQuery(PageQuery):
    customer_id: str | None = None
    external_customer_id: str | None = None
    plan_id: str | None = None
    active: bool | None = Field(None, description="only subscriptions active now")


@subscriptions_router.get("", summary="List subscriptions")
def list_subscriptions(request: HttpRequest, query: Query[SubscriptionListQuery]):
    environment = request.environment
    customer = None
    if query.customer_id:
        customer = customer_get(environment=environment, customer_id=query.customer_id)
    elif query.external_customer_id:
        customer = customer_get_by_external_id(environment=environment, external_id=query.external_customer_id)
    plan = selectors.plan_get(environment=environment, plan_id=query.plan_id) if query.plan_id else None
    now = timezone.now()
    subscriptions = selectors.subscription_list(
        environment=environment, customer=customer, plan=plan, active_at=now if query.active else None
    )
    page = _page(subscriptions, query, lambda s: subscription_to_wire(s, environment=environment, at=now))
    return wire_response(page)


@subscriptions_router.get("/{subscription_id}", summary="Get a subscription")
def get_subscription(request: HttpRequest, subscription_id: str):
    subscription = selectors.subscription_get(environment=request.environment, subscription_id=subscription_id)
    return wire_response(subscription_to_wire(subscription, environment=request.environment, at=timezone.now()))


@subscriptions_router.put("/{subscription_id}", summary="Change end_date, lookup_key or metadata of a subscription")
def update_subscription(request: HttpRequest, subscription_id: str, body: Body[JsonObject]):
    subscription = selectors.subscription_get(environment=request.environment, subscription_id=subscription_id)
    subscription = services.subscription_update(subscription=subscription, data=body)
    return wire_response(subscription_to_wire(subscription, environment=request.environment, at=timezone.now()))


@subscriptions_router.delete("/{subscription_id}", summary="End a subscription now")
def delete_subscription(request: HttpRequest, subscription_id: str):
    subscription = selectors.subscription_get(environment=request.environment, subscription_id=subscription_id)
    subscription = services.subscription_cancel(subscription=subscription)
    return wire_response(subscription_to_wire(subscription, environment=request.environment, at=timezone.now()))


# --- a customer's entitlements -------------------------------------------------------------------------------


@customer_entitlements_router.get(
    "/external/{external_id}/entitlements", summary="Every feature an active customer's subscriptions grant"
)
def get_customer_entitlements_by_external_id(request: HttpRequest, external_id: str):
    customer = customer_get_by_external_id(environment=request.environment, external_id=external_id)
    result = selectors.customer_entitlements(customer=customer)
    return wire_response(customer_entitlements_to_wire(result, environment=request.environment))


@customer_entitlements_router.get(
    "/{customer_id}/entitlements", summary="Every feature a customer's subscriptions grant"
)
def get_customer_entitlements(request: HttpRequest, customer_id: str):
    customer = customer_get(environment=request.environment, customer_id=customer_id)
    result = selectors.customer_entitlements(customer=customer)
    return wire_response(customer_entitlements_to_wire(result, environment=request.environment))


@customer_entitlements_router.get(
    "/{customer_id}/entitlements/{feature}", summary="Access of a customer to one feature (id or lookup key)"
)
def get_customer_feature_access(request: HttpRequest, customer_id: str, feature: str):
    answer = selectors.customer_feature_access_by_id(
        environment_id=request.environment.pk, customer_id=customer_id, feature_ref=feature
    )
    body = access_to_wire(answer)
    body["customer_id"] = answer.customer.public_id
    body["external_customer_id"] = answer.customer.external_id
    return wire_response(body)
