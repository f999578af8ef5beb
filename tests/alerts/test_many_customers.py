"""10,000 customers crossing a threshold in one evaluation: 10,000 alert rows (and outbox payloads), with the same
statements as for 3 customers (issue #14, reliability)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from alerts import services
from alerts.models import AlertLogEntry, AlertState
from alerts.services import FEATURE_ALERT as ALERT
from metering.ingest.validation import event_clean
from metering.ingest.writer import events_store
from metering.models import Customer, UsageMark
from tests.alerts.helpers import NOW, alerting_feature, evaluate
from tests.metering.usage.helpers import at
from webhooks.services import endpoint_create

pytestmark = pytest.mark.django_db


def _customers_over_threshold(environment, count: int) -> None:
    anchor = at("2026-01-01T00:00")
    Customer.objects.bulk_create(
        Customer(environment=environment, external_id=f"c{n}", public_id=f"cust_many{n}", billing_anchor=anchor)
        for n in range(count)
    )
    raw = [
        {"event_id": f"e{n}-{k}", "event_name": "api.calls", "external_customer_id": f"c{n}",
         "timestamp": "2026-03-10T00:00:00Z", "properties": {}}
        for n in range(count)
        for k in range(2)
    ]  # fmt: skip
    events_store(environment=environment, events=[event_clean(item, now=at("2100-01-01T00:00")) for item in raw])


def _statements(captured) -> list[str]:
    """The statements of a pass, without transaction control and the work_mem a read for many customers sets for
    its own transaction (customer_windows.BULK_CUSTOMERS: once per read, whatever the number above it)."""
    return [
        q["sql"]
        for q in captured.captured_queries
        if not q["sql"].startswith(("SAVEPOINT", "RELEASE", "SELECT set_config('work_mem'"))
    ]


def test_ten_thousand_crossings_in_one_pass_cost_what_three_do(environment, monkeypatch):
    published = []
    endpoint_create(environment=environment, data={"url": "https://hooks.example.com/in", "event_types": [ALERT]})
    monkeypatch.setattr(
        services, "_publish", lambda env, kind, endpoints, payloads: published.extend(payloads) or len(payloads)
    )
    feature = alerting_feature(environment, warning="1")
    _customers_over_threshold(environment, 10_000)
    assert UsageMark.objects.count() == 10_000
    with CaptureQueriesContext(connection) as captured:
        report = evaluate(NOW)
    assert (report.pairs, report.changes) == (10_000, 10_000)
    assert AlertLogEntry.objects.filter(feature=feature, to_level="warning", usage="2", threshold="1").count() == 10_000
    assert AlertState.objects.filter(feature=feature, level="warning").count() == 10_000
    assert len(published) == 10_000
    assert UsageMark.objects.count() == 0
    many = _statements(captured)

    other = alerting_feature(environment, event_name="other", lookup_key="other", warning="1")
    for n in range(3):
        events_store(
            environment=environment,
            events=[
                event_clean(
                    {
                        "event_id": f"o{n}-{k}",
                        "event_name": "other",
                        "external_customer_id": f"c{n}",
                        "timestamp": "2026-03-10T00:00:00Z",
                    },
                    now=at("2100-01-01T00:00"),
                )  # fmt: skip
                for k in range(2)
            ],
        )
    with CaptureQueriesContext(connection) as captured:
        report = evaluate(NOW)
    assert report.changes == 3
    assert AlertLogEntry.objects.filter(feature=other).count() == 3
    few = _statements(captured)
    assert len(many) == len(few), "\n".join(sql[:100] for sql in many)
