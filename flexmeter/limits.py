"""What can be stored: the one rule every value accepted at ingest (API, bulk, import) and every CEL constant obeys.

A stored event must stay readable by every reader: the exact JSON codec (`metering.exactjson`), PostgreSQL `jsonb`
and `numeric`, SQLite's decimal-text functions, Python (which refuses to parse integers of more than 4,300
digits) and the ClickHouse backend to come. The limits are chosen so each of them holds every accepted value
with room to compute:

- **Numbers**: less than 10^38 in magnitude and at most 38 digits after the decimal point, as spelled (`1.50`
  keeps its two places: canonical text keeps the scale). That is exactly ClickHouse's `Decimal256(76, 38)`
  (76 digits), far inside PostgreSQL `numeric` (131,072 digits before the point, 16,383 after), and at most 76
  digits of text, so Python and SQLite never meet their limits. Sums of a billion such values still fit
  PostgreSQL and Python exactly. `1e400`, `1e131071` or `1e-16384` are beyond it: a 400 naming the field.
- **Nesting**: at most 32 levels of objects and arrays, `properties` itself being the first. Readers walk values
  recursively (the JSON codecs, the debugger's display); 32 keeps them far from any recursion limit.
- **Keys**: at most 255 characters at every level, like every other name of an event (SPEC §2.3).
- **Strings**: no limit of their own beyond the 32 KiB of the whole `properties` (SPEC §2.3); every reader
  handles text of that size.

Strings holding numbers (`"1e999"`) are strings: they are stored as sent, whatever their size.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

MAX_INTEGER_DIGITS = 38
MAX_FRACTION_DIGITS = 38
MAX_NESTING = 32
MAX_KEY_LENGTH = 255
MAX_PROBLEMS = 10
_NUMBERS = (int, float, Decimal)
_INT_LOW, _INT_HIGH = -(10**MAX_INTEGER_DIGITS), 10**MAX_INTEGER_DIGITS
_FLOAT_PLAIN_LOW, _FLOAT_PLAIN_HIGH = 1e-4, 1e16

NUMBER_RULE = (
    f"numbers must be less than 1e{MAX_INTEGER_DIGITS} in magnitude with at most {MAX_FRACTION_DIGITS} digits after "
    "the decimal point"
)


def number_problem(value: int | float | Decimal) -> str | None:
    """Why this number cannot be stored (None when it can). The message never echoes the (possibly huge) value."""
    if isinstance(value, int):
        if -(10**MAX_INTEGER_DIGITS) < value < 10**MAX_INTEGER_DIGITS:
            return None
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value)) if value == value and abs(value) != float("inf") else Decimal("NaN")
    else:
        number = value
    if not number.is_finite():
        return "must be a finite number"
    integer_digits = number.adjusted() + 1 if number else 0
    exponent = number.as_tuple().exponent
    fraction_digits = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    if integer_digits > MAX_INTEGER_DIGITS:
        return f"is out of range: it has {integer_digits:,} digits before the decimal point ({NUMBER_RULE})"
    if fraction_digits > MAX_FRACTION_DIGITS:
        return f"is out of range: it has {fraction_digits:,} digits after the decimal point ({NUMBER_RULE})"
    return None


def json_value_problems(value: Any, *, path: str) -> dict[str, str]:
    """Every way a parsed JSON object or array breaks the rule, as `{json path: message}` (at most MAX_PROBLEMS).

    Walks the value with an explicit stack, so a value nested 10,000 levels deep is reported, not a RecursionError.
    It runs for every ingested event: strings and ordinary numbers are passed over without building paths.
    """
    problems: dict[str, str] = {}
    stack: list[tuple[Any, str, int]] = [(value, path, 1)]
    while stack and len(problems) < MAX_PROBLEMS:
        container, where, depth = stack.pop()
        if depth > MAX_NESTING:
            problems[where] = f"is nested too deeply (at most {MAX_NESTING} levels of objects and arrays)"
            continue
        is_object = type(container) is dict
        children = []
        for key, child in container.items() if is_object else enumerate(container):
            if is_object and len(key) > MAX_KEY_LENGTH:
                problems[f"{where}.{key[:40]}…"] = f"key must be at most {MAX_KEY_LENGTH} characters (got {len(key):,})"
                continue
            kind = type(child)
            if kind is str or kind is bool or child is None or (kind is int and _INT_LOW < child < _INT_HIGH):
                continue
            if kind is float and (child == 0 or _FLOAT_PLAIN_LOW <= abs(child) < _FLOAT_PLAIN_HIGH):
                continue  # repr without an exponent: fewer than 17 digits on either side
            child_path = f"{where}.{key}" if is_object else f"{where}[{key}]"
            if kind is dict or kind is list:
                children.append((child, child_path, depth + 1))
            elif isinstance(child, _NUMBERS) and (problem := number_problem(child)):
                problems[child_path] = problem
        stack.extend(reversed(children))
    return problems
