"""The customer portal in a real browser: a link from the API shows exactly that customer's numbers without a
login, altered and expired links are refused, and only configured origins may frame it."""

import datetime as dt
import http.server
import re
import threading

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from metering.portal import portal_session_create
from tests.catalog.factories import FeatureFactory, MeterFactory
from tests.conftest import ApiClient
from tests.factories import ApiKeyFactory, EnvironmentFactory
from tests.metering.factories import CustomerFactory
from tests.metering.usage.helpers import send

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _on_day(now: dt.datetime, days_ago: int, fraction: float) -> dt.datetime:
    """A moment on the UTC day `days_ago` days before `now`'s, `fraction` of the way from its midnight to `now`'s time
    of day: never on a neighbouring day and never in the future (minutes before `now` crossed midnight when the
    suite ran just after it, and the chart showed a fifth day)."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight - dt.timedelta(days=days_ago) + (now - midnight) * fraction


@pytest.fixture
def portal_setup(transactional_db):
    """acme and globex with different usage of two features; returns (api client, acme)."""
    environment = EnvironmentFactory(slug="production", name="Production")
    api = ApiClient(ApiKeyFactory(environment=environment).raw_key)
    now = timezone.now()
    anchor = now - dt.timedelta(days=9)
    acme = CustomerFactory(environment=environment, external_id="acme", name="Acme Inc.", billing_anchor=anchor)
    CustomerFactory(environment=environment, external_id="globex", name="Globex Corp.")
    units = {"unit_singular": "call", "unit_plural": "calls"}
    calls_meter = MeterFactory(environment=environment, event_name="api.calls")
    FeatureFactory(environment=environment, name="API calls", lookup_key="api_calls", meter=calls_meter, **units)
    tokens_meter = MeterFactory(
        environment=environment, event_name="llm", aggregation_type="SUM", aggregation_field="tokens"
    )
    FeatureFactory(environment=environment, name="LLM tokens", lookup_key="llm_tokens", meter=tokens_meter)
    for days_ago, count in ((8, 4), (5, 9), (1, 12), (0, 3)):
        for index in range(count):
            moment = _on_day(now, days_ago, (index + 1) / (count + 1)).isoformat()
            send(environment, event_name="api.calls", customer="acme", timestamp=moment)
    for days_ago, tokens in ((7, "1200.5"), (2, "800"), (0, "99.25")):
        moment = _on_day(now, days_ago, 0.5).isoformat()
        send(environment, event_name="llm", customer="acme", timestamp=moment, properties={"tokens": tokens})
    for _ in range(50):
        send(environment, event_name="api.calls", customer="globex", timestamp=now.isoformat())
    return api, acme


def test_portal_link_shows_that_customers_numbers_and_refuses_altered_or_expired_links(
    browser_page, live_server, portal_setup, screenshot
):
    api, acme = portal_setup
    session = api.get("/v1/customers/portal/acme").json()
    expected = {
        row["feature"]["lookup_key"]: row["current_usage"]
        for row in api.get(f"/v1/customers/{acme.public_id}/usage").json()["features"]
    }
    assert expected == {"api_calls": 28, "llm_tokens": 2099.75}
    page = browser_page
    page.goto(session["url"].replace("http://testserver", live_server.url))

    expect(page.get_by_test_id("portal-customer")).to_have_text("Acme Inc.")
    expect(page.get_by_test_id("portal-usage-api_calls")).to_have_text("28 calls")
    expect(page.get_by_test_id("portal-usage-llm_tokens")).to_have_text("2,099.75")
    expect(page.locator("svg.chart")).to_have_count(2)
    expect(page.locator("[data-testid=portal-chart-api_calls] rect.bar")).to_have_count(4)
    body = page.locator("body").inner_text()
    assert "Globex" not in body and "globex" not in body
    screenshot(page, "portal")

    altered = re.sub(r"/portal/(.+?)(.)/$", lambda m: f"/portal/{m[1]}{'x' if m[2] != 'x' else 'y'}/", page.url)
    response = page.goto(altered)
    assert response.status == 403
    expect(page.get_by_test_id("portal-refused")).to_contain_text("This link is not valid")
    assert "Acme" not in page.locator("body").inner_text()
    screenshot(page, "portal-refused")

    expired = portal_session_create(customer=acme, now=timezone.now() - dt.timedelta(hours=1, seconds=1))
    response = page.goto(f"{live_server.url}/portal/{expired.token}/")
    assert response.status == 403
    expect(page.get_by_test_id("portal-refused")).to_contain_text("This link has expired")
    assert "28" not in page.locator("body").inner_text()


@pytest.fixture
def embedding_app():
    """Another web app on this machine (127.0.0.1, its own port): `serve(html)` sets its page and returns its URL.

    A real local server, not a browser route: Chromium's local network checks would stop a page of no known
    address from framing the local live server before our header was even read.
    """
    page_html = {"body": b""}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(page_html["body"])

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def serve(html: str) -> str:
        page_html["body"] = html.encode()
        return f"http://127.0.0.1:{server.server_port}/billing"

    try:
        yield serve
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_only_configured_origins_may_frame_the_portal(browser_page, live_server, portal_setup, settings, embedding_app):
    api, _acme = portal_setup
    portal_url = api.get("/v1/customers/portal/acme").json()["url"].replace("http://testserver", live_server.url)
    app_url = embedding_app(f'<!doctype html><title>App</title><iframe src="{portal_url}" width="900" height="600">')
    app_origin = app_url.removesuffix("/billing")
    page = browser_page
    refused = []
    page.on("console", lambda message: refused.append(message.text) if "frame-ancestors" in message.text else None)

    page.goto(app_url)
    for _ in range(100):  # a refused frame loads nothing to wait for; Chromium reports it on the console
        if refused:
            break
        page.wait_for_timeout(100)
    assert any("frame-ancestors 'none'" in text for text in refused), refused
    expect(page.frame_locator("iframe").get_by_test_id("portal-customer")).to_have_count(0)

    settings.PORTAL_FRAME_ANCESTORS = [app_origin]
    page.goto(app_url)
    expect(page.frame_locator("iframe").get_by_test_id("portal-usage-api_calls")).to_have_text("28 calls")
