"""The overview and the usage pages in a real browser (issue #18): the home page shows real numbers, external-id
chips stay on one line, hourly bars on a month say they fell back to daily, and the chart's data table opens."""

import datetime as dt
import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.catalog.factories import FeatureFactory, MeterFactory
from tests.factories import EnvironmentFactory
from tests.metering.factories import CustomerFactory, EventFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def data(signed_in):
    environment = EnvironmentFactory(slug="production")
    meter = MeterFactory(environment=environment, name="API calls", event_name="api.calls")
    feature = FeatureFactory(environment=environment, name="API calls", lookup_key="api_calls", meter=meter,
                             unit_singular="call", unit_plural="calls")  # fmt: skip
    CustomerFactory(environment=environment, external_id="acme-corp-international-holdings-eu-west", name="Acme")
    CustomerFactory(environment=environment, external_id="globex", name="Globex")
    now = timezone.now()
    for index in range(4):
        EventFactory(environment=environment, external_customer_id="acme-corp-international-holdings-eu-west",
                     timestamp=now - dt.timedelta(minutes=5 + index))  # fmt: skip
    EventFactory(environment=environment, event_name="API.calls", external_customer_id="globex",
                 timestamp=now - dt.timedelta(minutes=3))  # fmt: skip
    return signed_in, feature


def test_the_home_page_is_an_overview_with_real_numbers(data, screenshot):
    page, _ = data
    page.goto("/")
    expect(page.locator("h1")).to_have_text("Overview")
    expect(page.get_by_test_id("overview-today")).to_contain_text("5")
    expect(page.get_by_test_id("overview-unmatched")).to_contain_text("20%")
    expect(page.get_by_test_id("overview-feature-api_calls")).to_have_text("4 calls")
    screenshot(page, "overview")
    page.click(".overview-reasons td.actions a")
    expect(page).to_have_url(re.compile(r"/events/\?event_name=API\.calls&status=unmatched&range=24h$"))


def test_external_id_chips_never_wrap_at_hyphens(data, screenshot):
    page, _ = data
    for width in (1280, 900):
        page.set_viewport_size({"width": width, "height": 800})
        page.goto("/customers/")
        chip = page.get_by_test_id("external-id-chip").filter(has_text="acme-corp-international")
        box = chip.bounding_box()
        line = chip.evaluate("el => parseFloat(getComputedStyle(el).lineHeight) || el.clientHeight")
        # one line of text: the chip is its own 22 px tall and the text fits inside it
        assert box["height"] <= 24
        assert chip.evaluate("el => el.scrollHeight <= el.clientHeight + 1")
        assert line <= 24
    screenshot(page, "customers-narrow")


def test_hourly_bars_on_a_month_say_they_fell_back(data, screenshot):
    page, feature = data
    page.goto(f"/usage/features/{feature.public_id}/?window=30d&size=HOUR")
    expect(page.get_by_test_id("size-fallback")).to_contain_text("Hourly bars would need more than 200 bars")
    expect(page.locator(".segmented a.active", has_text="Daily")).to_be_visible()
    expect(page.locator(".segmented [aria-disabled=true]", has_text="Hourly")).to_be_visible()
    screenshot(page, "usage-hourly-fallback")
    page.click("text=Last 7 days")
    expect(page.get_by_test_id("size-fallback")).to_have_count(0)
    page.click(".segmented a:has-text('Hourly')")
    expect(page.locator(".segmented a.active", has_text="Hourly")).to_be_visible()
    expect(page.locator("h2", has_text="Hourly usage")).to_be_visible()
    labels = page.locator("svg.chart text.axis-x").all_text_contents()
    assert all(label[:3].isalpha() for label in labels)  # a week of hours is labelled at midnights: "Nov 26", …
    page.click("summary:has-text('Show the data as a table')")
    expect(page.locator(".chart-data table tbody tr")).to_have_count(168)
