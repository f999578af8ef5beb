"""Validation of one event (SPEC §2.3): raw JSON objects in, `EventInput`s out.

`event_clean` / `events_clean` turn raw JSON objects into `EventInput`s or raise `ValidationFailed` with JSON
paths (`events[3].timestamp`).

Validation is plain Python rather than pydantic: it runs for every one of thousands of events per second,
and it must give the same messages to the REST API, the import command and the dashboard's test box.
"""

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.utils import timezone
from ulid import ULID

from flexmeter.errors import ValidationFailed
from flexmeter.limits import json_value_problems
from flexmeter.text import text_problem
from metering import exactjson

MAX_TEXT_LENGTH = 255
MAX_PROPERTY_KEYS = 100
MAX_PROPERTIES_BYTES = 32 * 1024
MAX_BULK_EVENTS = 1000
MAX_FUTURE = dt.timedelta(hours=24)
EVENT_ID_PREFIX = "event_"

# RFC 3339 date-time: a zone offset or Z is mandatory; fractional seconds of any length (Go sends nanoseconds).
# An escaped NUL in JSON text (not an escaped backslash followed by "u0000"); jsonb rejects it.
_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$",
)


@dataclass(frozen=True, slots=True)
class EventInput:
    """One validated event, ready to store. `properties_json` is the exact JSON text of `properties` (derived
    when not given; `event_clean` passes the text it measured)."""

    event_id: str
    event_name: str
    external_customer_id: str
    timestamp: dt.datetime
    source: str
    properties: dict[str, Any]
    properties_json: str | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.properties_json is None:
            object.__setattr__(self, "properties_json", exactjson.dumps(self.properties))


def new_event_id() -> str:
    return f"{EVENT_ID_PREFIX}{ULID()}"


def parse_timestamp(value: Any) -> dt.datetime:
    """RFC 3339 with a zone offset or Z → aware UTC datetime (microseconds; extra digits are truncated).

    Raises ValueError with a message fit for the API.
    """
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 string such as 2024-05-01T12:00:00Z")
    value = value.strip()
    if _RFC3339.match(value) is None:
        raise ValueError("must be RFC 3339 with a zone offset or Z, such as 2024-05-01T12:00:00Z")
    # The pattern is the RFC 3339 check; fromisoformat parses what it admits (truncating fractions beyond
    # microseconds) except the lower-case `t` and `z` that RFC 3339 also allows.
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = dt.datetime.fromisoformat(value.upper())
        except ValueError as exc:
            raise ValueError(f"is not a valid date and time ({exc})") from None
    try:
        return parsed if parsed.tzinfo is dt.UTC else parsed.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError("is outside the supported years 0001–9999 once converted to UTC") from None


def _required_text(raw: dict, key: str, errors: dict[str, str]) -> str:
    value = raw.get(key)
    if value is None:
        errors[key] = "is required"
    elif not isinstance(value, str):
        errors[key] = f"must be a string, not {_json_type(value)}"
    elif not value.strip():
        errors[key] = "must not be blank"
    elif len(value) > MAX_TEXT_LENGTH:
        errors[key] = f"must be at most {MAX_TEXT_LENGTH} characters (got {len(value)})"
    elif problem := text_problem(value):
        errors[key] = problem
    else:
        return value
    return ""


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float, Decimal)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def event_clean(raw: Any, *, now: dt.datetime | None = None) -> EventInput:
    """Validate one event (SPEC §2.3). Unknown top-level fields are ignored.

    Raises ValidationFailed whose details map field names (`timestamp`, `properties`) to messages; a
    non-object input is reported under the empty path.
    """
    if not isinstance(raw, dict):
        raise ValidationFailed(details={"": f"an event must be a JSON object, not {_json_type(raw)}"})
    errors: dict[str, str] = {}
    now = now or timezone.now()

    event_name = _required_text(raw, "event_name", errors)
    external_customer_id = _required_text(raw, "external_customer_id", errors)

    event_id = raw.get("event_id")
    if event_id is None or event_id == "":
        event_id = new_event_id()
    elif not isinstance(event_id, str):
        errors["event_id"] = f"must be a string, not {_json_type(event_id)}"
    elif not event_id.strip():
        errors["event_id"] = "must not be blank"
    elif len(event_id) > MAX_TEXT_LENGTH:
        errors["event_id"] = f"must be at most {MAX_TEXT_LENGTH} characters (got {len(event_id)})"
    elif problem := text_problem(event_id):
        errors["event_id"] = problem

    source = raw.get("source")
    if source is None:
        source = ""
    elif not isinstance(source, str):
        errors["source"] = f"must be a string, not {_json_type(source)}"
    elif len(source) > MAX_TEXT_LENGTH:
        errors["source"] = f"must be at most {MAX_TEXT_LENGTH} characters (got {len(source)})"
    elif problem := text_problem(source):
        errors["source"] = problem

    timestamp = raw.get("timestamp")
    if timestamp is None or timestamp == "":
        timestamp = now
    else:
        try:
            timestamp = parse_timestamp(timestamp)
        except ValueError as exc:
            errors["timestamp"] = str(exc)
        else:
            if timestamp - now > MAX_FUTURE:
                errors["timestamp"] = (
                    f"is more than 24 hours in the future ({timestamp.isoformat()} > "
                    f"{(now + MAX_FUTURE).isoformat()}); check the clock and the time zone"
                )

    properties = raw.get("properties")
    properties_json = "{}"
    if properties is None:
        properties = {}
    elif not isinstance(properties, dict):
        errors["properties"] = f"must be a JSON object, not {_json_type(properties)}"
    elif len(properties) > MAX_PROPERTY_KEYS:
        errors["properties"] = f"must have at most {MAX_PROPERTY_KEYS} top-level keys (got {len(properties)})"
    elif properties and (problems := json_value_problems(properties, path="properties")):
        # keys relative to the event, like every other field (`properties.v`, `events[3].properties.v` in bulk)
        errors.update(problems)
    elif properties:
        try:
            properties_json = exactjson.dumps(properties)
        except (TypeError, ValueError) as exc:
            errors["properties"] = f"must be plain JSON ({exc})"
        else:
            if "\\u0000" in properties_json and _JSON_NUL.search(properties_json):
                errors["properties"] = "must not contain NUL (\\u0000) characters"
            elif problem := text_problem(properties_json):
                errors["properties"] = problem
            else:
                size = len(properties_json) if properties_json.isascii() else len(properties_json.encode())
                if size > MAX_PROPERTIES_BYTES:
                    errors["properties"] = f"must be at most {MAX_PROPERTIES_BYTES} bytes as JSON (got {size})"

    if errors:
        raise ValidationFailed(details=errors)
    return EventInput(
        event_id=event_id,
        event_name=event_name,
        external_customer_id=external_customer_id,
        timestamp=timestamp,
        source=source,
        properties=properties,
        properties_json=properties_json,
    )


def events_clean(
    raw_events: Any, *, now: dt.datetime | None = None, max_events: int | None = None, path: str = "events"
) -> list[EventInput]:
    """Validate a batch all-or-nothing; details use `events[3].timestamp` paths for every invalid event.

    A repeated `event_id` keeps the last occurrence (in that occurrence's position).
    """
    if not isinstance(raw_events, list):
        raise ValidationFailed(details={path: f"must be an array of events, not {_json_type(raw_events)}"})
    if not raw_events:
        raise ValidationFailed(details={path: "must contain at least 1 event"})
    if max_events is not None and len(raw_events) > max_events:
        raise ValidationFailed(
            details={path: f"must contain at most {max_events} events per request (got {len(raw_events)})"}
        )
    now = now or timezone.now()
    errors: dict[str, str] = {}
    by_id: dict[str, EventInput] = {}
    for index, raw in enumerate(raw_events):
        try:
            event = event_clean(raw, now=now)
        except ValidationFailed as exc:
            for key, message in exc.details.items():
                errors[f"{path}[{index}].{key}" if key else f"{path}[{index}]"] = message
            continue
        by_id.pop(event.event_id, None)
        by_id[event.event_id] = event
    if errors:
        invalid = len({key.split("]", 1)[0] for key in errors})
        summary = "; ".join(f"{key}: {message}" for key, message in list(errors.items())[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise ValidationFailed(
            message=f"{invalid} of {len(raw_events)} events are invalid; nothing was stored. {summary}{more}",
            details=errors,
        )
    return list(by_id.values())
