"""The usage engine, rule by rule with concrete numbers (SPEC §3, §4, §5). Runs on PostgreSQL and SQLite."""

from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from flexmeter.errors import InvalidOperation, ValidationFailed
from metering import exactjson
from metering.clickhouse.rows import representable
from metering.usage.dialects.base import Params
from metering.usage.dialects.postgres import PostgresDialect
from metering.usage.engine import run_usage_queries
from metering.usage.numbers import numeric_value
from metering.usage.predicate import filter_sql, match_sql
from metering.usage.selectors import meter_usage, meter_usage_by_customer
from metering.usage.spec import AggregationSpec, Filter, UsageQuery
from tests.catalog.factories import MeterFactory
from tests.factories import EnvironmentFactory
from tests.metering.usage.helpers import at, on_clickhouse, send, usage_statements

pytestmark = pytest.mark.django_db

JAN = (at("2025-01-01T00:00"), at("2025-02-01T00:00"))


def beyond_clickhouse(properties: str) -> bool:
    """Whether an event's JSON holds a number Decimal256(20) cannot represent (ClickHouse then refuses exactly)."""
    value = numeric_value(exactjson.loads(properties).get("v")) if properties.startswith("{") else None
    return value is not None and not representable(value)


def meter_for(environment, aggregation_type, field="v", **kwargs):
    return MeterFactory(
        environment=environment,
        event_name="usage",
        aggregation_type=aggregation_type,
        aggregation_field="" if aggregation_type == "COUNT" else field,
        **kwargs,
    )


def total(environment, aggregation_type, values, *, window=JAN, **meter_kwargs):
    """Send one event per value (JSON text or dict) on consecutive hours of January, return the meter total."""
    meter = meter_for(environment, aggregation_type, **meter_kwargs)
    for hour, properties in enumerate(values):
        send(environment, event_name="usage", timestamp=f"2025-01-02T{hour:02d}:00", properties=properties)
    return meter_usage(meter=meter, start=window[0], end=window[1]).value


# --- numbers (SPEC §3) -----------------------------------------------------------------------------------------

NON_NUMERIC = [
    '{"v": true}',
    '{"v": false}',
    '{"v": null}',
    '{"v": "abc"}',
    '{"v": "NaN"}',
    '{"v": "Infinity"}',
    '{"v": "-inf"}',
    '{"v": "1,5"}',
    '{"v": "0x10"}',
    '{"v": ""}',
    '{"v": {"x": 1}}',
    '{"v": [1]}',
    '{"other": 3}',
]


@pytest.mark.parametrize(
    ("aggregation_type", "values", "expected"),
    [
        ("SUM", ['{"v": 0.1}'] * 10, Decimal("1")),
        ("SUM", ['{"v": "12"}', '{"v": " 1e3 "}', '{"v": "-0.5"}', '{"v": 2}', '{"v": "+.5"}'], Decimal("1014")),
        ("SUM", ['{"v": 5}', *NON_NUMERIC], Decimal("5")),
        ("SUM", NON_NUMERIC, Decimal("0")),
        ("SUM", ['{"v": -3}', '{"v": 1}'], Decimal("-2")),
        (
            "SUM",
            ['{"v": 12345678901234567890.123456789}', '{"v": "0.000000000000000000001"}'],
            Decimal("12345678901234567890.123456789000000000001"),
        ),
        ("SUM", ['{"v": 99999999999999999999}', '{"v": 1}'], Decimal("100000000000000000000")),
        ("AVG", ['{"v": 10}', '{"v": "20"}', *NON_NUMERIC], Decimal("15")),
        ("AVG", ['{"v": 1}', '{"v": 1}', '{"v": 2}'], Decimal("1.33333333333333333333")),
        (
            "AVG",
            ['{"v": 1}', '{"v": 1}', '{"v": 2}', '{"v": 1}', '{"v": 1}', '{"v": 2}'],
            Decimal("1.33333333333333333333"),
        ),
        ("AVG", ['{"v": 2}', '{"v": 2}', '{"v": 1}'], Decimal("1.66666666666666666667")),
        ("AVG", NON_NUMERIC, None),
        ("MIN", ['{"v": 4}', '{"v": "-3"}', '{"v": 7.25}', *NON_NUMERIC], Decimal("-3")),
        ("MAX", ['{"v": 4}', '{"v": "-3"}', '{"v": 7.25}', *NON_NUMERIC], Decimal("7.25")),
        ("MAX", ['{"v": "10"}', '{"v": 9.99}'], Decimal("10")),
        ("MIN", NON_NUMERIC, None),
        ("MAX", [], None),
        ("LATEST", [], None),
        ("COUNT", [], Decimal(0)),
        ("COUNT", ['{"v": 1}', "{}", '{"v": "abc"}'], Decimal(3)),
        ("COUNT_UNIQUE", [], Decimal(0)),
        ("WEIGHTED_SUM", [], Decimal(0)),
        ("SUM_WITH_MULTIPLIER", [], Decimal(0)),
    ],
)
def test_value_aggregations_are_exact_and_exclude_non_numeric_values(environment, aggregation_type, values, expected):
    meter_kwargs = {"multiplier": "2"} if aggregation_type == "SUM_WITH_MULTIPLIER" else {}
    if on_clickhouse() and any(beyond_clickhouse(value) for value in values):
        with pytest.raises(InvalidOperation, match="cannot be computed exactly on the ClickHouse"):
            total(environment, aggregation_type, values, **meter_kwargs)
        return
    assert total(environment, aggregation_type, values, **meter_kwargs) == expected


def test_sum_with_multiplier_multiplies_the_exact_sum(environment):
    values = ['{"v": 0.1}', '{"v": 0.1}', '{"v": "0.1"}']
    assert total(environment, "SUM_WITH_MULTIPLIER", values, multiplier="2.5") == Decimal("0.75")


def test_sum_with_multiplier_keeps_twenty_digits(environment):
    values = ['{"v": 1.00000000000000000001}']
    assert total(environment, "SUM_WITH_MULTIPLIER", values, multiplier="3") == Decimal("3.00000000000000000003")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # number 1 and string "1" share the canonical text "1"; true and "true" share "true"
        (['{"v": 1}', '{"v": "1"}', '{"v": 1.5}', '{"v": "1.5"}', '{"v": "a"}', '{"v": "a"}'], 3),
        (['{"v": true}', '{"v": "true"}', '{"v": false}', '{"v": null}', "{}", '{"v": {"a": 1}}'], 2),
        (['{"v": "A"}', '{"v": "a"}', '{"v": " a"}'], 3),
        (['{"v": 1.50}', '{"v": 1.5}'], 2),
    ],
)
def test_count_unique_compares_canonical_text(environment, values, expected):
    assert total(environment, "COUNT_UNIQUE", values) == Decimal(expected)


# --- LATEST -----------------------------------------------------------------------------------------------


def test_latest_takes_the_greatest_timestamp_not_the_last_delivery(environment):
    meter = meter_for(environment, "LATEST")
    send(environment, event_name="usage", timestamp="2025-01-10T00:00", properties={"v": 7})
    send(environment, event_name="usage", timestamp="2025-01-05T00:00", properties={"v": 3})

    assert meter_usage(meter=meter, start=JAN[0], end=JAN[1]).value == Decimal(7)


def test_latest_tie_on_timestamp_goes_to_the_later_delivery(environment):
    meter = meter_for(environment, "LATEST")
    send(environment, event_name="usage", timestamp="2025-01-10T00:00", event_id="zzz", properties={"v": 1})
    send(environment, event_name="usage", timestamp="2025-01-10T00:00", event_id="aaa", properties={"v": 2})
    assert meter_usage(meter=meter, start=JAN[0], end=JAN[1]).value == Decimal(2)

    send(environment, event_name="usage", timestamp="2025-01-10T00:00", event_id="zzz", properties={"v": 5})
    assert meter_usage(meter=meter, start=JAN[0], end=JAN[1]).value == Decimal(5)


def test_latest_skips_events_without_a_numeric_value(environment):
    meter = meter_for(environment, "LATEST")
    send(environment, event_name="usage", timestamp="2025-01-10T00:00", properties={"v": "4.5"})
    send(environment, event_name="usage", timestamp="2025-01-11T00:00", properties={"v": "n/a"})

    assert meter_usage(meter=meter, start=JAN[0], end=JAN[1]).value == Decimal("4.5")


# --- WEIGHTED_SUM -------------------------------------------------------------------------------------------


def test_weighted_sum_matches_the_spec_example(environment):
    meter = meter_for(environment, "WEIGHTED_SUM")
    for timestamp, change in [("2025-08-16T00:00", 20), ("2025-08-18T00:00", 10), ("2025-08-20T00:00", 10)]:
        send(environment, event_name="usage", timestamp=timestamp, properties={"v": change})
    send(environment, event_name="usage", timestamp="2025-08-25T00:00", properties={"v": 5})

    value = meter_usage(meter=meter, start=at("2025-07-31T18:30"), end=at("2025-08-31T18:30")).value

    expected = (Decimal(9675) / Decimal(496)).quantize(Decimal("1e-20"), rounding=ROUND_HALF_UP)
    assert value == expected == Decimal("19.50604838709677419355")


def test_weighted_sum_never_carries_the_earlier_level_in(environment):
    meter = meter_for(environment, "WEIGHTED_SUM", reset_usage="NEVER")
    send(environment, event_name="usage", timestamp="2024-12-01T00:00", properties={"v": 10})
    send(environment, event_name="usage", timestamp="2025-01-06T00:00", properties={"v": 5})
    start, end = at("2025-01-01T00:00"), at("2025-01-11T00:00")

    assert meter_usage(meter=meter, start=start, end=end).value == Decimal("12.5")


def test_weighted_sum_billing_period_starts_from_zero(environment):
    meter = meter_for(environment, "WEIGHTED_SUM")
    send(environment, event_name="usage", timestamp="2024-12-01T00:00", properties={"v": 10})
    send(environment, event_name="usage", timestamp="2025-01-06T00:00", properties={"v": 5})
    start, end = at("2025-01-01T00:00"), at("2025-01-11T00:00")

    assert meter_usage(meter=meter, start=start, end=end).value == Decimal("2.5")


def test_weighted_sum_windows_carry_the_level_for_never(environment):
    meter = meter_for(environment, "WEIGHTED_SUM", reset_usage="NEVER")
    send(environment, event_name="usage", timestamp="2024-12-01T00:00", properties={"v": 10})
    send(environment, event_name="usage", timestamp="2025-01-01T12:00", properties={"v": 4})
    send(environment, event_name="usage", timestamp="2025-01-02T06:00", properties={"v": -8})

    result = meter_usage(meter=meter, start=at("2025-01-01T00:00"), end=at("2025-01-03T00:00"), window_size="DAY")

    assert result.windows == [(at("2025-01-01T00:00"), Decimal(12)), (at("2025-01-02T00:00"), Decimal(8))]
    assert result.value == Decimal(10)


def test_weighted_sum_window_whose_changes_cancel_still_weighs_when_they_happened(environment):
    """Hour 0's changes sum to zero but were held for different times (+1 for 45 minutes, -1 for 15); hour 1's only
    change is 0, which adds nothing. Both hours' first partial is 0: only the second tells them apart. The level
    carried in (10.5) plus hour 0's 0.5 is spelled 11, as every value is, without a trailing zero."""
    meter = meter_for(environment, "WEIGHTED_SUM", reset_usage="NEVER")
    send(environment, event_name="usage", timestamp="2024-12-01T00:00", properties={"v": 10.5})
    for timestamp, change in [("00:15", 1), ("00:45", -1), ("01:30", 0), ("02:30", 2)]:
        send(environment, event_name="usage", timestamp=f"2025-01-01T{timestamp}", properties={"v": change})

    result = meter_usage(meter=meter, start=at("2025-01-01T00:00"), end=at("2025-01-01T03:00"), window_size="HOUR")

    assert [(start, str(value)) for start, value in result.windows] == [
        (at("2025-01-01T00:00"), "11"),
        (at("2025-01-01T01:00"), "10.5"),
        (at("2025-01-01T02:00"), "11.5"),
    ]
    assert str(result.value) == "11"


# --- buckets and group_by (SPEC §5.2) ---------------------------------------------------------------------


def test_max_with_hour_buckets_sums_the_bucket_maxima(environment):
    meter = meter_for(environment, "MAX", bucket_size="HOUR")
    for timestamp, value in [("07:05", 8), ("07:20", 4), ("07:59", "bad"), ("08:00", 10), ("08:30", 5), ("08:59", 9)]:
        send(environment, event_name="usage", timestamp=f"2025-01-02T{timestamp}", properties={"v": value})

    result = meter_usage(meter=meter, start=JAN[0], end=JAN[1])

    assert result.value == Decimal(18)
    assert result.windows == [(at("2025-01-02T07:00"), Decimal(8)), (at("2025-01-02T08:00"), Decimal(10))]


def test_max_with_group_by_sums_maxima_per_bucket_and_group(environment):
    meter = meter_for(environment, "MAX", bucket_size="HOUR", group_by="instance")
    for timestamp, instance, value in [("10:00", "a", 10), ("10:30", "b", 20), ("11:15", "a", 15)]:
        send(
            environment,
            event_name="usage",
            timestamp=f"2025-01-02T{timestamp}",
            properties={"v": value, "instance": instance},
        )

    result = meter_usage(meter=meter, start=JAN[0], end=JAN[1])

    assert result.value == Decimal(45)
    assert result.windows == [(at("2025-01-02T10:00"), Decimal(30)), (at("2025-01-02T11:00"), Decimal(15))]


def test_bucketed_max_with_a_coarser_window_sums_buckets_inside_each_window(environment):
    meter = meter_for(environment, "MAX", bucket_size="HOUR")
    for timestamp, value in [("2025-01-02T07:05", 8), ("2025-01-02T08:00", 10), ("2025-01-03T01:00", 1)]:
        send(environment, event_name="usage", timestamp=timestamp, properties={"v": value})

    result = meter_usage(meter=meter, start=JAN[0], end=JAN[1], window_size="DAY")

    assert result.value == Decimal(19)
    assert result.windows == [(at("2025-01-02T00:00"), Decimal(18)), (at("2025-01-03T00:00"), Decimal(1))]


TOTAL_PART = "AS tag, 0 AS part"  # in the SQL of a statement that reads the total apart from the windows

# Around New York's DST change: 05:10Z and 06:20Z on 2 November are both 01:xx local, one bucket of the repeated hour.
AUTUMN_EVENTS = [
    ("2025-10-31T23:50", "a", 5),
    ("2025-11-01T00:05", "a", 6),
    ("2025-11-02T05:10", "a", 7),
    ("2025-11-02T06:20", "a", 9),
    ("2025-11-02T06:40", "b", 4),
    ("2025-11-03T18:20", "a", 3),
]


@pytest.mark.parametrize(
    ("bucket", "window", "zone", "expected"),
    [
        # buckets 19:00 and 20:00 on 31 October, 01:00 on 2 November (a 9, b 4), 13:00 on the 3rd: windows 11, 13, 3
        ("HOUR", "DAY", "America/New_York", [Decimal(11), Decimal(13), Decimal(3)]),
        # 05:20 and 05:35 on 1 November are one bucket, 10:40, 11:50 and 12:10 three on the 2nd, 23:50 on the 3rd
        ("HOUR", "DAY", "Asia/Kolkata", [Decimal(6), Decimal(20), Decimal(3)]),
        ("15MIN", "HOUR", "Asia/Kathmandu", None),
        ("3HOUR", "WEEK", "UTC", None),
        ("DAY", "MONTH", "America/New_York", None),
    ],
)
def test_bucketed_max_in_windows_of_whole_buckets_adds_up_to_the_total_without_windows(
    environment, bucket, window, zone, expected
):
    meter = meter_for(environment, "MAX", bucket_size=bucket, group_by="instance")
    for timestamp, instance, value in AUTUMN_EVENTS:
        send(environment, event_name="usage", timestamp=timestamp, properties={"v": value, "instance": instance})
    span = {"meter": meter, "start": at("2025-10-20T00:00"), "end": at("2025-11-20T00:00"), "timezone": zone}

    with CaptureQueriesContext(connection) as captured:
        windowed = meter_usage(**span, window_size=window)
    by_bucket = meter_usage(**span)

    assert windowed.value == by_bucket.value == sum(window.value for window in by_bucket.windows)
    assert windowed.value == sum(window.value for window in windowed.windows)
    if expected is not None:
        assert [window.value for window in windowed.windows] == expected
    assert not any(TOTAL_PART in query["sql"] for query in captured.captured_queries)  # no second scan for the total


def test_bucketed_max_in_windows_that_cut_its_buckets_takes_the_total_over_whole_buckets(environment):
    # one day bucket: its maximum is 7, though its hours' windows hold 5 and 7
    meter = meter_for(environment, "MAX", bucket_size="DAY")
    for timestamp, value in [("2025-01-02T10:00", 5), ("2025-01-02T11:00", 7)]:
        send(environment, event_name="usage", timestamp=timestamp, properties={"v": value})

    with CaptureQueriesContext(connection) as captured:
        result = meter_usage(meter=meter, start=JAN[0], end=JAN[1], window_size="HOUR")

    assert on_clickhouse() or any(TOTAL_PART in query["sql"] for query in captured.captured_queries)
    assert result.value == Decimal(7)
    assert [window.value for window in result.windows] == [Decimal(5), Decimal(7)]


def test_sum_with_buckets_reports_per_bucket_and_the_plain_total(environment):
    meter = meter_for(environment, "SUM", bucket_size="15MIN")
    for minute, value in [(0, 1), (14, 2), (15, 4), (59, 8)]:
        send(environment, event_name="usage", timestamp=f"2025-01-02T10:{minute:02d}", properties={"v": value})

    result = meter_usage(meter=meter, start=JAN[0], end=JAN[1])

    assert result.value == Decimal(15)
    assert result.windows == [
        (at("2025-01-02T10:00"), Decimal(3)),
        (at("2025-01-02T10:15"), Decimal(4)),
        (at("2025-01-02T10:45"), Decimal(8)),
    ]


# --- windows, time zones, weeks, months (SPEC §5.2, §5.3) ---------------------------------------------------


def window_starts(environment, timestamps, *, window_size, aggregation_type="COUNT", **kwargs):
    meter = meter_for(environment, aggregation_type)
    for timestamp in timestamps:
        send(environment, event_name="usage", timestamp=timestamp, properties={"v": 1})
    start, end = kwargs.pop("window", (at("2024-01-01T00:00"), at("2026-01-01T00:00")))
    result = meter_usage(meter=meter, start=start, end=end, window_size=window_size, **kwargs)
    return [(window.start, window.value) for window in result.windows]


def test_day_windows_follow_the_time_zone(environment):
    timestamps = ["2025-03-01T03:00", "2025-03-01T06:00", "2025-03-01T07:00"]

    assert window_starts(environment, timestamps, window_size="DAY") == [(at("2025-03-01T00:00"), Decimal(3))]
    assert window_starts(environment, [], window_size="DAY", timezone="America/New_York") == [
        (at("2025-02-28T05:00"), Decimal(1)),
        (at("2025-03-01T05:00"), Decimal(2)),
    ]


def test_hour_windows_in_a_half_hour_zone(environment):
    timestamps = ["2025-03-01T00:10", "2025-03-01T00:40"]

    assert window_starts(environment, timestamps, window_size="HOUR", timezone="Asia/Kolkata") == [
        (at("2025-02-28T23:30"), Decimal(1)),
        (at("2025-03-01T00:30"), Decimal(1)),
    ]


def test_weeks_start_on_monday(environment):
    timestamps = ["2025-03-09T23:59", "2025-03-10T00:00", "2025-03-16T12:00"]

    assert window_starts(environment, timestamps, window_size="WEEK") == [
        (at("2025-03-03T00:00"), Decimal(1)),
        (at("2025-03-10T00:00"), Decimal(2)),
    ]


def test_weeks_start_on_monday_in_the_time_zone(environment):
    # Monday 2025-03-10 00:30 in Berlin is still Sunday in UTC
    timestamps = ["2025-03-09T23:30"]

    assert window_starts(environment, timestamps, window_size="WEEK", timezone="Europe/Berlin") == [
        (at("2025-03-09T23:00"), Decimal(1)),
    ]


def test_month_windows_start_on_the_first_or_on_the_clamped_anchor_day(environment):
    timestamps = ["2025-02-27T12:00", "2025-02-28T12:00", "2025-03-30T12:00", "2025-03-31T12:00"]

    assert window_starts(environment, timestamps, window_size="MONTH") == [
        (at("2025-02-01T00:00"), Decimal(2)),
        (at("2025-03-01T00:00"), Decimal(2)),
    ]
    assert window_starts(environment, [], window_size="MONTH", billing_anchor=at("2024-01-31T10:00")) == [
        (at("2025-01-31T10:00"), Decimal(1)),
        (at("2025-02-28T10:00"), Decimal(2)),
        (at("2025-03-31T10:00"), Decimal(1)),
    ]


def test_windows_omit_empty_windows_and_stay_in_order(environment):
    timestamps = ["2025-01-05T00:00", "2025-01-01T00:00", "2025-01-05T10:00"]

    assert window_starts(environment, timestamps, window_size="DAY") == [
        (at("2025-01-01T00:00"), Decimal(1)),
        (at("2025-01-05T00:00"), Decimal(2)),
    ]


def test_count_unique_per_window_is_distinct_within_the_window(environment):
    meter = meter_for(environment, "COUNT_UNIQUE", field="user")
    for timestamp, user in [("2025-01-01T01:00", "a"), ("2025-01-01T02:00", "b"), ("2025-01-02T01:00", "a")]:
        send(environment, event_name="usage", timestamp=timestamp, properties={"user": user})

    result = meter_usage(meter=meter, start=JAN[0], end=JAN[1], window_size="DAY")

    assert result.value == Decimal(2)
    assert result.windows == [(at("2025-01-01T00:00"), Decimal(2)), (at("2025-01-02T00:00"), Decimal(1))]


def test_avg_min_latest_per_window(environment):
    for aggregation_type, expected in [("AVG", ["2", "5"]), ("MIN", ["1", "5"]), ("LATEST", ["3", "5"])]:
        meter = MeterFactory(
            environment=environment,
            event_name=f"w.{aggregation_type}",
            aggregation_type=aggregation_type,
            aggregation_field="v",
        )
        for timestamp, value in [("2025-01-01T01:00", 1), ("2025-01-01T02:00", 3), ("2025-01-02T01:00", 5)]:
            send(environment, event_name=f"w.{aggregation_type}", timestamp=timestamp, properties={"v": value})
        result = meter_usage(meter=meter, start=JAN[0], end=JAN[1], window_size="DAY")
        assert [window.value for window in result.windows] == [Decimal(v) for v in expected], aggregation_type


def test_an_unknown_time_zone_is_a_validation_error(environment):
    meter = meter_for(environment, "COUNT")

    with pytest.raises(ValidationFailed) as excinfo:
        meter_usage(meter=meter, start=JAN[0], end=JAN[1], window_size="DAY", timezone="Mars/Olympus")
    assert "timezone" in excinfo.value.details


def test_an_unknown_window_size_and_an_end_before_the_start_are_validation_errors(environment):
    meter = meter_for(environment, "COUNT")

    with pytest.raises(ValidationFailed) as excinfo:
        meter_usage(meter=meter, start=JAN[1], end=JAN[0], window_size="FORTNIGHT")
    assert set(excinfo.value.details) == {"window_size", "end_time"}


# --- windows are half-open; reset NEVER (SPEC §5, §5.4) ---------------------------------------------------


def test_windows_are_half_open(environment):
    meter = meter_for(environment, "COUNT")
    for timestamp in ["2024-12-31T23:59:59.999999", "2025-01-01T00:00", "2025-01-31T23:59:59", "2025-02-01T00:00"]:
        send(environment, event_name="usage", timestamp=timestamp)

    assert meter_usage(meter=meter, start=JAN[0], end=JAN[1]).value == Decimal(2)


@pytest.mark.parametrize(
    ("aggregation_type", "billing_period", "never"),
    [("COUNT", 1, 3), ("SUM", 4, 7), ("MAX", 4, 4), ("MIN", 4, 1), ("COUNT_UNIQUE", 1, 3), ("LATEST", 4, 4)],
)
def test_reset_never_covers_everything_before_the_end(environment, aggregation_type, billing_period, never):
    values = []
    for reset in ("BILLING_PERIOD", "NEVER"):
        meter = MeterFactory(
            environment=environment,
            event_name=f"r.{reset}",
            aggregation_type=aggregation_type,
            aggregation_field="v",
            reset_usage=reset,
        )
        for timestamp, value in [("2024-11-01T00:00", 1), ("2024-12-01T00:00", 2), ("2025-01-05T00:00", 4)]:
            send(environment, event_name=f"r.{reset}", timestamp=timestamp, properties={"v": value})
        send(environment, event_name=f"r.{reset}", timestamp="2025-02-05T00:00", properties={"v": 100})
        values.append(meter_usage(meter=meter, start=JAN[0], end=JAN[1]).value)

    assert values == [Decimal(billing_period), Decimal(never)]


def test_reset_never_windows_still_cover_only_their_window(environment):
    meter = meter_for(environment, "SUM", reset_usage="NEVER")
    send(environment, event_name="usage", timestamp="2024-12-01T00:00", properties={"v": 10})
    send(environment, event_name="usage", timestamp="2025-01-03T00:00", properties={"v": 1})

    result = meter_usage(meter=meter, start=JAN[0], end=JAN[1], window_size="DAY")

    assert result.value == Decimal(11)
    assert result.windows == [(at("2025-01-03T00:00"), Decimal(1))]


# --- filters (SPEC §4) --------------------------------------------------------------------------------------

FILTER_EVENTS = [
    {"region": "eu", "model": "gpt-4", "status": 200, "flag": True},
    {"region": "us", "model": "my-gpt", "status": "200", "flag": False},
    {"region": "EU", "model": "claude", "status": 201, "flag": "true"},
    {"region": None, "model": ["gpt"], "status": 200.5},
    {},
]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ([{"key": "region", "operator": "in", "values": ["eu"]}], 1),
        ([{"key": "region", "values": ["eu", "us"]}], 2),
        ([{"key": "region", "operator": "not_in", "values": ["eu"]}], 4),
        ([{"key": "model", "operator": "contains", "values": ["gpt"]}], 2),
        ([{"key": "model", "operator": "contains", "values": ["xx", "claude"]}], 1),
        ([{"key": "model", "operator": "not_contains", "values": ["gpt"]}], 3),
        ([{"key": "status", "operator": "in", "values": ["200"]}], 2),
        ([{"key": "status", "operator": "in", "values": ["200.5"]}], 1),
        ([{"key": "flag", "operator": "in", "values": ["true"]}], 2),
        ([{"key": "flag", "operator": "not_in", "values": ["true", "false"]}], 2),
        ([{"key": "missing", "operator": "not_in", "values": ["x"]}], 5),
        ([{"key": "missing", "operator": "not_contains", "values": ["x"]}], 5),
        ([{"key": "missing", "operator": "in", "values": ["x"]}], 0),
        ([{"key": "missing", "operator": "contains", "values": [""]}], 0),
        ([{"key": "region", "values": ["eu", "us"]}, {"key": "status", "values": ["200"]}], 2),
        ([{"key": "region", "values": ["eu"]}, {"key": "model", "operator": "not_contains", "values": ["4"]}], 0),
        ([{"key": "model", "operator": "contains", "values": ["%"]}], 0),
    ],
)
def test_filters(environment, filters, expected):
    meter = MeterFactory(environment=environment, event_name="usage", aggregation_type="COUNT", filters=filters)
    for properties in FILTER_EVENTS:
        send(environment, event_name="usage", timestamp="2025-01-02T00:00", properties=properties)

    assert meter_usage(meter=meter, start=JAN[0], end=JAN[1]).value == Decimal(expected)


@pytest.mark.parametrize("operator", ["in", "not_in", "contains", "not_contains"])
def test_a_filter_looks_its_property_up_once(operator):
    # each copy of the property's text is a lookup per event (two JSON lookups on PostgreSQL), evaluated again
    sql = filter_sql(Filter(key="region", operator=operator, values=("eu",)), PostgresDialect(), Params())
    assert sql.count("jsonb_typeof") == 1 and sql.count("->>") == 1, sql


@pytest.mark.parametrize("operator", ["in", "not_in"])
def test_a_filter_compares_the_text_before_checking_its_type(operator):
    # most events fail the comparison: checked first, it spares them the type's JSON lookup
    sql = filter_sql(Filter(key="region", operator=operator, values=("eu",)), PostgresDialect(), Params())
    assert sql.index("->>") < sql.index("jsonb_typeof"), sql


def test_a_numeric_field_is_tested_for_a_value_without_converting_it():
    # the unmatched names and the stream's statuses test every event of a numeric meter's name for a value
    sql = match_sql(
        AggregationSpec(event_name="llm", aggregation_type="SUM", field="tokens"), PostgresDialect(), Params()
    )
    assert "jsonb_typeof" in sql and "::numeric" not in sql, sql


def test_event_name_matching_is_exact(environment):
    meter = meter_for(environment, "COUNT")
    for name in ["usage", "Usage", "usage ", "usage.x"]:
        send(environment, event_name=name, timestamp="2025-01-02T00:00")

    assert meter_usage(meter=meter, start=JAN[0], end=JAN[1]).value == Decimal(1)


# --- duplicates, customers, environments --------------------------------------------------------------------


def test_a_redelivered_event_replaces_the_earlier_delivery(environment):
    meter = meter_for(environment, "SUM")
    send(environment, event_name="usage", timestamp="2025-01-02T00:00", event_id="dup", properties={"v": 5})
    send(environment, event_name="usage", timestamp="2025-01-02T00:00", event_id="dup", properties={"v": 5})
    send(environment, event_name="usage", timestamp="2025-01-03T00:00", event_id="dup", properties={"v": 7})
    send(environment, event_name="usage", timestamp="2025-01-03T00:00", event_id="other", properties={"v": 1})

    assert meter_usage(meter=meter, start=JAN[0], end=JAN[1]).value == Decimal(8)
    count = meter_for(environment, "COUNT")
    assert meter_usage(meter=count, start=JAN[0], end=JAN[1]).value == Decimal(2)


def test_customers_are_separated_and_grouped_in_one_query(environment, django_assert_num_queries):
    meter = meter_for(environment, "SUM")
    for customer, value in [("a", 1), ("a", 2), ("b", 5), ("c", "x")]:
        send(environment, event_name="usage", timestamp="2025-01-02T00:00", customer=customer, properties={"v": value})

    assert meter_usage(meter=meter, customer_external_id="a", start=JAN[0], end=JAN[1]).value == Decimal(3)
    assert meter_usage(meter=meter, customer_external_id="zz", start=JAN[0], end=JAN[1]).value == Decimal(0)
    assert meter_usage(meter=meter, start=JAN[0], end=JAN[1]).value == Decimal(8)
    with django_assert_num_queries(usage_statements(looked_up_lately=True)):  # the calls above looked it up
        by_customer = meter_usage_by_customer(meter=meter, start=JAN[0], end=JAN[1])
    assert by_customer == {"a": Decimal(3), "b": Decimal(5), "c": Decimal(0)}


@pytest.mark.parametrize("aggregation_type", ["LATEST", "MAX", "AVG", "WEIGHTED_SUM", "COUNT_UNIQUE"])
def test_by_customer_for_every_shape_of_query(environment, aggregation_type):
    meter = meter_for(environment, aggregation_type, bucket_size="DAY" if aggregation_type == "MAX" else "")
    for customer, day, value in [("a", 2, 1), ("a", 3, 3), ("b", 2, 5)]:
        send(
            environment,
            event_name="usage",
            timestamp=f"2025-01-{day:02d}T00:00",
            customer=customer,
            properties={"v": value},
        )

    by_customer = meter_usage_by_customer(meter=meter, start=JAN[0], end=JAN[1])
    singles = {c: meter_usage(meter=meter, customer_external_id=c, start=JAN[0], end=JAN[1]).value for c in "ab"}

    assert by_customer == singles


def test_other_environments_are_never_read(environment):
    other = EnvironmentFactory(slug="other")
    meter = meter_for(environment, "COUNT")
    send(other, event_name="usage", timestamp="2025-01-02T00:00")

    assert meter_usage(meter=meter, start=JAN[0], end=JAN[1]).value == Decimal(0)


def test_several_queries_run_as_one_statement(environment, django_assert_num_queries):
    send(environment, event_name="usage", timestamp="2025-01-02T00:00", properties={"v": 2})
    specs = [
        AggregationSpec(event_name="usage", aggregation_type=kind, field="v")
        for kind in ("COUNT", "SUM", "LATEST", "AVG")
    ]
    queries = [UsageQuery(spec=spec, environment_id=environment.pk, start=JAN[0], end=JAN[1]) for spec in specs]

    with django_assert_num_queries(usage_statements()):
        results = run_usage_queries(queries)

    assert [result.value for result in results] == [Decimal(1), Decimal(2), Decimal(2), Decimal(2)]


def test_totals_combined_from_windows_stay_exact(environment):
    meter = meter_for(environment, "SUM")
    for day, value in [(1, "0.1"), (2, "12345678901234567890.000000000000000000001"), (3, "0.2")]:
        send(environment, event_name="usage", timestamp=f"2025-01-{day:02d}T00:00", properties={"v": value})

    if on_clickhouse():  # 21 decimals: beyond Decimal256(20), so ClickHouse refuses instead of rounding
        with pytest.raises(InvalidOperation, match="cannot be computed exactly on the ClickHouse"):
            meter_usage(meter=meter, start=JAN[0], end=JAN[1], window_size="DAY")
        return
    result = meter_usage(meter=meter, start=JAN[0], end=JAN[1], window_size="DAY")

    assert result.value == Decimal("12345678901234567890.300000000000000000001")
