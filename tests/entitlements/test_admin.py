"""Django admin for plans, entitlements and subscriptions: the same rules and services as the API."""

import re

import pytest
from django.urls import reverse

from entitlements import services
from entitlements.models import Entitlement, Plan, Subscription
from tests.catalog.test_admin import rows
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
        {"environment": environment.pk, "name": "Team Plan", "lookup_key": "", "description": "", **rows("metadata")},
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
        **rows("metadata", {"key": "source", "value": "admin"}),
    }
    bad = dashboard.post(reverse("admin:entitlements_subscription_add"), subscription_form)
    assert bad.status_code == 200 and "must be after start_date" in bad.content.decode()
    good = dashboard.post(
        reverse("admin:entitlements_subscription_add"), {**subscription_form, "end_date_0": "", "end_date_1": ""}
    )
    assert good.status_code == 302
    subscription = Subscription.objects.get()
    assert subscription.billing_anchor == subscription.start_date and subscription.currency == "eur"
    assert subscription.metadata == {"source": "admin"}


def test_admin_rejects_a_plan_from_another_environment(dashboard, environment, other_environment):
    holder = customer(environment)
    foreign = plan(other_environment, "Theirs")
    response = dashboard.post(
        reverse("admin:entitlements_subscription_add"),
        {"customer": holder.pk, "plan": foreign.pk, "billing_period": "MONTHLY", **rows("metadata")},
    )
    assert response.status_code == 200 and "must belong to the customer&#x27;s environment" in response.content.decode()


def test_plan_and_subscription_metadata_are_rows_of_inputs_not_json_boxes(dashboard, environment):
    team = services.plan_create(environment=environment, data={"name": "Team", "metadata": {"tier": "gold"}})
    grant(environment, customer(environment), metered_feature(environment), usage_limit=5)
    for url in (
        reverse("admin:entitlements_plan_add"),
        reverse("admin:entitlements_plan_change", args=[team.pk]),
        reverse("admin:entitlements_subscription_add"),
        reverse("admin:entitlements_subscription_change", args=[Subscription.objects.get().pk]),
    ):
        html = dashboard.get(url).content.decode()
        assert not re.search(r'<textarea[^>]*name="metadata"', html), url
        assert 'name="metadata-rows"' in html and "js/admin_rows.js" in html, url
    html = dashboard.get(reverse("admin:entitlements_plan_change", args=[team.pk])).content.decode()
    assert re.search(r'name="metadata-0-key"[^>]*value="tier"', html)
    assert re.search(r'name="metadata-0-value"[^>]*value="gold"', html)


def plan_form(environment, **changes):
    return {"environment": environment.pk, "name": "Team", "lookup_key": "", "description": "", "display_order": "0",
            **changes}  # fmt: skip


def test_plan_metadata_rows_are_saved_as_the_apis_map_and_kept_when_unchanged(dashboard, environment):
    added = dashboard.post(
        reverse("admin:entitlements_plan_add"),
        plan_form(
            environment,
            **rows(
                "metadata",
                {"key": "tier", "value": "gold"},
                {"key": "", "value": ""},
                {"key": "owner", "value": " Sales "},
            ),
        ),  # fmt: skip
    )
    assert added.status_code == 302
    team = Plan.objects.get()
    assert team.metadata == {"tier": "gold", "owner": " Sales "}

    change = reverse("admin:entitlements_plan_change", args=[team.pk])
    form = dashboard.get(change).context["adminform"].form
    saved = dashboard.post(change, plan_form(environment, **rows("metadata", *form["metadata"].value())))
    assert saved.status_code == 302
    team.refresh_from_db()
    assert team.metadata == {"tier": "gold", "owner": " Sales "}

    emptied = dashboard.post(change, plan_form(environment, **rows("metadata", {"key": "", "value": ""})))
    assert emptied.status_code == 302
    team.refresh_from_db()
    assert team.metadata == {}


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        (rows("metadata", {"key": " ", "value": "1"}), "keys must not be blank"),
        (rows("metadata", {"key": "a", "value": "1"}, {"key": "a", "value": "2"}),
         "Entry 2: the key “a” is already used by an earlier row"),
        (rows("metadata", *({"key": f"k{n}", "value": ""} for n in range(51))), "must have at most 50 keys (got 51)"),
        (rows("metadata", {"key": "k" * 300, "value": "1"}), f"Key “{'k' * 300}”: key must be at most"),
    ],
)  # fmt: skip
def test_plan_metadata_errors_name_the_row_and_nothing_is_saved(dashboard, environment, metadata, message):
    response = dashboard.post(reverse("admin:entitlements_plan_add"), plan_form(environment, **metadata))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert any(error.startswith(message) for error in errors["metadata"]), errors
    assert not Plan.objects.exists()
