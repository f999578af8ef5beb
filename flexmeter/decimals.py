"""Exact text of numbers, quantities and instants, shared by every app: what the API returns for decimal
settings and timestamps, what exports write and what pages display.

`Decimal.normalize()` and decimal arithmetic round to the current context (28 significant digits by default), so
`1.0000000000000000000000000000001` would become `1`. Formatting never rounds, so the text is built from the
formatted digits: plain notation (no exponent), trailing fractional zeros stripped, negative zero as `0`.
"""

import datetime as dt
import functools
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Any

# The one rounding rule of numbers shown for reading (pages, chart labels; never CSV or the API): whole numbers
# from READ_WHOLE_FROM up, READ_DECIMALS decimals from 1 up, READ_SIGNIFICANT significant digits below 1.
READ_WHOLE_FROM = Decimal(10_000)
READ_DECIMALS = 2
READ_SIGNIFICANT = 3


def decimal_text(number: Decimal, *, grouped: bool = False) -> str:
    """Shortest exact plain text of a finite decimal: `1.50` → `1.5`, `1E+3` → `1000`, `-0.0` → `0`.

    `grouped` adds thousands separators to the integer part (`1,234,567.125`), as the dashboard shows quantities.
    The caller bounds the exponent: `1E+999999` would be written out in full.
    """
    # `str` is the cheaper of the two (a month of hourly windows writes 720 numbers) but writes an exponent for
    # large exponents and tiny numbers, where `f` writes every digit
    text = format(number, ",f") if grouped else str(number)
    if "E" in text or "e" in text:
        text = format(number, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def unit_label(*, value: Decimal | None, singular: str, plural: str) -> str:
    """`credit` for exactly 1, `credits` otherwise (SPEC §2.2); the other form when only one is set."""
    unit = singular if value is not None and value == 1 else plural
    return unit or plural or singular


def readable_decimal(number: Decimal) -> Decimal:
    """`number` rounded for reading (half up): `513.02887…` → `513.03`, `12345.6` → `12346`, `0.0012345` →
    `0.00123`. Values with no more digits than the rule keeps come back unchanged (`2.5` stays `2.5`)."""
    if not number.is_finite() or number == 0:
        return number
    magnitude = abs(number)
    if magnitude >= READ_WHOLE_FROM:
        places = 0
    elif magnitude >= 1:
        places = READ_DECIMALS
    else:
        places = READ_SIGNIFICANT - 1 - magnitude.adjusted()
    if -number.as_tuple().exponent <= places:  # type: ignore[operator]
        return number
    # enough precision for every digit kept, so a 30-digit number rounds instead of raising InvalidOperation
    context = Context(prec=max(28, magnitude.adjusted() + places + 2))
    return number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP, context=context)


def _as_decimal(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        value = repr(value)
    return Decimal(str(value).strip())


def format_quantity(value: Any, *, unit_singular: str = "", unit_plural: str = "", readable: bool = False) -> str:
    """`1 credit`, `0 credits`, `2.5 credits`, `1,234,567 credits`: exact decimal digits, thousands separators,
    the singular only for exactly 1. No units → just the number. `None` (an empty AVG/MIN/MAX/LATEST) → `—`.

    `readable` rounds the digits by `readable_decimal` (pages only; the unit still follows the exact value).
    """
    if value is None:
        return "—"
    number = _as_decimal(value)
    text = decimal_text(readable_decimal(number) if readable else number, grouped=True)
    unit = unit_label(value=number, singular=unit_singular, plural=unit_plural)
    return f"{text} {unit}" if unit else text


def quantity_is_rounded(value: Any) -> bool:
    """Whether the readable text of `value` differs from its exact text (a page then offers the exact value)."""
    if value is None:
        return False
    number = _as_decimal(value)
    return readable_decimal(number) != number


def rfc3339(moment: dt.datetime) -> str:
    """RFC 3339 in UTC with a `Z`, microseconds only when present: `2026-01-31T12:00:00Z`."""
    return _utc_text(moment.astimezone(dt.UTC))


# Remembered: an answer in hourly windows writes 720 instants and the next customer's answer the same ones. Keyed
# by the instant in UTC: two datetimes of one zone compare equal across a DST fold (01:30 before and after the
# clocks go back), so a key in local time would give the second the first one's text.
@functools.lru_cache(maxsize=1 << 14)
def _utc_text(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
