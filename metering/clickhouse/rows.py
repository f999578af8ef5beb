"""A validated event as the row ClickHouse stores: the raw JSON, plus each top-level property's canonical text
and exact number, decided by the one Python definition of SPEC §3 (metering/usage/numbers.py).

ClickHouse's JSON functions read every number through a binary float (`12345678901234567890123.5` comes back as
`1.2345678901234568e22`, `1.50` as `1.5`), so numbers and texts are taken from our exact parse at ingest time
instead of from the JSON at query time. A number that `Decimal256(20)` cannot hold (more than 56 integer
digits, or a non-zero 21st decimal) is listed in `inexact`: a query that would read it fails with a clear error
rather than computing with a rounded value.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from decimal import Decimal

from flexmeter.limits import MAX_INTEGER_DIGITS, number_problem
from metering import exactjson
from metering.usage.numbers import EXACT, canonical_text, is_numeric_text, number_text, numeric_value

DECIMAL_SCALE = 20
DECIMAL_INTEGER_DIGITS = 56

EVENT_COLUMNS = (
    "environment_id",
    "event_id",
    "event_name",
    "external_customer_id",
    "timestamp",
    "ingested_at",
    "source",
    "properties",
    "texts",
    "numbers",
    "inexact",
    "beyond_rule",
    "version",
    "is_deleted",
    "first_version",
)


def representable(value: Decimal) -> bool:
    """Whether `Decimal256(20)` holds `value` exactly."""
    if value.is_zero():
        return True
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -DECIMAL_SCALE:  # as spelled, already within the scale
        return value.adjusted() < DECIMAL_INTEGER_DIGITS
    reduced = value.normalize(EXACT)  # the default context would round to 28 digits first
    return reduced.as_tuple().exponent >= -DECIMAL_SCALE and reduced.adjusted() < DECIMAL_INTEGER_DIGITS  # type: ignore[operator]


_INTEGER_RULE = 10**MAX_INTEGER_DIGITS  # flexmeter/limits.py: an int within it is within the rule
_INTEGER_REPRESENTABLE = 10**DECIMAL_INTEGER_DIGITS


def _plainly_fits(number: Decimal) -> bool:
    """At most 20 decimals as spelled and fewer than 38 integer digits: within the rule of flexmeter/limits.py and
    held exactly by `Decimal256(20)`, decided without `number_problem` and `representable` (most numbers are)."""
    exponent = number.as_tuple().exponent
    return isinstance(exponent, int) and exponent >= -DECIMAL_SCALE and number.adjusted() < MAX_INTEGER_DIGITS


def property_columns(properties: dict) -> tuple[dict[str, str], dict[str, str], list[str], list[str]]:
    """(texts, numbers, inexact, beyond_rule) of the top-level properties. `beyond_rule` lists the numbers outside
    the rule of flexmeter/limits.py (numeric strings can be): a CEL expression treats them as an error of their
    event (`numbers.cel_input`), as on every backend, instead of reading them.

    It runs for every property of every event written, so the common kinds (plain strings, integers and decimals
    of ordinary size) take a shortcut that gives what `canonical_text`, `numeric_value`, `cel_input` and
    `representable` give them
    (tests/metering/clickhouse/test_rows.py compares both on many values); everything else goes through those."""
    texts: dict[str, str] = {}
    numbers: dict[str, str] = {}
    inexact: list[str] = []
    beyond_rule: list[str] = []
    for key, value in properties.items():
        kind = type(value)
        if kind is str:
            texts[key] = value
            if not is_numeric_text(value):
                continue
            number: Decimal | None = Decimal(value.strip(" \t\n\r"))
        elif kind is int:
            text = str(value)
            texts[key] = text
            if not -_INTEGER_RULE < value < _INTEGER_RULE:
                beyond_rule.append(key)
            if -_INTEGER_REPRESENTABLE < value < _INTEGER_REPRESENTABLE:
                numbers[key] = text
            else:
                inexact.append(key)
            continue
        elif (kind is Decimal and value.is_finite()) or (kind is float and math.isfinite(value)):
            number = value if kind is Decimal else Decimal(repr(value))
            text = number_text(number)  # its canonical text, and its number's
            texts[key] = text
            if _plainly_fits(number):
                numbers[key] = text
                continue
        else:
            text_or_none = canonical_text(value)
            if text_or_none is not None:
                texts[key] = text_or_none
            number = numeric_value(value)
        if number is not None:
            if _plainly_fits(number):
                numbers[key] = number_text(number)
                continue
            if number_problem(number) is not None:  # `cel_input(value) is None` for a numeric value
                beyond_rule.append(key)
            if representable(number):
                numbers[key] = number_text(number)
            else:
                inexact.append(key)
    return texts, numbers, inexact, beyond_rule


def event_columns(environment_id: int, events: Sequence, ingested_at: dt.datetime) -> dict[str, list]:
    """The `EVENT_COLUMNS` of validated `EventInput`s (or stored `Event`s), column by column, but `version`,
    `is_deleted` and `first_version`, which the writer decides under its lock (metering/ingest/clickhouse.py)."""
    columns: dict[str, list] = {name: [] for name in EVENT_COLUMNS[:12]}
    texts, numbers, inexact, beyond_rule = (
        columns["texts"],
        columns["numbers"],
        columns["inexact"],
        columns["beyond_rule"],
    )
    properties_json = columns["properties"]
    for event in events:
        properties = event.properties if isinstance(event.properties, dict) else {}
        row_texts, row_numbers, row_inexact, row_beyond_rule = property_columns(properties)
        texts.append(row_texts)
        numbers.append(row_numbers)
        inexact.append(row_inexact)
        beyond_rule.append(row_beyond_rule)
        properties_json.append(getattr(event, "properties_json", None) or exactjson.dumps(properties))
    columns["environment_id"] = [environment_id] * len(events)
    columns["event_id"] = [event.event_id for event in events]
    columns["event_name"] = [event.event_name for event in events]
    columns["external_customer_id"] = [event.external_customer_id for event in events]
    columns["timestamp"] = [event.timestamp for event in events]
    # a stored Event being copied keeps its own
    columns["ingested_at"] = [getattr(event, "ingested_at", None) or ingested_at for event in events]
    columns["source"] = [event.source for event in events]
    return columns
