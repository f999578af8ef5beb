"""The stream's per-row status and status filter agree with the debugger (SPEC §7) and with the totals."""

import pytest
from django.db import connection

from catalog.models import MeterStatus
from flexmeter.errors import ValidationFailed
from metering.debugger.explain import event_debug_report
from metering.debugger.stream import event_stream_page, properties_preview, unmatched_event_names, unmatched_groups
from tests.catalog.factories import MeterFactory
from tests.metering.debugger.test_explain import EVENTS, METERS, NON_ADDITIVE
from tests.metering.factories import CustomerFactory
from tests.metering.usage.helpers import at, send, stored_one

pytestmark = pytest.mark.django_db


def test_every_row_status_equals_the_debugger_status(environment):
    for index, definition in enumerate(METERS + NON_ADDITIVE):
        MeterFactory(environment=environment, event_name="llm", fingerprint=f"m{index}", **definition)
    CustomerFactory(environment=environment, external_id="cust-1")
    for index, properties in enumerate(EVENTS):
        customer = "cust-1" if index % 2 else "ghost"
        send(environment, event_name="llm", timestamp=f"2025-01-02T{index:02d}:00", properties=properties,
             customer=customer)  # fmt: skip
    send(environment, event_name="API.Calls", timestamp="2025-01-03T00:00")
    MeterFactory(environment=environment, event_name="gated", filters=[{"key": "region", "values": ["eu"]}])
    send(environment, event_name="gated", timestamp="2025-01-03T00:01", properties={"region": "us"})
    page = event_stream_page(environment=environment)
    assert len(page.rows) == len(EVENTS) + 2
    statuses = set()
    for row in page.rows:
        report = event_debug_report(environment=environment, event=row.event)
        assert row.status == report.shown_status, row.event.properties
        statuses.add(row.status)
    assert statuses == {"processed", "unmatched", "customer_not_found", "filtered_out"}


def test_each_status_filter_shows_exactly_the_rows_labelled_with_it(environment):
    MeterFactory(environment=environment, event_name="llm", aggregation_type="SUM", aggregation_field="tokens",
                 filters=[{"key": "region", "operator": "in", "values": ["eu"]}])  # fmt: skip
    CustomerFactory(environment=environment, external_id="known")
    sent = [
        ("p1", "known", {"tokens": 5, "region": "eu"}),
        ("n1", "ghost", {"tokens": 5, "region": "eu"}),
        ("f1", "known", {"tokens": 5, "region": "us"}),
        ("f2", "ghost", {"tokens": 5}),
        ("u1", "known", {"region": "eu"}),
        ("u2", "ghost", {"tokens": "five", "region": "eu"}),
    ]
    for minute, (event_id, customer, properties) in enumerate(sent):
        send(environment, event_name="llm", timestamp=f"2025-01-02T00:0{minute}", customer=customer,
             properties=properties, event_id=event_id)  # fmt: skip
    labelled = {row.event.event_id: row.status for row in event_stream_page(environment=environment).rows}
    assert labelled == {"p1": "processed", "n1": "customer_not_found", "f1": "filtered_out", "f2": "filtered_out",
                        "u1": "unmatched", "u2": "unmatched"}  # fmt: skip
    for status in ("processed", "customer_not_found", "unmatched", "filtered_out"):
        rows = event_stream_page(environment=environment, status=status).rows
        assert {row.event.event_id for row in rows} == {id_ for id_, shown in labelled.items() if shown == status}
        assert {row.status for row in rows} == {status}


def test_a_name_one_meter_counts_without_filters_is_never_filtered_out_and_its_filter_is_constant(environment):
    from metering.debugger.stream import published_specs
    from metering.usage.dialects import dialect_for
    from metering.usage.dialects.base import Params
    from metering.usage.predicate import filtered_out_sql

    MeterFactory(environment=environment, event_name="api", aggregation_type="COUNT", aggregation_field="")
    MeterFactory(environment=environment, event_name="api", aggregation_type="COUNT", aggregation_field="",
                 filters=[{"key": "region", "operator": "in", "values": ["eu"]}])  # fmt: skip
    MeterFactory(environment=environment, event_name="llm", aggregation_type="SUM", aggregation_field="tokens",
                 filters=[{"key": "region", "operator": "in", "values": ["eu"]}])  # fmt: skip
    send(environment, event_name="api", timestamp="2025-01-02T00:00", properties={"region": "us"}, event_id="a1")
    send(environment, event_name="llm", timestamp="2025-01-02T00:01", properties={"tokens": 1, "region": "us"},
         event_id="l1")  # fmt: skip
    rows = event_stream_page(environment=environment, status="filtered_out").rows
    assert [row.event.event_id for row in rows] == ["l1"]  # the unfiltered meter counts a1

    specs = [spec for spec in published_specs(environment) if spec.event_name == "api"]
    # with a meter that takes every event of the name the condition is constant: a status filter reads no event
    assert filtered_out_sql(specs, dialect_for(connection), Params()) == "(1 = 0)"


@pytest.mark.parametrize(
    ("properties", "status"),
    [
        ({"tokens": 5, "region": "eu"}, "processed"),
        ({"tokens": 5, "region": "us"}, "filtered_out"),
        ({"tokens": 5}, "filtered_out"),
        ({"region": "eu"}, "unmatched"),
        ({"tokens": "five", "region": "eu"}, "unmatched"),
        ({"tokens": " 1e3 ", "region": "eu"}, "processed"),
    ],
)
def test_filter_and_value_decide_the_status(environment, properties, status):
    MeterFactory(
        environment=environment,
        event_name="llm",
        aggregation_type="SUM",
        aggregation_field="tokens",
        filters=[{"key": "region", "operator": "in", "values": ["eu"]}],
    )
    CustomerFactory(environment=environment, external_id="cust-1")
    send(environment, event_name="llm", timestamp="2025-01-02T00:00", properties=properties)
    [row] = event_stream_page(environment=environment).rows
    assert row.status == status


def test_draft_and_archived_meters_count_nothing(environment):
    MeterFactory(environment=environment, event_name="llm", status=MeterStatus.DRAFT)
    MeterFactory(environment=environment, event_name="llm", status=MeterStatus.ARCHIVED)
    send(environment, event_name="llm", timestamp="2025-01-02T00:00")
    [row] = event_stream_page(environment=environment).rows
    assert row.status == "unmatched"


def test_status_filter_uses_the_same_predicate(environment):
    MeterFactory(environment=environment, event_name="api.calls")
    CustomerFactory(environment=environment, external_id="known")
    send(environment, event_name="api.calls", timestamp="2025-01-02T00:00", customer="known", event_id="ok")
    send(environment, event_name="api.calls", timestamp="2025-01-02T00:01", customer="nobody", event_id="nf")
    send(environment, event_name="api.call", timestamp="2025-01-02T00:02", customer="known", event_id="um")

    def ids(status):
        return [row.event.event_id for row in event_stream_page(environment=environment, status=status).rows]

    assert ids("processed") == ["ok"]
    assert ids("customer_not_found") == ["nf"]
    assert ids("unmatched") == ["um"]
    assert ids(None) == ["um", "nf", "ok"]
    with pytest.raises(ValidationFailed):
        ids("bogus")


def test_keyset_pages_and_newer_than(environment):
    for minute in range(5):
        send(environment, event_name="x", timestamp=f"2025-01-02T00:0{minute}", event_id=f"e{minute}")
    first = event_stream_page(environment=environment, page_size=2)
    assert [r.event.event_id for r in first.rows] == ["e4", "e3"] and first.has_more
    second = event_stream_page(environment=environment, page_size=2, cursor=first.last_key)
    assert [r.event.event_id for r in second.rows] == ["e2", "e1"]
    assert event_stream_page(environment=environment, newer_than=first.first_key).rows == []
    send(environment, event_name="x", timestamp="2025-01-02T00:09", event_id="new")
    newer = event_stream_page(environment=environment, newer_than=first.first_key)
    assert [r.event.event_id for r in newer.rows] == ["new"]
    with pytest.raises(ValidationFailed) as error:
        event_stream_page(environment=environment, newer_than="garbage!")
    assert "newer_than" in error.value.details


def test_filters_by_name_customer_source_and_time(environment):
    send(environment, event_name="a", timestamp="2025-01-02T00:00", customer="c1", event_id="1")
    send(environment, event_name="b", timestamp="2025-01-03T00:00", customer="c2", event_id="2", source="backend")
    assert [r.event.event_id for r in event_stream_page(environment=environment, event_name="a").rows] == ["1"]
    assert [r.event.event_id for r in event_stream_page(environment=environment, external_customer_id="c2").rows] == [
        "2"
    ]
    assert [r.event.event_id for r in event_stream_page(environment=environment, source="backend").rows] == ["2"]
    window = event_stream_page(environment=environment, start=at("2025-01-02T12:00"), end=at("2025-01-04T00:00"))
    assert [r.event.event_id for r in window.rows] == ["2"]


def test_stream_page_is_one_query_after_meters(environment, django_assert_num_queries):
    MeterFactory(environment=environment, event_name="a")
    for minute in range(10):
        send(environment, event_name="a", timestamp=f"2025-01-02T00:0{minute}")
    with django_assert_num_queries(2):  # published meters + the page with statuses and customers
        page = event_stream_page(environment=environment)
    assert len(page.rows) == 10


def test_other_environments_are_invisible(environment, other_environment):
    send(other_environment, event_name="a", timestamp="2025-01-02T00:00")
    assert event_stream_page(environment=environment).rows == []
    assert unmatched_event_names(environment=environment) == []


def test_unmatched_names_grouped_with_counts_and_last_seen(environment):
    MeterFactory(environment=environment, event_name="api.calls", aggregation_type="SUM", aggregation_field="n")
    send(environment, event_name="api.calls", timestamp="2025-01-02T00:00", properties={"n": 1})
    send(environment, event_name="api.calls", timestamp="2025-01-02T00:05", properties={"N": 1})
    for minute in range(3):
        send(environment, event_name="API.calls", timestamp=f"2025-01-02T00:1{minute}", customer=f"c{minute}")
    names = unmatched_event_names(environment=environment)
    assert [(n.event_name, n.count, n.customers, n.meters_with_name) for n in names] == [
        ("API.calls", 3, 3, 0),
        ("api.calls", 1, 1, 1),
    ]
    assert names[0].last_seen == at("2025-01-02T00:12")
    assert names[0].did_you_mean == ["api.calls"] and names[1].did_you_mean == []
    assert unmatched_event_names(environment=environment, start=at("2025-01-02T00:11")) != names
    assert [n.count for n in unmatched_event_names(environment=environment, start=at("2025-01-02T00:11"))] == [2]


def test_properties_preview():
    assert properties_preview({"a": 1, "b": "x", "c": {"d": 1}, "e": [1], "f": True, "g": None}) == (
        "a=1 · b=x · c={…} · e=[…] · f=true · g=null"
    )
    assert properties_preview({}) == ""
    assert properties_preview({"k": "v" * 200}, limit=20).endswith("…")


def test_an_event_one_meter_filters_out_and_another_cannot_read_is_broken(environment):
    """Filtered out means every meter of the name rejects it by a filter; a meter whose filters let it through but
    which finds no value makes it broken (unmatched)."""
    MeterFactory(environment=environment, event_name="llm", fingerprint="a",
                 filters=[{"key": "model", "operator": "in", "values": ["gpt-4"]}])  # fmt: skip
    MeterFactory(environment=environment, event_name="llm", fingerprint="b", aggregation_type="SUM",
                 aggregation_field="tokens", filters=[{"key": "model", "values": ["gpt-3.5"]}])  # fmt: skip
    send(environment, event_name="llm", timestamp="2025-01-02T00:00", properties={"model": "gpt-3.5"}, event_id="x")
    send(environment, event_name="llm", timestamp="2025-01-02T00:01", properties={"model": "o1"}, event_id="y")
    rows = {row.event.event_id: row for row in event_stream_page(environment=environment).rows}
    assert (rows["x"].status, rows["y"].status) == ("unmatched", "filtered_out")
    for event_id in ("x", "y"):
        report = event_debug_report(environment=environment, event=stored_one(environment, event_id))
        assert (report.status, report.shown_status) == ("unmatched", rows[event_id].status)
    assert event_debug_report(environment=environment, event=stored_one(environment, "x")).cause == "no_value"
    [filtered] = event_stream_page(environment=environment, status="filtered_out").rows
    assert filtered.event.event_id == "y"
    [broken] = event_stream_page(environment=environment, status="unmatched").rows
    assert broken.event.event_id == "x"


def test_unmatched_names_carry_their_cause(environment):
    MeterFactory(environment=environment, event_name="llm", aggregation_type="SUM", aggregation_field="tokens",
                 filters=[{"key": "model", "operator": "in", "values": ["gpt-4"]}])  # fmt: skip
    send(environment, event_name="llm", timestamp="2025-01-02T00:00", properties={"model": "gpt-3.5", "tokens": 1})
    send(environment, event_name="llm", timestamp="2025-01-02T00:01", properties={"model": "gpt-3.5", "tokens": 2})
    send(environment, event_name="llm", timestamp="2025-01-02T00:02", properties={"model": "gpt-4"})
    send(environment, event_name="other", timestamp="2025-01-02T00:03")
    names = unmatched_event_names(environment=environment)
    assert [(n.event_name, n.cause, n.count) for n in names] == [
        ("llm", "filtered_out", 2),
        ("llm", "no_value", 1),
        ("other", "no_meter", 1),
    ]
    groups = unmatched_groups(names)
    assert [(g.cause, g.count, [n.event_name for n in g.names]) for g in groups] == [
        ("no_value", 1, ["llm"]),
        ("no_meter", 1, ["other"]),
        ("filtered_out", 2, ["llm"]),
    ]


def test_name_filter_is_a_case_insensitive_prefix_with_hints(environment):
    MeterFactory(environment=environment, event_name="llm.tokens")
    for index, name in enumerate(["llm.tokens", "LLM.tokens", "llm.tokens.v2", "llm_tokens", "other", "100%_done"]):
        send(environment, event_name=name, timestamp=f"2025-01-02T00:0{index}", event_id=name)
    page = event_stream_page(environment=environment, event_name="llm.tokens")
    assert [row.event.event_id for row in page.rows] == ["llm.tokens.v2", "LLM.tokens", "llm.tokens"]
    assert page.name_hints.also_shown == ["LLM.tokens", "llm.tokens.v2"]
    assert page.name_hints.near == ["llm_tokens"]
    assert [r.event.event_id for r in event_stream_page(environment=environment, event_name="100%").rows] == [
        "100%_done"
    ]
    assert [r.event.event_id for r in event_stream_page(environment=environment, event_name="100_").rows] == []
    assert event_stream_page(environment=environment, event_name="llm", cursor=page.last_key).name_hints is None
