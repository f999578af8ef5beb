"""The issue's "done when" for alerts, in the running app: set a threshold on a feature over the API, send events past
it over HTTP, run the evaluation, see the alert on the feature's usage page in Chromium, and receive a signed
delivery at a local 127.0.0.1 receiver (verified with standardwebhooks)."""

import json

import pytest
from playwright.sync_api import expect
from standardwebhooks.webhooks import Webhook

from alerts.services import alerts_evaluate
from tests.entitlements.helpers import customer, metered_feature
from tests.factories import ApiKeyFactory, EnvironmentFactory
from tests.webhooks.receiver import Receiver
from webhooks.delivery import deliveries_run
from webhooks.services import endpoint_create

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_threshold_crossed_over_http_shows_on_the_usage_page_and_arrives_signed(signed_in, live_server, screenshot):
    page = signed_in
    environment = EnvironmentFactory(slug="production")
    feature = metered_feature(environment)
    customer(environment, external_id="acme")
    key = ApiKeyFactory(environment=environment)
    headers = {"x-api-key": key.raw_key}

    settings = {
        "alert_enabled": True,
        "warning": {"threshold": "2", "condition": "above"},
        "critical": {"threshold": "4", "condition": "above"},
    }
    response = page.request.put(
        f"{live_server.url}/v1/features/{feature.public_id}", data={"alert_settings": settings}, headers=headers
    )
    assert response.status == 200, response.text()

    with Receiver() as receiver:
        endpoint = endpoint_create(
            environment=environment, data={"url": receiver.url, "event_types": ["feature.usage.alert"]}
        )
        for _ in range(5):
            response = page.request.post(
                f"{live_server.url}/v1/events",
                data={"event_name": "api.calls", "external_customer_id": "acme"},
                headers=headers,
            )
            assert response.status == 202

        report = alerts_evaluate()
        assert report.changes == 1
        deliveries_run(budget_seconds=20, concurrency=1, timeout=10, lease_seconds=30)
        assert receiver.wait_for(1, timeout=30)
        [request] = receiver.unique().values()
        message = Webhook(endpoint.secret).verify(request.body, request.headers)

    assert message["type"] == "feature.usage.alert"
    data = message["data"]
    assert (data["external_customer_id"], data["feature_id"]) == ("acme", feature.public_id)
    assert (data["from_level"], data["to_level"], data["usage"], data["threshold"]) == ("ok", "critical", "5", "4")
    assert json.loads(request.body)["data"] == data

    page.goto(f"/usage/features/{feature.public_id}/")
    panel = page.locator("#feature-alerts")
    expect(panel.get_by_test_id("alert-count-critical")).to_contain_text("1 customer")
    expect(panel.get_by_test_id("alarming-acme")).to_contain_text("Critical")
    expect(panel.get_by_test_id("alert-timeline")).to_contain_text("above 4")
    screenshot(page, "feature-usage-alert")
