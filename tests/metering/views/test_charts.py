"""Server-side charts: whole-number ticks for counts, calendar-aligned labels, a data table, a said empty state."""

import datetime as dt
import re
from decimal import Decimal

from metering.usage.spec import UsageWindow
from metering.views.charts import axis_ticks, bar_chart, sparkline

UTC = dt.UTC


def series(start: dt.datetime, step: dt.timedelta, values) -> list[UsageWindow]:
    return [UsageWindow(start + step * index, None if v is None else Decimal(v)) for index, v in enumerate(values)]


def y_labels(svg: str) -> list[str]:
    return re.findall(r'<text class="axis axis-y"[^>]*>([^<]*)</text>', svg)


def x_labels(svg: str) -> list[str]:
    return re.findall(r'<text class="axis axis-x"[^>]*>([^<]*)</text>', svg)


def test_count_charts_have_whole_number_ticks():
    # issue #18: a count chart with a top of 1 showed 0.25 / 0.5 / 0.75, one with a top of 50 showed 12.5 / 37.5
    assert axis_ticks([Decimal(1)]) == [0, 1]
    assert axis_ticks([Decimal(3)]) == [0, 1, 2, 3]
    assert axis_ticks([Decimal(48)]) == [0, 20, 40, 60]
    assert axis_ticks([Decimal(100)]) == [0, 25, 50, 75, 100]
    day = dt.datetime(2025, 3, 1, tzinfo=UTC)
    svg = bar_chart(series(day, dt.timedelta(days=1), [1, 0, 1]), size="DAY")
    assert y_labels(svg) == ["0", "1"]
    svg = bar_chart(series(day, dt.timedelta(days=1), [50, 7, 13]), size="DAY")
    assert all("." not in label for label in y_labels(svg)) and y_labels(svg)[-1] == "60"


def test_fractional_series_keep_fractional_ticks_and_negative_values_get_an_axis_below_zero():
    assert axis_ticks([Decimal("0.3")]) == [0, Decimal("0.1"), Decimal("0.2"), Decimal("0.3")]
    assert axis_ticks([Decimal("-1.5"), Decimal("2.5")]) == [-2, -1, 0, 1, 2, 3]


def test_hourly_labels_sit_on_calendar_hours_and_read_forwards():
    # issue #18: a week of hourly bars was labelled every 21 hours: "Nov 26, 21:00, 18:00, …"
    start = dt.datetime(2025, 11, 26, tzinfo=UTC)
    week = series(start, dt.timedelta(hours=1), [1] * 168)
    assert x_labels(bar_chart(week, size="HOUR")) == [
        "Nov 26",
        "Nov 27",
        "Nov 28",
        "Nov 29",
        "Nov 30",
        "Dec 1",
        "Dec 2",
    ]
    two_days = series(start, dt.timedelta(hours=1), [1] * 48)
    assert x_labels(bar_chart(two_days, size="HOUR")) == ["Nov 26", "06:00", "12:00", "18:00", "Nov 27", "06:00",
                                                           "12:00", "18:00"]  # fmt: skip


def test_the_chart_carries_its_data_as_a_table_and_says_when_it_is_empty():
    day = dt.datetime(2025, 3, 1, tzinfo=UTC)
    svg = bar_chart(series(day, dt.timedelta(days=1), ["513.02887188321385902031", None]), size="DAY",
                    unit_singular="seat", unit_plural="seats")  # fmt: skip
    assert '<details class="chart-data"><summary>Show the data as a table</summary>' in svg
    assert '<tr><th scope="row">Mar 1, 2025</th><td class="num" title="Exactly 513.02887188321385902031 seats">' \
           "513.03 seats</td></tr>" in svg  # fmt: skip
    assert '<tr><th scope="row">Mar 2, 2025</th><td class="num">No events</td></tr>' in svg
    assert 'aria-label="Usage per day, Mar 1, 2025 to Mar 2, 2025 UTC; highest 513.03 seats.' in svg
    empty = bar_chart(series(day, dt.timedelta(days=1), [None, None]), size="DAY", empty="Nothing counted.")
    assert empty == '<div class="chart-empty">Nothing counted.</div>'


def test_sparkline_scales_a_series_into_its_box():
    svg = sparkline([0, 5, 10], label="Events per day")
    assert 'aria-label="Events per day"' in svg
    assert 'points="0.0,26.0 60.0,14.0 120.0,2.0"' in svg
    assert sparkline([], label="x") == ""
