"""What every SQL dialect of the usage engine offers (`Dialect`), and the bound parameters (`Params`) it writes.

PostgreSQL works on `jsonb` and `numeric`: exact by construction. SQLite has neither exact decimals nor a number
type it would not turn into a float, so every number travels as decimal *text* and the arithmetic is done by the
functions of metering/usage/dialects/sqlite.py (registered on each connection), which apply metering/usage/numbers.py.

Every value that comes from a caller (property keys, filter values, time zones) is a bound parameter; only
numbers we produced ourselves (Decimal literals of a compiled expression) are written into the SQL text.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db import connection as default_connection

from metering.usage.periods import MonthAnchor

PROPS = "e.properties"


class Params:
    """Collects named parameters (`%(p0)s`): fragments may be built in any order and still bind correctly."""

    def __init__(self, prefix: str = "p"):
        self.prefix = prefix
        self.values: dict[str, object] = {}

    def __call__(self, value) -> str:
        name = f"{self.prefix}{len(self.values)}"
        self.values[name] = value
        return f"%({name})s"


class Dialect:
    """The operations the engine needs, written for one database."""

    vendor = ""
    null_timestamp = "NULL"

    def __init__(self, connection=None):
        self.connection = connection or default_connection

    def events_source(self, table: str) -> str:
        """The FROM item of the events table, aliased `e`."""
        return f"{table} e"

    # values in and out
    def timestamp(self, p: Params, value: dt.datetime) -> str:
        return p(value)

    def parse_local(self, value) -> dt.datetime:
        return value

    def properties_literal(self, p: Params, json_text: str) -> str:
        raise NotImplementedError

    def candidate_columns(self, p: Params, json_text: str) -> str:
        """The select list of a one-row event `e` that was never stored (the debugger's candidate)."""
        return f"{self.properties_literal(p, json_text)} AS properties"

    # property access
    def present(self, p: Params, key: str) -> str:
        raise NotImplementedError

    def canonical(self, p: Params, key: str) -> str:
        raise NotImplementedError

    def number(self, p: Params, key: str) -> str:
        raise NotImplementedError

    def has_number(self, p: Params, key: str) -> str:
        """True when `number` of the key is not NULL, never NULL itself; a dialect may test it without converting."""
        return f"(({self.number(p, key)}) IS NOT NULL)"

    def cel_variable(self, p: Params, key: str) -> str:
        raise NotImplementedError

    # filters on canonical text
    def canonical_equals_any(self, p: Params, key: str, values: list[str]) -> str:
        """Whether the key's canonical text is one of `values`: NULL or false when it has none."""
        return self.equals_any(p, self.canonical(p, key), values)

    def equals_any(self, p: Params, text_sql: str, values: list[str]) -> str:
        raise NotImplementedError

    def contains_any(self, p: Params, text_sql: str, values: list[str]) -> str:
        raise NotImplementedError

    # arithmetic on numbers
    def literal(self, value: Decimal) -> str:
        raise NotImplementedError

    def arithmetic(self, op: str, a: str, b: str) -> str:
        raise NotImplementedError

    def negate(self, a: str) -> str:
        raise NotImplementedError

    def compare(self, op: str, a: str, b: str) -> str:
        raise NotImplementedError

    def call(self, function: str, args: list[str]) -> str:
        raise NotImplementedError

    def multiply(self, a: str, b: str) -> str:
        return self.arithmetic("*", a, b)

    # aggregates (all ignore NULL inputs and return NULL for no input, like SQL's SUM)
    def agg_sum(self, v: str) -> str:
        raise NotImplementedError

    def agg_min(self, v: str) -> str:
        raise NotImplementedError

    def agg_max(self, v: str) -> str:
        raise NotImplementedError

    def as_text(self, v: str) -> str:
        return v

    def group_text(self, text_sql: str) -> str:
        """Text compared only for equality (bucketed MAX groups): no locale-aware comparison needed."""
        return text_sql

    def epoch_micros(self, ts: str) -> str:
        raise NotImplementedError

    def bucket(self, p: Params, ts: str, size: str, zone: str, anchor: MonthAnchor | None) -> str:
        """Local (naive) start of the bucket holding `ts` in time zone `zone`."""
        raise NotImplementedError
