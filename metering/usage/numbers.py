"""Numbers and canonical text of property values (SPEC §3), the one definition both databases follow.

PostgreSQL evaluates these rules in SQL (metering/usage/dialects/postgres.py); SQLite calls these very functions,
registered on each connection (metering/usage/dialects/sqlite.py). The debugger uses them to *describe* values, never
to compute quantities.
"""

from __future__ import annotations

import json
import re
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation, localcontext
from functools import lru_cache
from typing import cast

from flexmeter.decimals import decimal_text
from flexmeter.limits import number_problem

# A finite decimal literal, optionally surrounded by ASCII whitespace. The exponent is limited to three digits so
# every accepted value fits PostgreSQL's numeric type (and stays reasonable); "NaN"/"Infinity" never match.
NUMERIC_PATTERN = r"^[ \t\n\r]*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,3})?[ \t\n\r]*$"
_NUMERIC_RE = re.compile(NUMERIC_PATTERN)
# Longer text is not read as a number: PostgreSQL's numeric holds at most 16,383 digits after the point, and 15,000
# characters with an exponent of -999 stay within that, so no stored string can make a cast fail.
MAX_NUMERIC_TEXT = 15_000

# Computed quotients (AVG, WEIGHTED_SUM, CEL `/`) and transcendental results are rounded half away from zero to
# this many decimal places, identically on both databases.
DIVISION_PLACES = 20
_QUANTUM = Decimal(1).scaleb(-DIVISION_PLACES)
_WHOLE = 10**DIVISION_PLACES
_SHIFTED = 10 * _WHOLE  # one digit more, to round from

# Additions and multiplications are exact: the precision is far beyond any value a property can hold.
EXACT = Context(prec=1_000_000, Emax=999_999_999, Emin=-999_999_999)


class _NonFinite:
    """Marker for NaN/Infinity tokens that Python's json module accepts but JSON does not allow."""


NON_FINITE = _NonFinite()


@lru_cache(maxsize=512)
def parse_properties(text: str | None) -> dict:
    """Parse stored properties JSON keeping every number exact (Decimal for fractions, int for integers)."""
    if not text:
        return {}
    try:
        value = json.loads(text, parse_float=Decimal, parse_constant=lambda _token: NON_FINITE)
    except (ValueError, RecursionError):  # rows stored before flexmeter/limits.py: read as having no properties
        return {}
    return value if isinstance(value, dict) else {}


def is_numeric_text(text: str) -> bool:
    return len(text) <= MAX_NUMERIC_TEXT and bool(_NUMERIC_RE.match(text))


def number_text(value: int | Decimal) -> str:
    """A JSON number spelled the way PostgreSQL's numeric prints it: plain digits, scale kept, no exponent."""
    if isinstance(value, int):
        return str(value)
    if value.is_zero():
        value = value.copy_abs()
    return format(value, "f")


def canonical_text(value) -> str | None:
    """Text used by filters, group_by and COUNT_UNIQUE: strings as-is, numbers, true/false; else None."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, Decimal)):
        return number_text(value)
    if isinstance(value, float):
        return number_text(Decimal(repr(value)))
    return None


def numeric_value(value) -> Decimal | None:
    """The exact number a property value stands for, or None when it is not numeric (SPEC §3)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, float):
        return Decimal(repr(value)) if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, str) and is_numeric_text(value):
        return Decimal(value.strip(" \t\n\r"))
    return None


def cel_input(value) -> Decimal | None:
    """The number a CEL variable stands for: a numeric value within the rule for what can be stored
    (flexmeter/limits.py), else None (an error for that event). Numeric strings and rows stored before the rule can
    be larger; keeping every input within it is what lets a meter's expression be bounded when it is created
    (catalog/expressions.py), so no event's arithmetic can overflow a database."""
    number = numeric_value(value)
    return None if number is None or number_problem(number) is not None else number


def value_kind(value) -> str:
    """A short, value-free description of a property value for explanations ("a boolean", "a string")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float, Decimal)):
        return "a number"
    if isinstance(value, str):
        return "a numeric string" if is_numeric_text(value) else "a non-numeric string"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return "not a finite number"


def divide(numerator: Decimal, denominator: Decimal | int) -> Decimal | None:
    """numerator / denominator rounded half away from zero to DIVISION_PLACES places, spelled canonically (as
    `normalize` spells it: without trailing zeros, an integer without exponent); None when dividing by zero.

    Computed on the exact integer ratios, truncated one digit further and rounded: PostgreSQL does the same with
    `round(div(a * 10^21, b) * 10^-21, 20)`, so both databases agree on every digit. (Integers rather than
    `Fraction`s: a month of hourly AVG windows divides 720 times, at 11 µs each with fractions, 2 µs here; and the
    trailing zeros are dropped here, where it is cheap, rather than by rewriting the text of every quotient.)
    """
    if denominator == 0:
        return None
    a, b = numerator.as_integer_ratio()
    if type(denominator) is int:
        top, bottom = a * _SHIFTED, b * denominator
    else:
        c, e = denominator.as_integer_ratio()
        top, bottom = a * e * _SHIFTED, b * c
    if bottom < 0:
        top, bottom = -top, -bottom
    # half away from zero: the magnitude truncated one digit further, rounded half up
    rounded = (top // bottom + 5) // 10 if top >= 0 else -((-top // bottom + 5) // 10)
    if rounded % _WHOLE == 0:
        return Decimal(rounded // _WHOLE)
    quotient = Decimal(rounded).scaleb(-DIVISION_PLACES, context=EXACT)
    # most quotients end in a digit other than zero: nothing to drop
    return quotient if rounded % 10 else quotient.normalize(EXACT)


def round_places(value: Decimal) -> Decimal:
    """Round an (almost exact) result to DIVISION_PLACES places, half away from zero."""
    return value.quantize(_QUANTUM, rounding=ROUND_HALF_UP, context=EXACT)


def transcendental(function: str, x: Decimal, y: Decimal | None = None) -> Decimal | None:
    """sqrt, ln and pow for SQLite with PostgreSQL's domain rules; None for an undefined or overflowing result."""
    with localcontext(EXACT) as ctx:
        magnitude = max(x.adjusted(), 0) if x else 0
        ctx.prec = magnitude + DIVISION_PLACES + 30
        try:
            if function == "sqrt":
                return round_places(x.sqrt()) if x >= 0 else None
            if function == "ln":
                return round_places(x.ln()) if x > 0 else None
            y = cast(Decimal, y)  # pow: the only function with a second argument
            if x == 0:
                return None if y < 0 else round_places(Decimal(1) if y == 0 else Decimal(0))
            if x < 0 and y != y.to_integral_value():
                return None
            growth = y * abs(x).ln()
            if growth > POW_LN_LIMIT:
                return None
            ctx.prec = int(max(growth, Decimal(0)) / Decimal(10).ln()) + DIVISION_PLACES + 40
            return round_places(x**y)
        except (InvalidOperation, OverflowError, ArithmeticError):
            return None


# pow results above e^2302 (about 1e1000) count as overflow: an error for that event, never a failed query.
POW_LN_LIMIT = Decimal(2302)


def normalize(value: Decimal | None) -> Decimal | None:
    """Same number, canonical spelling (Decimal('3.00') -> Decimal('3'))."""
    if value is None:
        return None
    text = str(value)
    # already canonical (most values: whole numbers from sums and counts) unless it has an exponent, a fraction
    # ending in zero or a negative zero; `str` costs a quarter of rewriting it
    if "E" in text or "e" in text or text == "-0" or ("." in text and text[-1] == "0"):
        return Decimal(decimal_text(value))
    return value
