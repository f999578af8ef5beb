"""JSON that never loses a digit of a number (SPEC §3: usage arithmetic is exact decimal).

Python's `json` turns `0.12345678901234567890123` into a float and writes back `0.12345678901234568`. Here a
JSON number becomes a `float` only when the float's repr spells it exactly as it arrived (`0.1`, `2.5`), so
writing it back reproduces the same text; every other number (`1.50`, `1e400`, 23 significant digits) becomes
a `Decimal` and is written back as a JSON number with all its digits. Integers are exact in Python already.
`NaN` and `Infinity`, which Python accepts but JSON and PostgreSQL do not, are rejected.

orjson was considered for the ingest path: it parses faster, but it turns every non-integer number into a
float, which is exactly what must not happen here; parsing is ~10% of a bulk request's Python time anyway.
"""

import functools
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import simplejson


def _parse_float(text: str) -> float | Decimal:
    number = float(text)
    return number if repr(number) == text else Decimal(text)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


_decoder = json.JSONDecoder(parse_float=_parse_float, parse_constant=_reject_constant)
_decoder_big_ints = json.JSONDecoder(parse_float=_parse_float, parse_int=Decimal, parse_constant=_reject_constant)


def loads(text: str | bytes) -> Any:
    """Parse JSON text keeping every number exact. Raises ValueError (json.JSONDecodeError) on invalid input."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8")
    try:
        return _decoder.decode(text)
    except json.JSONDecodeError:
        raise
    except ValueError:
        # An integer beyond Python's 4,300-digit limit: read it as a Decimal, so the rule for what can be stored
        # (flexmeter/limits.py) names the field instead of "not valid JSON".
        return _decoder_big_ints.decode(text)


# Deeper than this a stored value is not handed to readers: they walk values recursively (the encoders, templates,
# the debugger). Ingest admits 32 levels (flexmeter/limits.py); this only guards rows stored before that rule.
READABLE_NESTING = 100


class UnreadableJSON(dict):
    """Stands for a stored JSON value no reader can show (nested too deeply, or not JSON at all): an empty object
    that says why and keeps the stored text, so lists, pages and exports show the row as such instead of failing."""

    def __init__(self, text: str, reason: str):
        super().__init__()
        self.text = text
        self.reason = reason


def _nesting_exceeds(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def loads_stored(text: str) -> Any:
    """Decode JSON read back from the database; never raises.

    Integers beyond Python's 4,300-digit limit (PostgreSQL prints `1e131071` as 131,072 digits) become Decimals
    (see `loads`); a value nested deeper than READABLE_NESTING, or text that is not JSON, becomes `UnreadableJSON`.
    """
    try:
        value = loads(text)
    except RecursionError:
        return UnreadableJSON(text, f"it is nested more than {READABLE_NESTING} levels deep")
    except ValueError as exc:
        return UnreadableJSON(text, f"the stored text is not valid JSON ({exc})")
    # Fewer brackets than the limit cannot nest deeper than it: most rows skip the walk.
    if text.count("{") + text.count("[") > READABLE_NESTING and _nesting_exceeds(value, READABLE_NESTING):
        return UnreadableJSON(text, f"it is nested more than {READABLE_NESTING} levels deep")
    return value


# Built once per `default` (the API passes one function): constructing an encoder on every call shows at 20k
# events/s.
@functools.lru_cache(maxsize=8)
def _encoder(default: Callable[[Any], Any] | None) -> simplejson.JSONEncoder:
    # simplejson's C encoder writes a Decimal as `str(value)` — every digit, as a JSON number — which the standard
    # library cannot do without a walk in Python (3 ms for a month of hourly windows, against 0.9 ms here).
    # Namedtuples stay arrays and non-finite numbers (float or Decimal) are refused, as with `json.dumps`.
    return simplejson.JSONEncoder(
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        use_decimal=True,
        namedtuple_as_object=False,
        default=default,
    )


def dumps(value: Any, *, default: Callable[[Any], Any] | None = None) -> str:
    """Compact JSON text with Decimals written as JSON numbers carrying all their digits. `default` turns any other
    value JSON has no type for (a datetime) into one it has, as `json.dumps`' own `default` does: while encoding,
    rather than by a walk over the whole value beforehand (a batch of answers holds thousands of values). A
    `Written` value goes into the text as it is."""
    return _encoder(default).encode(value)


Written = simplejson.RawJSON


def number_text(value: Decimal | None) -> str:
    """A decimal as `dumps` writes it, every digit (`str`), or `null`; NaN and Infinity are refused as there."""
    if value is None:
        return "null"
    if not value.is_finite():
        raise ValueError(f"Out of range decimal values are not JSON compliant: {value!r}")
    return str(value)


class ExactJSONEncoder(json.JSONEncoder):
    """For `JSONField(encoder=...)`: Django calls `json.dumps(value, cls=ExactJSONEncoder)`."""

    def encode(self, o: Any) -> str:
        return dumps(o)

    def iterencode(self, o: Any, _one_shot: bool = False):
        yield dumps(o)


class ExactJSONDecoder(json.JSONDecoder):
    """For `JSONField(decoder=...)`: numbers read back from the database keep every digit."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("parse_float", _parse_float)
        kwargs.setdefault("parse_constant", _reject_constant)
        super().__init__(*args, **kwargs)
