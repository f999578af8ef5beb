"""Django admin's catalog forms in a browser: the rows fields' "Add another" (static/js/admin_rows.js)."""

import pytest

pytestmark = pytest.mark.e2e


def test_add_another_filter_appends_a_named_row_that_saves(signed_in, live_server, screenshot):
    from catalog import services
    from catalog.models import Meter
    from flexmeter.models import Environment

    meter = services.meter_create(
        environment=Environment.objects.get(slug="production"),
        data={"name": "Calls", "event_name": "api.call", "aggregation": {"type": "COUNT"},
              "filters": [{"key": "region", "values": ["eu"]}]},
    )  # fmt: skip
    page = signed_in
    page.goto(f"/admin/catalog/meter/{meter.pk}/change/")
    assert page.locator("[data-rows-widget] tbody tr").count() == 3
    page.get_by_role("button", name="Add another filter").click()
    new_key = page.get_by_label("Filter 4 property")
    assert new_key.evaluate("element => element === document.activeElement")
    assert new_key.get_attribute("name") == "filters-3-key"
    new_key.fill("tier")
    page.get_by_label("Filter 4 operator").select_option(label="is not one of")
    page.get_by_label("Filter 4 values").fill("free\ntrial")
    screenshot(page, "admin-meter-add-another-filter")
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url("**/admin/catalog/meter/")
    meter = Meter.objects.get(pk=meter.pk)
    assert meter.filters == [
        {"key": "region", "operator": "in", "values": ["eu"]},
        {"key": "tier", "operator": "not_in", "values": ["free", "trial"]},
    ]


def test_a_plans_metadata_is_rows_with_add_another_that_save(signed_in, live_server, screenshot):
    from entitlements import services
    from entitlements.models import Plan
    from flexmeter.models import Environment

    plan = services.plan_create(
        environment=Environment.objects.get(slug="production"), data={"name": "Team", "metadata": {"tier": "gold"}}
    )
    page = signed_in
    page.goto(f"/admin/entitlements/plan/{plan.pk}/change/")
    assert page.locator("textarea[name=metadata]").count() == 0
    assert page.get_by_label("Entry 1 key").input_value() == "tier"
    page.get_by_role("button", name="Add another entry").click()
    page.get_by_label("Entry 4 key").fill("owner")
    page.get_by_label("Entry 4 value").fill("Sales")
    screenshot(page, "admin-plan-metadata-rows")
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url("**/admin/entitlements/plan/")
    assert Plan.objects.get(pk=plan.pk).metadata == {"tier": "gold", "owner": "Sales"}
