"""Rough edges a first-time user hit, checked in a real browser: the debugger's table fits its card with every
status badge whole, a filtered-out event has its own colour, unknown pages are a proper 404, the sandbox looks
unlike production, and the wizard says a lookup key is taken before Continue."""

import pytest
from playwright.sync_api import expect

from flexmeter.models import Environment
from tests.catalog.factories import MeterFactory
from tests.metering.factories import CustomerFactory
from tests.metering.usage.helpers import send

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# How far an element may stick out of its container before it counts as clipped (sub-pixel rounding).
TOLERANCE_PX = 0.5


@pytest.fixture
def stream_events(signed_in):
    environment = Environment.objects.get(slug="production")
    MeterFactory(environment=environment, name="GPT-4 tokens", event_name="llm.tokens", aggregation_type="SUM",
                 aggregation_field="tokens", filters=[{"key": "model", "values": ["gpt-4"]}])  # fmt: skip
    CustomerFactory(environment=environment, external_id="acme")
    long_customer = "customer-with-a-rather-long-external-identifier-0001"
    send(environment, event_name="llm.tokens", timestamp="2025-01-02T00:00", customer="acme", event_id="ok",
         properties={"model": "gpt-4", "tokens": 12})  # fmt: skip
    properties = {"model": "gpt-4", "tokens": 7, "region": "eu-west-1", "path": "/v1/chat"}
    send(environment, event_name="llm.tokens", timestamp="2025-01-02T00:01", customer=long_customer,
         event_id="nf", properties=properties)  # fmt: skip
    send(environment, event_name="llm.tokens", timestamp="2025-01-02T00:02", customer="acme", event_id="filtered",
         properties={"model": "gpt-3.5", "tokens": 3})  # fmt: skip
    send(environment, event_name="llm.tokens", timestamp="2025-01-02T00:03", customer="acme", event_id="broken",
         properties={"model": "gpt-4"})  # fmt: skip
    return signed_in


def overflow(page, selector: str) -> dict:
    """How far the element sticks out of its scroll container (right edge), and whether the container scrolls."""
    return page.eval_on_selector(
        selector,
        """element => {
            const wrap = element.closest('.table-wrap');
            const scroller = element.closest('.table-scroll') || wrap;
            const table = element.closest('table');
            const badge = element.getBoundingClientRect();
            const box = wrap.getBoundingClientRect();
            return {
                badgeOut: badge.right - box.right + 1,
                tableOut: table.getBoundingClientRect().width - scroller.clientWidth,
                scrolls: scroller.scrollWidth - scroller.clientWidth,
            };
        }""",
    )


@pytest.mark.parametrize("width", [1280, 1024])
def test_stream_table_fits_its_card_and_badges_are_whole(stream_events, screenshot, width):
    page = stream_events
    page.set_viewport_size({"width": width, "height": 800})
    page.goto("/events/")
    badge = "tr[data-event-id='nf'] .badge"
    expect(page.locator(badge)).to_have_text("Customer not found")
    measured = overflow(page, badge)
    assert measured["tableOut"] <= TOLERANCE_PX, measured
    assert measured["scrolls"] <= TOLERANCE_PX, measured
    assert measured["badgeOut"] <= 1 + TOLERANCE_PX, measured
    screenshot(page, f"debugger-stream-{width}")


def test_filtered_out_has_its_own_colour(stream_events, screenshot):
    page = stream_events
    page.goto("/events/")
    filtered = page.locator("tr[data-event-id='filtered'] .badge")
    broken = page.locator("tr[data-event-id='broken'] .badge")
    expect(filtered).to_have_text("Filtered out")
    expect(broken).to_have_text("Unmatched")
    colour = "element => getComputedStyle(element).backgroundColor + ' ' + getComputedStyle(element).color"
    assert filtered.evaluate(colour) != broken.evaluate(colour)
    screenshot(page, "debugger-stream-statuses")
    page.goto("/events/detail/?id=filtered")
    expect(page.locator(".page-header .badge")).to_have_text("Filtered out")
    expect(page.locator(".report-summary")).to_contain_text("Filtered out on purpose.")
    screenshot(page, "debugger-detail-filtered")


def test_wizard_says_the_lookup_key_is_taken_before_continue(signed_in, screenshot):
    from tests.catalog.factories import FeatureFactory

    FeatureFactory(environment=Environment.objects.get(slug="production"), name="LLM Tokens", lookup_key="llm_tokens")
    page = signed_in
    page.goto("/catalog/features/new/")
    page.locator("#id_name").press_sequentially("LLM tokens", delay=20)
    expect(page.get_by_test_id("lookup-key-taken")).to_contain_text("llm_tokens is already used by LLM Tokens")
    expect(page.get_by_test_id("similar-names")).to_contain_text("LLM Tokens")
    screenshot(page, "wizard-basics-key-taken")
    page.locator("#id_lookup_key").press_sequentially("llm_tokens_2", delay=20)
    expect(page.get_by_test_id("lookup-key-free")).to_contain_text("llm_tokens_2 is free.")
    assert page.url.endswith("/catalog/features/new/")  # all of it before Continue
