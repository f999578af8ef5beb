"""The event debugger (SPEC §7): its quantities are the engine's, its reasons name the first failing rule."""

import datetime as dt
from decimal import Decimal

import pytest

from metering.debugger.explain import event_debug_report
from metering.ingest.validation import event_clean
from metering.usage.selectors import meter_usage
from tests.catalog.factories import FeatureFactory, MeterFactory
from tests.metering.factories import CustomerFactory
from tests.metering.usage.helpers import at, delete_event, send, stored_events

pytestmark = pytest.mark.django_db

EVER = (at("2000-01-01T00:00"), at("2100-01-01T00:00"))

EVENTS = [
    {"tokens": 10, "region": "eu", "a": 1, "b": 2},
    {"tokens": "2.5", "region": "us", "a": "3", "b": 0},
    {"tokens": 0.1, "region": "eu", "a": 2},
    {"tokens": True, "region": "eu"},
    {"tokens": "many", "model": "gpt-4"},
    {"region": "eu"},
    {"tokens": 12345678901234567890.5, "region": "EU", "a": "x"},
    {"tokens": -4, "region": None, "b": 5},
]

METERS = [
    {"aggregation_type": "COUNT"},
    {"aggregation_type": "COUNT", "filters": [{"key": "region", "operator": "in", "values": ["eu"]}]},
    {"aggregation_type": "SUM", "aggregation_field": "tokens"},
    {
        "aggregation_type": "SUM",
        "aggregation_field": "tokens",
        "filters": [{"key": "region", "operator": "not_in", "values": ["us"]}],
    },
    {"aggregation_type": "SUM_WITH_MULTIPLIER", "aggregation_field": "tokens", "multiplier": "0.5"},
    {"aggregation_type": "SUM", "aggregation_expression": "a / b + 1"},
    {
        "aggregation_type": "SUM",
        "aggregation_expression": "max(a, b) * 2",
        "filters": [{"key": "model", "operator": "not_contains", "values": ["gpt"]}],
    },
]
NON_ADDITIVE = [
    {"aggregation_type": "MAX", "aggregation_field": "tokens"},
    {"aggregation_type": "MIN", "aggregation_field": "tokens"},
    {"aggregation_type": "AVG", "aggregation_field": "tokens"},
    {"aggregation_type": "LATEST", "aggregation_expression": "tokens * 3"},
]


def only_event(environment):
    (event,) = stored_events(environment)
    return event


def store_events(environment):
    for index, properties in enumerate(EVENTS):
        send(environment, event_name="llm", timestamp=f"2025-01-02T{index:02d}:00", properties=properties)
    return stored_events(environment)


def quantity_of(report, meter):
    (match,) = [m for m in report.meters if m.meter_id == meter.public_id]
    return match.quantity if match.matched else None


def test_quantity_equals_the_difference_the_event_makes_to_the_total(environment):
    meters = [MeterFactory(environment=environment, event_name="llm", **kwargs) for kwargs in METERS]
    events = store_events(environment)
    reports = {event.event_id: event_debug_report(environment=environment, event=event) for event in events}
    totals = {meter.pk: meter_usage(meter=meter, start=EVER[0], end=EVER[1]).value for meter in meters}
    checked = 0

    for event in events:
        report = reports[event.event_id]
        delete_event(environment, event)
        for meter in meters:
            after = meter_usage(meter=meter, start=EVER[0], end=EVER[1]).value
            assert totals[meter.pk] - after == (quantity_of(report, meter) or 0), (meter.aggregation_type, report)
            totals[meter.pk] = after
            checked += 1
    assert checked == len(METERS) * len(EVENTS)


def test_quantity_equals_the_usage_of_the_event_alone_for_non_additive_types(environment):
    meters = [MeterFactory(environment=environment, event_name="llm", **kwargs) for kwargs in NON_ADDITIVE]
    events = store_events(environment)

    for event in events:
        report = event_debug_report(environment=environment, event=event)
        for meter in meters:
            alone = meter_usage(meter=meter, start=event.timestamp, end=event.timestamp + dt.timedelta(microseconds=1))
            assert quantity_of(report, meter) == alone.value


def test_a_matched_event_with_a_known_customer_is_processed_and_names_its_features(environment):
    customer = CustomerFactory(environment=environment, external_id="acme")
    meter = MeterFactory(
        environment=environment,
        event_name="llm",
        aggregation_type="SUM_WITH_MULTIPLIER",
        aggregation_field="tokens",
        multiplier="2",
    )
    feature = FeatureFactory(environment=environment, meter=meter, name="Tokens", lookup_key="tokens")
    FeatureFactory(environment=environment, meter=meter, status="deleted")
    send(environment, event_name="llm", customer="acme", timestamp="2025-01-02T00:00", properties={"tokens": "0.25"})

    report = event_debug_report(environment=environment, event=only_event(environment))

    assert report.status == "processed"
    assert report.customer_lookup.found and report.customer_lookup.customer_id == customer.public_id
    (match,) = report.meters
    assert (match.matched, match.value, match.quantity) == (True, Decimal("0.25"), Decimal("0.5"))
    assert [(f.feature_id, f.meter_id) for f in report.features] == [(feature.public_id, meter.public_id)]
    assert report.near_misses == []


def test_a_matched_event_without_customer_is_customer_not_found(environment):
    MeterFactory(environment=environment, event_name="llm")
    send(environment, event_name="llm", customer="ghost", timestamp="2025-01-02T00:00")

    report = event_debug_report(environment=environment, event=only_event(environment))

    assert report.status == "customer_not_found"
    assert report.customer_lookup.found is False and report.customer_lookup.customer_id is None


@pytest.mark.parametrize(
    ("meter_kwargs", "properties", "reason_code", "reason"),
    [
        (
            {"filters": [{"key": "region", "values": ["eu"]}]},
            {"region": "us"},
            "filter_failed",
            "Filtered out: this meter counts only events whose “region” is “eu”, and this event’s “region” is “us”.",
        ),
        (
            {"filters": [{"key": "region", "values": ["eu"]}]},
            {},
            "filter_failed",
            "Filtered out: this meter counts only events whose “region” is “eu”, and this event has no “region” "
            "property.",
        ),
        (
            {"filters": [{"key": "region", "operator": "not_contains", "values": ["e"]}]},
            {"region": "eu"},
            "filter_failed",
            "Filtered out: this meter leaves out events whose “region” contains “e”, and this event’s “region” is "
            "“eu”.",
        ),
        (
            {"aggregation_type": "SUM", "aggregation_field": "tokens"},
            {"Tokens": 3},
            "field_missing",
            "Not counted: this meter reads the number in “tokens”, and this event has no “tokens” property.",
        ),
        (
            {"aggregation_type": "SUM", "aggregation_field": "tokens"},
            {"tokens": True},
            "not_numeric",
            "Not counted: this meter reads the number in “tokens”, and this event’s “tokens” is a boolean, not a "
            "number.",
        ),
        (
            {"aggregation_type": "AVG", "aggregation_field": "tokens"},
            {"tokens": "lots"},
            "not_numeric",
            "Not counted: this meter reads the number in “tokens”, and this event’s “tokens” is a non-numeric string, "
            "not a number.",
        ),
        (
            {"aggregation_type": "COUNT_UNIQUE", "aggregation_field": "user"},
            {"user": None},
            "not_countable",
            "Not counted: this meter counts the distinct values of “user”, and this event’s “user” is null, which has "
            "no text to count.",
        ),
        (
            {"aggregation_type": "SUM", "aggregation_expression": "a / b"},
            {"a": 1, "b": 0},
            "expression_error",
            "Not counted: this meter’s expression gives no finite number for this event (a division by zero, the "
            "square root or logarithm of a value outside its domain, or an overflow).",
        ),
        (
            {"aggregation_type": "SUM", "aggregation_expression": "a + b"},
            {"a": 1, "b": "secret-value"},
            "expression_error",
            "Not counted: this meter’s expression reads “b” as a number, and this event’s “b” is a non-numeric string.",
        ),
        (
            {"aggregation_type": "SUM", "aggregation_expression": "a * b"},
            {"a": 1, "b": "1e999"},
            "expression_error",
            "Not counted: this event’s “b” is out of range for the meter’s expression (numbers must be less than "
            "1e38 in magnitude with at most 38 digits after the decimal point).",
        ),
    ],
)
def test_not_matched_meters_give_the_first_reason(environment, meter_kwargs, properties, reason_code, reason):
    MeterFactory(environment=environment, event_name="llm", **meter_kwargs)
    send(environment, event_name="llm", timestamp="2025-01-02T00:00", properties=properties)

    report = event_debug_report(environment=environment, event=only_event(environment))

    (match,) = report.meters
    assert report.status == "unmatched"
    assert (match.matched, match.reason_code) == (False, reason_code)
    assert match.reason == reason
    assert "secret-value" not in match.reason
    assert "[" not in match.reason and "'" not in match.reason  # a sentence, not a Python list or repr
    assert report.cause == ("filtered_out" if reason_code == "filter_failed" else "no_value")
    assert report.shown_status == ("filtered_out" if reason_code == "filter_failed" else "unmatched")


def test_near_misses_by_event_name_and_property_key(environment):
    near = MeterFactory(environment=environment, event_name="api.calls", name="Calls")
    keyed = MeterFactory(
        environment=environment,
        event_name="API_calls",
        name="Credits",
        aggregation_type="SUM",
        aggregation_field="credits",
    )
    MeterFactory(environment=environment, event_name="api.call", name="Different")
    MeterFactory(environment=environment, event_name="API calls", name="Draft", status="draft")
    send(environment, event_name="API.calls", timestamp="2025-01-02T00:00", properties={"Credits": 5})

    report = event_debug_report(environment=environment, event=only_event(environment))

    assert report.status == "unmatched" and report.meters == []
    assert [(m.kind, m.meter_id, m.expected, m.actual) for m in report.near_misses] == [
        ("event_name", near.public_id, "api.calls", "API.calls"),
        ("event_name", keyed.public_id, "API_calls", "API.calls"),
        ("property_key", keyed.public_id, "credits", "Credits"),
    ]


def test_a_candidate_event_is_explained_without_being_stored(environment, django_assert_max_num_queries):
    MeterFactory(
        environment=environment, event_name="llm", aggregation_type="SUM", aggregation_expression="input + output"
    )
    candidate = event_clean(
        {"event_name": "llm", "external_customer_id": "acme", "properties": {"input": 100, "output": "50"}}
    )

    with django_assert_max_num_queries(4):
        report = event_debug_report(environment=environment, event=candidate)

    assert report.meters[0].quantity == Decimal(150)
    assert report.status == "customer_not_found"
    assert stored_events(environment) == []
