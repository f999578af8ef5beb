"""The outbox: one message per (payload × enabled endpoint subscribed to the type), in the caller's transaction, with a
constant number of statements."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from webhooks.models import EventType, MessageStatus, WebhookEndpoint, WebhookMessage
from webhooks.outbox import publish

pytestmark = pytest.mark.django_db(transaction=False)

ALERT = EventType.FEATURE_USAGE_ALERT
LIMIT = EventType.ENTITLEMENT_USAGE_LIMIT_REACHED


def endpoint(environment, *types, enabled=True, url="https://example.com/hook"):
    return WebhookEndpoint.objects.create(environment=environment, url=url, event_types=list(types), enabled=enabled)


def test_one_message_per_payload_and_subscribed_enabled_endpoint(environment, other_environment):
    both = endpoint(environment, ALERT, LIMIT)
    alerts_only = endpoint(environment, ALERT)
    endpoint(environment, LIMIT)  # not subscribed to alerts
    endpoint(environment, ALERT, enabled=False)
    endpoint(other_environment, ALERT)  # another environment

    count = publish(environment, ALERT, [{"n": 1}, {"n": 2}, {"n": 3}])

    assert count == 6
    messages = WebhookMessage.objects.all()
    assert messages.count() == 6
    assert sorted((m.endpoint_id, m.payload["n"]) for m in messages) == sorted(
        (e.pk, n) for e in (both, alerts_only) for n in (1, 2, 3)
    )
    for message in messages:
        assert message.environment_id == environment.pk
        assert message.event_type == ALERT
        assert message.status == MessageStatus.PENDING
        assert message.attempts == 0
        assert message.next_attempt_at is not None and message.next_attempt_at <= message.created_at
        assert message.public_id.startswith("msg_") and len(message.public_id) == 30
    assert len({m.public_id for m in messages}) == 6


def test_nothing_to_publish(environment):
    endpoint(environment, LIMIT)
    assert publish(environment, ALERT, [{"n": 1}]) == 0
    assert publish(environment, LIMIT, []) == 0
    assert WebhookMessage.objects.count() == 0


def test_unknown_event_type_is_refused(environment):
    endpoint(environment, ALERT)
    with pytest.raises(ValueError, match="unknown webhook event type"):
        publish(environment, "feature.usage.alerts", [{"n": 1}])


def test_payload_values_keep_exact_decimals_and_nesting(environment):
    endpoint(environment, ALERT)
    payload = {
        "usage": Decimal("12345678901234567890.000000000000000001"),
        "feature": {"id": "feat_1", "thresholds": [1, "2.5"]},
        "text": "naïve ✓ \"quoted\" 'single'",
        "none": None,
        "flag": True,
    }
    publish(environment, ALERT, [payload])
    stored = WebhookMessage.objects.get().payload
    assert stored == {
        "usage": "12345678901234567890.000000000000000001",
        "feature": {"id": "feat_1", "thresholds": [1, "2.5"]},
        "text": "naïve ✓ \"quoted\" 'single'",
        "none": None,
        "flag": True,
    }


def test_constant_statements_whatever_the_payload_count(environment, django_assert_num_queries):
    endpoint(environment, ALERT)
    endpoint(environment, ALERT)
    with django_assert_num_queries(2):
        assert publish(environment, ALERT, [{"n": 1}]) == 2
    with django_assert_num_queries(2):
        assert publish(environment, ALERT, [{"n": n, "customer": f"cust_{n}"} for n in range(5000)]) == 10000
    assert WebhookMessage.objects.count() == 10002
    assert WebhookMessage.objects.filter(payload__n=4999).count() == 2


def test_rolls_back_with_the_callers_transaction(environment):
    endpoint(environment, ALERT)
    with pytest.raises(IntegrityError), transaction.atomic():
        publish(environment, ALERT, [{"n": 1}])
        assert WebhookMessage.objects.count() == 1
        raise IntegrityError("the caller's change failed")
    assert WebhookMessage.objects.count() == 0


def test_endpoint_gets_a_secret_and_an_id(environment):
    created = endpoint(environment, ALERT)
    assert created.public_id.startswith("ep_")
    assert created.secret.startswith("whsec_") and len(created.secret) == 6 + 44
    assert endpoint(environment, ALERT).secret != created.secret


def test_envelope_is_the_standard_webhooks_shape(environment):
    endpoint(environment, ALERT)
    publish(environment, ALERT, [{"n": 1}])
    message = WebhookMessage.objects.get()
    envelope = message.envelope()
    assert envelope["type"] == "feature.usage.alert"
    assert envelope["data"] == {"n": 1}
    assert envelope["timestamp"].endswith("Z") and envelope["timestamp"][:19] == message.created_at.strftime(
        "%Y-%m-%dT%H:%M:%S"
    )
