"""Delivery against a real receiver on 127.0.0.1: failures, a timeout, then success; and a worker killed with SIGKILL
mid-delivery. Every event arrives exactly once after de-duplicating on webhook-id, every signature verifies, and
attempts are logged. Bounded in time; no assertion depends on how fast this machine is."""

import json
import signal
import time

import pytest
from standardwebhooks import Webhook

from tests.webhooks.receiver import Receiver
from tests.worker.test_run_worker import ChildDatabase, _manage, _manage_output, _stop, _wait_for, child_db  # noqa: F401
from webhooks.delivery import deliveries_run
from webhooks.models import EventType, MessageStatus, WebhookAttempt, WebhookEndpoint, WebhookMessage
from webhooks.outbox import publish

ALERT = EventType.FEATURE_USAGE_ALERT


@pytest.mark.django_db
def test_fails_times_out_then_succeeds_and_every_event_arrives_once(environment, settings):
    settings.WEBHOOKS_RETRY_SCHEDULE = (0, 0, 0, 0, 0, 0, 0, 0)
    events = 6
    with Receiver(fail_first=2, time_out=1, stall=10) as receiver:
        endpoint = WebhookEndpoint.objects.create(environment=environment, url=receiver.url, event_types=[ALERT])
        publish(environment, ALERT, [{"n": n} for n in range(events)])
        deadline = time.monotonic() + 120
        while WebhookMessage.objects.exclude(status=MessageStatus.DELIVERED).exists():
            assert time.monotonic() < deadline, "not delivered within 120 s"
            deliveries_run(budget_seconds=30, concurrency=6, timeout=5, lease_seconds=20)
        received = list(receiver.received)

    unique = {}
    for request in received:
        assert Webhook(endpoint.secret).verify(request.body, request.headers)["type"] == ALERT
        unique.setdefault(request.webhook_id, json.loads(request.body)["data"]["n"])
    messages = {m.public_id: m for m in WebhookMessage.objects.all()}
    assert sorted(unique) == sorted(messages)
    assert sorted(unique.values()) == list(range(events))
    # Each message: two 500s, one timeout, one success — four attempts, all logged in order.
    assert len(received) == 4 * events
    for message in messages.values():
        assert (message.status, message.attempts) == (MessageStatus.DELIVERED, 4)
        log = list(WebhookAttempt.objects.filter(message=message).order_by("attempted_at", "id"))
        assert [(a.status_code, a.succeeded) for a in log] == [(500, False), (500, False), (None, False), (204, True)]
        assert log[0].response_excerpt == '{"error": "not today"}'
        assert log[2].error == "timed out: no complete answer within 5 s"
        assert all(a.duration_ms >= 0 for a in log) and log[2].duration_ms >= 4900


@pytest.mark.django_db
def test_a_refused_connection_is_a_logged_failed_attempt(environment):
    with Receiver() as receiver:
        url = receiver.url
    WebhookEndpoint.objects.create(environment=environment, url=url, event_types=[ALERT])
    publish(environment, ALERT, [{"n": 1}])
    report = deliveries_run(budget_seconds=10, concurrency=1, timeout=2, lease_seconds=10)
    assert report.as_dict() == {"attempted": 1, "delivered": 0, "failed": 1}
    attempt = WebhookAttempt.objects.get()
    assert attempt.status_code is None and "ConnectionRefusedError" in attempt.error


SETUP = """
from flexmeter.models import Environment
from webhooks.models import WebhookEndpoint
from webhooks.outbox import publish
environment = Environment.objects.create(name="Production", slug="production-hooks")
endpoint = WebhookEndpoint.objects.create(environment=environment, url={url!r}, event_types=["feature.usage.alert"])
publish(environment, "feature.usage.alert", [{{"n": n}} for n in range({count})])
print(endpoint.secret)
"""


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_delivery_loses_nothing(child_db):  # noqa: F811 - the fixture imported above
    count = 5
    env = {
        "DATABASE_URL": child_db.url,
        "WORKER_ABANDONED_AFTER": "2",
        "WEBHOOKS_DELIVER_EVERY": "0.2",
        "WEBHOOKS_TIMEOUT": "10",
        "WEBHOOKS_CLAIM_LEASE": "11",
    }
    first = second = None
    with Receiver(hold=True) as receiver:
        secret = _manage_output("shell", "-v0", "-c", SETUP.format(url=receiver.url, count=count), env=env).strip()
        try:
            first = _manage("run_worker", "--interval", "0.1", "--worker-id", "first", env=env)
            assert receiver.wait_for(count, timeout=90), "the first worker never posted"
            first.send_signal(signal.SIGKILL)  # every message is in flight (held for less than the 10 s timeout)
            first.wait(timeout=10)
            assert child_db.rows("SELECT count(*) FROM webhooks_webhookattempt") == [(0,)]
            assert child_db.rows("SELECT status, count(*) FROM webhooks_webhookmessage GROUP BY status") == [
                ("pending", count)
            ]
            receiver.release()

            second = _manage("run_worker", "--interval", "0.1", "--worker-id", "second", env=env)
            _wait_for(
                lambda: (
                    child_db.rows("SELECT count(*) FROM webhooks_webhookmessage WHERE status = 'delivered'")
                    == [(count,)]
                ),
                timeout=90,
                what="the second worker to deliver every message",
            )
        finally:
            _stop(*[worker for worker in (first, second) if worker is not None])
        received = list(receiver.received)

    ids = {row[0] for row in child_db.rows("SELECT public_id FROM webhooks_webhookmessage")}
    assert {request.webhook_id for request in received} == ids and len(ids) == count
    # At least once: the killed worker's posts arrived, and each was sent again with the same id.
    assert sorted(receiver.seen.values()) == [2] * count
    for request in received:
        Webhook(secret).verify(request.body, request.headers)
    assert child_db.rows(
        "SELECT count(*), sum(CASE WHEN succeeded THEN 1 ELSE 0 END) FROM webhooks_webhookattempt"
    ) == [(count, count)]
