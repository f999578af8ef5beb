"""The usage statement sent to ClickHouse: a single part goes as it is, several parts as one UNION ALL, with the
same answers either way (last delivery wins included)."""

import dataclasses
import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from catalog.models import Meter
from flexmeter.models import Environment
from metering.clickhouse.config import clickhouse_client
from metering.ingest.clickhouse import clickhouse_events_store
from metering.ingest.validation import EventInput
from metering.usage.engine import clickhouse_statement, run_usage_queries
from metering.usage.spec import AggregationSpec, UsageQuery

pytestmark = pytest.mark.django_db
ENV = 7
DAY = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
MARCH = (dt.datetime(2026, 3, 1, tzinfo=dt.UTC), dt.datetime(2026, 4, 1, tzinfo=dt.UTC))


def event(event_id, *, customer, tokens, user="u1", at=DAY):
    return EventInput(
        event_id=event_id,
        event_name="api.call",
        external_customer_id=customer,
        timestamp=at,
        source="test",
        properties={"tokens": tokens, "user": user},
    )


def query(aggregation_type, field="tokens", **kwargs):
    definition = {
        "aggregation_type": aggregation_type,
        "aggregation_field": "" if aggregation_type == "COUNT" else field,
    }
    spec = AggregationSpec.from_meter(Meter(event_name="api.call", **definition))
    return UsageQuery(spec=spec, environment_id=ENV, start=MARCH[0], end=MARCH[1], zone=ZoneInfo("UTC"), **kwargs)


@pytest.fixture
def statements(ch_backend, monkeypatch):
    """The statements the engine sends to ClickHouse, after storing a few events and a moving redelivery."""
    Environment.objects.create(pk=ENV, name="Seven", slug="seven")
    clickhouse_events_store(
        backend=ch_backend,
        environment_id=ENV,
        events=[
            event("e1", customer="acme", tokens=5),
            event("e2", customer="acme", tokens="2.5", user="u2", at=DAY + dt.timedelta(hours=1)),
            event("e3", customer="beta", tokens=7),
        ],
    )
    # e1 moves to beta: acme must no longer count it
    clickhouse_events_store(backend=ch_backend, environment_id=ENV, events=[event("e1", customer="beta", tokens=4)])
    client = clickhouse_client(ch_backend)
    sent = []
    original = client.query

    def spy(statement, *args, **kwargs):
        sent.append(statement)
        return original(statement, *args, **kwargs)

    monkeypatch.setattr(client, "query", spy)
    return sent


def test_a_single_part_is_sent_without_the_union_wrapper():
    assert clickhouse_statement(["SELECT 1 AS a"]) == "SELECT 1 AS a"
    assert clickhouse_statement(["SELECT 1 AS a", "SELECT 2 AS a"]) == (
        "SELECT * FROM (SELECT 1 AS a) part0 UNION ALL SELECT * FROM (SELECT 2 AS a) part1"
    )


@pytest.mark.parametrize(
    ("aggregation_type", "acme", "beta"),
    [("COUNT", 1, 2), ("SUM", Decimal("2.5"), 11), ("COUNT_UNIQUE", 1, 1), ("LATEST", Decimal("2.5"), 4)],
)
def test_one_query_alone_and_among_others_gives_the_same_answers(ch_backend, statements, aggregation_type, acme, beta):
    field = "user" if aggregation_type == "COUNT_UNIQUE" else "tokens"
    alone = [
        run_usage_queries([query(aggregation_type, field, customer=customer)], backend=ch_backend)[0].value
        for customer in ("acme", "beta")
    ]
    assert alone == [acme, beta]
    assert all(not statement.startswith("SELECT * FROM (") for statement in statements)
    statements.clear()
    both = run_usage_queries(
        [query(aggregation_type, field, customer="acme"), query(aggregation_type, field, customer="beta")],
        backend=ch_backend,
    )
    assert [result.value for result in both] == [acme, beta]
    assert len(statements) == 1 and " UNION ALL SELECT * FROM (" in statements[0]
    by_customer = run_usage_queries([query(aggregation_type, field, by_customer=True)], backend=ch_backend)[0]
    assert by_customer == {"acme": acme, "beta": beta}
    windows = run_usage_queries(
        [dataclasses.replace(query(aggregation_type, field, customer="beta"), window_size="DAY")], backend=ch_backend
    )[0]
    assert windows.value == beta and [window.value for window in windows.windows] == [beta]
