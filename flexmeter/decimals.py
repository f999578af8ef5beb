"""Exact text of numbers, quantities and instants, shared by every app: what the API returns for decimal
settings and timestamps, what exports write and what pages display.

`Decimal.normalize()` and decimal arithmetic round to the current context (28 significant digits by default), so
`1.0000000000000000000000000000001` would become `1`. Formatting never rounds, so the text is built from the
formatted digits: plain notation (no exponent), trailing fractional zeros stripped, negative zero as `0`.
"""

import datetime as dt
from decimal import Decimal
from typing import Any


def decimal_text(number: Decimal, *, grouped: bool = False) -> str:
    """Shortest exact plain text of a finite decimal: `1.50` → `1.5`, `1E+3` → `1000`, `-0.0` → `0`.

    `grouped` adds thousands separators to the integer part (`1,234,567.125`), as the dashboard shows quantities.
    The caller bounds the exponent: `1E+999999` would be written out in full.
    """
    text = format(number, ",f" if grouped else "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def unit_label(*, value: Decimal | None, singular: str, plural: str) -> str:
    """`credit` for exactly 1, `credits` otherwise (SPEC §2.2); the other form when only one is set."""
    unit = singular if value is not None and value == 1 else plural
    return unit or plural or singular


def format_quantity(value: Any, *, unit_singular: str = "", unit_plural: str = "") -> str:
    """`1 credit`, `0 credits`, `2.5 credits`, `1,234,567 credits`: exact decimal digits, thousands separators,
    the singular only for exactly 1. No units → just the number. `None` (an empty AVG/MIN/MAX/LATEST) → `—`.
    """
    if value is None:
        return "—"
    if isinstance(value, float):
        value = repr(value)
    number = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    text = decimal_text(number, grouped=True)
    unit = unit_label(value=number, singular=unit_singular, plural=unit_plural)
    return f"{text} {unit}" if unit else text


def rfc3339(moment: dt.datetime) -> str:
    """RFC 3339 in UTC with a `Z`, microseconds only when present: `2026-01-31T12:00:00Z`."""
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
