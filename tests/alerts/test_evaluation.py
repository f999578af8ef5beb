"""Alert evaluation end to end on the database: marks written by ingest, states, the log, period rollover,
idempotence, a failed pass, entitlement limits and the statement count (SQLite and PostgreSQL)."""

import threading
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from alerts import services
from alerts.models import AlertLogEntry, AlertState, LimitReached
from flexmeter.models import Environment
from metering.ingest.validation import event_clean
from metering.ingest.writer import events_delete, events_store
from metering.models import Event, UsageMark
from tests.alerts.helpers import alerting_feature, calls, customer, evaluate
from tests.entitlements.helpers import grant
from tests.metering.usage.helpers import at, send, usage_statements
from webhooks.models import WebhookMessage
from webhooks.services import endpoint_create

pytestmark = pytest.mark.django_db


def log_rows(**filters):
    return list(
        AlertLogEntry.objects.filter(**filters)
        .order_by("evaluated_at", "id")
        .values_list("customer__external_id", "from_level", "to_level", "usage", "threshold")
    )


def test_ingest_marks_each_customer_and_event_name_once_per_batch(environment):
    calls(environment, 3, customer="a")
    calls(environment, 1, customer="b", name="llm.tokens")
    marks = sorted(UsageMark.objects.values_list("external_customer_id", "event_name", "version"))
    assert marks == [("a", "api.calls", 3), ("b", "llm.tokens", 1)]


def test_crossings_log_each_change_once_with_usage_and_threshold(environment):
    feature = alerting_feature(environment, info="2", warning="4", critical="6")
    customer(environment, "a")
    calls(environment, 2, customer="a")
    evaluate()
    assert log_rows() == []  # 2 does not exceed 2
    calls(environment, 3, customer="a")
    evaluate()
    calls(environment, 2, customer="a")
    evaluate()
    assert log_rows() == [("a", "ok", "warning", "5", "4"), ("a", "warning", "critical", "7", "6")]
    state = AlertState.objects.get(feature=feature)
    assert (state.level, state.usage, state.version) == ("critical", "7", 2)
    assert (state.period_start, state.period_end) == (at("2026-03-01T00:00"), at("2026-04-01T00:00"))
    entry = AlertLogEntry.objects.first()
    assert (entry.period_start, entry.evaluated_at, entry.condition) == (
        at("2026-03-01T00:00"),
        at("2026-03-20T12:00"),
        "above",
    )


def test_the_same_crossing_never_fires_twice(environment):
    alerting_feature(environment, critical="3")
    customer(environment, "a")
    calls(environment, 4, customer="a")
    evaluate()
    calls(environment, 1, customer="a")  # still critical
    evaluate()
    evaluate()
    UsageMark.objects.create(environment=environment, external_customer_id="a", event_name="api.calls")
    evaluate()  # marked again without a change
    assert log_rows() == [("a", "ok", "critical", "4", "3")]
    assert UsageMark.objects.count() == 0


def test_below_fires_as_usage_falls_under_and_recovers(environment):
    alerting_feature(
        environment, event_name="credits", aggregation_type="LATEST", aggregation_field="balance",
        condition="below", warning="20", critical="5",
    )  # fmt: skip
    customer(environment, "a")
    send(environment, event_name="credits", timestamp="2026-03-02T00:00", customer="a", properties={"balance": 50})
    evaluate()
    send(environment, event_name="credits", timestamp="2026-03-03T00:00", customer="a", properties={"balance": 12})
    evaluate()
    send(environment, event_name="credits", timestamp="2026-03-04T00:00", customer="a", properties={"balance": "4.5"})
    evaluate()
    send(environment, event_name="credits", timestamp="2026-03-05T00:00", customer="a", properties={"balance": 30})
    evaluate()
    assert log_rows() == [
        ("a", "ok", "warning", "12", "20"),
        ("a", "warning", "critical", "4.5", "5"),
        ("a", "critical", "ok", "30", "5"),
    ]


def test_a_new_period_starts_at_ok_with_a_new_state(environment):
    feature = alerting_feature(environment, critical="2")
    customer(environment, "a")
    calls(environment, 3, customer="a", timestamp="2026-03-10T00:00")
    evaluate("2026-03-20T12:00")
    calls(environment, 1, customer="a", timestamp="2026-04-02T00:00")  # 1 in April: ok, no row
    evaluate("2026-04-02T12:00")
    calls(environment, 2, customer="a", timestamp="2026-04-03T00:00")  # 3 in April
    evaluate("2026-04-03T12:00")
    states = AlertState.objects.filter(feature=feature).order_by("period_start")
    assert [(s.period_start, s.level, s.version) for s in states] == [
        (at("2026-03-01T00:00"), "critical", 1),
        (at("2026-04-01T00:00"), "critical", 1),
    ]
    assert log_rows() == [("a", "ok", "critical", "3", "2"), ("a", "ok", "critical", "3", "2")]
    assert [e.period_start.month for e in AlertLogEntry.objects.order_by("id")] == [3, 4]


def marks() -> set[tuple[str, str]]:
    return set(UsageMark.objects.values_list("external_customer_id", "event_name"))


def test_an_event_moved_away_or_deleted_marks_the_pair_it_left_and_its_level_falls(environment):
    alerting_feature(environment, info="1", critical="3")
    customer(environment, "a")
    customer(environment, "b")
    ids = [send(environment, event_name="api.calls", timestamp="2026-03-10T00:00", customer="a") for _ in range(4)]
    evaluate()
    assert marks() == set()
    send(environment, event_name="api.calls", timestamp="2026-03-10T00:00", customer="b", event_id=ids[3])
    assert marks() == {("a", "api.calls"), ("b", "api.calls")}  # a redelivery to another customer
    evaluate()
    send(environment, event_name="llm.tokens", timestamp="2026-03-10T00:00", customer="a", event_id=ids[2])
    assert marks() == {("a", "api.calls"), ("a", "llm.tokens")}  # renamed
    evaluate()
    assert events_delete(environment_slug=environment.slug, event_ids=[ids[1]]) == 1
    assert marks() == {("a", "api.calls")}
    evaluate()
    assert log_rows(customer__external_id="a") == [
        ("a", "ok", "critical", "4", "3"),
        ("a", "critical", "info", "3", "3"),
        ("a", "info", "ok", "1", "1"),
    ]


def test_a_bulk_redelivery_to_another_customer_marks_the_customer_it_left(environment):
    def batch(customer_id: str) -> list:
        raw = [
            {"event_id": f"bulk-{n}", "event_name": "api.calls", "external_customer_id": customer_id,
             "timestamp": "2026-03-10T00:00:00Z", "properties": {}}
            for n in range(60)
        ]  # fmt: skip
        return [event_clean(event, now=at("2100-01-01T00:00")) for event in raw]

    events_store(environment=environment, events=batch("c"))  # 60 rows: the bulk path (COPY on PostgreSQL)
    UsageMark.objects.all().delete()
    events_store(environment=environment, events=batch("d"))
    assert marks() == {("c", "api.calls"), ("d", "api.calls")}


def test_only_marked_pairs_of_alerting_features_and_known_customers_are_evaluated(environment):
    alerting_feature(environment, critical="1")
    alerting_feature(environment, event_name="other", lookup_key="other", critical="1")
    alerting_feature(environment, event_name="off", lookup_key="off", critical="1").__class__.objects.filter(
        lookup_key="off"
    ).update(alert_settings={"alert_enabled": False, "critical": {"threshold": "1", "condition": "above"}})
    customer(environment, "a")
    calls(environment, 2, customer="a")
    calls(environment, 2, customer="a", name="off")
    calls(environment, 2, customer="ghost")  # no such customer
    report = evaluate()
    assert log_rows() == [("a", "ok", "critical", "2", "1")]
    assert (report.marks, report.pairs, report.changes) == (3, 1, 1)
    assert UsageMark.objects.count() == 0


def subscribe(environment, *event_types):
    return endpoint_create(
        environment=environment, data={"url": "https://hooks.example.com/in", "event_types": list(event_types)}
    )


def test_a_failed_pass_records_nothing_and_keeps_its_marks(environment, monkeypatch):
    subscribe(environment, "feature.usage.alert")
    alerting_feature(environment, warning="1", critical="3")
    customer(environment, "a")
    customer(environment, "b")
    calls(environment, 2, customer="a")
    calls(environment, 4, customer="b")

    def fail(*args, **kwargs):
        raise RuntimeError("killed mid-way")

    monkeypatch.setattr(services, "_marks_delete", fail)  # the last write of a pass: states, log, outbox are written
    with pytest.raises(RuntimeError):
        evaluate()
    assert (AlertState.objects.count(), AlertLogEntry.objects.count(), WebhookMessage.objects.count()) == (0, 0, 0)
    assert UsageMark.objects.count() == 2
    monkeypatch.undo()
    evaluate()
    evaluate()
    assert sorted(log_rows()) == [("a", "ok", "warning", "2", "1"), ("b", "ok", "critical", "4", "3")]
    assert WebhookMessage.objects.count() == 2


def test_a_write_during_a_pass_keeps_its_mark_for_the_next_pass(environment, monkeypatch):
    alerting_feature(environment, critical="2")
    customer(environment, "a")
    calls(environment, 1, customer="a")
    real_usage = services._usage

    def usage_then_ingest(plan, **options):
        yield from real_usage(plan, **options)
        calls(environment, 5, customer="a")  # lands after the usage was read

    monkeypatch.setattr(services, "_usage", usage_then_ingest)
    evaluate()
    assert log_rows() == []
    assert UsageMark.objects.count() == 1
    monkeypatch.undo()
    evaluate()
    assert log_rows() == [("a", "ok", "critical", "6", "2")]


def test_a_lost_compare_and_set_records_nothing_and_keeps_the_mark(environment, monkeypatch):
    feature = alerting_feature(environment, warning="1", critical="3")
    cust = customer(environment, "a")
    calls(environment, 2, customer="a")
    evaluate()
    calls(environment, 2, customer="a")
    real_states = services._current_states

    def stale(pairs, moment):
        found = real_states(pairs, moment)
        AlertState.objects.filter(feature=feature, customer=cust).update(version=7)  # another evaluator's change
        return found

    monkeypatch.setattr(services, "_current_states", stale)
    evaluate()
    assert log_rows() == [("a", "ok", "warning", "2", "1")]
    assert UsageMark.objects.count() == 1


def test_usage_limit_reached_fires_once_per_reset_period(environment):
    feature = alerting_feature(environment)  # no thresholds: entitlements alone
    cust = customer(environment, "a")
    grant(environment, cust, feature, usage_limit=5, usage_reset_period="MONTHLY", start="2026-01-01T00:00")
    calls(environment, 4, customer="a")
    evaluate()
    assert LimitReached.objects.count() == 0
    calls(environment, 1, customer="a")
    evaluate()
    calls(environment, 3, customer="a")
    evaluate()
    calls(environment, 1, customer="a", timestamp="2026-04-05T00:00")
    evaluate("2026-04-05T12:00")
    calls(environment, 4, customer="a", timestamp="2026-04-06T00:00")
    evaluate("2026-04-06T12:00")
    rows = list(LimitReached.objects.order_by("period_start").values_list("period_start", "usage", "usage_limit"))
    assert rows == [(at("2026-03-01T00:00"), "5", "5"), (at("2026-04-01T00:00"), "5", "5")]


def test_limits_combine_sources_and_unlimited_never_fires(environment):
    limited = alerting_feature(environment)
    unlimited = alerting_feature(environment, event_name="tokens", lookup_key="tokens")
    cust = customer(environment, "a")
    grant(environment, cust, limited, usage_limit=3, start="2026-01-01T00:00")
    grant(environment, cust, limited, usage_limit=2, start="2026-01-01T00:00", is_soft_limit=True)
    grant(environment, cust, unlimited, start="2026-01-01T00:00")
    calls(environment, 4, customer="a")
    calls(environment, 50, customer="a", name="tokens")
    evaluate()
    assert LimitReached.objects.count() == 0
    calls(environment, 1, customer="a")
    evaluate()
    hit = LimitReached.objects.get()
    assert (hit.feature_id, hit.usage, hit.usage_limit, hit.is_soft_limit) == (limited.pk, "5", "5", True)


def test_outbox_payloads(environment, monkeypatch):
    subscribe(environment, "feature.usage.alert", "entitlement.usage_limit_reached")
    published = []
    monkeypatch.setattr(
        services,
        "_publish",
        lambda env, kind, endpoints, payloads: published.append((env, kind, payloads)) or len(payloads),
    )
    feature = alerting_feature(environment, warning="1.5")
    cust = customer(environment, "a")
    grant(environment, cust, feature, usage_limit=2, start="2026-01-01T00:00")
    calls(environment, 2, customer="a")
    report = evaluate()
    assert report.outbox == 2
    by_kind = {kind: (env, payloads) for env, kind, payloads in published}
    env, [alert] = by_kind["feature.usage.alert"]
    assert env == environment.pk
    assert alert == {
        "feature_id": feature.public_id, "feature_lookup_key": "api_calls", "feature_name": feature.name,
        "customer_id": cust.public_id, "external_customer_id": "a",
        "period_start": "2026-03-01T00:00:00Z", "period_end": "2026-04-01T00:00:00Z",
        "from_level": "ok", "to_level": "warning", "condition": "above", "usage": "2", "threshold": "1.5",
        "evaluated_at": "2026-03-20T12:00:00Z",
    }  # fmt: skip
    _, [limit] = by_kind["entitlement.usage_limit_reached"]
    assert (limit["usage"], limit["usage_limit"], limit["is_soft_limit"]) == ("2", "2", False)


def test_no_payload_is_built_where_no_endpoint_is_subscribed(environment, other_environment, monkeypatch):
    subscribe(environment, "entitlement.usage_limit_reached")
    subscribe(other_environment, "feature.usage.alert")
    built = []
    monkeypatch.setattr(services, "_subject", lambda *args: built.append(args[0].lookup_key) or {})
    feature = alerting_feature(environment, critical="2")
    cust = customer(environment, "a")
    grant(environment, cust, feature, usage_limit=3, start="2026-01-01T00:00")
    calls(environment, 3, customer="a")
    report = evaluate()
    assert (report.changes, report.limits_reached, report.outbox) == (1, 1, 1)
    assert built == ["api_calls"]  # the limit reached; the alert change had no endpoint in its environment
    assert WebhookMessage.objects.get().event_type == "entitlement.usage_limit_reached"


def test_each_change_and_limit_reached_queues_one_message_per_subscribed_endpoint(environment, other_environment):
    subscribe(environment, "feature.usage.alert", "entitlement.usage_limit_reached")
    subscribe(environment, "feature.usage.alert")
    subscribe(environment, "events.unmatched")
    subscribe(other_environment, "feature.usage.alert")
    feature = alerting_feature(environment, critical="2")
    cust = customer(environment, "a")
    grant(environment, cust, feature, usage_limit=3, start="2026-01-01T00:00")
    calls(environment, 3, customer="a")
    report = evaluate()
    assert report.outbox == 3
    messages = sorted(WebhookMessage.objects.values_list("event_type", "payload"), key=lambda row: row[0])
    assert [kind for kind, _ in messages] == [
        "entitlement.usage_limit_reached",
        "feature.usage.alert",
        "feature.usage.alert",
    ]
    assert messages[1][1]["usage"] == "3" and messages[1][1]["to_level"] == "critical"
    assert messages[0][1]["usage_limit"] == "3"
    evaluate()
    calls(environment, 1, customer="a")
    evaluate()  # still critical, limit already reached this period
    assert WebhookMessage.objects.count() == 3


@pytest.mark.parametrize("customers", [3, 30])
def test_a_pass_costs_the_same_statements_for_any_number_of_customers(environment, customers, monkeypatch):
    feature = alerting_feature(environment, critical="1")
    for number in range(customers):
        cust = customer(environment, f"c{number}")
        grant(environment, cust, feature, usage_limit=2, start="2026-01-01T00:00")
        calls(environment, 2, customer=f"c{number}")
    with CaptureQueriesContext(connection) as captured:
        report = evaluate()
    assert (report.changes, report.limits_reached) == (customers, customers)
    assert AlertLogEntry.objects.count() == customers
    assert LimitReached.objects.count() == customers
    statements = [q["sql"] for q in captured.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    # marks, customers, features, subscriptions, entitlements, usage (one statement; PostgreSQL adds its rollup
    # lookup; with events in ClickHouse it is not a Django statement), states, new states and their log rows (one
    # statement on PostgreSQL, two on SQLite), limits reached, subscribed endpoints, marks deleted; PostgreSQL also
    # takes and releases the evaluator's advisory lock and sets the marks deletion's join method
    expected = (13 if connection.vendor == "postgresql" else 11) + usage_statements()
    assert len(statements) == expected, "\n".join(s[:120] for s in statements)


def test_deleting_a_customer_or_feature_deletes_its_alert_rows(environment):
    feature = alerting_feature(environment, critical="1")
    cust = customer(environment, "a")
    grant(environment, cust, feature, usage_limit=1, start="2026-01-01T00:00")
    calls(environment, 2, customer="a")
    evaluate()
    assert (AlertState.objects.count(), AlertLogEntry.objects.count(), LimitReached.objects.count()) == (1, 1, 1)
    cust.delete()
    assert (AlertState.objects.count(), AlertLogEntry.objects.count(), LimitReached.objects.count()) == (0, 0, 0)


@pytest.fixture
def parallel_reads():
    """With committed rows on PostgreSQL a pass reads its meters at once, on connections of their own."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite reads one meter after another")


@pytest.mark.django_db(transaction=True)  # committed rows: the reads run on connections of their own
def test_on_postgresql_the_meters_are_read_at_once_on_their_own_connections(environment, monkeypatch, parallel_reads):
    calls_feature = alerting_feature(environment, warning="2")
    tokens_feature = alerting_feature(environment, event_name="llm.tokens", lookup_key="tokens", critical="3")
    customer(environment, "a")
    customer(environment, "b")
    calls(environment, 3, customer="a")
    calls(environment, 1, customer="b")
    calls(environment, 4, customer="b", name="llm.tokens")
    threads = []
    read = services._customer_windows_usage

    def recorded(**kwargs):
        threads.append(threading.current_thread().name)
        return read(**kwargs)

    monkeypatch.setattr(services, "_customer_windows_usage", recorded)
    report = evaluate()

    assert len(threads) == 2 and all(name.startswith("alerts-usage") for name in threads)
    assert (report.pairs, report.changes) == (3, 2)
    levels = {
        (s.feature_id, s.customer.external_id, s.level, s.usage) for s in AlertState.objects.select_related("customer")
    }
    assert levels == {(calls_feature.pk, "a", "warning", "3"), (tokens_feature.pk, "b", "critical", "4")}
    assert UsageMark.objects.count() == 0


def _two_meters(environment):
    """Customer a crosses `api.calls`'s warning at 3 calls, customer b `llm.tokens`'s critical at 4."""
    alerting_feature(environment, warning="2")
    alerting_feature(environment, event_name="llm.tokens", lookup_key="tokens", critical="3")
    customer(environment, "a")
    customer(environment, "b")
    calls(environment, 3, customer="a")
    calls(environment, 4, customer="b", name="llm.tokens")


@pytest.mark.django_db(transaction=True)
def test_on_postgresql_a_meter_is_recorded_while_another_is_still_read(environment, monkeypatch, parallel_reads):
    """The writes of a first pass overlap the slowest read instead of following it."""
    _two_meters(environment)
    recorded = threading.Event()
    order = []
    read, record = services._customer_windows_usage, services._record

    def slow_tokens(*, meter, windows):
        if meter.event_name == "llm.tokens":
            # the calls meter is recorded before this read returns (bounded: a pass that waits fails the test)
            order.append(("tokens read waited", recorded.wait(timeout=10)))
        return read(meter=meter, windows=windows)

    def recording(part, *args):
        order.append(("recorded", part.alerts[0].feature.meter.event_name))
        recorded.set()
        return record(part, *args)

    monkeypatch.setattr(services, "_customer_windows_usage", slow_tokens)
    monkeypatch.setattr(services, "_record", recording)
    report = evaluate()

    assert order == [("recorded", "api.calls"), ("tokens read waited", True), ("recorded", "llm.tokens")]
    assert report.changes == 2
    assert sorted(AlertState.objects.values_list("customer__external_id", "level")) == [
        ("a", "warning"),
        ("b", "critical"),
    ]
    assert UsageMark.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_on_postgresql_a_read_that_fails_after_another_meter_was_recorded_records_nothing(
    environment, monkeypatch, parallel_reads
):
    _two_meters(environment)
    recorded = threading.Event()
    read, record = services._customer_windows_usage, services._record

    def failing_tokens(*, meter, windows):
        if meter.event_name == "llm.tokens":
            recorded.wait(timeout=10)
            raise RuntimeError("the tokens read failed")
        return read(meter=meter, windows=windows)

    def recording(*args):
        found = record(*args)
        recorded.set()
        return found

    monkeypatch.setattr(services, "_customer_windows_usage", failing_tokens)
    monkeypatch.setattr(services, "_record", recording)
    with pytest.raises(RuntimeError, match="tokens read failed"):
        evaluate()
    assert recorded.is_set()  # the calls meter's states were written, in the transaction that rolled back
    assert (AlertState.objects.count(), AlertLogEntry.objects.count()) == (0, 0)
    assert UsageMark.objects.count() == 2
    monkeypatch.undo()
    assert evaluate().changes == 2


@pytest.mark.django_db(transaction=True)
def test_on_postgresql_a_pass_that_fails_while_recording_waits_for_its_reads_to_end(
    environment, monkeypatch, parallel_reads
):
    """No read outlives the pass (and the evaluator's lock): the next pass may start as soon as this one failed."""

    _two_meters(environment)
    tokens_started, calls_recorded = threading.Event(), threading.Event()
    ended = []
    read = services._customer_windows_usage

    def slow_tokens(*, meter, windows):
        if meter.event_name == "llm.tokens":
            tokens_started.set()
            calls_recorded.wait(timeout=10)
            time.sleep(0.3)
            ended.append(meter.event_name)
        return read(meter=meter, windows=windows)

    def failing_record(*args):
        # the tokens read must be running when the pass fails: one still queued is cancelled instead, as it should
        # be (under load a worker thread picked it up only after the calls meter was recorded: CI failed so once)
        tokens_started.wait(timeout=10)
        calls_recorded.set()
        raise RuntimeError("recording failed")

    monkeypatch.setattr(services, "_customer_windows_usage", slow_tokens)
    monkeypatch.setattr(services, "_record", failing_record)
    with pytest.raises(RuntimeError, match="recording failed"):
        evaluate()
    assert ended == ["llm.tokens"]
    assert (AlertState.objects.count(), UsageMark.objects.count()) == (0, 2)


def test_marks_left_by_deleted_events_never_block_deleting_their_environment(environment):
    """Deleting an environment table by table (a test database's flush does: its marks, then its events, whose
    triggers mark the pairs they leave, then the environment) must not be refused for those marks, and the
    evaluator consumes them like any mark that names no customer."""
    calls(environment, 2, customer="a")
    with connection.cursor() as cursor:
        for model in (UsageMark, Event):
            cursor.execute(f"DELETE FROM {model._meta.db_table}")
        cursor.execute(f"DELETE FROM {Environment._meta.db_table} WHERE id = %s", [environment.pk])
    connection.check_constraints()
    evaluate()
    assert UsageMark.objects.count() == 0
