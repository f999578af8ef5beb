"""Dashboard pages of plans and access: list, create/edit with the rules' errors, live validation, entitlements,
archive, the customer panel (plans, usage bars, access state), subscribe, end and the check-access box."""

import pytest

from entitlements.models import Entitlement, Plan, Subscription
from tests.entitlements.helpers import customer, grant, metered_feature, plain_feature, plan
from tests.metering.usage.helpers import send

pytestmark = pytest.mark.django_db


def test_plan_list_create_edit_and_archive(dashboard, environment):
    assert "No plans yet" in dashboard.get("/catalog/plans/").content.decode()

    invalid = dashboard.post("/catalog/plans/new/", {"name": "", "lookup_key": "has space"})
    assert invalid.status_code == 422
    assert "Is required" in invalid.content.decode() and "Must not contain whitespace" in invalid.content.decode()

    created = dashboard.post("/catalog/plans/new/", {"name": "Pro Plan"})
    pro = Plan.objects.get(environment=environment)
    assert created.status_code == 302 and created["Location"] == f"/catalog/plans/{pro.public_id}/"
    assert pro.lookup_key == "pro_plan"
    listing = dashboard.get("/catalog/plans/").content.decode()
    assert "Pro Plan" in listing and "pro_plan" in listing

    clash = dashboard.post("/catalog/plans/new/", {"name": "Other", "lookup_key": "pro_plan"})
    assert clash.status_code == 422 and "Already used by another plan" in clash.content.decode()
    dashboard.post(f"/catalog/plans/{pro.public_id}/edit/", {"name": "Pro", "lookup_key": "pro_plan"})
    pro.refresh_from_db()
    assert pro.name == "Pro"
    dashboard.post(f"/catalog/plans/{pro.public_id}/archive/")
    pro.refresh_from_db()
    assert pro.status == "archived"


def test_live_validation_derives_the_lookup_key_and_reports_clashes(dashboard, environment):
    plan(environment, "Pro")
    response = dashboard.post("/catalog/plans/validate/", {"name": "Team Plan (v2)"}, headers={"HX-Request": "true"})
    body = response.content.decode()
    assert response.status_code == 200 and "team_plan_v2" in body and "<html" not in body
    clash = dashboard.post("/catalog/plans/validate/", {"name": "Pro"}, headers={"HX-Request": "true"})
    assert "already used by another plan" in clash.content.decode()


def test_plan_detail_adds_edits_and_removes_entitlements(dashboard, environment):
    feature = metered_feature(environment)
    pro = plan(environment, "Pro")

    bad = dashboard.post(
        f"/catalog/plans/{pro.public_id}/entitlements/new/", {"feature": feature.public_id, "usage_limit": "-3"}
    )
    assert bad.status_code == 422 and "Must not be negative" in bad.content.decode()
    dashboard.post(
        f"/catalog/plans/{pro.public_id}/entitlements/new/",
        {"feature": feature.public_id, "usage_limit": "1000", "usage_reset_period": "DAILY", "is_enabled": "on"},
    )
    entitlement = Entitlement.objects.get(plan=pro)
    assert (entitlement.usage_limit, entitlement.usage_reset_period, entitlement.is_enabled) == ("1000", "DAILY", True)
    page = dashboard.get(f"/catalog/plans/{pro.public_id}/").content.decode()
    assert "1,000" in page and "Daily" in page

    dashboard.post(
        f"/catalog/entitlements/{entitlement.public_id}/edit/",
        {"usage_limit": "", "usage_reset_period": "MONTHLY", "is_soft_limit": "on", "is_enabled": "on"},
    )
    entitlement.refresh_from_db()
    assert (entitlement.limit, entitlement.is_soft_limit) == (None, True)
    dashboard.post(f"/catalog/entitlements/{entitlement.public_id}/delete/")
    assert not Entitlement.objects.filter(plan=pro).exists()


def test_customer_page_shows_plans_usage_bars_and_access_state(dashboard, environment):
    calls = metered_feature(environment)
    sso = plain_feature(environment, type="boolean", lookup_key="sso")
    holder = customer(environment, external_id="acme")
    grant(environment, holder, calls, usage_limit=2, usage_reset_period="NEVER", start="2025-01-01T00:00")
    grant(environment, holder, sso)
    for _ in range(3):
        send(environment, event_name="api.calls", customer="acme", timestamp="2025-02-01T00:00")

    page = dashboard.get(f"/customers/{holder.public_id}/").content.decode()

    assert "Plans and access" in page
    assert "Limit reached" in page and "1 over" in page
    assert 'aria-valuenow="100"' in page
    assert "Access" in page  # sso


def test_subscribe_end_and_check_access_from_the_customer_page(dashboard, environment):
    calls = metered_feature(environment)
    pro = plan(environment, "Pro")
    Entitlement.objects.create(environment=environment, plan=pro, feature=calls, usage_limit="5")
    holder = customer(environment, external_id="acme")

    dashboard.post(f"/customers/{holder.public_id}/subscribe/", {"plan": pro.public_id})
    subscription = Subscription.objects.get(customer=holder)
    assert subscription.plan == pro and subscription.end_date is None

    check = dashboard.get(f"/customers/{holder.public_id}/access/", {"feature": "api_calls"})
    body = check.content.decode()
    assert check.status_code == 200 and "has_access" in body and "true" in body
    htmx = dashboard.get(f"/customers/{holder.public_id}/access/", {"feature": "nope"}, headers={"HX-Request": "true"})
    assert "feature_not_found" in htmx.content.decode() and "<html" not in htmx.content.decode()

    dashboard.post(f"/subscriptions/{subscription.public_id}/end/")
    subscription.refresh_from_db()
    assert subscription.end_date is not None


def test_other_environments_plans_are_not_found(dashboard, other_environment):
    foreign = plan(other_environment, "Theirs")
    assert dashboard.get(f"/catalog/plans/{foreign.public_id}/").status_code == 404
