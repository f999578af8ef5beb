"""The SQLite dialect, and the exact decimal functions and aggregates it calls, registered on every new connection.

SQLite would read JSON numbers as binary floats (0.1 + 0.2 != 0.3). These functions read the stored JSON text
with exact decimals and pass numbers around as decimal text, so SQLite computes the very digits PostgreSQL
computes with `numeric`. Rules come from metering/usage/numbers.py and periods.py; nothing here decides policy.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

from metering.usage.dialects.base import PROPS, Dialect
from metering.usage.numbers import (
    EXACT,
    NON_FINITE,
    canonical_text,
    cel_input,
    divide,
    number_text,
    numeric_value,
    parse_properties,
    transcendental,
)
from metering.usage.periods import MonthAnchor, bucket_start_local

_MISSING = object()


def _get(properties: str | None, key: str):
    value = parse_properties(properties).get(key, _MISSING)
    return None if value is NON_FINITE else value


def _dec(value) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, float):  # pragma: no cover - we never hand floats to these functions
        return Decimal(repr(value))
    return Decimal(value)


def _out(value: Decimal | None) -> str | None:
    return None if value is None else number_text(value)


def fm_present(properties, key):
    return int(_get(properties, key) is not _MISSING)


def fm_canonical(properties, key):
    value = _get(properties, key)
    return None if value is _MISSING else canonical_text(value)


def fm_number(properties, key):
    value = _get(properties, key)
    return None if value is _MISSING else _out(numeric_value(value))


def fm_cel_variable(properties, key):
    value = _get(properties, key)
    return "0" if value is _MISSING else _out(cel_input(value))


def _binary(operation):
    def function(a, b):
        a, b = _dec(a), _dec(b)
        if a is None or b is None:
            return None
        return _out(operation(a, b))

    return function


def _unary(operation):
    def function(a):
        a = _dec(a)
        return None if a is None else _out(operation(a))

    return function


def fm_cmp(a, b):
    a, b = _dec(a), _dec(b)
    if a is None or b is None:
        return None
    return (a > b) - (a < b)


FUNCTIONS = {
    "fm_present": fm_present,
    "fm_canonical": fm_canonical,
    "fm_number": fm_number,
    "fm_cel_variable": fm_cel_variable,
    "fm_add": _binary(lambda a, b: EXACT.add(a, b)),
    "fm_sub": _binary(lambda a, b: EXACT.subtract(a, b)),
    "fm_mul": _binary(lambda a, b: EXACT.multiply(a, b)),
    "fm_div": _binary(divide),
    "fm_min": _binary(min),
    "fm_max": _binary(max),
    "fm_pow": _binary(lambda x, y: transcendental("pow", x, y)),
    "fm_neg": _unary(lambda a: EXACT.minus(a)),
    "fm_abs": _unary(lambda a: EXACT.abs(a)),
    "fm_ceil": _unary(lambda a: a.to_integral_value(rounding=ROUND_CEILING, context=EXACT)),
    "fm_floor": _unary(lambda a: a.to_integral_value(rounding=ROUND_FLOOR, context=EXACT)),
    "fm_round": _unary(lambda a: a.to_integral_value(rounding=ROUND_HALF_UP, context=EXACT)),
    "fm_sqrt": _unary(lambda a: transcendental("sqrt", a)),
    "fm_log": _unary(lambda a: transcendental("ln", a)),
    "fm_cmp": fm_cmp,
}


def fm_epoch_micros(timestamp: str | None) -> int | None:
    """Microseconds since 1970 of a stored (UTC, naive text) timestamp; exact integer arithmetic."""
    if timestamp is None:
        return None
    moment = dt.datetime.fromisoformat(timestamp)
    return (moment - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1)


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def fm_bucket(timestamp, zone, size, anchor_day, anchor_time):
    """Local start (ISO text) of the bucket holding a stored UTC timestamp."""
    if timestamp is None:
        return None
    local = dt.datetime.fromisoformat(timestamp).replace(tzinfo=dt.UTC).astimezone(_zone(zone)).replace(tzinfo=None)
    anchor = MonthAnchor(anchor_day, dt.time.fromisoformat(anchor_time)) if anchor_day else None
    return bucket_start_local(local, size, anchor).isoformat(" ")


class _DecimalFold:
    """Base of the decimal aggregates: NULL inputs are skipped, no input gives NULL (SQL semantics)."""

    def __init__(self):
        self.value: Decimal | None = None

    def step(self, value):
        value = _dec(value)
        if value is not None:
            self.value = value if self.value is None else self.combine(self.value, value)

    def finalize(self):
        return _out(self.value)

    def combine(self, a: Decimal, b: Decimal) -> Decimal:
        raise NotImplementedError


class DecimalSum(_DecimalFold):
    def combine(self, a, b):
        return EXACT.add(a, b)


class DecimalMin(_DecimalFold):
    def combine(self, a, b):
        return min(a, b)


class DecimalMax(_DecimalFold):
    def combine(self, a, b):
        return max(a, b)


class Latest:
    """Value of the row with the greatest (timestamp, ingested_at, id): the latest event, ties to the later delivery."""

    def __init__(self):
        self.key = None
        self.value = None

    def step(self, timestamp, ingested_at, row_id, value):
        if value is None:
            return
        key = (timestamp, ingested_at, row_id)
        if self.key is None or key > self.key:
            self.key, self.value = key, value

    def finalize(self):
        return self.value


def register(connection) -> None:
    """Install the functions on a raw sqlite3 connection."""
    for name, function in FUNCTIONS.items():
        connection.create_function(name, function.__code__.co_argcount, function, deterministic=True)
    connection.create_function("fm_epoch_micros", 1, fm_epoch_micros, deterministic=True)
    connection.create_function("fm_bucket", 5, fm_bucket, deterministic=True)
    connection.create_aggregate("fm_sum", 1, DecimalSum)
    connection.create_aggregate("fm_min_agg", 1, DecimalMin)
    connection.create_aggregate("fm_max_agg", 1, DecimalMax)
    connection.create_aggregate("fm_latest", 4, Latest)


def on_connection_created(sender, connection, **kwargs) -> None:
    """`connection_created` receiver (wired in MeteringConfig.ready)."""
    if connection.vendor == "sqlite":
        register(connection.connection)


class SqliteDialect(Dialect):
    vendor = "sqlite"

    def timestamp(self, p, value):
        return p(self.connection.ops.adapt_datetimefield_value(value))

    def parse_local(self, value):
        return dt.datetime.fromisoformat(value) if isinstance(value, str) else value

    def properties_literal(self, p, json_text):
        return p(json_text)

    def present(self, p, key):
        return f"fm_present({PROPS}, {p(key)})"

    def canonical(self, p, key):
        return f"fm_canonical({PROPS}, {p(key)})"

    def number(self, p, key):
        return f"fm_number({PROPS}, {p(key)})"

    def cel_variable(self, p, key):
        return f"fm_cel_variable({PROPS}, {p(key)})"

    def equals_any(self, p, text_sql, values):
        return f"({text_sql} IN ({', '.join(p(value) for value in values)}))"

    def contains_any(self, p, text_sql, values):
        return "(" + " OR ".join(f"instr({text_sql}, {p(value)}) > 0" for value in values) + ")"

    def literal(self, value):
        return f"'{number_text(value)}'"

    def arithmetic(self, op, a, b):
        name = {"+": "fm_add", "-": "fm_sub", "*": "fm_mul", "/": "fm_div"}[op]
        return f"{name}({a}, {b})"

    def negate(self, a):
        return f"fm_neg({a})"

    def compare(self, op, a, b):
        sql_op = {"==": "=", "!=": "<>"}.get(op, op)
        return f"(fm_cmp({a}, {b}) {sql_op} 0)"

    def call(self, function, args):
        return f"fm_{function}({', '.join(args)})"

    def agg_sum(self, v):
        return f"fm_sum({v})"

    def agg_min(self, v):
        return f"fm_min_agg({v})"

    def agg_max(self, v):
        return f"fm_max_agg({v})"

    def epoch_micros(self, ts):
        return f"fm_epoch_micros({ts})"

    def bucket(self, p, ts, size, zone, anchor):
        day = p(anchor.day if anchor else None)
        time = p(anchor.time.isoformat() if anchor else None)
        return f"fm_bucket({ts}, {p(zone)}, {p(size)}, {day}, {time})"
