"""The event debugger and usage pages in a real browser: events sent through the API appear in the live stream,
an unmatched one explains itself with a near-miss suggestion, "test an event" shows a corrected event matching,
and the usage page shows the API's number."""

import datetime as dt
import json
import re
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from catalog.models import Feature
from flexmeter.models import Environment
from metering.usage.dashboard import calendar_window
from tests.catalog.factories import FeatureFactory, MeterFactory
from tests.factories import ApiKeyFactory
from tests.metering.factories import CustomerFactory
from tests.metering.usage.helpers import stored

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def metered(signed_in):
    """API calls (COUNT of api.calls) and credits (SUM of credits), a customer, and an API key for the page."""
    environment = Environment.objects.get(slug="production")
    calls = MeterFactory(environment=environment, name="API calls", event_name="api.calls")
    FeatureFactory(environment=environment, name="API calls", lookup_key="api_calls", meter=calls,
                   unit_singular="call", unit_plural="calls")  # fmt: skip
    credits = MeterFactory(environment=environment, name="Credits", event_name="model.usage",
                           aggregation_type="SUM", aggregation_field="credits")  # fmt: skip
    FeatureFactory(environment=environment, name="Model credits", lookup_key="credits", meter=credits,
                   unit_singular="credit", unit_plural="credits")  # fmt: skip
    CustomerFactory(environment=environment, external_id="acme", name="Acme Corp")
    return ApiKeyFactory(environment=environment).raw_key


def send(page, key: str, body: dict) -> None:
    response = page.request.post("/v1/events", data=json.dumps(body),
                                 headers={"x-api-key": key, "content-type": "application/json"})  # fmt: skip
    assert response.status == 202, response.text()


def test_stream_detail_test_box_and_usage(signed_in, metered, screenshot):
    page, key = signed_in, metered
    now = timezone.now().replace(microsecond=0)
    stamp = (now - dt.timedelta(minutes=5)).isoformat()
    send(
        page, key, {"event_id": "call-1", "event_name": "api.calls", "external_customer_id": "acme", "timestamp": stamp}
    )
    send(page, key, {"event_id": "credits-1", "event_name": "model.usage", "external_customer_id": "acme",
                     "timestamp": stamp, "properties": {"credits": "2.5"}})  # fmt: skip
    send(page, key, {"event_id": "credits-2", "event_name": "model.usage", "external_customer_id": "acme",
                     "timestamp": stamp, "properties": {"credits": 0.1}})  # fmt: skip

    page.click("nav >> text=Debugger")
    expect(page.locator("#event-rows tr[data-event-id]")).to_have_count(3)
    expect(page.locator("tr[data-event-id='call-1'] [data-status]")).to_have_text("Processed")
    screenshot(page, "debugger-stream")

    # A new event arrives through the API and the stream shows it without a reload, on top.
    send(page, key, {"event_id": "typo-1", "event_name": "API.calls", "external_customer_id": "acme"})
    new_row = page.locator("#event-rows tr[data-event-id='typo-1']")
    expect(new_row).to_be_visible(timeout=15_000)
    expect(page.locator("#event-rows tr[data-event-id]").first).to_have_attribute("data-event-id", "typo-1")
    expect(new_row.locator("[data-status]")).to_have_text("Unmatched")
    assert page.url.endswith("/events/")

    # Filters live in the URL and survive polling.
    page.select_option("select[name=status]", "unmatched")
    expect(page.locator("#event-rows tr[data-event-id]")).to_have_count(1)
    assert "status=unmatched" in page.url

    # The unmatched event explains itself.
    new_row.locator("a.cell-title").click()
    page.wait_for_url(re.compile(r"/events/detail/\?id=typo-1$"))
    hint = page.get_by_test_id("near-miss")
    expect(hint).to_contain_text("Did you mean api.calls?")
    expect(page.locator("#debug-report")).to_have_attribute("data-status", "unmatched")
    screenshot(page, "debugger-detail-unmatched")

    # "Test an event": fix the name in the editor, check it — nothing is stored.
    page.click("text=Edit & test")
    page.wait_for_url(re.compile(r"/events/test/\?from=typo-1$"))
    editor = page.locator("#event-json")
    editor.fill(editor.input_value().replace('"API.calls"', '"api.calls"').replace('"typo-1"', '"fixed-1"'))
    page.click("button:has-text('Check')")
    expect(page.locator("#test-result #debug-report")).to_have_attribute("data-status", "processed")
    expect(page.locator("#test-result")).to_contain_text("Counted by 1 meter")
    expect(page.locator("#test-result")).to_contain_text("API calls")
    screenshot(page, "debugger-test-event")
    assert "fixed-1" not in [event.event_id for event in stored()]

    # The unmatched names view lists the typo at a glance.
    page.click("nav.tabs >> text=Unmatched events")
    expect(page.locator("#unmatched-results")).to_contain_text("API.calls")
    screenshot(page, "debugger-unmatched")

    # Usage: the page's total equals the API's number for the same window.
    credits = Feature.objects.get(lookup_key="credits")
    start, end = calendar_window("this_month", now=timezone.now())
    api_value = page.request.post(
        "/v1/events/usage/meter",
        data=json.dumps(
            {"meter_id": credits.meter.public_id, "start_time": start.isoformat(), "end_time": end.isoformat()}
        ),  # fmt: skip
        headers={"x-api-key": key, "content-type": "application/json"},
    ).json()["value"]
    assert Decimal(str(api_value)) == Decimal("2.6")
    page.click("nav >> text=Usage")
    page.click("text=Model credits")
    expect(page.get_by_test_id("feature-total")).to_have_text(f"{api_value} credits")
    expect(page.locator("#customer-usage")).to_contain_text("Acme Corp")
    screenshot(page, "usage-feature")
    page.click("#customer-usage >> text=Acme Corp")
    expect(page.get_by_test_id("usage-credits")).to_have_text("2.6 credits")
    screenshot(page, "usage-customer")
