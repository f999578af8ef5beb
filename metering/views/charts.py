"""Server-side SVG bar charts for the Usage pages: no JavaScript, no CDN, readable without styles.

Numbers are exact decimals everywhere else; here they only become pixel heights. Labels print exact values.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from flexmeter.decimals import format_quantity
from metering.usage.spec import UsageWindow

WIDTH, HEIGHT = 880, 240
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 14, 30


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


def _label(start: dt.datetime, size: str) -> str:
    if size == "HOUR":
        return start.strftime("%H:%M") if start.hour else start.strftime("%b %-d")
    return start.strftime("%b %-d")


def bar_chart(windows: list[UsageWindow], *, size: str, unit_singular: str = "", unit_plural: str = "") -> SafeString:
    """A bar per window (empty windows leave a gap), a y axis with 4 gridlines, sparse x labels, tooltips."""
    if not windows:
        return mark_safe("")
    values = [window.value for window in windows]
    numbers = [value for value in values if value is not None]
    lowest = min([Decimal(0), *numbers])
    top = nice_ceiling(max([Decimal(0), *numbers]))
    bottom = -nice_ceiling(-lowest) if lowest < 0 else Decimal(0)
    span = float(top - bottom) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / len(windows)
    bar_w = max(1.0, slot * 0.72)

    def y(value: Decimal) -> float:
        return TOP + plot_h * (1 - float(value - bottom) / span)

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" preserveAspectRatio="none" role="img" '
        f'aria-label="Usage per {escape(size.lower())}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for index in range(5):
        tick = bottom + (top - bottom) * Decimal(index) / 4
        ty = y(tick)
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}"/>')
        label = escape(format_quantity(tick))
        parts.append(f'<text class="axis" x="{LEFT - 8}" y="{ty + 4:.1f}" text-anchor="end">{label}</text>')
    every = max(1, round(len(windows) / 8))
    zero_y = y(Decimal(0))
    for index, window in enumerate(windows):
        x = LEFT + slot * index + (slot - bar_w) / 2
        if window.value is not None:
            bar_top = min(y(window.value), zero_y)
            height = max(abs(zero_y - y(window.value)), 0.0)
            text = format_quantity(window.value, unit_singular=unit_singular, unit_plural=unit_plural)
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{bar_top:.1f}" width="{bar_w:.1f}" height="{max(height, 0.5):.1f}" '
                f'rx="{min(3, bar_w / 3):.1f}"><title>{escape(window.start.strftime("%b %-d, %Y %H:%M"))} UTC: '
                f"{escape(text)}</title></rect>"
            )
        if index % every == 0:
            parts.append(
                f'<text class="axis" x="{x + bar_w / 2:.1f}" y="{HEIGHT - 10}" text-anchor="middle">'
                f"{escape(_label(window.start, size))}</text>"
            )
    parts.append(f'<line class="baseline" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{zero_y:.1f}" y2="{zero_y:.1f}"/>')
    parts.append("</svg>")
    return mark_safe("".join(parts))
