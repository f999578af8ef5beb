"""The PostgreSQL dialect: `jsonb` and `numeric`, exact by construction."""

from __future__ import annotations

from flexmeter.limits import MAX_FRACTION_DIGITS, MAX_INTEGER_DIGITS
from metering.usage.dialects.base import PROPS, Dialect, Params
from metering.usage.numbers import DIVISION_PLACES, MAX_NUMERIC_TEXT, NUMERIC_PATTERN, number_text
from metering.usage.periods import FIXED_STEPS

# the JSON types whose text is a property's canonical text (SPEC §4)
_SCALARS = "('string', 'number', 'boolean')"


class PostgresDialect(Dialect):
    vendor = "postgresql"
    null_timestamp = "NULL::timestamp"
    # adding zero with this many decimals makes sqrt/ln/power compute enough digits before we round
    _SCALE_UP = "0." + "0" * (2 * DIVISION_PLACES + 1)

    def properties_literal(self, p: Params, json_text: str) -> str:
        return f"CAST({p(json_text)} AS jsonb)"

    def present(self, p, key):
        return f"({PROPS} -> {p(key)} IS NOT NULL)"

    def canonical(self, p, key):
        k = p(key)
        return f"(CASE WHEN jsonb_typeof({PROPS} -> {k}) IN {_SCALARS} THEN {PROPS} ->> {k} END)"

    def canonical_equals_any(self, p, key, values):
        # the text is compared before the type is checked, so an event whose value differs costs one JSON lookup,
        # not two (the EU filter of today's 60,000 `api.request` events at 10,000,000 events: 45-60 ms -> 32 ms)
        k = p(key)
        return f"(({PROPS} ->> {k}) = ANY({p(list(values))}::text[]) AND jsonb_typeof({PROPS} -> {k}) IN {_SCALARS})"

    def _numeric_case(self, p, key, *, within_rule: bool = False) -> str:
        k = p(key)
        text = f"({PROPS} ->> {k})"
        number = f"{text}::numeric"
        if within_rule:  # numbers.cel_input: the rule for what can be stored (flexmeter/limits.py)
            number = (
                f"(CASE WHEN abs({number}) < 1e{MAX_INTEGER_DIGITS} AND scale({number}) <= {MAX_FRACTION_DIGITS} "
                f"THEN {number} END)"
            )
        return (
            f"(CASE jsonb_typeof({PROPS} -> {k}) WHEN 'number' THEN {number} "
            f"WHEN 'string' THEN CASE WHEN {self._reads_as_number(p, text)} THEN {number} END END)"
        )

    def _reads_as_number(self, p, text: str) -> str:
        return f"length({text}) <= {MAX_NUMERIC_TEXT} AND {text} ~ {p(NUMERIC_PATTERN)}"

    def number(self, p, key):
        return self._numeric_case(p, key)

    def has_number(self, p, key):
        # `number` without the conversion: a JSON number always converts, a string when it reads as a number
        k = p(key)
        text = f"({PROPS} ->> {k})"
        return (
            f"(CASE jsonb_typeof({PROPS} -> {k}) WHEN 'number' THEN TRUE "
            f"WHEN 'string' THEN {self._reads_as_number(p, text)} ELSE FALSE END)"
        )

    def cel_variable(self, p, key):
        # jsonb_typeof of a missing key is NULL: CASE's ELSE turns "missing" into 0 and keeps other types NULL
        k = p(key)
        number = self._numeric_case(p, key, within_rule=True)
        return f"(CASE WHEN {PROPS} -> {k} IS NULL THEN 0::numeric ELSE {number} END)"

    def equals_any(self, p, text_sql, values):
        return f"({text_sql} = ANY({p(list(values))}::text[]))"

    def contains_any(self, p, text_sql, values):
        return "(" + " OR ".join(f"strpos({text_sql}, {p(value)}) > 0" for value in values) + ")"

    def literal(self, value):
        return f"CAST('{number_text(value)}' AS numeric)"

    def arithmetic(self, op, a, b):
        if op == "/":
            scale = 10 ** (DIVISION_PLACES + 1)
            return f"round(div(({a}) * {scale}, NULLIF(({b}), 0)) * 0.{'0' * DIVISION_PLACES}1, {DIVISION_PLACES})"
        return f"(({a}) {op} ({b}))"

    def negate(self, a):
        return f"(-({a}))"

    def compare(self, op, a, b):
        sql_op = {"==": "=", "!=": "<>"}.get(op, op)
        return f"(({a}) {sql_op} ({b}))"

    def call(self, function, args):
        places = DIVISION_PLACES
        if function in ("abs", "ceil", "floor", "round"):
            return f"{function}({args[0]})"
        if function == "min":
            a, b = args
            return f"(CASE WHEN ({a}) <= ({b}) THEN ({a}) WHEN ({a}) > ({b}) THEN ({b}) END)"
        if function == "max":
            a, b = args
            return f"(CASE WHEN ({a}) >= ({b}) THEN ({a}) WHEN ({a}) < ({b}) THEN ({b}) END)"
        if function == "sqrt":
            x = args[0]
            return f"(CASE WHEN ({x}) >= 0 THEN round(sqrt(({x}) + {self._SCALE_UP}), {places}) END)"
        if function == "log":
            x = args[0]
            return f"(CASE WHEN ({x}) > 0 THEN round(ln(({x}) + {self._SCALE_UP}), {places}) END)"
        if function == "pow":
            x, y = args
            return (
                f"(CASE WHEN ({x}) = 0 THEN CASE WHEN ({y}) < 0 THEN NULL WHEN ({y}) = 0 THEN 1 ELSE 0 END "
                f"WHEN ({x}) < 0 AND ({y}) <> trunc({y}) THEN NULL "
                f"WHEN ({y}) * ln(abs({x})) > 2302 THEN NULL "
                f"ELSE round(power(({x}) + {self._SCALE_UP}, ({y})), {places}) END)"
            )
        raise ValueError(function)

    def agg_sum(self, v):
        return f"sum({v})"

    def agg_min(self, v):
        return f"min({v})"

    def agg_max(self, v):
        return f"max({v})"

    def as_text(self, v):
        return f"({v})::text"

    def group_text(self, text_sql):
        # byte order: grouping thousands of cells by locale-aware comparison was most of a bucketed MAX statement
        return f'({text_sql} COLLATE "C")'

    def epoch_micros(self, ts):
        return f"(EXTRACT(EPOCH FROM {ts}) * 1000000)"

    def bucket(self, p, ts, size, zone, anchor):
        local = f"({ts} AT TIME ZONE {p(zone)})"
        if size in ("MINUTE", "HOUR", "DAY", "WEEK") or (size == "MONTH" and anchor is None):
            unit = {"MINUTE": "minute", "HOUR": "hour", "DAY": "day", "WEEK": "week", "MONTH": "month"}[size]
            return f"date_trunc('{unit}', {local})"
        if size in FIXED_STEPS:
            return f"date_bin(interval '{FIXED_STEPS[size]} minutes', {local}, timestamp '2001-01-01')"
        day, offset = p(anchor.day), p(anchor.time_of_day)

        def start_of(month_sql: str) -> str:
            last_day = f"EXTRACT(DAY FROM {month_sql} + interval '1 month' - interval '1 day')::int"
            return f"({month_sql} + make_interval(days => LEAST({day}, {last_day}) - 1) + {offset})"

        this_month = f"date_trunc('month', {local})"
        previous_month = f"({this_month} - interval '1 month')"
        this_start = start_of(this_month)
        return f"(CASE WHEN {local} >= {this_start} THEN {this_start} ELSE {start_of(previous_month)} END)"
