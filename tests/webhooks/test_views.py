"""Settings → Webhooks: create shows the secret once, the delivery log with its attempts, resend, test, toggle."""

import pytest

from webhooks.models import EventType, MessageStatus, WebhookAttempt, WebhookEndpoint, WebhookMessage
from webhooks.outbox import publish

pytestmark = pytest.mark.django_db


def test_create_shows_the_secret_once(dashboard, environment):
    page = dashboard.get("/settings/webhooks/")
    assert page.status_code == 200 and b"No webhook endpoints" in page.content
    response = dashboard.post(
        "/settings/webhooks/new/",
        {"url": "https://hooks.example.com/in", "description": "Billing", "event_types": ["feature.usage.alert"]},
    )
    endpoint = WebhookEndpoint.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/settings/webhooks/{endpoint.public_id}/"
    assert (endpoint.url, endpoint.event_types, endpoint.environment) == (
        "https://hooks.example.com/in",
        ["feature.usage.alert"],
        environment,
    )
    first = dashboard.get(response["Location"])
    assert endpoint.secret.encode() in first.content
    again = dashboard.get(response["Location"])
    assert again.status_code == 200 and endpoint.secret.encode() not in again.content
    listed = dashboard.get("/settings/webhooks/")
    assert b"https://hooks.example.com/in" in listed.content and endpoint.secret.encode() not in listed.content


def test_bad_input_is_shown_on_the_form(dashboard):
    response = dashboard.post("/settings/webhooks/new/", {"url": "ftp://x", "event_types": []})
    assert response.status_code == 400
    assert b"must start with http:// or https://" in response.content
    assert b"must be a non-empty list of event types" in response.content
    assert WebhookEndpoint.objects.count() == 0


def test_detail_delivery_log_resend_test_and_toggle(dashboard, environment, django_assert_max_num_queries):
    endpoint = WebhookEndpoint.objects.create(
        environment=environment, url="https://hooks.example.com/in", event_types=[EventType.FEATURE_USAGE_ALERT]
    )
    publish(environment, EventType.FEATURE_USAGE_ALERT, [{"n": n} for n in range(12)])
    message = WebhookMessage.objects.order_by("id").first()
    WebhookAttempt.objects.create(message=message, endpoint=endpoint, status_code=503, response_excerpt="busy")
    WebhookMessage.objects.filter(pk=message.pk).update(status=MessageStatus.FAILED, next_attempt_at=None)

    path = f"/settings/webhooks/{endpoint.public_id}/"
    with django_assert_max_num_queries(12):
        page = dashboard.get(path)
    assert page.status_code == 200
    assert page.content.count(b"data-message=") == 12
    assert message.public_id.encode() in page.content

    detail = dashboard.get(f"/settings/webhooks/deliveries/{message.public_id}/")
    assert detail.status_code == 200 and b"503" in detail.content and b"busy" in detail.content
    assert b"&quot;n&quot;: 0" in detail.content or b'"n": 0' in detail.content

    resent = dashboard.post(f"/settings/webhooks/deliveries/{message.public_id}/resend/")
    assert resent.status_code == 302 and resent["Location"] == path
    message.refresh_from_db()
    assert message.status == MessageStatus.PENDING

    assert dashboard.post(f"{path}test/").status_code == 302
    assert WebhookMessage.objects.filter(endpoint=endpoint, event_type="webhook.test").count() == 1

    dashboard.post(f"{path}toggle/")
    endpoint.refresh_from_db()
    assert not endpoint.enabled
    refused = dashboard.post(f"{path}test/", follow=True)
    assert b"enable it before sending a test event" in refused.content

    old = endpoint.secret
    rotated = dashboard.post(f"{path}rotate/", follow=True)
    endpoint.refresh_from_db()
    assert endpoint.secret != old and endpoint.secret.encode() in rotated.content

    assert dashboard.post(f"{path}delete/").status_code == 302
    assert not WebhookEndpoint.objects.exists() and not WebhookMessage.objects.exists()


def test_other_environments_and_unknown_ids_are_404(dashboard, other_environment):
    foreign = WebhookEndpoint.objects.create(
        environment=other_environment, url="https://x.example", event_types=[EventType.EVENTS_UNMATCHED]
    )
    assert dashboard.get(f"/settings/webhooks/{foreign.public_id}/").status_code == 404
    assert dashboard.post(f"/settings/webhooks/{foreign.public_id}/delete/").status_code == 404
    assert dashboard.get("/settings/webhooks/deliveries/msg_nope/").status_code == 404
    assert WebhookEndpoint.objects.count() == 1
