"""The production Content-Security-Policy in a real browser: the dashboard (htmx included) and /v1/docs work under
it, and Chromium reports no violation."""

import re

import pytest
from playwright.sync_api import expect

from flexmeter.settings import DEFAULT_CSP

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

VIOLATION_LISTENER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(event.violatedDirective + " " + (event.blockedURI || "inline"));
});
"""


@pytest.fixture
def csp_page(signed_in, settings):
    settings.SECURE_CSP = DEFAULT_CSP
    page = signed_in
    page.add_init_script(VIOLATION_LISTENER)
    console = []
    page.on("console", lambda message: console.append(message.text))
    page.console_messages = console
    return page


def violations(page) -> list[str]:
    reported = page.evaluate("window.__cspViolations || []")
    logged = [text for text in page.console_messages if "Content Security Policy" in text]
    return reported + logged


def test_dashboard_pages_and_htmx_work_under_the_csp(csp_page, screenshot):
    page = csp_page
    response = page.goto("/catalog/features/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.locator("h1")).to_be_visible()
    # The wizard's steps are htmx swaps; its first step saves a draft.
    page.goto("/catalog/features/new/")
    page.fill("input[name=name]", "API calls")
    expect(page.locator("#wizard-step")).to_be_visible()
    for path in ("/events/", "/events/test/", "/events/unmatched/", "/usage/", "/customers/", "/catalog/meters/"):
        page.goto(path)
        expect(page.locator("h1")).to_be_visible()
    # Ctrl+Enter in the event tester submits it through htmx (a key handler in our script, not an htmx filter).
    page.goto("/events/test/")
    page.fill("#event-json", '{"event_name": "api.calls", "external_customer_id": "acme"}')
    expect(page.locator("#test-result")).not_to_contain_text("No published meter counts events with this name")
    page.press("#event-json", "Control+Enter")
    expect(page.locator("#test-result")).to_contain_text("No published meter counts events with this name")
    # htmx itself loaded from our origin and ran.
    assert page.evaluate("typeof window.htmx") == "object"
    # The new-key field selects itself on click (a script file, no inline handler).
    page.goto("/settings/api-keys/")
    page.fill("input[name=name]", "backend")
    page.click("button:has-text('Create key')")
    secret = page.locator("#new-api-key")
    expect(secret).to_have_value(re.compile(r"^fm_"))
    secret.click()
    assert page.evaluate("document.getSelection().toString() || document.activeElement.value.length") not in (0, "")
    screenshot(page, "csp-api-keys")
    assert violations(page) == []


def test_the_api_docs_render_under_the_csp(csp_page, screenshot):
    page = csp_page
    page.goto("/v1/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("flexmeter API")
    expect(page.locator(".opblock").first).to_be_visible()
    screenshot(page, "csp-docs")
    assert violations(page) == []
