"""Server-side SVG charts for the dashboard: no JavaScript, no CDN, readable without styles.

Numbers are exact decimals everywhere else; here they only become pixel heights. Tooltips and the data table
beside each bar chart print values by the dashboard's reading rule (`flexmeter.decimals.readable_decimal`) with
the exact value in the table cell's `title`; the table is the chart's accessible alternative (SVG bars are
hover-only). Axis ticks of whole-number series are whole numbers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

from flexmeter.decimals import format_quantity, quantity_is_rounded
from metering.usage.spec import UsageWindow

WIDTH, HEIGHT = 880, 240
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 14, 30
# at most this many x labels; the step between labels is a whole number of calendar units aligned to midnight
MAX_LABELS = 9
LABEL_STEPS = {"HOUR": (1, 2, 3, 6, 12, 24, 48, 72, 168), "DAY": (1, 2, 7, 14, 28), "WEEK": (1, 2, 4, 8, 13, 26)}
SPARK_WIDTH, SPARK_HEIGHT = 120, 28


def nice_ceiling(value: Decimal) -> Decimal:
    """The smallest of 1, 2, 2.5, 5 × 10^k that is ≥ value (axis top)."""
    if value <= 0:
        return Decimal(1)
    exponent = value.adjusted()
    for _ in range(2):
        for step in (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10)):
            candidate = step.scaleb(exponent)
            if candidate >= value:
                return candidate
        exponent += 1
    return value  # pragma: no cover - the loop always finds one


def tick_step(span: Decimal, *, whole: bool, intervals: int = 4) -> Decimal:
    """A 1, 2, 2.5, 5 × 10^k step that covers `span` in about `intervals` steps; never below 1 and never 2.5 when
    the series is made of whole numbers (counts), so every tick is a whole number."""
    step = nice_ceiling(span / intervals) if span > 0 else Decimal(1)
    if whole:
        if step < 1:
            step = Decimal(1)
        elif step == Decimal("2.5"):
            step = Decimal(5) if span > 8 else Decimal(2)
    return step


def axis_ticks(values: list[Decimal]) -> list[Decimal]:
    """Gridline values from a multiple of the step at or below min(0, lowest) to one at or above max(0, highest)."""
    lowest, highest = min([Decimal(0), *values]), max([Decimal(0), *values])
    whole = all(value == value.to_integral_value() for value in values)
    step = tick_step(highest - lowest, whole=whole)
    bottom = (lowest / step).to_integral_value(rounding=ROUND_FLOOR) * step
    top = (highest / step).to_integral_value(rounding=ROUND_CEILING) * step
    if top == bottom:
        top = bottom + step
    count = int((top - bottom) / step)
    return [bottom + step * index for index in range(count + 1)]


def label_step(windows: list[UsageWindow], size: str) -> int:
    """How many bars apart the x labels are: the smallest calendar step that keeps at most MAX_LABELS labels."""
    steps = LABEL_STEPS.get(size, (1,))
    for step in steps:
        if len(windows) / step <= MAX_LABELS:
            return step
    return steps[-1]


def _labelled(start: dt.datetime, index: int, step: int, size: str) -> bool:
    """Labels sit on calendar boundaries: hours divisible by the step (midnight always), days counted from the
    first bar, so labels read forwards (00:00, 06:00, 12:00 …) instead of drifting across days."""
    if size == "HOUR":
        hours = start.hour + 24 * start.toordinal()
        return hours % step == 0
    return index % step == 0


def _label(start: dt.datetime, size: str) -> str:
    if size == "HOUR":
        return start.strftime("%H:%M") if start.hour else start.strftime("%b %-d")
    return start.strftime("%b %-d")


def _when(start: dt.datetime, size: str) -> str:
    if size == "HOUR":
        return start.strftime("%b %-d, %Y %H:%M")
    if size == "WEEK":
        return f"Week of {start:%b %-d, %Y}"
    return start.strftime("%b %-d, %Y")


def chart_table(windows: list[UsageWindow], *, size: str, unit_singular: str = "", unit_plural: str = "") -> SafeString:
    """The chart's data as a table inside a closed `<details>`: every bucket, readable values, exact in `title`."""
    units = {"unit_singular": unit_singular, "unit_plural": unit_plural}
    rows = []
    for window in windows:
        text = format_quantity(window.value, readable=True, **units) if window.value is not None else "No events"
        exact = format_html(' title="Exactly {}"', format_quantity(window.value, **units))
        rows.append(
            format_html(
                '<tr><th scope="row">{}</th><td class="num"{}>{}</td></tr>',
                _when(window.start, size),
                exact if quantity_is_rounded(window.value) else "",
                text,
            )
        )
    return format_html(
        '<details class="chart-data"><summary>Show the data as a table</summary><div class="table-scroll">'
        '<table class="table table-compact"><caption class="sr-only">Usage per {} (UTC)</caption>'
        '<thead><tr><th scope="col">{} (UTC)</th><th scope="col" class="num">Usage</th></tr></thead>'
        "<tbody>{}</tbody></table></div></details>",
        size.lower(),
        {"HOUR": "Hour", "WEEK": "Week"}.get(size, "Day"),
        mark_safe("".join(rows)),
    )


def bar_chart(
    windows: list[UsageWindow], *, size: str, unit_singular: str = "", unit_plural: str = "", empty: str = ""
) -> SafeString:
    """A bar per window (empty windows leave a gap), gridlines on nice ticks, calendar-aligned x labels, tooltips,
    and the data table. A series without any value says so (`empty`, or a default sentence) instead of an axis."""
    if not windows:
        return mark_safe("")
    values = [window.value for window in windows]
    numbers = [value for value in values if value is not None]
    if not numbers:
        return format_html('<div class="chart-empty">{}</div>', empty or "No usage in this window.")
    ticks = axis_ticks(numbers)
    bottom, top = ticks[0], ticks[-1]
    span = float(top - bottom) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / len(windows)
    bar_w = max(1.0, slot * 0.72)
    units = {"unit_singular": unit_singular, "unit_plural": unit_plural}

    def y(value: Decimal) -> float:
        return TOP + plot_h * (1 - float(value - bottom) / span)

    highest = max(numbers)
    summary = (
        f"Usage per {size.lower()}, {_when(windows[0].start, size)} to {_when(windows[-1].start, size)} UTC; "
        f"highest {format_quantity(highest, readable=True, **units)}. The table below lists every value."
    )
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" preserveAspectRatio="none" role="img" '
        f'aria-label="{escape(summary)}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for tick in ticks:
        ty = y(tick)
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}"/>')
        label = escape(format_quantity(tick, readable=True))
        parts.append(f'<text class="axis axis-y" x="{LEFT - 8}" y="{ty + 4:.1f}" text-anchor="end">{label}</text>')
    step = label_step(windows, size)
    zero_y = y(Decimal(0))
    for index, window in enumerate(windows):
        x = LEFT + slot * index + (slot - bar_w) / 2
        if window.value is not None:
            bar_top = min(y(window.value), zero_y)
            height = max(abs(zero_y - y(window.value)), 0.0)
            text = format_quantity(window.value, readable=True, **units)
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{bar_top:.1f}" width="{bar_w:.1f}" height="{max(height, 0.5):.1f}" '
                f'rx="{min(3, bar_w / 3):.1f}"><title>{escape(_when(window.start, size))} UTC: '
                f"{escape(text)}</title></rect>"
            )
        if _labelled(window.start, index, step, size):
            parts.append(
                f'<text class="axis axis-x" x="{x + bar_w / 2:.1f}" y="{HEIGHT - 10}" text-anchor="middle">'
                f"{escape(_label(window.start, size))}</text>"
            )
    parts.append(f'<line class="baseline" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{zero_y:.1f}" y2="{zero_y:.1f}"/>')
    parts.append("</svg>")
    return mark_safe("".join(parts) + chart_table(windows, size=size, **units))


def sparkline(values: Sequence[Decimal | int | None], *, label: str) -> SafeString:
    """A small trend line (no axes) of a series, oldest first; missing values count as 0. `label` describes it
    for screen readers (the numbers themselves are next to it on the page)."""
    if not values:
        return mark_safe("")
    numbers = [Decimal(value) if value is not None else Decimal(0) for value in values]
    lowest, highest = min([Decimal(0), *numbers]), max([Decimal(0), *numbers])
    span = float(highest - lowest) or 1.0
    step = SPARK_WIDTH / max(len(numbers) - 1, 1)
    points = " ".join(
        f"{index * step:.1f},{SPARK_HEIGHT - 2 - (SPARK_HEIGHT - 4) * float(value - lowest) / span:.1f}"
        for index, value in enumerate(numbers)
    )
    return format_html(
        '<svg class="sparkline" viewBox="0 0 {} {}" width="{}" height="{}" preserveAspectRatio="none" role="img" '
        'aria-label="{}" '
        'xmlns="http://www.w3.org/2000/svg"><polyline points="{}" fill="none"/></svg>',
        SPARK_WIDTH,
        SPARK_HEIGHT,
        SPARK_WIDTH,
        SPARK_HEIGHT,
        label,
        points,
    )
