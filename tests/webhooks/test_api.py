"""/v1/webhooks: endpoints (secret shown on create and rotation only), deliveries with their attempts, resend, test."""

import pytest
from django.utils import timezone

from webhooks.models import EventType, MessageStatus, WebhookAttempt, WebhookEndpoint, WebhookMessage
from webhooks.outbox import publish

pytestmark = pytest.mark.django_db

BASE = "/v1/webhooks"
NEW = {"url": "https://hooks.example.com/in", "event_types": ["feature.usage.alert"], "description": "billing"}


def create(api, body=NEW):
    response = api.post(f"{BASE}/endpoints", body)
    assert response.status_code == 201, response.content
    return response.json()


def test_create_shows_the_secret_once(api):
    created = create(api)
    assert created["id"].startswith("ep_")
    assert created["secret"].startswith("whsec_")
    assert {k: created[k] for k in ("url", "event_types", "description", "enabled", "disabled_at")} == {
        "url": "https://hooks.example.com/in",
        "event_types": ["feature.usage.alert"],
        "description": "billing",
        "enabled": True,
        "disabled_at": None,
    }
    assert created["created_at"].endswith("Z")
    assert WebhookEndpoint.objects.get().secret == created["secret"]

    fetched = api.get(f"{BASE}/endpoints/{created['id']}").json()
    assert "secret" not in fetched and fetched["id"] == created["id"]
    listed = api.get(f"{BASE}/endpoints").json()
    assert listed["pagination"] == {"total": 1, "limit": 50, "offset": 0}
    assert [item["id"] for item in listed["items"]] == [created["id"]]
    assert all("secret" not in item for item in listed["items"])
    assert created["secret"] not in api.get(f"{BASE}/endpoints").content.decode()


def test_bad_input_is_a_400_naming_the_fields(api):
    response = api.post(f"{BASE}/endpoints", {"url": "ftp://x", "event_types": ["nope"]})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "validation_error"
    assert set(body["details"]) == {"url", "event_types"}
    assert api.post(f"{BASE}/endpoints", [1]).status_code == 400
    assert api.post(f"{BASE}/endpoints", "{").status_code == 400
    assert api.get(f"{BASE}/endpoints", {"limit": 101}).status_code == 400
    assert api.get(f"{BASE}/messages", {"status": "lost"}).status_code == 400


def test_update_delete_and_other_environments(api, other_api):
    created = create(api)
    path = f"{BASE}/endpoints/{created['id']}"
    updated = api.put(path, {"enabled": False, "event_types": ["events.unmatched", "feature.usage.alert"]}).json()
    assert (updated["enabled"], updated["event_types"], updated["disabled_reason"]) == (
        False,
        ["feature.usage.alert", "events.unmatched"],
        "disabled by a user",
    )
    assert "secret" not in updated
    assert api.put(path, {"url": "nope"}).status_code == 400

    assert other_api.get(path).status_code == 404
    assert other_api.put(path, {"enabled": True}).status_code == 404
    assert other_api.delete(path).status_code == 404
    assert other_api.get(f"{BASE}/endpoints").json()["items"] == []

    assert api.delete(path).status_code == 204
    assert api.get(path).status_code == 404
    assert api.get(f"{BASE}/endpoints/ep_unknown").json()["code"] == "not_found"


def test_rotate_secret_shows_the_new_one(api):
    created = create(api)
    rotated = api.post(f"{BASE}/endpoints/{created['id']}/rotate-secret").json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    assert WebhookEndpoint.objects.get().secret == rotated["secret"]


def test_deliveries_with_attempts_resend_and_test(api, environment, other_api):
    created = create(api)
    endpoint = WebhookEndpoint.objects.get()
    publish(environment, EventType.FEATURE_USAGE_ALERT, [{"n": 1}])
    message = WebhookMessage.objects.get()
    WebhookAttempt.objects.create(
        message=message, endpoint=endpoint, status_code=500, response_excerpt="oops", duration_ms=31, error=""
    )
    WebhookMessage.objects.update(status=MessageStatus.FAILED, attempts=8, next_attempt_at=None)

    listed = api.get(f"{BASE}/messages", {"endpoint_id": created["id"]}).json()
    assert listed["pagination"]["total"] == 1
    (item,) = listed["items"]
    assert (item["id"], item["status"], item["attempts"], item["event_type"]) == (
        message.public_id,
        "failed",
        8,
        "feature.usage.alert",
    )
    assert item["payload"]["data"] == {"n": 1} and item["payload"]["type"] == "feature.usage.alert"
    assert api.get(f"{BASE}/messages", {"status": "delivered"}).json()["items"] == []
    assert api.get(f"{BASE}/messages", {"endpoint_id": "ep_nope"}).status_code == 404

    detail = api.get(f"{BASE}/messages/{message.public_id}").json()
    (attempt,) = detail["attempt_log"]
    assert {k: attempt[k] for k in ("status_code", "succeeded", "duration_ms", "response_excerpt", "error")} == {
        "status_code": 500,
        "succeeded": False,
        "duration_ms": 31,
        "response_excerpt": "oops",
        "error": "",
    }
    assert api.get(f"{BASE}/messages/{message.public_id}/attempts").json()["pagination"]["total"] == 1
    assert other_api.get(f"{BASE}/messages/{message.public_id}").status_code == 404
    assert other_api.post(f"{BASE}/messages/{message.public_id}/resend").status_code == 404

    before = timezone.now()
    resent = api.post(f"{BASE}/messages/{message.public_id}/resend")
    assert resent.status_code == 202
    assert (resent.json()["status"], resent.json()["attempts"]) == ("pending", 0)
    message.refresh_from_db()
    assert message.next_attempt_at >= before

    tested = api.post(f"{BASE}/endpoints/{created['id']}/test")
    assert tested.status_code == 202
    assert tested.json()["event_type"] == "webhook.test"
    assert WebhookMessage.objects.filter(event_type="webhook.test", status="pending").count() == 1

    api.put(f"{BASE}/endpoints/{created['id']}", {"enabled": False})
    refused = api.post(f"{BASE}/endpoints/{created['id']}/test")
    assert refused.status_code == 400 and refused.json()["code"] == "invalid_operation"


def test_lists_cost_a_constant_number_of_queries(api, environment, django_assert_max_num_queries):
    create(api)
    publish(environment, EventType.FEATURE_USAGE_ALERT, [{"n": n} for n in range(30)])
    with django_assert_max_num_queries(8):
        assert len(api.get(f"{BASE}/messages").json()["items"]) == 30


def test_needs_an_api_key(anonymous_api):
    assert anonymous_api.get(f"{BASE}/endpoints").status_code == 401
