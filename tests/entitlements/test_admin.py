"""Django admin for plans, entitlements and subscriptions: the same rules and services as the API."""

import pytest
from django.urls import reverse

from entitlements.models import Entitlement, Plan, Subscription
from tests.entitlements.helpers import customer, grant, metered_feature, plan

pytestmark = pytest.mark.django_db


def test_admin_pages_render(dashboard, environment):
    grant(environment, customer(environment), metered_feature(environment), usage_limit=5)
    for model in ("plan", "entitlement", "subscription"):
        assert dashboard.get(reverse(f"admin:entitlements_{model}_changelist")).status_code == 200
        assert dashboard.get(reverse(f"admin:entitlements_{model}_add")).status_code == 200
    for obj in (Plan.objects.first(), Entitlement.objects.first(), Subscription.objects.first()):
        url = reverse(f"admin:entitlements_{obj._meta.model_name}_change", args=[obj.pk])
        assert dashboard.get(url).status_code == 200


def test_admin_creates_through_the_rules(dashboard, environment):
    feature = metered_feature(environment)
    holder = customer(environment)
    created = dashboard.post(
        reverse("admin:entitlements_plan_add"),
        {"environment": environment.pk, "name": "Team Plan", "lookup_key": "", "description": "", "metadata": "{}"},
    )
    assert created.status_code == 302
    team = Plan.objects.get()
    assert team.lookup_key == "team_plan" and team.public_id.startswith("plan_")

    entitlement_form = {
        "plan": team.pk,
        "feature": feature.pk,
        "is_enabled": "on",
        "usage_limit": "-5",
        "usage_reset_period": "MONTHLY",
        "static_value": "",
        "config_value": "null",
    }
    rejected = dashboard.post(reverse("admin:entitlements_entitlement_add"), entitlement_form)
    assert rejected.status_code == 200 and "must not be negative" in rejected.content.decode()
    accepted = dashboard.post(reverse("admin:entitlements_entitlement_add"), {**entitlement_form, "usage_limit": "50"})
    assert accepted.status_code == 302 and Entitlement.objects.get().usage_limit == "50"

    subscription_form = {
        "customer": holder.pk,
        "plan": team.pk,
        "start_date_0": "2025-03-01",
        "start_date_1": "00:00:00",
        "end_date_0": "2025-02-01",
        "end_date_1": "00:00:00",
        "billing_period": "MONTHLY",
        "currency": "eur",
        "lookup_key": "",
        "metadata": "{}",
    }
    bad = dashboard.post(reverse("admin:entitlements_subscription_add"), subscription_form)
    assert bad.status_code == 200 and "must be after start_date" in bad.content.decode()
    good = dashboard.post(
        reverse("admin:entitlements_subscription_add"), {**subscription_form, "end_date_0": "", "end_date_1": ""}
    )
    assert good.status_code == 302
    subscription = Subscription.objects.get()
    assert subscription.billing_anchor == subscription.start_date and subscription.currency == "eur"


def test_admin_rejects_a_plan_from_another_environment(dashboard, environment, other_environment):
    holder = customer(environment)
    foreign = plan(other_environment, "Theirs")
    response = dashboard.post(
        reverse("admin:entitlements_subscription_add"),
        {"customer": holder.pk, "plan": foreign.pk, "billing_period": "MONTHLY", "metadata": "{}"},
    )
    assert response.status_code == 200 and "must belong to the customer&#x27;s environment" in response.content.decode()
