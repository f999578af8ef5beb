"""Billing periods (SPEC §5.4) and current usage per customer."""

import datetime as dt
from decimal import Decimal

import pytest

from flexmeter.decimals import unit_label
from metering.usage.periods import (
    BUCKET_SIZES,
    MonthAnchor,
    billing_period_at,
    bucket_start_local,
    bucket_starts,
    buckets_nest,
    from_local,
    next_bucket_start_local,
    resolve_timezone,
)
from metering.usage.selectors import customer_current_usage
from tests.catalog.factories import FeatureFactory, MeterFactory
from tests.metering.factories import CustomerFactory
from tests.metering.usage.helpers import at, send, usage_statements


@pytest.mark.parametrize(
    ("anchor", "period", "moment", "start", "end"),
    [
        ("2025-01-31T00:00", "MONTHLY", "2025-02-15T00:00", "2025-01-31T00:00", "2025-02-28T00:00"),
        ("2025-01-31T00:00", "MONTHLY", "2025-02-28T00:00", "2025-02-28T00:00", "2025-03-31T00:00"),
        ("2025-01-31T00:00", "MONTHLY", "2025-03-31T00:00", "2025-03-31T00:00", "2025-04-30T00:00"),
        ("2024-01-31T00:00", "MONTHLY", "2024-02-29T12:00", "2024-02-29T00:00", "2024-03-31T00:00"),
        ("2025-01-31T10:30", "MONTHLY", "2025-01-31T10:29", "2024-12-31T10:30", "2025-01-31T10:30"),
        ("2025-01-15T00:00", "MONTHLY", "2024-11-20T00:00", "2024-11-15T00:00", "2024-12-15T00:00"),
        ("2025-01-15T00:00", "MONTHLY", "2025-01-15T00:00", "2025-01-15T00:00", "2025-02-15T00:00"),
        ("2025-01-01T08:00", "DAILY", "2025-03-10T07:59", "2025-03-09T08:00", "2025-03-10T08:00"),
        ("2025-01-01T00:00", "WEEKLY", "2025-01-16T00:00", "2025-01-15T00:00", "2025-01-22T00:00"),
        ("2024-11-30T00:00", "QUARTERLY", "2025-03-01T00:00", "2025-02-28T00:00", "2025-05-30T00:00"),
        ("2024-02-29T00:00", "ANNUAL", "2025-06-01T00:00", "2025-02-28T00:00", "2026-02-28T00:00"),
        ("2024-02-29T00:00", "ANNUAL", "2028-03-01T00:00", "2028-02-29T00:00", "2029-02-28T00:00"),
    ],
)
def test_billing_period_at(anchor, period, moment, start, end):
    assert billing_period_at(anchor=at(anchor), period=period, at=at(moment)) == (at(start), at(end))


def test_billing_periods_tile_time_without_gaps():
    anchor = at("2025-01-31T00:00")
    moment = at("2024-06-01T00:00")
    previous_end = None
    for _ in range(30):
        start, end = billing_period_at(anchor=anchor, period="MONTHLY", at=moment)
        assert start <= moment < end
        assert previous_end is None or previous_end == start
        previous_end, moment = end, end


def test_unknown_time_zone_and_period_are_validation_errors():
    from flexmeter.errors import ValidationFailed

    with pytest.raises(ValidationFailed):
        resolve_timezone("Nowhere/Town")
    with pytest.raises(ValidationFailed):
        billing_period_at(anchor=at("2025-01-01T00:00"), period="HOURLY", at=at("2025-01-02T00:00"))


def test_local_bucket_starts_and_dst():
    local = dt.datetime(2025, 3, 30, 3, 30)  # Berlin, just after the spring-forward jump
    assert bucket_start_local(local, "DAY") == dt.datetime(2025, 3, 30)
    assert from_local(dt.datetime(2025, 3, 30), resolve_timezone("Europe/Berlin")) == at("2025-03-29T23:00")
    assert from_local(dt.datetime(2025, 3, 31), resolve_timezone("Europe/Berlin")) == at("2025-03-30T22:00")
    assert bucket_start_local(dt.datetime(2025, 3, 5, 17, 44), "3HOUR") == dt.datetime(2025, 3, 5, 15)


def test_bucket_starts_are_the_engines_buckets_in_any_zone():
    # The partial first hour counts; a Berlin day is 23 hours long on the spring DST change.
    assert bucket_starts(start=at("2025-03-05T10:30"), end=at("2025-03-05T12:00"), size="HOUR") == [
        at("2025-03-05T10:00"),
        at("2025-03-05T11:00"),
    ]
    berlin = resolve_timezone("Europe/Berlin")
    assert bucket_starts(start=at("2025-03-29T12:00"), end=at("2025-03-31T12:00"), size="DAY", zone=berlin) == [
        at("2025-03-28T23:00"),
        at("2025-03-29T23:00"),
        at("2025-03-30T22:00"),
    ]
    assert bucket_starts(start=at("2025-01-01T00:00"), end=at("2025-01-15T00:00"), size="WEEK") == [
        at("2024-12-30T00:00"),
        at("2025-01-06T00:00"),
        at("2025-01-13T00:00"),
    ]


def lies_in_one_window(bucket: str, window: str, anchor=None) -> bool:
    """Every bucket of 2025-01-20 to 2025-02-12 (local wall-clock time: a Monday, a week start, a month start) lies in
    one window: its first and last microsecond start the same window."""
    start = bucket_start_local(dt.datetime(2025, 1, 20), bucket, anchor)
    while start < dt.datetime(2025, 2, 12):
        following = next_bucket_start_local(start, bucket, anchor)
        last = following - dt.timedelta(microseconds=1)
        if bucket_start_local(start, window, anchor) != bucket_start_local(last, window, anchor):
            return False
        start = following
    return True


@pytest.mark.parametrize("bucket", BUCKET_SIZES)
def test_buckets_nest_in_a_window_exactly_where_none_spans_two(bucket):
    for window in BUCKET_SIZES:
        assert buckets_nest(bucket, window) == lies_in_one_window(bucket, window), (bucket, window)
    # a month anchored at 10:30 on the 5th cuts days and every fixed step but 30 minutes and finer
    anchor = MonthAnchor(day=5, time=dt.time(10, 30))
    assert buckets_nest("MONTH", "MONTH", anchor) and lies_in_one_window("MONTH", "MONTH", anchor)
    if bucket in ("HOUR", "DAY", "WEEK"):
        assert not buckets_nest(bucket, "MONTH", anchor) and not lies_in_one_window(bucket, "MONTH", anchor)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal(1), "credit"),
        (Decimal(0), "credits"),
        (Decimal("2.5"), "credits"),
        (None, "credits"),
        (Decimal("1.0"), "credit"),
    ],
)
def test_unit_label(value, expected):
    assert unit_label(value=value, singular="credit", plural="credits") == expected


@pytest.mark.django_db
def test_customer_current_usage_covers_every_metered_feature_in_one_query(environment, django_assert_num_queries):
    customer = CustomerFactory(environment=environment, external_id="acme", billing_anchor=at("2025-01-31T00:00"))
    calls = FeatureFactory(
        environment=environment,
        name="Calls",
        unit_singular="call",
        unit_plural="calls",
        meter=MeterFactory(environment=environment, event_name="api.call"),
    )
    seats = FeatureFactory(
        environment=environment,
        name="Seats",
        unit_singular="seat",
        unit_plural="seats",
        meter=MeterFactory(
            environment=environment,
            event_name="seat",
            aggregation_type="SUM",
            aggregation_field="delta",
            reset_usage="NEVER",
        ),
    )
    FeatureFactory(environment=environment, name="Deleted", status="deleted")
    FeatureFactory(environment=environment, name="Flag", type="boolean", meter=None)
    send(environment, event_name="api.call", customer="acme", timestamp="2025-02-27T23:59")  # previous period
    send(environment, event_name="api.call", customer="acme", timestamp="2025-02-28T00:00")
    send(environment, event_name="api.call", customer="other", timestamp="2025-03-01T00:00")
    send(environment, event_name="seat", customer="acme", timestamp="2024-12-01T00:00", properties={"delta": 3})
    send(environment, event_name="seat", customer="acme", timestamp="2025-03-01T00:00", properties={"delta": -2})

    with django_assert_num_queries(1 + usage_statements()):  # the features, then their usage
        usage = customer_current_usage(customer=customer, at=at("2025-03-10T00:00"))

    assert (usage.period_start, usage.period_end) == (at("2025-02-28T00:00"), at("2025-03-31T00:00"))
    rows = [(f.feature, f.value, f.unit, f.next_usage_reset_at) for f in usage.features]
    assert rows == [
        (calls, Decimal(1), "call", at("2025-03-31T00:00")),
        (seats, Decimal(1), "seat", None),
    ]
