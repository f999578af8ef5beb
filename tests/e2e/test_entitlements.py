"""Plans and access in a real browser: create a plan with a metered limit, subscribe a customer, send events past
the limit over the API, and watch the customer page turn to "limit reached"."""

import pytest
from playwright.sync_api import expect

from entitlements.models import Entitlement, Plan
from tests.entitlements.helpers import customer, metered_feature
from tests.factories import ApiKeyFactory, EnvironmentFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_customer_reaches_a_plan_limit(signed_in, live_server, screenshot):
    page = signed_in
    environment = EnvironmentFactory(slug="production")
    metered_feature(environment)
    acme = customer(environment, external_id="acme")
    key = ApiKeyFactory(environment=environment)

    page.click("nav >> text=Plans")
    expect(page.locator("h1")).to_have_text("Plans")
    screenshot(page, "plans-empty")
    page.click("text=Add plan >> nth=0")
    page.fill("input[name=name]", "Starter Plan")
    expect(page.get_by_test_id("derived-lookup-key")).to_contain_text("starter_plan")
    screenshot(page, "plan-new")
    page.click("button:has-text('Save plan')")
    expect(page.locator("h1")).to_have_text("Starter Plan")

    page.select_option("select[name=feature]", label=page.locator("select[name=feature] option").nth(1).inner_text())
    page.fill("input[name=usage_limit]", "3")
    screenshot(page, "plan-add-feature")
    page.select_option("select[name=usage_reset_period]", "BILLING_PERIOD")
    page.click("button:has-text('Add to plan')")
    expect(page.locator("#plan-entitlements")).to_contain_text("Customer's billing period")
    screenshot(page, "plan-detail")
    starter = Plan.objects.get(lookup_key="starter_plan")
    assert Entitlement.objects.get(plan=starter).usage_limit == "3"

    page.goto(f"/customers/{acme.public_id}/")
    page.select_option("select[name=plan]", starter.public_id)
    page.click("button:has-text('Subscribe')")
    row = page.locator("#customer-access tr[data-feature=api_calls]")
    expect(row.get_by_test_id("access-state")).to_have_text("Access")
    screenshot(page, "customer-access-ok")

    for _ in range(4):
        response = page.request.post(
            f"{live_server.url}/v1/events",
            data={"event_name": "api.calls", "external_customer_id": "acme"},
            headers={"x-api-key": key.raw_key},
        )
        assert response.status == 202

    page.reload()
    expect(row.get_by_test_id("access-state")).to_have_text("Limit reached")
    expect(row).to_contain_text("4 of 3")
    expect(row).to_contain_text("1 over")
    page.fill("#customer-entitlements input[name=feature]", "api_calls")
    page.click("#customer-entitlements button:has-text('Check')")
    expect(page.get_by_test_id("access-answer")).to_contain_text("usage_limit_reached")
    screenshot(page, "customer-limit-reached")
