"""Delivery of the outbox: signing, the retry schedule, the attempt log, auto-disable, claims, resend and test events.
A fake POST stands in for the network here; tests/webhooks/test_reliability.py uses a real receiver."""

import datetime as dt
import json

import pytest
from django.utils import timezone
from standardwebhooks import Webhook

from flexmeter.errors import InvalidOperation
from webhooks import delivery, services
from webhooks.models import EventType, MessageStatus, WebhookAttempt, WebhookEndpoint, WebhookMessage
from webhooks.outbox import publish
from webhooks.transport import Answer

pytestmark = pytest.mark.django_db

ALERT = EventType.FEATURE_USAGE_ALERT
SPEC_SCHEDULE = [0, 5, 300, 1800, 7200, 18000, 36000, 36000]


class FakePost:
    """Answers with the given status codes in turn (None: a timeout), then 200; records every call."""

    def __init__(self, *codes):
        self.codes = list(codes)
        self.calls = []

    def __call__(self, url, *, body, headers, timeout):
        self.calls.append({"url": url, "body": body, "headers": headers, "timeout": timeout})
        code = self.codes.pop(0) if self.codes else 200
        if code is None:
            return Answer(
                status_code=None,
                excerpt="",
                error=f"timed out: no complete answer within {timeout:g} s",
                duration_ms=int(timeout * 1000),
            )
        return Answer(status_code=code, excerpt=f"answer {code}", error="", duration_ms=12)


@pytest.fixture
def endpoint(environment):
    return WebhookEndpoint.objects.create(
        environment=environment, url="https://receiver.example/in", event_types=[ALERT]
    )


def run(post, **kwargs):
    return delivery.deliveries_run(budget_seconds=30, concurrency=4, timeout=15, lease_seconds=60, post=post, **kwargs)


def make_due(message=None):
    queryset = WebhookMessage.objects.filter(pk=message.pk) if message else WebhookMessage.objects.all()
    queryset.filter(status=MessageStatus.PENDING).update(next_attempt_at=timezone.now())


def test_the_default_schedule_is_the_spec_one(settings):
    assert list(delivery.RETRY_SCHEDULE) == SPEC_SCHEDULE
    assert list(settings.WEBHOOKS_RETRY_SCHEDULE) == SPEC_SCHEDULE
    assert settings.WEBHOOKS_TIMEOUT == 15
    assert dt.timedelta(days=5) == delivery.DISABLE_AFTER
    assert settings.WEBHOOKS_DISABLE_AFTER == 5 * 24 * 3600


def test_a_delivery_is_signed_per_standard_webhooks_and_logged(environment, endpoint):
    publish(environment, ALERT, [{"feature_id": "feat_1", "usage": "12.5"}])
    post = FakePost(200)
    assert run(post).as_dict() == {"attempted": 1, "delivered": 1, "failed": 0}

    message = WebhookMessage.objects.get()
    (call,) = post.calls
    assert call["url"] == "https://receiver.example/in"
    assert call["timeout"] == 15
    headers = call["headers"]
    assert headers["webhook-id"] == message.public_id
    assert headers["Content-Type"] == "application/json"
    assert Webhook(endpoint.secret).verify(call["body"], headers) == {
        "type": "feature.usage.alert",
        "timestamp": message.envelope()["timestamp"],
        "data": {"feature_id": "feat_1", "usage": "12.5"},
    }
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(WebhookEndpoint(environment=environment).secret or services.new_secret()).verify(call["body"], headers)

    assert (message.status, message.attempts, message.next_attempt_at) == (MessageStatus.DELIVERED, 1, None)
    assert message.delivered_at is not None
    (attempt,) = WebhookAttempt.objects.all()
    assert (attempt.status_code, attempt.response_excerpt, attempt.duration_ms, attempt.error, attempt.succeeded) == (
        200,
        "answer 200",
        12,
        "",
        True,
    )
    assert run(FakePost()).attempted == 0  # nothing left


def test_retries_follow_the_schedule_then_the_message_fails(environment, endpoint):
    publish(environment, ALERT, [{"n": 1}])
    message = WebhookMessage.objects.get()
    delays = []
    for attempt in range(1, 9):
        before = timezone.now()
        assert run(FakePost(500 if attempt % 2 else None)).failed == 1
        message.refresh_from_db()
        assert message.attempts == attempt
        if attempt < 8:
            assert message.status == MessageStatus.PENDING
            delays.append(round((message.next_attempt_at - before).total_seconds()))
            assert run(FakePost()).attempted == 0  # not due yet
            make_due(message)
    assert delays == SPEC_SCHEDULE[1:]
    assert (message.status, message.next_attempt_at) == (MessageStatus.FAILED, None)
    attempts = list(WebhookAttempt.objects.order_by("id").values_list("status_code", "succeeded"))
    assert attempts == [(500, False), (None, False)] * 4
    assert WebhookAttempt.objects.filter(error__startswith="timed out: no complete answer within 15 s").count() == 4
    assert run(FakePost()).attempted == 0


@pytest.mark.parametrize("code", [199, 300, 302, 400, 404, 410, 500, 503])
def test_only_2xx_is_success(environment, endpoint, code):
    publish(environment, ALERT, [{"n": 1}])
    assert run(FakePost(code)).as_dict() == {"attempted": 1, "delivered": 0, "failed": 1}
    assert WebhookMessage.objects.get().status == MessageStatus.PENDING


@pytest.mark.parametrize("code", [200, 201, 202, 204, 299])
def test_any_2xx_is_success(environment, endpoint, code):
    publish(environment, ALERT, [{"n": 1}])
    assert run(FakePost(code)).delivered == 1


def test_an_endpoint_failing_for_five_days_is_disabled_and_a_success_resets_the_clock(environment, endpoint):
    publish(environment, ALERT, [{"n": 1}, {"n": 2}])
    first, second = WebhookMessage.objects.order_by("id")
    run(FakePost(500, 500))
    endpoint.refresh_from_db()
    started = endpoint.failing_since
    assert started is not None and endpoint.enabled

    # Four days and 23 hours of failures: still enabled.
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=timezone.now() - dt.timedelta(days=4, hours=23))
    make_due(first)
    run(FakePost(500))
    endpoint.refresh_from_db()
    assert endpoint.enabled

    # A success clears the run of failures.
    make_due(second)
    run(FakePost(200))
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None

    # Failing again since more than five days: the next failure disables it.
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        failing_since=timezone.now() - dt.timedelta(days=5, seconds=1)
    )
    make_due(first)
    run(FakePost(503))
    endpoint.refresh_from_db()
    assert not endpoint.enabled
    assert endpoint.disabled_at is not None
    assert endpoint.disabled_reason == "every delivery failed for 5 days"

    # Its pending messages wait: nothing is sent to a disabled endpoint.
    make_due(first)
    assert run(FakePost()).attempted == 0
    # Enabling it again resumes them and starts a new run.
    services.endpoint_update(endpoint=endpoint, data={"enabled": True})
    endpoint.refresh_from_db()
    assert (endpoint.enabled, endpoint.failing_since, endpoint.disabled_reason) == (True, None, "")
    assert run(FakePost()).delivered == 1


def test_a_claim_leases_messages_so_no_other_run_takes_them(environment, endpoint):
    publish(environment, ALERT, [{"n": n} for n in range(5)])
    token, claimed = delivery.messages_claim(limit=3, lease_seconds=60)
    assert len(claimed) == 3
    for message in claimed:
        assert message.claim_token == token
        assert message.next_attempt_at > timezone.now() + dt.timedelta(seconds=55)
    other_token, others = delivery.messages_claim(limit=10, lease_seconds=60)
    assert len(others) == 2 and not {m.pk for m in others} & {m.pk for m in claimed}
    assert delivery.messages_claim(limit=10, lease_seconds=60)[1] == []
    # A lease that ran out (its worker died) makes the messages due again, same ids.
    WebhookMessage.objects.filter(claim_token=token).update(next_attempt_at=timezone.now() - dt.timedelta(seconds=1))
    _, again = delivery.messages_claim(limit=10, lease_seconds=60)
    assert sorted(m.public_id for m in again) == sorted(m.public_id for m in claimed)


def test_a_late_failure_does_not_reschedule_a_message_claimed_again(environment, endpoint):
    publish(environment, ALERT, [{"n": 1}])
    token, (message,) = delivery.messages_claim(limit=1, lease_seconds=60)
    WebhookMessage.objects.update(next_attempt_at=timezone.now())
    new_token, (same,) = delivery.messages_claim(limit=1, lease_seconds=60)
    delivery.attempt_record(
        message=message, token=token, answer=FakePost(500)("u", body=b"", headers={}, timeout=1), at=timezone.now()
    )
    same.refresh_from_db()
    assert (same.claim_token, same.attempts) == (new_token, 0)
    assert WebhookAttempt.objects.count() == 1


def test_resend_sends_the_same_id_and_body_again(environment, endpoint):
    publish(environment, ALERT, [{"n": 1}])
    first = FakePost(200)
    run(first)
    message = WebhookMessage.objects.get()
    services.message_resend(message=message)
    message.refresh_from_db()
    assert (message.status, message.attempts) == (MessageStatus.PENDING, 0)
    again = FakePost(200)
    assert run(again).delivered == 1
    assert again.calls[0]["body"] == first.calls[0]["body"]
    assert again.calls[0]["headers"]["webhook-id"] == first.calls[0]["headers"]["webhook-id"] == message.public_id
    assert WebhookAttempt.objects.filter(message=message).count() == 2


def test_send_test_event(environment, endpoint):
    endpoint.event_types = [EventType.EVENTS_UNMATCHED]  # a test goes out whatever the endpoint subscribes to
    endpoint.save()
    message = services.endpoint_send_test(endpoint=endpoint)
    post = FakePost(204)
    assert run(post).delivered == 1
    body = json.loads(post.calls[0]["body"])
    assert body["type"] == "webhook.test"
    assert body["data"]["endpoint_id"] == endpoint.public_id
    assert post.calls[0]["headers"]["webhook-id"] == message.public_id
    services.endpoint_update(endpoint=endpoint, data={"enabled": False})
    with pytest.raises(InvalidOperation, match="enable it"):
        services.endpoint_send_test(endpoint=endpoint)
    with pytest.raises(InvalidOperation, match="enable it"):
        services.message_resend(message=message)


def test_rotating_the_secret_signs_the_next_attempt_with_the_new_one(environment, endpoint):
    old = endpoint.secret
    services.endpoint_rotate_secret(endpoint=endpoint)
    assert endpoint.secret != old and endpoint.secret.startswith("whsec_")
    publish(environment, ALERT, [{"n": 1}])
    post = FakePost(200)
    run(post)
    Webhook(endpoint.secret).verify(post.calls[0]["body"], post.calls[0]["headers"])


def test_the_worker_delivers_every_two_seconds_by_default():
    from worker.schedule import PERIODIC_JOBS
    from worker.tasks import deliver_webhooks

    jobs = {job.name: job for job in PERIODIC_JOBS}
    assert (jobs["deliver_webhooks"].task, jobs["deliver_webhooks"].every_seconds()) == (deliver_webhooks, 2.0)


def test_the_delivery_job_reports_what_it_did(environment, endpoint, monkeypatch):
    from worker.tasks import deliver_webhooks

    monkeypatch.setattr(delivery.transport, "post", FakePost(500, 200))
    publish(environment, ALERT, [{"n": 1}, {"n": 2}])
    assert deliver_webhooks.call() == {"attempted": 2, "delivered": 1, "failed": 1}


def test_endpoints_take_turns_so_one_backlog_does_not_hold_back_the_others(environment, endpoint):
    slow = WebhookEndpoint.objects.create(environment=environment, url="https://slow.example/in", event_types=[ALERT])
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(enabled=False)
    publish(environment, ALERT, [{"n": n} for n in range(10)])  # the slow endpoint's backlog: older
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(enabled=True)
    WebhookMessage.objects.update(next_attempt_at=timezone.now() - dt.timedelta(minutes=5))
    publish(environment, ALERT, [{"n": n} for n in range(2)])  # both endpoints: two newer messages each
    _, claimed = delivery.messages_claim(limit=4, lease_seconds=60)
    by_endpoint = sorted((m.endpoint_id, m.payload["n"]) for m in claimed)
    assert by_endpoint == [(endpoint.pk, 0), (endpoint.pk, 1), (slow.pk, 0), (slow.pk, 1)]
