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
from decimal import Decimal

from metering import exactjson
from metering.usage.numbers import EXACT, canonical_text, cel_input, number_text, numeric_value

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
    reduced = value.normalize(EXACT)  # the default context would round to 28 digits first
    return reduced.as_tuple().exponent >= -DECIMAL_SCALE and reduced.adjusted() < DECIMAL_INTEGER_DIGITS  # type: ignore[operator]


def property_columns(properties: dict) -> tuple[dict[str, str], dict[str, str], list[str], list[str]]:
    """(texts, numbers, inexact, beyond_rule) of the top-level properties. `beyond_rule` lists the numbers outside
    the rule of flexmeter/limits.py (numeric strings can be): a CEL expression treats them as an error of their
    event (`numbers.cel_input`), as on every backend, instead of reading them."""
    texts: dict[str, str] = {}
    numbers: dict[str, str] = {}
    inexact: list[str] = []
    beyond_rule: list[str] = []
    for key, value in properties.items():
        text = canonical_text(value)
        if text is not None:
            texts[key] = text
        number = numeric_value(value)
        if number is not None:
            if cel_input(value) is None:
                beyond_rule.append(key)
            if representable(number):
                numbers[key] = number_text(number)
            else:
                inexact.append(key)
    return texts, numbers, inexact, beyond_rule


def event_row(environment_id: int, event, ingested_at: dt.datetime, version: int, first_version: int) -> list:
    """The `EVENT_COLUMNS` values of a validated `EventInput` (or a stored `Event`); `first_version` is the version
    of the id's first delivery (`version` itself for a new id)."""
    properties = event.properties if isinstance(event.properties, dict) else {}
    texts, numbers, inexact, beyond_rule = property_columns(properties)
    properties_json = getattr(event, "properties_json", None) or exactjson.dumps(properties)
    return [
        environment_id,
        event.event_id,
        event.event_name,
        event.external_customer_id,
        event.timestamp,
        getattr(event, "ingested_at", None) or ingested_at,  # a stored Event being copied keeps its own
        event.source,
        properties_json,
        texts,
        numbers,
        inexact,
        beyond_rule,
        version,
        0,
        first_version,
    ]
