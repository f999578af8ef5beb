"""Daily rollups (PostgreSQL): reading them must give exactly what raw events give, whatever happens after."""

import datetime as dt
import importlib
import re
from decimal import Decimal
from zoneinfo import ZoneInfo

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from metering.models import Event
from metering.usage.customer_windows import customer_windows_usage
from metering.usage.dialects.base import Params
from metering.usage.engine import run_usage_queries
from metering.usage.periods import MonthAnchor
from metering.usage.rollups import read, refresh
from metering.usage.rollups.read import (
    Coverage,
    Pieces,
    aligned_days,
    coverage_lookup,
    plan_pieces,
    repeatable_read,
    rollup_fingerprint,
)
from metering.usage.rollups.refresh import rollups_refresh
from metering.usage.spec import AggregationSpec, UsageQuery
from tests.catalog.factories import MeterFactory
from tests.metering.usage.helpers import at, cleaned, send, send_in_order

UTC = dt.UTC
postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="rollups are a PostgreSQL feature")

METERS = {
    "COUNT": {"aggregation_type": "COUNT", "aggregation_field": ""},
    "SUM": {"aggregation_type": "SUM"},
    "SUM_WITH_MULTIPLIER": {"aggregation_type": "SUM_WITH_MULTIPLIER", "multiplier": "0.5"},
    "AVG": {"aggregation_type": "AVG"},
    "COUNT_UNIQUE": {"aggregation_type": "COUNT_UNIQUE"},
    "COUNT_UNIQUE of g": {"aggregation_type": "COUNT_UNIQUE", "aggregation_field": "g"},
    "MIN": {"aggregation_type": "MIN"},
    "MAX": {"aggregation_type": "MAX"},
    "LATEST": {"aggregation_type": "LATEST"},
    "WEIGHTED_SUM": {"aggregation_type": "WEIGHTED_SUM"},
    "WEIGHTED_SUM never": {"aggregation_type": "WEIGHTED_SUM", "reset_usage": "NEVER"},
    "SUM never": {"aggregation_type": "SUM", "reset_usage": "NEVER"},
    "MAX per HOUR by g": {"aggregation_type": "MAX", "bucket_size": "HOUR", "group_by": "g"},
    "MAX per DAY": {"aggregation_type": "MAX", "bucket_size": "DAY"},
    "MAX per 15MIN": {"aggregation_type": "MAX", "bucket_size": "15MIN"},
    "MAX per 3HOUR by g": {"aggregation_type": "MAX", "bucket_size": "3HOUR", "group_by": "g"},
    "MAX per WEEK by g": {"aggregation_type": "MAX", "bucket_size": "WEEK", "group_by": "g"},
    "MAX per MONTH": {"aggregation_type": "MAX", "bucket_size": "MONTH"},
    "MAX per MINUTE by g": {"aggregation_type": "MAX", "bucket_size": "MINUTE", "group_by": "g"},
    "SUM per HOUR": {"aggregation_type": "SUM", "bucket_size": "HOUR"},
    "CEL": {"aggregation_type": "SUM", "aggregation_field": "", "aggregation_expression": "ceil(v / 3)"},
    "filtered": {"aggregation_type": "SUM", "filters": [{"key": "g", "operator": "not_in", "values": ["b"]}]},
}


def meter(environment, name):
    definition = {"aggregation_field": "v", **METERS[name]}
    return MeterFactory(environment=environment, event_name="usage", **definition)


def seed(environment):
    """Three customers over most of January 2025, with ties, numeric strings, garbage and negative levels."""
    events = []  # delivered at the end by send_in_order, as one call per event would

    def add(**event):
        events.append(cleaned(**event))

    values = ["3", '"7"', "-2", "1.5", '"x"', "12", "0.25", "true"]
    for day in range(2, 30, 2):
        for hour in (0, 5, 13, 23):
            for index, customer in enumerate(("a", "b", "heavy")):
                value = values[(day + hour + index) % len(values)]
                group = "ab"[(hour + index) % 2]
                add(
                    event_name="usage",
                    timestamp=f"2025-01-{day:02d}T{hour:02d}:{index * 7:02d}",
                    customer=customer,
                    properties=f'{{"v": {value}, "g": "{group}"}}',
                )
    # around the DST changes of New York (2025-03-09 and 2025-11-02, at 02:00 local time), at quarter-hour and
    # odd minutes, so local days of 23 and 25 hours and repeated local hours are crossed
    for day in ("2025-03-08", "2025-03-09", "2025-03-10", "2025-11-01", "2025-11-02", "2025-11-03"):
        for hour, minute in ((4, 0), (5, 30), (6, 15), (6, 59), (7, 44), (18, 29), (23, 50)):
            for index, customer in enumerate(("a", "heavy")):
                add(
                    event_name="usage",
                    timestamp=f"{day}T{hour:02d}:{minute:02d}",
                    customer=customer,
                    properties=f'{{"v": {hour * 3 + minute % 7 - 20 + index}, "g": "{"ab"[(hour + index) % 2]}"}}',
                )
    # around midnight and in every quarter of a few hours, repeating values across quarters: the distinct values of
    # an hour or a local day are a union across quarters and across two UTC days
    for day in (15, 16):
        for hour in (0, 1, 23):
            for minute in (5, 20, 35, 50):
                for index, customer in enumerate(("a", "heavy")):
                    add(
                        event_name="usage",
                        timestamp=f"2025-01-{day:02d}T{hour:02d}:{minute:02d}",
                        customer=customer,
                        properties=f'{{"v": {(minute // 15 + hour + index) % 3}, "g": "{"ab"[minute // 30]}"}}',
                    )
    # around Lord Howe Island's DST end (2025-04-06 02:00 local, +11:00 to +10:30, 15:00 UTC): local hours start at
    # :00 UTC before and at :30 UTC after, within one UTC day
    for day, hour, minute in (("04", 14, 50), ("05", 1, 20), ("05", 14, 50), ("05", 15, 10), ("05", 15, 40)):
        for index, customer in enumerate(("a", "heavy")):
            add(
                event_name="usage",
                timestamp=f"2025-04-{day}T{hour:02d}:{minute:02d}",
                customer=customer,
                properties=f'{{"v": {(hour + index) % 4}, "g": "{"ab"[minute // 30]}"}}',
            )
    # two events of one customer at the same instant: LATEST breaks the tie by delivery
    add(event_name="usage", timestamp="2025-01-28T23:00", customer="a", properties='{"v": 41}')
    add(event_name="usage", timestamp="2025-01-28T23:00", customer="a", properties='{"v": 42}')
    send_in_order(environment, events)


def queries(spec, environment):
    """Ranges with partial days at both edges, whole months, windows of every kind, zones and anchors."""
    common = {"spec": spec, "environment_id": environment.pk}
    anchor = MonthAnchor.from_anchor(at("2024-12-03T09:30"), UTC)
    midnight_anchor = MonthAnchor.from_anchor(at("2024-12-03T00:00"), UTC)
    zone = ZoneInfo("Asia/Kolkata")
    new_york, kathmandu = ZoneInfo("America/New_York"), ZoneInfo("Asia/Kathmandu")
    lord_howe = ZoneInfo("Australia/Lord_Howe")
    new_york_anchor = MonthAnchor.from_anchor(at("2024-12-03T05:00"), new_york)
    return [
        UsageQuery(**common, start=at("2025-01-01T00:00"), end=at("2025-02-01T00:00")),
        UsageQuery(**common, start=at("2025-01-03T09:30"), end=at("2025-01-27T04:00"), customer="a"),
        UsageQuery(**common, start=at("2025-01-03T09:30"), end=at("2025-01-27T04:00"), by_customer=True),
        UsageQuery(**common, start=at("2025-01-01T00:00"), end=at("2025-02-01T00:00"), customer="heavy"),
        UsageQuery(**common, start=at("2025-01-01T00:00"), end=at("2025-02-01T00:00"), window_size="DAY"),
        UsageQuery(**common, start=at("2025-01-04T12:00"), end=at("2025-01-30T00:00"), window_size="WEEK"),
        UsageQuery(**common, start=at("2025-01-01T00:00"), end=at("2025-02-01T00:00"), window_size="HOUR"),
        UsageQuery(
            **common,
            start=at("2024-12-03T00:00"),
            end=at("2025-02-03T00:00"),
            window_size="MONTH",
            anchor=midnight_anchor,
            customer="b",
        ),
        UsageQuery(
            **common, start=at("2024-12-03T09:30"), end=at("2025-02-03T09:30"), window_size="MONTH", anchor=anchor
        ),
        UsageQuery(**common, start=at("2025-01-01T00:00"), end=at("2025-02-01T00:00"), window_size="DAY", zone=zone),
        UsageQuery(**common, start=at("2025-01-10T00:00"), end=at("2025-01-20T00:00"), customer="b"),
        # time zones: whole hours, half hours, quarter hours; with and without windows, customers and edges
        UsageQuery(**common, start=at("2024-12-31T18:30"), end=at("2025-01-31T18:30"), zone=zone, customer="heavy"),
        UsageQuery(**common, start=at("2024-12-31T18:30"), end=at("2025-01-31T18:30"), zone=zone, by_customer=True),
        UsageQuery(**common, start=at("2025-01-03T09:37"), end=at("2025-01-27T04:05"), zone=zone, window_size="HOUR"),
        UsageQuery(
            **common, start=at("2025-01-01T05:00"), end=at("2025-02-01T05:00"), zone=new_york, window_size="DAY"
        ),
        UsageQuery(
            **common,
            start=at("2025-01-01T05:00"),
            end=at("2025-02-01T05:00"),
            zone=new_york,
            window_size="HOUR",
            customer="a",
        ),
        UsageQuery(
            **common, start=at("2025-01-01T00:00"), end=at("2025-02-01T00:00"), zone=kathmandu, window_size="DAY"
        ),
        UsageQuery(
            **common, start=at("2025-01-02T00:00"), end=at("2025-01-30T00:00"), window_size="HOUR", by_customer=True
        ),
        # across New York's DST changes: days of 23 and 25 hours, the repeated hour, anchored months
        UsageQuery(
            **common, start=at("2025-03-07T05:00"), end=at("2025-03-12T04:00"), zone=new_york, window_size="DAY"
        ),
        UsageQuery(
            **common,
            start=at("2025-10-31T04:00"),
            end=at("2025-11-05T05:00"),
            zone=new_york,
            window_size="HOUR",
            customer="heavy",
        ),
        UsageQuery(**common, start=at("2025-03-01T05:00"), end=at("2025-11-30T05:00"), zone=new_york, customer="a"),
        UsageQuery(
            **common,
            start=at("2024-12-03T05:00"),
            end=at("2025-12-03T05:00"),
            zone=new_york,
            window_size="MONTH",
            anchor=new_york_anchor,
        ),
        UsageQuery(**common, start=at("2025-03-05T00:00"), end=at("2025-11-08T00:00"), zone=new_york, by_customer=True),
        # hour and day windows of whole local months, hours starting at :30 and :15 UTC
        UsageQuery(
            **common,
            start=at("2024-12-31T18:30"),
            end=at("2025-01-31T18:30"),
            zone=zone,
            window_size="HOUR",
            customer="heavy",
        ),
        UsageQuery(
            **common, start=at("2024-12-31T18:15"), end=at("2025-01-31T18:15"), zone=kathmandu, window_size="HOUR"
        ),
        UsageQuery(
            **common,
            start=at("2025-01-01T18:30"),
            end=at("2025-01-29T18:30"),
            zone=zone,
            window_size="DAY",
            customer="a",
        ),
        # across Lord Howe Island's half-hour DST change
        UsageQuery(
            **common,
            start=at("2025-04-03T13:00"),
            end=at("2025-04-08T13:30"),
            zone=lord_howe,
            window_size="HOUR",
            customer="heavy",
        ),
        UsageQuery(
            **common, start=at("2025-04-02T13:00"), end=at("2025-04-08T13:30"), zone=lord_howe, window_size="DAY"
        ),
    ]


def assert_same_as_raw(spec, environment):
    cases = queries(spec, environment)
    with_rollups = run_usage_queries(cases)
    raw = run_usage_queries(cases, rollups=False)
    for case, a, b in zip(cases, with_rollups, raw, strict=True):
        assert a == b, case


def rollup_rows() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM metering_rollup) + (SELECT count(*) FROM metering_rollup_distinct)"
        )
        return cursor.fetchone()[0]


@postgres_only
@pytest.mark.django_db(transaction=True)  # rollups see committed writes only
@pytest.mark.parametrize("name", list(METERS))
def test_rollups_give_the_same_numbers_as_raw_events(environment, name):
    spec = AggregationSpec.from_meter(meter(environment, name))
    seed(environment)
    assert_same_as_raw(spec, environment)  # nothing rolled up yet

    report = rollups_refresh()
    assert report.days > 0 and rollup_rows() > 0
    key = (environment.pk, rollup_fingerprint(spec))
    with connection.cursor() as cursor:  # …and they are valid, so the engine reads them
        assert coverage_lookup(cursor, [(*key, None, JAN_END.date())])[key].days
    assert_same_as_raw(spec, environment)


def usage_statement(query) -> str:
    read._recent_coverage.clear()  # look coverage up: the statement then reads exactly what the lookup found
    with CaptureQueriesContext(connection) as captured:
        run_usage_queries([query])
    statements = [q["sql"] for q in captured.captured_queries if q["sql"] not in ("BEGIN", "COMMIT")]
    assert len(statements) == 2  # the rollup lookup, then the usage statement
    return statements[1]


@postgres_only
@pytest.mark.django_db(transaction=True)  # rollups see committed writes only
def test_the_statement_reads_raw_events_only_for_what_rollups_cannot_answer(environment):
    spec = AggregationSpec.from_meter(meter(environment, "SUM"))
    seed(environment)
    rollups_refresh()
    common = {"spec": spec, "environment_id": environment.pk}

    # whole days from day rows, the partial first day from its quarter hours: no raw events at all
    statement = usage_statement(UsageQuery(**common, start=at("2025-01-03T09:30"), end=JAN_END))
    assert "FROM metering_rollup r WHERE" in statement and "unnest(r.quarters" in statement
    assert "FROM metering_event e" not in statement

    # a start inside a quarter hour: raw events for the 8 minutes before the next quarter only
    statement = usage_statement(UsageQuery(**common, start=at("2025-01-03T09:37"), end=JAN_END))
    assert statement.count("FROM metering_event e") == 1

    # Asia/Kolkata days cut every UTC day at 18:30: quarter hours, and no raw events (rolled up from the 2nd on)
    kolkata = {"zone": ZoneInfo("Asia/Kolkata"), "window_size": "DAY"}
    statement = usage_statement(
        UsageQuery(**common, start=at("2025-01-02T18:30"), end=at("2025-01-29T18:30"), **kolkata)
    )
    assert "unnest(r.quarters" in statement and "FROM metering_event e" not in statement


@postgres_only
@pytest.mark.django_db(transaction=True)  # rollups see committed writes only
def test_distinct_values_of_hours_inside_utc_days_come_from_their_counts(environment):
    spec = AggregationSpec.from_meter(meter(environment, "COUNT_UNIQUE"))
    seed(environment)
    rollups_refresh()
    common = {"spec": spec, "environment_id": environment.pk, "customer": "heavy"}
    for zone in ("UTC", "Asia/Kolkata", "Asia/Kathmandu"):
        # whole UTC days: each hour inside a day is one counted slot; only the hours across midnight (Kolkata's
        # start at :30, Kathmandu's at :15) union the values of two days, from their first and last quarters
        statement = usage_statement(
            UsageQuery(
                **common,
                start=at("2025-01-03T00:00"),
                end=at("2025-01-28T00:00"),
                zone=ZoneInfo(zone),
                window_size="HOUR",
            )
        )
        assert "unnest(r.quarters, r.q1) AS h(slot, n)" in statement
        assert "unnest(r.quarters) AS x" not in statement and "FROM metering_event e" not in statement
        assert ("r.quarters[1] <" in statement) == (zone != "UTC")
    # local days cutting UTC days: each UTC day's values go to its two local days by their first and last quarters
    statement = usage_statement(
        UsageQuery(
            **common,
            start=at("2025-01-03T00:00"),
            end=at("2025-01-28T00:00"),
            zone=ZoneInfo("Asia/Kolkata"),
            window_size="DAY",
        )
    )
    assert "r.quarters[1] < 74" in statement and "r.quarters[array_upper(r.quarters, 1)] >= 74" in statement
    assert "unnest(r.quarters) AS x" not in statement and "FROM metering_event e" not in statement
    hours = run_usage_queries(
        [UsageQuery(**common, start=at("2025-01-15T00:00"), end=at("2025-01-16T02:00"), window_size="HOUR")]
    )[0]
    # heavy: 00:05 1, 00:20 2, 00:35 0, 00:50 1 → 3 values; 01:xx 2, 0, 1, 2 → 3; 23:xx 0, 1, 2, 0 → 3; on the 16th
    # (an even day) the first seeding adds -2 at 00:14 → 4
    assert [(window.start, window.value) for window in hours.windows if window.start.hour in (0, 1, 23)] == [
        (at("2025-01-15T00:00"), 3),
        (at("2025-01-15T01:00"), 3),
        (at("2025-01-15T23:00"), 3),
        (at("2025-01-16T00:00"), 4),
        (at("2025-01-16T01:00"), 3),
    ]
    assert_same_as_raw(spec, environment)


@postgres_only
@pytest.mark.django_db(transaction=True)  # rollups see committed writes only
def test_bucketed_maxima_of_all_customers_read_one_row_a_day(environment):
    spec = AggregationSpec.from_meter(meter(environment, "MAX per HOUR by g"))
    seed(environment)
    rollups_refresh()
    for zone in ("UTC", "America/New_York"):
        offset = dt.timedelta(hours=0 if zone == "UTC" else 5)
        query = UsageQuery(
            spec=spec,
            environment_id=environment.pk,
            start=at("2025-01-02T00:00") + offset,
            end=at("2025-01-29T00:00") + offset,
            zone=ZoneInfo(zone),
        )
        statement = usage_statement(query)
        assert "FROM metering_event e" not in statement
        assert "r.customer = " in statement  # the rows of everyone, not every customer's


def seed_every_quarter(environment):
    """`seed`, plus customer a's 20th of January with an event in every quarter hour, then the rollups."""
    seed(environment)
    for hour in range(24):
        for minute in (2, 17, 32, 47):
            send(
                environment,
                event_name="usage",
                timestamp=f"2025-01-20T{hour:02d}:{minute:02d}",
                customer="a",
                properties=f'{{"v": {(hour * 5 + minute) % 7}, "g": "{"ab"[minute % 2]}"}}',
            )
    rollups_refresh()


NUMBERED = "DATE '0001-01-01'"  # in the SQL of windows grouped by their number


def assert_grouped_by(marker: str, grouped: list, *, not_grouped: list):
    """Which queries read quarters grouped the way whose SQL holds `marker`, and that all give the numbers of raw
    events."""
    for query in grouped:
        assert marker in usage_statement(query), query
    for query in not_grouped:
        assert marker not in usage_statement(query), query
    cases = grouped + not_grouped
    assert run_usage_queries(cases) == run_usage_queries(cases, rollups=False)


@postgres_only
@pytest.mark.django_db(transaction=True)  # rollups see committed writes only
def test_hour_maxima_are_grouped_by_hour_number_where_the_offset_holds(environment):
    """MAX per HOUR over quarter hours: where the zone keeps one offset, quarters are grouped by the number of their
    local hour (hours starting at :00, :30 and :15 UTC); across a DST change by their local time, so New York's
    repeated hour stays one bucket. Every hour of the 15th and 16th of January holds all four quarters (values
    0-2 repeating), so an hour cut anywhere else changes the numbers."""
    spec = AggregationSpec.from_meter(meter(environment, "MAX per HOUR by g"))
    seed_every_quarter(environment)
    new_york, kolkata, kathmandu = (ZoneInfo(name) for name in ("America/New_York", "Asia/Kolkata", "Asia/Kathmandu"))
    common = {"spec": spec, "environment_id": environment.pk}
    by_hour = [
        UsageQuery(
            **common, start=at("2025-01-14T18:30"), end=at("2025-01-21T18:30"), zone=kolkata, window_size="HOUR"
        ),
        UsageQuery(**common, start=at("2025-01-14T18:15"), end=at("2025-01-21T18:15"), zone=kathmandu, customer="a"),
        UsageQuery(
            **common, start=at("2025-01-15T05:00"), end=at("2025-01-21T05:00"), zone=new_york, window_size="DAY"
        ),
        UsageQuery(**common, start=at("2025-01-15T07:10"), end=at("2025-01-20T21:40"), window_size="HOUR"),
    ]
    by_local_time = [
        UsageQuery(
            **common, start=at("2025-10-31T04:00"), end=at("2025-11-05T05:00"), zone=new_york, window_size="HOUR"
        ),
        UsageQuery(**common, start=at("2025-01-15T00:00"), end=at("2025-01-21T00:00"), window_size="WEEK"),
    ]
    assert_grouped_by(NUMBERED, by_hour, not_grouped=by_local_time)
    hourly = run_usage_queries(by_hour[3:])[0]
    assert sum(window.start.date() == dt.date(2025, 1, 20) for window in hourly.windows) == 22  # 00:00 to 21:40
    assert hourly.value == Decimal(284)


@postgres_only
@pytest.mark.django_db(transaction=True)  # rollups see committed writes only
@pytest.mark.parametrize("name", ["COUNT", "SUM", "AVG", "LATEST", "WEIGHTED_SUM", "WEIGHTED_SUM never", "CEL"])
def test_day_windows_are_grouped_by_number_where_the_offset_holds(environment, name):
    """Daily windows read from quarter hours: in a zone that keeps one offset, quarters are grouped by the number of
    their day (days starting at 18:30 and 18:15 UTC); across a DST change by their local time. Hourly windows are
    never numbered (`test_hour_windows_are_grouped_by_hour_of_the_day_where_the_offset_holds`). The numbers are those
    of raw events either way."""
    spec = AggregationSpec.from_meter(meter(environment, name))
    seed_every_quarter(environment)
    new_york, kolkata, kathmandu, lord_howe = (
        ZoneInfo(name) for name in ("America/New_York", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe")
    )
    common = {"spec": spec, "environment_id": environment.pk}
    numbered = [
        UsageQuery(**common, start=at("2025-01-01T18:30"), end=at("2025-01-29T18:30"), zone=kolkata, window_size="DAY"),
        UsageQuery(
            **common,
            start=at("2025-01-14T18:15"),
            end=at("2025-01-21T18:15"),
            zone=kathmandu,
            window_size="DAY",
            customer="a",
        ),
        UsageQuery(**common, start=at("2025-01-15T07:10"), end=at("2025-01-20T21:40"), window_size="DAY"),
    ]
    by_quarter = [
        UsageQuery(
            **common, start=at("2025-03-07T05:00"), end=at("2025-03-12T04:00"), zone=new_york, window_size="DAY"
        ),
        UsageQuery(
            **common, start=at("2025-04-03T13:00"), end=at("2025-04-08T13:30"), zone=lord_howe, window_size="DAY"
        ),
    ]
    assert_grouped_by(NUMBERED, numbered, not_grouped=by_quarter)
    daily = run_usage_queries(numbered[2:])[0]
    assert [window.start.day for window in daily.windows] == [15, 16, 18, 20]  # the seed's days, and the full 20th


HOURS_OF_DAYS = "GROUP BY r.day, ((x.quarter + "  # in the SQL of hourly windows grouped by hour of the UTC day


@postgres_only
@pytest.mark.django_db(transaction=True)  # rollups see committed writes only
@pytest.mark.parametrize("name", ["COUNT", "SUM", "AVG", "MIN", "LATEST", "WEIGHTED_SUM", "WEIGHTED_SUM never", "CEL"])
def test_hour_windows_are_grouped_by_hour_of_the_day_where_the_offset_holds(environment, name):
    """Hourly windows read from quarter hours: where the zone keeps one offset, quarters are grouped by their row's
    UTC day and their hour in it, hours starting at :00 (UTC, New York in winter), :30 (Asia/Kolkata) and :15 UTC
    (Asia/Kathmandu); across a DST change (New York in November, Lord Howe Island's half hour in April) by each
    quarter's local hour. A Kolkata hour across UTC midnight is read as two groups and answered as one window. The
    numbers are those of raw events either way; customer a's 20th of January has an event in every quarter hour,
    so an hour cut anywhere else changes them."""
    spec = AggregationSpec.from_meter(meter(environment, name))
    seed_every_quarter(environment)
    new_york, kolkata, kathmandu, lord_howe = (
        ZoneInfo(name) for name in ("America/New_York", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe")
    )
    common = {"spec": spec, "environment_id": environment.pk, "window_size": "HOUR"}
    by_hour_of_day = [
        UsageQuery(**common, start=at("2025-01-15T07:15"), end=at("2025-01-20T21:45")),
        UsageQuery(**common, start=at("2025-01-14T18:30"), end=at("2025-01-21T18:30"), zone=kolkata, customer="a"),
        UsageQuery(**common, start=at("2025-01-14T18:30"), end=at("2025-01-21T18:30"), zone=kolkata),
        UsageQuery(**common, start=at("2025-01-19T18:15"), end=at("2025-01-21T18:15"), zone=kathmandu, customer="a"),
        UsageQuery(**common, start=at("2025-01-15T05:00"), end=at("2025-01-21T05:00"), zone=new_york),
    ]
    by_local_hour = [
        UsageQuery(**common, start=at("2025-10-31T04:00"), end=at("2025-11-05T05:00"), zone=new_york),
        UsageQuery(**common, start=at("2025-04-03T13:00"), end=at("2025-04-08T13:30"), zone=lord_howe),
    ]
    assert_grouped_by(HOURS_OF_DAYS, by_hour_of_day, not_grouped=by_local_hour)
    kolkata_a = run_usage_queries(by_hour_of_day[1:2])[0]
    starts = [window.start for window in kolkata_a.windows]
    assert len(starts) == len(set(starts)) and {start.minute for start in starts} == {30}
    # 05:00-06:00 in Kolkata on the 21st: the 20th's last two quarters and the 21st's first two, in one window
    across_midnight = next(window for window in kolkata_a.windows if window.start == at("2025-01-20T23:30"))
    assert sum(window.start.date() == dt.date(2025, 1, 20) for window in kolkata_a.windows) == 24
    assert across_midnight.value is not None


QUARTER_TESTED = "x.quarter * interval '15 minutes') >="  # in the SQL of quarter ranges that cut a UTC day
WHOLE_DAYS_APART = "CROSS JOIN LATERAL"  # the quarters of whole days read apart from those of cut days


@postgres_only
@pytest.mark.django_db(transaction=True)  # rollups see committed writes only
@pytest.mark.parametrize("name", ["SUM", "AVG", "LATEST", "MAX per HOUR by g"])
def test_quarters_of_whole_utc_days_are_read_without_testing_each_one(environment, name):
    """Quarter-hour ranges read every quarter of the UTC days they hold whole without testing each one's start; only
    the quarters of the days a range cuts (a local midnight at 18:30 UTC, a month from 07:15) are tested, apart from
    the whole days' where a range has both. The numbers are those of raw events either way."""
    spec = AggregationSpec.from_meter(meter(environment, name))
    seed_every_quarter(environment)
    common = {"spec": spec, "environment_id": environment.pk, "window_size": "HOUR"}
    whole_days = [
        UsageQuery(**common, start=at("2025-01-14T00:00"), end=at("2025-01-22T00:00")),
        UsageQuery(**common, start=at("2025-01-01T00:00"), end=at("2025-02-01T00:00"), customer="a"),
    ]
    whole_and_cut_days = [
        UsageQuery(**common, start=at("2025-01-14T18:30"), end=at("2025-01-21T18:30"), zone=ZoneInfo("Asia/Kolkata")),
        UsageQuery(**common, start=at("2025-01-15T07:15"), end=at("2025-01-20T21:45"), customer="a"),
    ]
    cut_days = [UsageQuery(**common, start=at("2025-01-20T07:15"), end=at("2025-01-20T21:45"), customer="a")]
    for query in whole_days + whole_and_cut_days + cut_days:
        statement = usage_statement(query)
        assert "unnest(r.quarters" in statement, query
        assert (QUARTER_TESTED in statement) == (query not in whole_days), query
        assert (WHOLE_DAYS_APART in statement) == (query in whole_and_cut_days), query
    cases = whole_days + whole_and_cut_days + cut_days
    assert run_usage_queries(cases) == run_usage_queries(cases, rollups=False)


JAN_END = at("2025-02-01T00:00")


@postgres_only
@pytest.mark.django_db(transaction=True)  # rollups see committed writes only
@pytest.mark.parametrize(
    "name",
    [
        "SUM",
        "LATEST",
        "MAX per HOUR by g",
        "MAX per WEEK by g",
        "MAX per MINUTE by g",
        "WEIGHTED_SUM never",
        "COUNT_UNIQUE",
    ],
)
def test_writes_after_a_refresh_count_at_once(environment, name):
    spec = AggregationSpec.from_meter(meter(environment, name))
    seed(environment)
    rollups_refresh()
    before = run_usage_queries(queries(spec, environment), rollups=False)

    # a late event on a rolled-up day, a redelivery that moves an event to another day, a deleted event
    send(environment, event_name="usage", timestamp="2025-01-10T11:00", customer="a", properties='{"v": 1000}')
    moved = Event.objects.filter(external_customer_id="b", timestamp=at("2025-01-12T05:07")).get()
    send(
        environment,
        event_name="usage",
        event_id=moved.event_id,
        timestamp="2025-01-20T06:00",
        customer="b",
        properties='{"v": 500, "g": "a"}',
    )
    Event.objects.filter(external_customer_id="heavy", timestamp=at("2025-01-14T13:14")).delete()

    assert run_usage_queries(queries(spec, environment), rollups=False) != before
    assert_same_as_raw(spec, environment)
    assert rollups_refresh().days == 4  # the 10th, 12th, 14th and 20th, and only those
    assert_same_as_raw(spec, environment)


def statements_of(run) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        run()
    return [q["sql"] for q in captured.captured_queries]


@postgres_only
@pytest.mark.django_db(transaction=True)  # rollups see committed writes only
@pytest.mark.parametrize("name", ["SUM", "LATEST", "MAX per HOUR by g", "COUNT_UNIQUE", "WEIGHTED_SUM never"])
def test_a_remembered_lookup_is_one_statement_and_never_hides_a_late_write(environment, name):
    spec = AggregationSpec.from_meter(meter(environment, name))
    seed(environment)
    rollups_refresh()
    cases = queries(spec, environment)
    first = statements_of(lambda: run_usage_queries(cases))
    assert len(first) == 4 and first[0] == "BEGIN" and first[-1] == "COMMIT"  # the lookup, remembered

    again = statements_of(lambda: run_usage_queries(cases))
    assert len(again) == 1 and "metering_rollup_day rd" in again[0]  # checks the remembered days itself
    assert_same_as_raw(spec, environment)

    # a late event on a rolled-up day: the remembered coverage no longer holds, the engine looks it up again
    send(environment, event_name="usage", timestamp="2025-01-10T11:00", customer="a", properties='{"v": 1000}')
    after_write = statements_of(lambda: run_usage_queries(cases))
    assert len(after_write) == 5  # the checked statement, then BEGIN, the lookup, the statement, COMMIT
    assert_same_as_raw(spec, environment)

    # rolled up again: the remembered days are valid again, and the answer still that of raw events
    assert rollups_refresh().days == 1
    assert len(statements_of(lambda: run_usage_queries(cases))) == 1
    assert_same_as_raw(spec, environment)

    # the meter's rollups dropped: the check finds no definition and the engine falls back to the lookup
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM metering_rollup_definition")
    assert len(statements_of(lambda: run_usage_queries(cases))) == 5
    assert_same_as_raw(spec, environment)


def _rows_read(plan: dict, table: str) -> int:
    """Rows a plan's scans of `table` read, kept or filtered out, over all their loops."""
    own = 0
    if plan.get("Relation Name") == table:
        own = (plan["Actual Rows"] + plan.get("Rows Removed by Filter", 0)) * plan["Actual Loops"]
    return own + sum(_rows_read(child, table) for child in plan.get("Plans", []))


@postgres_only
@pytest.mark.django_db(transaction=True)  # rollups see committed writes only
def test_the_remembered_days_check_reads_only_those_days_once_prepared(environment):
    """The check runs prepared (flexmeter.db.server_bound_cursor), so under a generic plan: a join there read every
    rolled-up day of the definition for each day remembered, a cost that grew with the history."""
    meter(environment, "SUM")
    seed(environment)
    rollups_refresh()
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, fingerprint FROM metering_rollup_definition")
        ((definition_id, fingerprint),) = cursor.fetchall()
    remembered = frozenset(dt.date(2025, 1, day) for day in (10, 11, 12))
    p = Params()
    sql, days = read.coverage_check_sql(
        p, {(environment.pk, fingerprint): Coverage(definition_id, remembered)}, "NULL::timestamp"
    )
    assert days == 3
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM metering_rollup_day")
        assert cursor.fetchone()[0] > 20
        names = list(p.values)
        numbered = re.sub(r"%\((p\d+)\)s", lambda found: f"${names.index(found[1]) + 1}", sql)
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE remembered_days_check AS {numbered}")
        try:
            placeholders = ", ".join(["%s"] * len(names))
            cursor.execute(
                f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE remembered_days_check({placeholders})", list(p.values.values())
            )
            (plan,) = cursor.fetchone()[0]
        finally:
            cursor.execute("DEALLOCATE remembered_days_check")
            cursor.execute("RESET plan_cache_mode")
    assert _rows_read(plan["Plan"], "metering_rollup_day") == days


def test_the_remembered_days_check_sends_each_fingerprint_once():
    """A fingerprint is a long JSON text and psycopg escapes each element of a text array in Python: a month of copies
    of one, one per remembered day, took longer to send than the check took to run."""
    january = [dt.date(2025, 1, day) for day in range(1, 32)]
    coverage = {(1, "fingerprint-a"): Coverage(7, frozenset(january)), (1, "fingerprint-b"): Coverage(8, frozenset())}
    coverage[(2, "fingerprint-c")] = Coverage(9, frozenset(january[:3]))
    p = Params()
    _sql, days = read.coverage_check_sql(p, coverage, "NULL::timestamp")
    sent = [item for value in p.values.values() if isinstance(value, list) for item in value]
    assert days == 34
    assert [sent.count(name) for name in ("fingerprint-a", "fingerprint-b", "fingerprint-c")] == [1, 0, 1]


@postgres_only
@pytest.mark.django_db(transaction=True)  # rollups see committed writes only
def test_a_remembered_lookup_checks_the_days_of_every_meter_it_reads(environment):
    specs = [AggregationSpec.from_meter(meter(environment, name)) for name in ("SUM", "COUNT_UNIQUE")]
    seed(environment)
    rollups_refresh()
    cases = [case for spec in specs for case in queries(spec, environment)]
    run_usage_queries(cases)  # the lookup, remembered
    assert len(statements_of(lambda: run_usage_queries(cases))) == 1  # checks both meters' remembered days
    assert_same_as_raw_cases(cases)

    # a late event on a rolled-up day of both meters (one event name): both are looked up again
    send(environment, event_name="usage", timestamp="2025-01-10T11:00", customer="a", properties='{"v": 1000}')
    assert len(statements_of(lambda: run_usage_queries(cases))) == 5
    assert_same_as_raw_cases(cases)


@postgres_only
@pytest.mark.django_db(transaction=True)  # rollups see committed writes only
def test_a_remembered_lookup_serves_many_customers_windows_too(environment):
    sum_meter = meter(environment, "SUM")
    seed(environment)
    rollups_refresh()
    windows = {"a": (at("2025-01-03T09:30"), JAN_END), "b": (at("2025-01-05T00:00"), at("2025-01-20T00:00"))}
    spec = AggregationSpec.from_meter(sum_meter)
    raw = customer_windows_usage(spec, environment_id=environment.pk, windows=windows, rollups=False)

    assert len(statements_of(lambda: customer_windows_usage(spec, environment_id=environment.pk, windows=windows))) == 4
    remembered = []
    assert (
        len(
            statements_of(
                lambda: remembered.append(customer_windows_usage(spec, environment_id=environment.pk, windows=windows))
            )
        )
        == 1
    )
    assert remembered == [raw]
    send(environment, event_name="usage", timestamp="2025-01-10T11:00", customer="a", properties='{"v": 1000}')
    fresh = customer_windows_usage(spec, environment_id=environment.pk, windows=windows, rollups=False)
    assert fresh["a"] == raw["a"] + 1000
    assert customer_windows_usage(spec, environment_id=environment.pk, windows=windows) == fresh


@postgres_only
@pytest.mark.django_db(transaction=True)  # rollups see committed writes only
def test_meters_sharing_an_event_name_share_one_scan_and_a_second_refresh_has_nothing_to_do(environment):
    meter(environment, "SUM")
    seed(environment)
    alone = rollups_refresh()
    assert alone.definitions == 1 and alone.scans > 0
    for name in ("LATEST", "MAX per HOUR by g", "COUNT_UNIQUE"):
        meter(environment, name)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM metering_rollup_definition")  # build all four from scratch
    together = rollups_refresh()
    assert together.definitions == 4
    assert together.days == 4 * alone.days
    assert together.scans == alone.scans  # each stretch of events read once for the four
    again = rollups_refresh()
    assert (again.days, again.rows, again.scans) == (0, 0, 0)


def rolled_up_days() -> list[dt.date]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT day FROM metering_rollup_day ORDER BY day")
        return [day for (day,) in cursor.fetchall()]


def values(query: UsageQuery) -> tuple:
    """The query's value with rollups and from raw events only."""
    (with_rollups,), (raw,) = run_usage_queries([query]), run_usage_queries([query], rollups=False)
    return with_rollups.value, raw.value


def iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "")


@postgres_only
@pytest.mark.django_db(transaction=True)  # rollups see committed writes only
def test_every_day_before_today_is_rolled_up_once_sealed(environment, monkeypatch, settings):
    settings.ROLLUPS_DAY_IN_PROGRESS_EVERY = 0  # whole days only (the day in progress: tests below)
    meter(environment, "SUM")
    now = dt.datetime.now(UTC)
    today = now.date()
    for days_ago in (0, 1, 3):
        send(environment, event_name="usage", timestamp=iso(now - dt.timedelta(days=days_ago)), properties={"v": 1})
    # sealed one hour after midnight: within that hour yesterday still waits (whenever the test runs)
    monkeypatch.setattr(refresh, "SEAL_MARGIN", dt.timedelta(hours=now.hour + 1, minutes=now.minute))
    rollups_refresh()
    assert max(rolled_up_days()) == today - dt.timedelta(days=2)
    monkeypatch.setattr(refresh, "SEAL_MARGIN", dt.timedelta(0))
    rollups_refresh()
    assert max(rolled_up_days()) == today - dt.timedelta(days=1)


@postgres_only
@pytest.mark.django_db(transaction=True)  # rollups see committed writes only
@pytest.mark.parametrize("name", ["SUM", "COUNT_UNIQUE", "MAX per HOUR by g"])
def test_a_write_to_yesterday_after_it_was_rolled_up_counts_at_once(environment, monkeypatch, name):
    spec = AggregationSpec.from_meter(meter(environment, name))
    yesterday = dt.datetime.combine(dt.datetime.now(UTC).date() - dt.timedelta(days=1), dt.time(), UTC)
    send(environment, event_name="usage", timestamp=iso(yesterday + dt.timedelta(hours=3)), properties='{"v": 4}')
    monkeypatch.setattr(refresh, "SEAL_MARGIN", dt.timedelta(0))
    rollups_refresh()
    assert yesterday.date() in rolled_up_days()
    month = UsageQuery(
        spec=spec,
        environment_id=environment.pk,
        start=yesterday - dt.timedelta(days=5),
        end=yesterday + dt.timedelta(days=1),
    )
    first = {"SUM": Decimal(4), "COUNT_UNIQUE": Decimal(1), "MAX per HOUR by g": Decimal(4)}[name]
    assert values(month) == (first, first)

    # a late event of yesterday (a marked write, migration 0009), another value and group: read raw until refreshed
    late = '{"v": 9, "g": "b"}'
    send(environment, event_name="usage", timestamp=iso(yesterday + dt.timedelta(hours=5)), properties=late)
    expected = {"SUM": Decimal(13), "COUNT_UNIQUE": Decimal(2), "MAX per HOUR by g": Decimal(13)}[name]
    assert values(month) == (expected, expected)
    assert rollups_refresh().days == 1
    assert values(month) == (expected, expected)


@postgres_only
@pytest.mark.django_db(transaction=True)  # rollups see committed writes only
@pytest.mark.parametrize(
    "name", ["COUNT", "SUM", "AVG", "LATEST", "COUNT_UNIQUE", "MAX per HOUR by g", "MAX per WEEK by g", "WEIGHTED_SUM"]
)
def test_raw_days_in_few_utc_windows_name_their_window_and_count_like_raw_events(environment, monkeypatch, name):
    spec = AggregationSpec.from_meter(meter(environment, name))
    now = dt.datetime.now(UTC)
    today = dt.datetime.combine(now.date(), dt.time(), UTC)
    for hours_ago in range(0, 24 * 8, 5):
        for customer, value in (("a", hours_ago % 7), ("b", f'"{hours_ago % 3}"')):
            moment = now - dt.timedelta(hours=hours_ago, minutes=customer == "b")
            send(environment, event_name="usage", timestamp=iso(moment), customer=customer,
                 properties=f'{{"v": {value}, "g": "{"ab"[hours_ago % 2]}"}}')  # fmt: skip
    # yesterday not sealed yet (as in the hour after midnight): today and yesterday are raw, two daily windows
    monkeypatch.setattr(refresh, "SEAL_MARGIN", dt.timedelta(hours=now.hour + 1))
    rollups_refresh()
    common = {"spec": spec, "environment_id": environment.pk}
    week = {"start": today - dt.timedelta(days=6), "end": today + dt.timedelta(days=1)}
    cases = [
        UsageQuery(**common, **week, window_size="DAY"),
        UsageQuery(**common, **week, window_size="HOUR"),
        UsageQuery(**common, **week, window_size="WEEK"),
        UsageQuery(**common, **week, by_customer=True),
        UsageQuery(**common, **week, window_size="DAY", customer="b"),
        UsageQuery(**common, **week, window_size="DAY", zone=ZoneInfo("Asia/Kolkata")),
        UsageQuery(**common, start=today + dt.timedelta(minutes=7), end=week["end"], window_size="DAY"),
        UsageQuery(
            **common, start=today - dt.timedelta(days=40), end=today + dt.timedelta(days=40), window_size="MONTH",
            anchor=MonthAnchor.from_anchor(at("2024-12-03T09:30"), UTC),
        ),
    ]  # fmt: skip

    def assert_raw_days_read_apart(days: int) -> None:
        statement = usage_statement(cases[0])
        assert "date_trunc('day', (e.timestamp AT TIME ZONE" not in statement  # every raw piece names its window
        if name in ("COUNT", "SUM", "AVG", "LATEST"):  # (whose totals come from their windows: no other part)
            assert statement.count("FROM metering_event e") == days

    assert_raw_days_read_apart(2)  # yesterday and today, apart
    if name == "COUNT":  # per customer through the time range, never a walk of the name's whole index (see engine)
        assert "e.ingested_at IS NOT NULL" in usage_statement(cases[3])
    assert_same_as_raw_cases(cases)

    # a late event on a rolled-up day, a redelivery that moves an event of yesterday to today, a deleted event
    send(environment, event_name="usage", timestamp=iso(today - dt.timedelta(days=3, hours=-2)), customer="a",
         properties='{"v": 1000, "g": "b"}')  # fmt: skip
    moved = Event.objects.filter(environment=environment, timestamp__lt=today).order_by("-timestamp").first()
    send(environment, event_name="usage", event_id=moved.event_id, timestamp=iso(today + dt.timedelta(minutes=1)),
         customer="b", properties='{"v": 500, "g": "a"}')  # fmt: skip
    Event.objects.filter(environment=environment, timestamp__gte=today).order_by("timestamp").last().delete()
    assert_raw_days_read_apart(3)  # and the changed day
    assert_same_as_raw_cases(cases)


def assert_same_as_raw_cases(cases: list[UsageQuery]) -> None:
    for case, a, b in zip(cases, run_usage_queries(cases), run_usage_queries(cases, rollups=False), strict=True):
        assert a == b, case


@postgres_only
@pytest.mark.django_db(transaction=True)  # rollups see committed writes only
def test_rollups_of_meters_no_longer_in_use_are_dropped(environment):
    sum_meter = meter(environment, "SUM")
    seed(environment)
    rollups_refresh()
    assert rollup_rows() > 0
    sum_meter.status = "draft"
    sum_meter.save()
    rollups_refresh()
    assert rollup_rows() == 0


@pytest.mark.django_db
def test_the_command_reports_what_it_did(environment, capsys):
    meter(environment, "COUNT")
    send(environment, event_name="usage", timestamp="2025-01-02T00:00", properties={})
    call_command("refresh_rollups")
    out = capsys.readouterr().out
    expected = "1 meter definitions" if connection.vendor == "postgresql" else "0 meter definitions"
    assert expected in out


def test_plan_pieces_keeps_partial_days_and_gaps_raw_without_quarters():
    days = frozenset(dt.date(2025, 1, d) for d in (3, 4, 5, 7, 9))
    whole_days_only = {"day_fits": lambda day: True, "quarters_fit": lambda day: False}
    pieces = plan_pieces(at("2025-01-03T00:00"), at("2025-01-09T12:00"), days, **whole_days_only)
    assert pieces.days == [(dt.date(2025, 1, 3), dt.date(2025, 1, 6)), (dt.date(2025, 1, 7), dt.date(2025, 1, 8))]
    assert pieces.raw == [
        (at("2025-01-06T00:00"), at("2025-01-07T00:00")),
        (at("2025-01-08T00:00"), at("2025-01-09T12:00")),
    ]
    assert pieces.quarters == []

    pieces = plan_pieces(None, at("2025-01-05T06:00"), days, **whole_days_only)
    assert pieces.days == [(dt.date(2025, 1, 3), dt.date(2025, 1, 5))]
    assert pieces.raw == [(None, at("2025-01-03T00:00")), (at("2025-01-05T00:00"), at("2025-01-05T06:00"))]

    pieces = plan_pieces(at("2025-01-03T01:00"), at("2025-01-04T01:00"), days, **whole_days_only)
    assert (pieces.raw, pieces.days) == ([(at("2025-01-03T01:00"), at("2025-01-04T01:00"))], [])


def test_aligned_days_are_whole_utc_days_of_one_offset():
    kolkata, new_york = ZoneInfo("Asia/Kolkata"), ZoneInfo("America/New_York")
    pieces = Pieces(quarters=[(at("2025-01-03T09:45"), at("2025-01-06T00:00"))])
    aligned = aligned_days(pieces, kolkata, "HOUR")
    assert aligned is not None and aligned.quarters_per_window == 4
    assert aligned.by_alignment == {2: [(dt.date(2025, 1, 4), dt.date(2025, 1, 6))]}  # local hours start at :30
    assert pieces.quarters == [(at("2025-01-03T09:45"), at("2025-01-04T00:00"))]  # the partial day stays

    # New York's spring-forward day (two offsets in one UTC day) stays with the quarter-hour reading
    pieces = Pieces(quarters=[(at("2025-03-08T00:00"), at("2025-03-11T00:00"))])
    aligned = aligned_days(pieces, new_york, "DAY")
    assert aligned is not None and aligned.quarters_per_window == 96
    assert aligned.by_alignment == {
        20: [(dt.date(2025, 3, 8), dt.date(2025, 3, 9))],  # local midnight at 05:00 UTC (-05:00)
        16: [(dt.date(2025, 3, 10), dt.date(2025, 3, 11))],  # at 04:00 UTC (-04:00)
    }
    assert pieces.quarters == [(at("2025-03-09T00:00"), at("2025-03-10T00:00"))]

    pieces = Pieces(quarters=[(at("2025-01-03T00:00"), at("2025-01-06T00:00"))])
    assert aligned_days(pieces, kolkata, "WEEK") is None
    assert pieces.quarters == [(at("2025-01-03T00:00"), at("2025-01-06T00:00"))]


def test_plan_pieces_reads_whole_quarter_hours_where_days_do_not_fit():
    days = frozenset(dt.date(2025, 1, d) for d in (3, 4, 5, 7))
    # the 4th does not fit whole (say, a window boundary at 18:30 UTC cuts it), the others do
    pieces = plan_pieces(
        at("2025-01-03T09:37"),
        at("2025-01-08T04:05"),
        days,
        day_fits=lambda day: day != dt.date(2025, 1, 4),
        quarters_fit=lambda day: True,
    )
    assert pieces.days == [(dt.date(2025, 1, 5), dt.date(2025, 1, 6)), (dt.date(2025, 1, 7), dt.date(2025, 1, 8))]
    assert pieces.quarters == [(at("2025-01-03T09:45"), at("2025-01-05T00:00"))]  # the 3rd's tail, the whole 4th
    assert pieces.raw == [
        (at("2025-01-03T09:37"), at("2025-01-03T09:45")),  # less than a quarter hour
        (at("2025-01-06T00:00"), at("2025-01-07T00:00")),  # not rolled up
        (at("2025-01-08T00:00"), at("2025-01-08T04:05")),
    ]

    # a range inside one quarter hour has no whole quarter: raw
    pieces = plan_pieces(at("2025-01-03T10:01"), at("2025-01-03T10:14"), days, day_fits=bool, quarters_fit=bool)
    assert (pieces.raw, pieces.quarters, pieces.days) == ([(at("2025-01-03T10:01"), at("2025-01-03T10:14"))], [], [])


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_lookup_and_statement_share_one_repeatable_read_snapshot():
    def setting(name):
        with connection.cursor() as cursor:
            cursor.execute(f"SHOW {name}")
            return cursor.fetchone()[0]

    with repeatable_read(connection, read_only=True):
        assert (setting("transaction_isolation"), setting("transaction_read_only")) == ("repeatable read", "on")
    assert (setting("transaction_isolation"), setting("transaction_read_only")) == ("read committed", "off")


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_late_writes_to_one_day_do_not_wait_for_each_other(environment):
    meter(environment, "SUM")
    dsn = connection.get_connection_params()
    columns = 'environment_id, event_id, event_name, external_customer_id, "timestamp", ingested_at, source, properties'
    insert = f"INSERT INTO metering_event ({columns}) VALUES (%s, %s, 'usage', 'a', %s, now(), '', '{{}}')"
    with psycopg.connect(**dsn) as first, psycopg.connect(**dsn, autocommit=True) as second:
        first.execute(insert, [environment.pk, "late-1", at("2025-01-10T10:00")])  # open transaction: its mark
        second.execute("SET lock_timeout = '2s'")
        second.execute(insert, [environment.pk, "late-2", at("2025-01-10T11:00")])  # would time out if it waited
        first.rollback()
    assert Event.objects.filter(event_id__startswith="late-").count() == 1


# --- The day in progress ----------------------------------------------------------------------------------------


def rollup_days_with_until() -> dict[dt.date, dt.datetime | None]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT day, max(until) FROM metering_rollup_day GROUP BY day")
        return dict(cursor.fetchall())


def yesterday_in_progress(monkeypatch) -> tuple[dt.datetime, dt.datetime]:
    """Seal nothing after yesterday (as in the hour after midnight, whenever the test runs): yesterday is then the day
    in progress, rolled up to its last quarter hour before 22:00-22:45. (midnight of yesterday, that bound)"""
    now = dt.datetime.now(UTC)
    monkeypatch.setattr(refresh, "SEAL_MARGIN", dt.timedelta(hours=now.hour + 1, minutes=now.minute))
    midnight = dt.datetime.combine(now.date() - dt.timedelta(days=1), dt.time(), UTC)
    return midnight, midnight + dt.timedelta(hours=22)


IN_PROGRESS_METERS = ["COUNT", "SUM", "AVG", "LATEST", "COUNT_UNIQUE", "MAX per HOUR by g", "MAX per 3HOUR by g",
                      "MAX per DAY", "WEIGHTED_SUM", "WEIGHTED_SUM never", "MIN", "CEL",
                      "filtered"]  # fmt: skip


@postgres_only
@pytest.mark.django_db(transaction=True)  # rollups see committed writes only
@pytest.mark.parametrize("name", IN_PROGRESS_METERS)
def test_the_day_in_progress_is_read_from_its_rollup_up_to_its_moment(environment, monkeypatch, name):
    spec = AggregationSpec.from_meter(meter(environment, name))
    midnight, earliest_until = yesterday_in_progress(monkeypatch)
    for minutes in range(-90, 26 * 60, 47):  # from the day before, through yesterday, into today
        for customer, value in (("a", minutes % 11), ("b", f'"{minutes % 5}.5"')):
            send(environment, event_name="usage", timestamp=iso(midnight + dt.timedelta(minutes=minutes)),
                 customer=customer, properties=f'{{"v": {value}, "g": "{"ab"[minutes % 2]}"}}')  # fmt: skip
    report = rollups_refresh()
    assert report.days_in_progress == 1
    until = rollup_days_with_until()[midnight.date()]
    assert until is not None and earliest_until <= until <= earliest_until + dt.timedelta(minutes=45)
    assert until.minute % 15 == 0

    common = {"spec": spec, "environment_id": environment.pk}
    two_days = {"start": midnight - dt.timedelta(days=1), "end": midnight + dt.timedelta(days=2)}
    cases = [
        UsageQuery(**common, **two_days),
        UsageQuery(**common, **two_days, window_size="HOUR"),
        UsageQuery(**common, **two_days, window_size="DAY", zone=ZoneInfo("Asia/Kolkata")),
        UsageQuery(**common, **two_days, window_size="DAY", zone=ZoneInfo("America/New_York")),
        UsageQuery(**common, **two_days, by_customer=True),
        UsageQuery(**common, **two_days, customer="b", window_size="DAY"),
        UsageQuery(**common, start=midnight + dt.timedelta(hours=3, minutes=7), end=midnight + dt.timedelta(hours=23)),
    ]
    assert_same_as_raw_cases(cases)
    # the day from midnight: its totals up to `until` from one rollup row, raw events after it (bucketed maxima read
    # quarter hours, so the bucket across `until` stays one)
    statement = usage_statement(UsageQuery(**common, start=midnight, end=midnight + dt.timedelta(days=1)))
    bucketed = name.startswith("MAX per")
    assert ("unnest(r.quarters" in statement) is bucketed
    assert ("FROM metering_rollup r WHERE" in statement or "FROM metering_rollup_distinct r WHERE" in statement) is (
        not bucketed
    )
    if name in ("COUNT", "SUM", "AVG", "LATEST", "COUNT_UNIQUE", "WEIGHTED_SUM", "MIN", "CEL", "filtered"):
        assert statement.count("FROM metering_event e") == 1  # (the others have more parts than one)
    # from inside the day: its quarter hours up to `until`
    statement = usage_statement(
        UsageQuery(**common, start=midnight + dt.timedelta(hours=3, minutes=15), end=midnight + dt.timedelta(days=1))
    )
    assert "unnest(r.quarters" in statement
    # customers' own windows (alert passes, access checks) read it the same way
    windows = {"a": (midnight + dt.timedelta(hours=1), midnight + dt.timedelta(days=2)), "b": (midnight, until)}
    common_windows = {"environment_id": environment.pk, "windows": windows}
    with_rollups = customer_windows_usage(spec, **common_windows)
    assert with_rollups == customer_windows_usage(spec, **common_windows, rollups=False)
    assert with_rollups["a"] is not None


@postgres_only
@pytest.mark.django_db(transaction=True)  # rollups see committed writes only
@pytest.mark.parametrize("name", ["SUM", "COUNT_UNIQUE", "MAX per HOUR by g", "LATEST"])
def test_a_late_write_to_the_day_in_progress_counts_at_once_and_is_rolled_up_again(environment, monkeypatch, name):
    spec = AggregationSpec.from_meter(meter(environment, name))
    midnight, _ = yesterday_in_progress(monkeypatch)
    for hours in (1, 5, 9, 23):
        send(environment, event_name="usage", timestamp=iso(midnight + dt.timedelta(hours=hours)), customer="a",
             properties=f'{{"v": {hours}, "g": "a"}}')  # fmt: skip
    assert rollups_refresh().days_in_progress == 1
    day = UsageQuery(spec=spec, environment_id=environment.pk, start=midnight, end=midnight + dt.timedelta(days=1))
    before = {"SUM": 38, "COUNT_UNIQUE": 4, "MAX per HOUR by g": 38, "LATEST": 23}[name]
    assert values(day) == (before, before)
    assert rollups_refresh().days_in_progress == 0  # nothing changed, the moment has not moved on

    # a late event before the moment, a redelivery moving one out of the day, a deleted one: counted at once (the
    # remembered lookup's check sees the marks), then rolled up again
    send(environment, event_name="usage", timestamp=iso(midnight + dt.timedelta(hours=2)), customer="a",
         properties='{"v": 100, "g": "b"}')  # fmt: skip
    moved = Event.objects.get(environment=environment, timestamp=midnight + dt.timedelta(hours=5))
    send(environment, event_name="usage", event_id=moved.event_id, timestamp=iso(midnight - dt.timedelta(hours=3)),
         customer="a", properties='{"v": 5, "g": "a"}')  # fmt: skip
    Event.objects.filter(environment=environment, timestamp=midnight + dt.timedelta(hours=9)).delete()
    after = {"SUM": 124, "COUNT_UNIQUE": 3, "MAX per HOUR by g": 124, "LATEST": 23}[name]
    assert values(day) == (after, after)
    assert rollups_refresh().days_in_progress == 1
    assert values(day) == (after, after)
    with connection.cursor() as cursor:  # the marks of the day in progress do not pile up until it is counted
        cursor.execute("SELECT count(*) FROM metering_rollup_mark WHERE day = %s", [midnight.date()])
        assert cursor.fetchone()[0] == 0
    assert "FROM metering_rollup" in usage_statement(day)


@postgres_only
@pytest.mark.django_db(transaction=True)  # rollups see committed writes only
def test_the_day_in_progress_becomes_a_whole_day_once_sealed(environment, monkeypatch):
    spec = AggregationSpec.from_meter(meter(environment, "SUM"))
    midnight, _ = yesterday_in_progress(monkeypatch)
    for hours in (1, 12, 23):
        send(environment, event_name="usage", timestamp=iso(midnight + dt.timedelta(hours=hours)), properties={"v": 1})
    rollups_refresh()
    assert rollup_days_with_until()[midnight.date()] is not None
    monkeypatch.setattr(refresh, "SEAL_MARGIN", dt.timedelta(0))
    report = rollups_refresh()
    assert report.days == 1 and rollup_days_with_until()[midnight.date()] is None
    day = UsageQuery(spec=spec, environment_id=environment.pk, start=midnight, end=midnight + dt.timedelta(days=1))
    assert values(day) == (3, 3)
    statement = usage_statement(day)
    assert "FROM metering_event e" not in statement and "unnest(r.quarters" not in statement


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_only_events_more_than_an_hour_old_mark_the_current_day(environment):
    meter(environment, "SUM")
    now = dt.datetime.now(UTC)

    def marked(moment: dt.datetime) -> bool:
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM metering_rollup_mark")
        send(environment, event_name="usage", timestamp=iso(moment), properties={"v": 1})
        with connection.cursor() as cursor:
            cursor.execute("SELECT array_agg(day) FROM metering_rollup_mark")
            return cursor.fetchone()[0] == [moment.date()]

    assert marked(now - dt.timedelta(minutes=61))
    assert marked(now - dt.timedelta(days=1))
    recent = now - dt.timedelta(minutes=50)
    assert marked(recent) is (recent.date() < now.date())  # within the hour: only a day already over is marked


@postgres_only
@pytest.mark.django_db(transaction=True)  # rollups see committed writes only
def test_the_day_in_progress_can_be_left_to_raw_events(environment, monkeypatch, settings):
    settings.ROLLUPS_DAY_IN_PROGRESS_EVERY = 0
    meter(environment, "SUM")
    midnight, _ = yesterday_in_progress(monkeypatch)
    send(environment, event_name="usage", timestamp=iso(midnight + dt.timedelta(hours=1)), properties={"v": 1})
    assert rollups_refresh().days_in_progress == 0
    assert midnight.date() not in rollup_days_with_until()


def test_plan_pieces_reads_a_day_in_progress_up_to_its_moment():
    day = dt.date(2025, 1, 10)
    midnight = dt.datetime(2025, 1, 10, tzinfo=UTC)
    until = midnight + dt.timedelta(hours=14, minutes=30)
    yes = lambda day: True  # noqa: E731
    pieces = plan_pieces(
        midnight - dt.timedelta(days=1), midnight + dt.timedelta(days=1), frozenset({day - dt.timedelta(days=1)}),
        day_fits=yes, quarters_fit=yes, partial={day: until}, partial_totals=False,
    )  # fmt: skip
    assert pieces.days == [(day - dt.timedelta(days=1), day)]  # never the day in progress's totals here
    assert pieces.quarters == [(midnight, until)]
    assert pieces.raw == [(until, midnight + dt.timedelta(days=1))]
    # where the range holds midnight to the moment, the day's totals (those of midnight to the moment) serve
    pieces = plan_pieces(
        midnight - dt.timedelta(days=1), midnight + dt.timedelta(days=1), frozenset({day - dt.timedelta(days=1)}),
        day_fits=yes, quarters_fit=yes, partial={day: until}, partial_totals=True,
    )  # fmt: skip
    assert pieces.days == [(day - dt.timedelta(days=1), day + dt.timedelta(days=1))]
    assert pieces.quarters == [] and pieces.raw == [(until, midnight + dt.timedelta(days=1))]
    # a range starting inside a quarter hour, in a zone that cuts no quarter hour
    pieces = plan_pieces(
        midnight + dt.timedelta(hours=3, minutes=7), midnight + dt.timedelta(hours=20), frozenset(),
        day_fits=yes, quarters_fit=yes, partial={day: until},
    )  # fmt: skip
    assert pieces.quarters == [(midnight + dt.timedelta(hours=3, minutes=15), until)]
    assert pieces.raw == [
        (midnight + dt.timedelta(hours=3, minutes=7), midnight + dt.timedelta(hours=3, minutes=15)),
        (until, midnight + dt.timedelta(hours=20)),
    ]


@postgres_only
@pytest.mark.django_db(transaction=True)  # rollups see committed writes only
@pytest.mark.parametrize("name", ["SUM", "COUNT", "AVG", "WEIGHTED_SUM", "WEIGHTED_SUM never", "COUNT_UNIQUE"])
def test_a_remembered_day_in_progress_is_looked_up_again_once_sealed(environment, monkeypatch, name):
    """A remembered plan took the day's totals to its moment and raw events after it: the whole day's totals since
    would count the events after the moment twice (SUM gave 59 for 36)."""
    spec = AggregationSpec.from_meter(meter(environment, name))
    read._recent_coverage.clear()
    midnight, _ = yesterday_in_progress(monkeypatch)
    for hours in (1, 12, 23):
        send(environment, event_name="usage", timestamp=iso(midnight + dt.timedelta(hours=hours)), customer="a",
             properties={"v": hours})  # fmt: skip
    rollups_refresh()
    day = UsageQuery(spec=spec, environment_id=environment.pk, start=midnight, end=midnight + dt.timedelta(days=1))
    windows = {"environment_id": environment.pk, "windows": {"a": (midnight, midnight + dt.timedelta(days=1))}}
    raw = run_usage_queries([day], rollups=False)[0]
    raw_windows = customer_windows_usage(spec, **windows, rollups=False)
    assert run_usage_queries([day])[0] == raw and customer_windows_usage(spec, **windows) == raw_windows  # remembered
    monkeypatch.setattr(refresh, "SEAL_MARGIN", dt.timedelta(0))
    assert rollups_refresh().days == 1 and rollup_days_with_until()[midnight.date()] is None
    assert run_usage_queries([day])[0] == raw
    assert customer_windows_usage(spec, **windows) == raw_windows


@postgres_only
@pytest.mark.django_db(transaction=True)  # rollups see committed writes only
def test_a_remembered_day_in_progress_is_looked_up_again_once_its_moment_moved_on(environment, monkeypatch, settings):
    settings.ROLLUPS_DAY_IN_PROGRESS_EVERY = 60
    spec = AggregationSpec.from_meter(meter(environment, "SUM"))
    read._recent_coverage.clear()
    midnight, _ = yesterday_in_progress(monkeypatch)
    monkeypatch.setattr(refresh, "SEAL_MARGIN", refresh.SEAL_MARGIN + dt.timedelta(hours=2))  # moment about 20:00
    for minutes in (60, 720, 1230, 1290):
        send(environment, event_name="usage", timestamp=iso(midnight + dt.timedelta(minutes=minutes)),
             properties={"v": 1})  # fmt: skip
    rollups_refresh()
    first_until = rollup_days_with_until()[midnight.date()]
    day = UsageQuery(spec=spec, environment_id=environment.pk, start=midnight, end=midnight + dt.timedelta(days=1))
    assert run_usage_queries([day])[0].value == 4
    monkeypatch.setattr(refresh, "SEAL_MARGIN", refresh.SEAL_MARGIN - dt.timedelta(hours=2))  # about 22:00
    assert rollups_refresh().days_in_progress == 1
    assert rollup_days_with_until()[midnight.date()] > first_until
    assert run_usage_queries([day])[0].value == 4  # (6 when the remembered plan met the new totals)


@postgres_only
@pytest.mark.django_db(transaction=True)  # rollups see committed writes only
def test_a_day_in_progress_without_events_is_rolled_up_whole_once_sealed(environment, monkeypatch):
    meter(environment, "SUM")
    midnight, _ = yesterday_in_progress(monkeypatch)
    assert rollups_refresh().days_in_progress == 1
    send(environment, event_name="usage", timestamp=iso(dt.datetime.now(UTC)), properties={"v": 1})  # a later day
    monkeypatch.setattr(refresh, "SEAL_MARGIN", dt.timedelta(0))
    rollups_refresh()
    assert rollup_days_with_until()[midnight.date()] is None


@postgres_only
@pytest.mark.django_db(transaction=True)  # rollups see committed writes only
def test_minute_maxima_roll_up_no_day_in_progress(environment, monkeypatch):
    meter(environment, "MAX per MINUTE by g")
    midnight, _ = yesterday_in_progress(monkeypatch)
    send(environment, event_name="usage", timestamp=iso(midnight + dt.timedelta(hours=1)), properties={"v": 1})
    assert rollups_refresh().days_in_progress == 0  # a read could take neither its quarters nor its totals


def test_the_refresh_and_the_trigger_agree_on_how_late_an_event_marks_its_day():
    migration = importlib.import_module("metering.migrations.0014_rollups_of_today")
    hours, unit = migration.LATE_AFTER.split()
    assert unit == "hour" and dt.timedelta(hours=int(hours)) == refresh.LATE_AFTER
