"""The ClickHouse dialect: exact `Decimal256(20)` arithmetic on numbers taken from our own exact parse.

ClickHouse reads JSON numbers through binary floats, so a stored event carries each top-level property's
canonical text (`texts`) and exact number (`numbers`), computed at ingest by metering/usage/numbers.py
(metering/clickhouse/rows.py). Decimal256(20) holds 56 integer and 20 fractional digits, and ClickHouse wraps
silently when a sum or product leaves that range; every such place is guarded with `throwIf`, so a number that
cannot be computed exactly fails the request with `NOT_EXACT` in the message, never returns a wrapped or rounded
value. A value that does not fit at all (`inexact` at ingest) fails the same way when a meter reads it.
sqrt, log and pow exist only as binary floats in ClickHouse: expressions using them are refused.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable

from metering import exactjson
from metering.clickhouse.rows import property_columns
from metering.usage.dialects.base import Dialect
from metering.usage.numbers import DIVISION_PLACES, number_text
from metering.usage.periods import FIXED_STEPS

SCALE = 20
NOT_EXACT = "flexmeter: not_exact"
# Float64 shadows of |values| decide "might leave the exact range": far from the wrap (about 5.7e57), near enough
# to the 56 integer digits to refuse only what truly does not fit.
_SUM_LIMIT = "1e55"
_PRODUCT_LIMIT = "1e35"  # a product of two Decimal256(20) has scale 40, so 36 integer digits
# the decimal `/` computes dividend·10^41 in Int256 (about 5.8e76); the dividend is compared as a decimal, cheaper
# than through a Float64 shadow (a CEL month of all customers at 10M events: 346 → 330 ms)
_NATIVE_DIVIDEND_LIMIT = f"toDecimal256('{10**34}', {SCALE})"


def _guard(value: str, condition: str) -> str:
    """`value`, failing the whole query when `condition` holds for any row (NULL counts as false). The check is
    the condition of an `if`, which is always evaluated: as an operand next to a NULL value it could be skipped."""
    return f"if(throwIf(ifNull({condition}, 0), '{NOT_EXACT}') = 0, {value}, NULL)"


_names = itertools.count()


def _let(body: Callable[..., str], *values: str) -> str:
    """`body` applied to `values`, each written once: a lambda's parameters stand for them. A guard reads its
    operands several times; nesting such text directly doubles it at every level, so an expression of 17 factors
    became gigabytes of SQL (the chdb test pass was killed for memory). With a lambda the SQL grows linearly."""
    names = [f"fm_{next(_names)}" for _ in values]
    arrays = ", ".join(f"[{value}]" for value in values)
    return f"arrayElement(arrayMap(({', '.join(names)}) -> {body(*names)}, {arrays}), 1)"


class ClickHouseDialect(Dialect):
    vendor = "clickhouse"
    null_timestamp = "CAST(NULL AS Nullable(String))"

    def __init__(self, database: str):
        super().__init__()
        self.database = database

    def events_source(self, table: str) -> str:
        # FINAL: of the rows of one sort key the highest version wins, a winning tombstone hides the event
        return f"{self.database}.events AS e FINAL"

    # values in and out
    def timestamp(self, p, value):
        text = value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        return f"toDateTime64({p(text)}, 6, 'UTC')"

    def parse_local(self, value):
        return dt.datetime.fromisoformat(value) if isinstance(value, str) else value

    def properties_literal(self, p, json_text):
        return p(json_text)

    def candidate_columns(self, p, json_text):
        # the columns the writer stores beside the JSON, from the same exact parse (metering/clickhouse/rows.py)
        properties = exactjson.loads(json_text)
        texts, numbers, inexact, beyond_rule = property_columns(properties if isinstance(properties, dict) else {})

        def as_map(values: dict[str, str]) -> str:
            keys, items = list(values), list(values.values())
            return f"mapFromArrays(CAST({p(keys)} AS Array(String)), CAST({p(items)} AS Array(String)))"

        return (
            f"{p(json_text)} AS properties, {as_map(texts)} AS texts, {as_map(numbers)} AS numbers, "
            f"CAST({p(inexact)} AS Array(String)) AS inexact, CAST({p(beyond_rule)} AS Array(String)) AS beyond_rule"
        )

    # property access
    def present(self, p, key):
        return f"JSONHas(e.properties, {p(key)})"

    def canonical(self, p, key):
        k = p(key)
        return f"if(mapContains(e.texts, {k}), e.texts[{k}], NULL)"

    def number(self, p, key):
        k = p(key)
        # a missing key reads as '', which is no number: NULL without a mapContains
        value = f"toDecimal256OrNull(e.numbers[{k}], {SCALE})"
        return _guard(value, f"has(e.inexact, {k})")

    def cel_variable(self, p, key):
        # missing: 0; a number beyond the rule of flexmeter/limits.py, or a value that is no number: NULL, an error of
        # its event (numbers.cel_input). Every key of the maps is present, so only rows without the key in them parse
        # the JSON to tell a present non-number from a missing key (parsing every row cost 40 % of a CEL month).
        k = p(key)
        return (
            f"multiIf(has(e.beyond_rule, {k}), NULL, mapContains(e.numbers, {k}) OR has(e.inexact, {k}), "
            f"{self.number(p, key)}, JSONHas(e.properties, {k}), NULL, toDecimal256(0, {SCALE}))"
        )

    # filters on canonical text
    def equals_any(self, p, text_sql, values):
        return f"has({p(list(values))}, {text_sql})"

    def contains_any(self, p, text_sql, values):
        return "(" + " OR ".join(f"position({text_sql}, {p(value)}) > 0" for value in values) + ")"

    # arithmetic on numbers
    def literal(self, value):
        return f"toDecimal256('{number_text(value)}', {SCALE})"

    def _fit(self, value: str) -> str:
        """A scale-40 product back to scale 20, failing when a digit would be cut off."""
        return _let(lambda v: _guard(f"toDecimal256({v}, {SCALE})", f"{v} != toDecimal256({v}, {SCALE})"), value)

    def arithmetic(self, op, a, b):
        if op == "/":

            def quotient(x: str, y: str) -> str:
                # Both forms truncate at 21 places, then round half away from zero. The decimal `/` is 7× faster
                # than divideDecimal (a month of `ceil(tokens / 100)` for all customers: 1.5 s → 0.2 s at 1M
                # events), but scales the dividend by 10^41 inside Int256: beyond 10^34 it takes divideDecimal.
                safe = f"if({y} = 0, toDecimal256(1, {SCALE}), {y})"
                native = f"round(toDecimal256({x}, {DIVISION_PLACES + 1}) / {safe}, {DIVISION_PLACES})"
                wide = f"round(divideDecimal({x}, {safe}, {DIVISION_PLACES + 1}), {DIVISION_PLACES})"
                return (
                    f"multiIf({y} = 0, NULL, abs({x}) < {_NATIVE_DIVIDEND_LIMIT}, "
                    f"toDecimal256({native}, {SCALE}), toDecimal256({wide}, {SCALE}))"
                )

            return _let(quotient, a, b)
        if op == "*":
            return self._fit(
                _let(
                    lambda x, y: _guard(
                        f"({x} * {y})", f"abs(toFloat64({x})) * abs(toFloat64({y})) >= {_PRODUCT_LIMIT}"
                    ),
                    a,
                    b,
                )
            )
        return _let(
            lambda x, y: _guard(f"({x} {op} {y})", f"abs(toFloat64({x})) + abs(toFloat64({y})) >= {_SUM_LIMIT}"), a, b
        )

    def multiply(self, a, b):
        # a number times an integer (epoch microseconds): the scale stays 20
        return _let(
            lambda x, y: _guard(f"({x} * {y})", f"abs(toFloat64({x})) * abs(toFloat64({y})) >= {_SUM_LIMIT}"), a, b
        )

    def negate(self, a):
        return f"(-({a}))"

    def compare(self, op, a, b):
        sql_op = {"==": "=", "!=": "!="}.get(op, op)
        return f"(({a}) {sql_op} ({b}))"

    def call(self, function, args):
        if function in ("abs", "ceil", "floor", "round"):
            return f"toDecimal256({function}({args[0]}), {SCALE})"
        if function in ("min", "max"):
            first = "<=" if function == "min" else ">="
            second = ">" if function == "min" else "<"
            return _let(lambda a, b: f"(CASE WHEN {a} {first} {b} THEN {a} WHEN {a} {second} {b} THEN {b} END)", *args)
        raise UnsupportedOnClickHouse(
            f"the expression function {function}() has no exact form on ClickHouse (only binary floats)"
        )

    # aggregates
    def agg_sum(self, v):
        return _guard(f"sumOrNull({v})", f"sum(abs(toFloat64({v}))) >= {_SUM_LIMIT}")

    def agg_min(self, v):
        return f"minOrNull({v})"

    def agg_max(self, v):
        return f"maxOrNull({v})"

    def as_text(self, v):
        return f"toString({v})"

    def epoch_micros(self, ts):
        return f"toUnixTimestamp64Micro({ts})"

    def bucket(self, p, ts, size, zone, anchor):
        # wall-clock time in `zone`, held as if it were UTC: bucket arithmetic then never meets a DST jump. Shifted by
        # the zone's offset at that instant, not written out and read back as text (a month of hourly buckets at 1M
        # events: 134 → 64 ms; the same wall clock for instants of 1900-2299 in 16 zones, DST changes included)
        local = (
            f"fromUnixTimestamp64Micro(toUnixTimestamp64Micro({ts}) "
            f"+ timeZoneOffset(toTimeZone({ts}, {p(zone)})) * 1000000, 'UTC')"
        )
        if size == "MINUTE":
            return f"toString(toStartOfMinute({local}))"
        if size == "HOUR":
            return f"toString(toStartOfHour({local}))"
        if size == "DAY":
            return f"toString(toStartOfDay({local}))"
        if size == "WEEK":
            return f"toString(toDateTime(toMonday({local}), 'UTC'))"
        if size == "MONTH" and anchor is None:
            return f"toString(toDateTime(toStartOfMonth({local}), 'UTC'))"
        if size in FIXED_STEPS:
            return f"toString(toStartOfInterval({local}, INTERVAL {FIXED_STEPS[size]} MINUTE))"
        day = p(anchor.day)
        offset = p(
            (anchor.time.hour * 3600 + anchor.time.minute * 60 + anchor.time.second) * 10**6 + anchor.time.microsecond
        )

        def start_of(month_sql: str) -> str:
            last_day = f"toDayOfMonth(toLastDayOfMonth({month_sql}))"
            return (
                f"(toDateTime64({month_sql}, 6, 'UTC') + toIntervalDay(least({day}, {last_day}) - 1) "
                f"+ toIntervalMicrosecond({offset}))"
            )

        this_month = f"toStartOfMonth({local})"
        previous_month = f"toStartOfMonth(addMonths({this_month}, -1))"
        this_start = start_of(this_month)
        return f"toString(if({local} >= {this_start}, {this_start}, {start_of(previous_month)}))"


class UnsupportedOnClickHouse(ValueError):
    """A meter definition the ClickHouse backend cannot compute exactly."""
