"""The events.unmatched digest: counts by reason and name, example ids, debugger links; at most one per interval
per endpoint, none when everything counted, and each event reported once."""

import datetime as dt
from types import SimpleNamespace

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from metering.debugger.stream import event_stream_page
from metering.ingest import clickhouse as clickhouse_writer
from metering.models import Customer
from tests.catalog.factories import MeterFactory
from tests.metering.factories import CustomerFactory, EventFactory
from tests.metering.usage.helpers import on_clickhouse, send
from webhooks.digest import unmatched_digests_publish
from webhooks.models import EventType, WebhookEndpoint, WebhookMessage

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_lag(settings):
    """With events in ClickHouse the digest reads events first delivered WEBHOOKS_UNMATCHED_DIGEST_LAG ago; these
    tests read what was just written (the lag has tests of its own below)."""
    settings.WEBHOOKS_UNMATCHED_DIGEST_LAG = 0


@pytest.fixture
def subscribed(environment):
    return WebhookEndpoint.objects.create(
        environment=environment, url="https://hooks.example.com/in", event_types=[EventType.EVENTS_UNMATCHED]
    )


def events(environment, name, customer, count, prefix):
    return [
        EventFactory(environment=environment, event_name=name, external_customer_id=customer, event_id=f"{prefix}-{n}")
        for n in range(count)
    ]


def test_a_digest_counts_by_reason_and_name_with_examples_and_links(environment, subscribed, settings):
    settings.FLEXMETER_BASE_URL = "https://meter.example.com/"
    MeterFactory(environment=environment, event_name="api.calls")
    MeterFactory(environment=environment, event_name="ai.tokens", aggregation_type="SUM", aggregation_field="tokens")
    CustomerFactory(environment=environment, external_id="acme")
    events(environment, "api.calls", "acme", 3, "ok")  # counted
    events(environment, "api.call", "acme", 7, "typo")  # no meter
    events(environment, "API.calls", "acme", 2, "case")  # no meter
    events(environment, "api.calls", "ghost", 4, "ghost")  # unknown customer
    EventFactory(environment=environment, event_name="ai.tokens", external_customer_id="acme", event_id="no-field")

    assert unmatched_digests_publish() == 1
    (message,) = WebhookMessage.objects.all()
    assert (message.endpoint, message.event_type) == (subscribed, "events.unmatched")
    digest = message.payload
    assert digest["environment_id"] == environment.public_id
    assert digest["total"] == 14
    assert [(r["reason"], r["count"]) for r in digest["by_reason"]] == [("unmatched", 10), ("customer_not_found", 4)]
    assert digest["by_reason"][0]["debugger_url"] == "https://meter.example.com/events/?status=unmatched"
    assert digest["by_reason"][1]["debugger_url"] == "https://meter.example.com/events/?status=customer_not_found"
    assert digest["event_names"] == [
        {"event_name": "api.call", "reason": "unmatched", "count": 7},
        {"event_name": "api.calls", "reason": "customer_not_found", "count": 4},
        {"event_name": "API.calls", "reason": "unmatched", "count": 2},
        {"event_name": "ai.tokens", "reason": "unmatched", "count": 1},
    ]
    examples = digest["examples"]
    assert len([e for e in examples if e["reason"] == "unmatched"]) == 5
    assert sorted(e["event_id"] for e in examples if e["reason"] == "customer_not_found") == [
        "ghost-0",
        "ghost-1",
        "ghost-2",
        "ghost-3",
    ]
    assert "no-field" in {e["event_id"] for e in examples}

    # The digest agrees with the debugger's own status of each event.
    stream = {row.event.event_id: row.status for row in event_stream_page(environment=environment, page_size=100).rows}
    for example in examples:
        assert stream[example["event_id"]] == example["reason"]

    # Nothing new: no second digest; new unmatched events: one more, with only them.
    assert unmatched_digests_publish() == 0
    events(environment, "later", "acme", 2, "later")
    assert unmatched_digests_publish() == 1
    latest = WebhookMessage.objects.order_by("-id").first().payload
    assert latest["total"] == 2 and latest["event_names"] == [
        {"event_name": "later", "reason": "unmatched", "count": 2}
    ]


def test_nothing_is_sent_when_every_event_counted_or_nobody_subscribes(environment, other_environment, subscribed):
    MeterFactory(environment=environment, event_name="api.calls")
    CustomerFactory(environment=environment, external_id="acme")
    events(environment, "api.calls", "acme", 3, "ok")
    events(other_environment, "nothing.reads.this", "acme", 3, "other")
    WebhookEndpoint.objects.create(
        environment=other_environment, url="https://x.example", event_types=[EventType.FEATURE_USAGE_ALERT]
    )
    assert unmatched_digests_publish() == 0
    assert WebhookMessage.objects.count() == 0


def test_the_digest_job_runs_once_per_interval(settings):
    from worker.schedule import PERIODIC_JOBS
    from worker.tasks import digest_unmatched_events

    jobs = {job.name: job for job in PERIODIC_JOBS}
    job = jobs["digest_unmatched_events"]
    assert (job.task, job.every_seconds()) == (digest_unmatched_events, 900.0)
    assert digest_unmatched_events.call() == {"digests": 0}


def test_constant_queries_per_environment(environment, subscribed, django_assert_max_num_queries):
    # 60 events of 30 names cost what 1 event costs: the statements do not grow with events or names.
    for n in range(30):
        events(environment, f"name.{n}", f"c{n}", 2, f"e{n}")
    with django_assert_max_num_queries(16):
        assert unmatched_digests_publish() == 1
    assert WebhookMessage.objects.get().payload["more_event_names"] == 10


def test_a_redelivered_event_is_never_reported_again(environment, subscribed):
    """Last delivery wins, even one that moves the event to another name and customer: it is the same event, and
    it was reported with its first delivery (on ClickHouse the redelivery has a new version, but keeps the version
    of the first delivery, which the digest reads by)."""
    MeterFactory(environment=environment, event_name="api.calls")
    send(environment, event_name="api.call", timestamp="2026-01-05T10:00", event_id="typo")
    assert unmatched_digests_publish() == 1
    send(environment, event_name="api.cal", customer="ghost", timestamp="2026-01-06T10:00", event_id="typo")
    assert unmatched_digests_publish() == 0
    send(environment, event_name="api.call", timestamp="2026-01-05T10:00", event_id="new")
    assert unmatched_digests_publish() == 1
    latest = WebhookMessage.objects.order_by("-id").first().payload
    assert [example["event_id"] for example in latest["examples"]] == ["new"]


def test_clickhouse_reads_events_once_the_lag_has_passed_and_a_late_insert_is_not_skipped(
    environment, subscribed, settings, monkeypatch
):
    """A write stamps its version just before its insert lands. Reading only versions older than the lag means an
    insert stamped before a digest ran but visible only after it (within the lag) still falls in the next window,
    and the cursor never reports an event twice."""
    if not on_clickhouse():
        pytest.skip("the Django database's digest reads by row id")
    settings.WEBHOOKS_UNMATCHED_DIGEST_LAG = 60
    start = timezone.now()
    send(environment, event_name="first", timestamp="2026-01-05T10:00", event_id="a")
    assert unmatched_digests_publish(now=start) == 0  # `a` is younger than the lag: it waits
    digest_at = start + dt.timedelta(seconds=61)
    assert unmatched_digests_publish(now=digest_at) == 1  # reads up to start + 1 s

    # `b` was stamped 30 s before that digest ran, but its insert landed only after it
    stamped = digest_at - dt.timedelta(seconds=30)
    nanoseconds = (stamped - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1) * 1000
    with monkeypatch.context() as patched:
        patched.setattr(clickhouse_writer, "time", SimpleNamespace(time_ns=lambda: nanoseconds))
        send(environment, event_name="late", timestamp="2026-01-05T10:00", event_id="b")

    assert unmatched_digests_publish(now=digest_at + dt.timedelta(minutes=15)) == 1
    latest = WebhookMessage.objects.order_by("-id").first().payload
    assert [example["event_id"] for example in latest["examples"]] == ["b"]
    assert unmatched_digests_publish(now=digest_at + dt.timedelta(minutes=30)) == 0
    assert [m.payload["total"] for m in WebhookMessage.objects.order_by("id")] == [1, 1]


@pytest.mark.django_db(transaction=True)
def test_postgresql_a_slow_transaction_with_a_lower_row_id_is_not_passed_over(environment, subscribed, settings):
    """PostgreSQL numbers a row when it is inserted, not when its transaction commits: a digest that ended its
    window at the newest committed row skipped a slower transaction's row with a lower id for good. Reading only
    rows written the lag ago leaves it to a later window."""
    if connection.vendor != "postgresql" or on_clickhouse():
        pytest.skip("row ids handed out before commit: PostgreSQL")
    settings.WEBHOOKS_UNMATCHED_DIGEST_LAG = 60
    written_at = timezone.now()
    slow = psycopg.connect(**connection.get_connection_params())
    try:
        slow.execute(
            "INSERT INTO metering_event (environment_id, event_id, event_name, external_customer_id, timestamp, "
            "ingested_at, source, properties) VALUES (%s, 'slow', 'nobody.counts.this', 'acme', %s, %s, '', '{}')",
            [environment.pk, written_at, written_at],
        )  # uncommitted: its id is taken
        send(environment, event_name="nor.this", timestamp="2026-01-05T10:00", event_id="fast")  # committed, next id
        assert unmatched_digests_publish(now=written_at + dt.timedelta(seconds=30)) == 0  # within the lag: waits
        slow.commit()
    finally:
        slow.close()
    assert unmatched_digests_publish(now=timezone.now() + dt.timedelta(seconds=61)) == 1
    (message,) = WebhookMessage.objects.all()
    assert message.payload["total"] == 2
    assert sorted(example["event_id"] for example in message.payload["examples"]) == ["fast", "slow"]


def test_a_digest_and_the_unknown_customer_stream_read_an_environment_of_30_000_customers(environment, subscribed):
    """With events in ClickHouse both pass the environment's active customers as one array parameter, which
    ClickHouse counts in the statement's size: 30,000 ids of 20 characters are 720 KB, past its default 256 KiB."""
    Customer.objects.bulk_create(
        Customer(environment=environment, external_id=f"customer-{n:011d}", public_id=f"cust_many{n}")
        for n in range(30_000)
    )
    MeterFactory(environment=environment, event_name="api.calls")
    send(environment, event_name="api.calls", timestamp="2026-01-05T10:00", customer="nobody-we-know", event_id="x")
    send(environment, event_name="api.calls", timestamp="2026-01-05T10:00", customer="customer-00000000007")

    assert unmatched_digests_publish() == 1
    digest = WebhookMessage.objects.get().payload
    assert [(r["reason"], r["count"]) for r in digest["by_reason"]] == [("unmatched", 0), ("customer_not_found", 1)]
    assert [example["event_id"] for example in digest["examples"]] == ["x"]
    page = event_stream_page(environment=environment, status="customer_not_found")
    assert [row.event.event_id for row in page.rows] == ["x"]
