"""Every validation rule for meters and features (SPEC §2.1–2.2), in one place.

The REST API, the dashboard wizard (one step at a time), Django admin forms and management commands all call
these functions, so an invalid definition gets the same message under the same field path everywhere.

Conventions:
- Each `*_clean` function takes raw input (as decoded from JSON or a form) and returns the normalized value, or
  raises `ValidationFailed(details={json_path: message})` naming *every* offending field, with paths relative to
  the object being validated (`event_name`, `aggregation.multiplier`, `filters[1].values`,
  `alert_settings.warning.threshold`).
- Absent optional text is normalized to `""` (the models store `""`, never NULL); decimals are normalized to
  their shortest exact decimal text (`"1.50"` → `"1.5"`, `2` → `"2"`), which is what the API returns as strings.
- Nothing here touches the database. Rules that need it (a `meter_id` must name a published meter of the same
  environment, lookup keys and published meter definitions are unique) live in `catalog/services.py`, and the
  uniqueness rules are enforced by database constraints.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from catalog.models import AggregationType, BucketSize, FeatureType, MeterStatus, ResetUsage
from flexmeter.errors import ValidationFailed, prefix_details

NAME_MAX_LENGTH = 255
UNIT_MAX_LENGTH = 64
DECIMAL_MAX_LENGTH = 64
METADATA_MAX_KEYS = 50

FILTER_OPERATORS = ("in", "not_in", "contains", "not_contains")
ALERT_LEVELS = ("info", "warning", "critical")  # in increasing severity
ALERT_CONDITIONS = ("above", "below")

#: Types that may compute their quantity with a CEL expression instead of a field.
EXPRESSION_TYPES = frozenset({"SUM", "AVG", "MIN", "MAX", "LATEST"})
#: Types that may report per-bucket results.
BUCKET_TYPES = frozenset({"SUM", "MAX"})
#: Spellings other products use for our aggregation types (the Flexprice docs say UNIQUE_COUNT).
AGGREGATION_ALIASES = {"UNIQUE_COUNT": "COUNT_UNIQUE"}

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_LOOKUP_KEY_SEPARATORS = re.compile(r"[^a-z0-9]+")


class _Errors(dict):
    """Collects `{path: message}` so a function can report every problem of an object at once."""

    def add(self, path: str, message: str) -> None:
        self.setdefault(path, message)

    def collect(self, fn: Callable[..., Any], *args: Any, prefix: str = "", **kwargs: Any) -> Any:
        """Run another rule; on failure keep its errors (nested under `prefix`) and return None."""
        try:
            return fn(*args, **kwargs)
        except ValidationFailed as exc:
            for path, message in (prefix_details(prefix, exc.details) if prefix else exc.details).items():
                self.add(path, message)
            return None

    def raise_if_any(self) -> None:
        if self:
            raise ValidationFailed(details=dict(self))


def _text(
    value: Any,
    path: str,
    errors: _Errors,
    *,
    required: bool = False,
    max_length: int = NAME_MAX_LENGTH,
    single_line: bool = True,
) -> str:
    """A trimmed string: `None` means absent (`""`); required text must not be blank."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        errors.add(path, "must be a string")
        return ""
    value = value.strip()
    if required and not value:
        errors.add(path, "is required")
    elif len(value) > max_length:
        errors.add(path, f"must be at most {max_length} characters (got {len(value)})")
    elif single_line and _CONTROL_CHARACTERS.search(value):
        errors.add(path, "must not contain control characters (newlines, tabs…)")
    return value


def _choice(value: Any, path: str, errors: _Errors, choices: list[str] | tuple[str, ...], *, upper: bool) -> str:
    """A case-insensitive choice, returned in its canonical case; `""` when absent."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        errors.add(path, f"must be one of {', '.join(choices)}")
        return ""
    normalized = value.strip().upper() if upper else value.strip().lower()
    if normalized not in choices:
        errors.add(path, f"must be one of {', '.join(choices)} (got {value!r})")
        return ""
    return normalized


def _decimal_text(value: Any, path: str, errors: _Errors, *, positive: bool = False) -> str:
    """A decimal given as a JSON number or a string, returned as its shortest exact decimal text."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        errors.add(path, 'must be a decimal number (a string such as "1.5" or a number)')
        return ""
    if isinstance(value, str):
        value = value.strip()
    elif isinstance(value, float):
        value = repr(value)
    try:
        number = Decimal(value)
    except InvalidOperation:
        errors.add(path, f"must be a decimal number (got {value!r})")
        return ""
    if not number.is_finite():
        errors.add(path, "must be a finite decimal number")
        return ""
    if positive and number <= 0:
        errors.add(path, "must be greater than 0")
        return ""
    text = decimal_to_text(number)
    if len(text) > DECIMAL_MAX_LENGTH:
        errors.add(path, f"must have at most {DECIMAL_MAX_LENGTH} digits")
        return ""
    return text


def decimal_to_text(number: Decimal) -> str:
    """Shortest exact plain-notation text of a decimal: 1.50 → "1.5", 1E+3 → "1000", -0 → "0"."""
    if number == 0:
        return "0"
    return format(number.normalize(), "f")


# --- feature basics (wizard step 1) --------------------------------------------------------------------------


def lookup_key_from_name(name: str) -> str:
    """`"API Calls (v2)"` → `"api_calls_v2"`: lower case, runs of non-`[a-z0-9]` become `_`, trimmed.

    Accents are folded first (`"Café"` → `"cafe"`) so a Latin name keeps its letters instead of losing them.
    """
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return _LOOKUP_KEY_SEPARATORS.sub("_", folded.lower()).strip("_")[:NAME_MAX_LENGTH]


def _feature_basics(errors: _Errors, *, name: Any, type: Any, lookup_key: Any, description: Any) -> dict:
    name = _text(name, "name", errors, required=True)
    if type is None or type == "":
        errors.add("type", f"is required (one of {', '.join(FeatureType.values)})")
        feature_type = ""
    else:
        feature_type = _choice(type, "type", errors, FeatureType.values, upper=False)
    key = _text(lookup_key, "lookup_key", errors)
    if key and re.search(r"\s", key):
        errors.add("lookup_key", "must not contain whitespace")
    if not key and name:
        key = lookup_key_from_name(name)
        if not key:
            errors.add("lookup_key", "cannot be derived from the name (it has no letters or digits); give one")
    description = _text(description, "description", errors, max_length=10_000, single_line=False)
    return {"name": name, "type": feature_type, "lookup_key": key, "description": description}


def feature_basics_clean(*, name: Any, type: Any, lookup_key: Any = None, description: Any = "") -> dict:
    """Name, type, lookup key (derived from the name when absent) and description of a feature.

    Returns `{"name", "type", "lookup_key", "description"}`; the type comes out lower case.
    """
    errors = _Errors()
    result = _feature_basics(errors, name=name, type=type, lookup_key=lookup_key, description=description)
    errors.raise_if_any()
    return result


# --- meter parts (wizard steps) --------------------------------------------------------------------------------


def event_name_clean(value: Any) -> str:
    """Required, trimmed, ≤ 255 characters, no control characters. Case is kept: matching is exact."""
    errors = _Errors()
    event_name = _text(value, "event_name", errors, required=True)
    errors.raise_if_any()
    return event_name


def _compile_expression(text: str, path: str, errors: _Errors) -> None:
    from catalog.expressions import ExpressionError, compile_expression

    try:
        compiled = compile_expression(text)
    except ExpressionError as exc:
        errors.add(path, str(exc))
        return
    if not compiled.properties:
        errors.add(path, "must reference at least one event property")


def aggregation_clean(data: Any) -> dict:
    """The `aggregation` object of a meter. Returns every key, `""` where unused:
    `{"type", "field", "expression", "multiplier", "bucket_size", "group_by"}`.

    The type is case-insensitive in, upper case out. COUNT accepts and ignores `field` (Flexprice clients send
    one). A bare string is read as the type (`"COUNT"` ≡ `{"type": "COUNT"}`), as in Flexprice's inline meters.
    """
    errors = _Errors()
    if isinstance(data, str):
        data = {"type": data}
    if not isinstance(data, dict):
        raise ValidationFailed(details={"aggregation": "must be an object with at least a type"})

    raw_type = data.get("type")
    if isinstance(raw_type, str):
        raw_type = AGGREGATION_ALIASES.get(raw_type.strip().upper(), raw_type)
    if raw_type is None or raw_type == "":
        errors.add("aggregation.type", f"is required (one of {', '.join(AggregationType.values)})")
        agg_type = ""
    else:
        agg_type = _choice(raw_type, "aggregation.type", errors, AggregationType.values, upper=True)

    field = _text(data.get("field"), "aggregation.field", errors)
    expression = _text(data.get("expression"), "aggregation.expression", errors, max_length=4000, single_line=False)
    multiplier = _decimal_text(data.get("multiplier"), "aggregation.multiplier", errors, positive=True)
    bucket_size = _choice(data.get("bucket_size"), "aggregation.bucket_size", errors, BucketSize.values, upper=True)
    group_by = _text(data.get("group_by"), "aggregation.group_by", errors)

    if agg_type == AggregationType.COUNT:
        field = ""
    if expression:
        if agg_type and agg_type not in EXPRESSION_TYPES:
            errors.add("aggregation.expression", f"is only allowed for {', '.join(sorted(EXPRESSION_TYPES))}")
        elif field:
            errors.add("aggregation.expression", "give either a field or an expression, not both")
        else:
            _compile_expression(expression, "aggregation.expression", errors)
    elif agg_type and agg_type != AggregationType.COUNT and not field and "aggregation.field" not in errors:
        alternative = " or an expression" if agg_type in EXPRESSION_TYPES else ""
        errors.add("aggregation.field", f"is required for {agg_type} (the event property to aggregate){alternative}")

    if agg_type == AggregationType.SUM_WITH_MULTIPLIER:
        if not multiplier and "aggregation.multiplier" not in errors:
            errors.add("aggregation.multiplier", "is required for SUM_WITH_MULTIPLIER (a decimal greater than 0)")
    elif multiplier and agg_type:
        errors.add("aggregation.multiplier", "is only allowed for SUM_WITH_MULTIPLIER")

    if bucket_size and agg_type and agg_type not in BUCKET_TYPES:
        errors.add("aggregation.bucket_size", "is only allowed for SUM and MAX")
    if group_by and agg_type and (agg_type != AggregationType.MAX or not bucket_size):
        errors.add("aggregation.group_by", "is only allowed for MAX with a bucket_size")

    errors.raise_if_any()
    return {
        "type": agg_type,
        "field": field,
        "expression": expression,
        "multiplier": multiplier,
        "bucket_size": bucket_size,
        "group_by": group_by,
    }


def filters_clean(value: Any) -> list[dict]:
    """A list of `{key, values, operator?}`; returns `[{"key", "operator", "values"}]` in the given order.

    The operator defaults to `in`; values are de-duplicated (first occurrence kept); a key may appear once.
    `contains`/`not_contains` reject the empty string, which would match (or exclude) every value.
    """
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValidationFailed(details={"filters": "must be a list of {key, values, operator} objects"})
    errors = _Errors()
    cleaned: list[dict] = []
    first_index_of_key: dict[str, int] = {}
    for index, item in enumerate(value):
        path = f"filters[{index}]"
        if not isinstance(item, dict):
            errors.add(path, "must be an object with key and values")
            continue
        key = _text(item.get("key"), f"{path}.key", errors, required=True)
        operator = _choice(item.get("operator"), f"{path}.operator", errors, FILTER_OPERATORS, upper=False) or "in"
        raw_values = item.get("values")
        values: list[str] = []
        if not isinstance(raw_values, list) or not raw_values:
            errors.add(f"{path}.values", "must be a non-empty list of strings")
        else:
            for value_index, text in enumerate(raw_values):
                if not isinstance(text, str):
                    errors.add(f"{path}.values[{value_index}]", "must be a string")
                elif text == "" and operator in {"contains", "not_contains"}:
                    errors.add(f"{path}.values[{value_index}]", f"must not be empty for {operator}")
                elif text not in values:
                    values.append(text)
        if key:
            if key in first_index_of_key:
                errors.add(f"{path}.key", f"duplicate key {key!r} (already used by filters[{first_index_of_key[key]}])")
            else:
                first_index_of_key[key] = index
        cleaned.append({"key": key, "operator": operator, "values": values})
    errors.raise_if_any()
    return cleaned


def filters_merge(*, existing: list, added: Any) -> list[dict]:
    """Merge filters into a published meter's filters, additively (SPEC §2.1).

    `existing` is the stored (normalized) list; `added` is what the caller sent and is validated here.
    - A key the caller omits is **kept**: Flexprice-style clients resend the full list, others send only what
      they add, and both are served. There is no way to remove a key: archive the meter and create a new one.
    - A new key is appended.
    - A key that is sent must keep its operator and list every value it already had (new values are appended).
      Sending a key with fewer values is an attempt to remove them and is rejected, naming the missing values,
      so a client never believes it removed something that is still counted.
    """
    cleaned = filters_clean(added)
    errors = _Errors()
    merged = [dict(item, values=list(item["values"])) for item in existing]
    by_key = {item["key"]: item for item in merged}
    for index, item in enumerate(cleaned):
        current = by_key.get(item["key"])
        if current is None:
            merged.append(item)
            continue
        if item["operator"] != current["operator"]:
            errors.add(
                f"filters[{index}].operator",
                f"cannot change the operator of existing filter {item['key']!r} ({current['operator']}); "
                "filters can only be added to",
            )
            continue
        missing = [text for text in current["values"] if text not in item["values"]]
        if missing:
            errors.add(
                f"filters[{index}].values",
                f"cannot remove {', '.join(repr(text) for text in missing)} from filter {item['key']!r}; "
                "filters can only be added to (archive the meter and create a new one to narrow it)",
            )
            continue
        current["values"].extend(text for text in item["values"] if text not in current["values"])
    errors.raise_if_any()
    return merged


def reset_usage_clean(value: Any) -> str:
    """`BILLING_PERIOD` (default) or `NEVER`, case-insensitive in, upper case out."""
    errors = _Errors()
    reset = _choice(value, "reset_usage", errors, ResetUsage.values, upper=True)
    errors.raise_if_any()
    return reset or ResetUsage.BILLING_PERIOD


def meter_definition_clean(data: Any) -> dict:
    """A whole meter: returns `{"name", "event_name", "aggregation", "filters", "reset_usage"}`, all normalized.

    Reports the errors of every part at once.
    """
    if not isinstance(data, dict):
        raise ValidationFailed(details={"meter": "must be an object"})
    errors = _Errors()
    name = _text(data.get("name"), "name", errors, required=True)
    event_name = errors.collect(event_name_clean, data.get("event_name"))
    if "aggregation" not in data or data["aggregation"] is None:
        errors.add("aggregation", "is required (an object with at least a type)")
        aggregation = None
    else:
        aggregation = errors.collect(aggregation_clean, data["aggregation"])
    filters = errors.collect(filters_clean, data.get("filters"))
    reset_usage = errors.collect(reset_usage_clean, data.get("reset_usage"))
    errors.raise_if_any()
    return {
        "name": name,
        "event_name": event_name,
        "aggregation": aggregation,
        "filters": filters,
        "reset_usage": reset_usage,
    }


def meter_fingerprint(definition: Any) -> str:
    """SHA-256 of what a meter counts: event name, aggregation and filters (order-insensitive).

    Accepts a cleaned definition (`meter_definition_clean`) or a `Meter`. Two published meters of one environment
    with the same fingerprint would count exactly the same thing, which the database rejects.
    """
    if not isinstance(definition, dict):
        definition = meter_definition_of(definition)
    canonical = {
        "event_name": definition["event_name"],
        "aggregation": {key: definition["aggregation"].get(key) or "" for key in sorted(definition["aggregation"])},
        "filters": sorted(
            (
                {"key": f["key"], "operator": f.get("operator") or "in", "values": sorted(f["values"])}
                for f in definition["filters"]
            ),
            key=lambda f: f["key"],
        ),
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def meter_definition_of(meter: Any) -> dict:
    """The definition dict (as `meter_definition_clean` returns it) of a `Meter` row."""
    return {
        "name": meter.name,
        "event_name": meter.event_name,
        "aggregation": {
            "type": meter.aggregation_type,
            "field": meter.aggregation_field,
            "expression": meter.aggregation_expression,
            "multiplier": meter.multiplier,
            "bucket_size": meter.bucket_size,
            "group_by": meter.group_by,
        },
        "filters": list(meter.filters or []),
        "reset_usage": meter.reset_usage,
    }


IMMUTABLE_AFTER_PUBLISH = "cannot be changed after publishing; archive this meter and create a new one"


def meter_changes_clean(*, current: dict, status: str, data: dict) -> dict:
    """The definition a meter would have after the partial update `data`; returns it cleaned.

    `current` is the meter's definition (`meter_definition_of`). A draft may change anything. Once published,
    `name` may change and `filters` merge additively (`filters_merge`); `event_name`, `aggregation` and
    `reset_usage` may be resent unchanged (clients that PUT the whole object) but not changed. An archived meter
    may only be renamed.
    """
    if not isinstance(data, dict):
        raise ValidationFailed(details={"body": "must be an object"})
    given = {key: value for key, value in data.items() if value is not None}
    if status == MeterStatus.DRAFT:
        return meter_definition_clean({**current, **given})
    errors = _Errors()
    result = {**current, "filters": list(current["filters"])}
    if "name" in given:
        result["name"] = _text(given["name"], "name", errors, required=True)
    if "event_name" in given:
        event_name = errors.collect(event_name_clean, given["event_name"])
        if event_name is not None and event_name != current["event_name"]:
            errors.add("event_name", IMMUTABLE_AFTER_PUBLISH)
    if "aggregation" in given:
        aggregation = errors.collect(aggregation_clean, given["aggregation"])
        for key, value in (aggregation or {}).items():
            if value != (current["aggregation"].get(key) or ""):
                errors.add(f"aggregation.{key}", IMMUTABLE_AFTER_PUBLISH)
    if "reset_usage" in given:
        reset_usage = errors.collect(reset_usage_clean, given["reset_usage"])
        if reset_usage is not None and reset_usage != current["reset_usage"]:
            errors.add("reset_usage", IMMUTABLE_AFTER_PUBLISH)
    if "filters" in given:
        filters = errors.collect(filters_merge, existing=current["filters"], added=given["filters"])
        if filters is not None and status == MeterStatus.ARCHIVED and filters != current["filters"]:
            errors.add("filters", "cannot be changed on an archived meter")
        elif filters is not None:
            result["filters"] = filters
    errors.raise_if_any()
    return result


# --- feature parts ----------------------------------------------------------------------------------------------


def units_clean(*, singular: Any, plural: Any) -> tuple[str, str]:
    """Unit names for display (`credit`/`credits`): both or neither."""
    errors = _Errors()
    singular = _text(singular, "unit_singular", errors, max_length=UNIT_MAX_LENGTH)
    plural = _text(plural, "unit_plural", errors, max_length=UNIT_MAX_LENGTH)
    if singular and not plural and "unit_plural" not in errors:
        errors.add("unit_plural", "is required when unit_singular is set (give both or neither)")
    if plural and not singular and "unit_singular" not in errors:
        errors.add("unit_singular", "is required when unit_plural is set (give both or neither)")
    errors.raise_if_any()
    return singular, plural


def alert_settings_clean(value: Any) -> dict:
    """`{alert_enabled, critical?, warning?, info?}`, each level `{threshold, condition}`.

    Returns `{}` when absent, else `{"alert_enabled": bool, <level>: {"threshold": "<decimal text>",
    "condition": "above"|"below"}, …}` with only the levels given. Enabled alerts need a level; all levels share
    one condition; thresholds are ordered info ≤ warning ≤ critical for `above` and the reverse for `below`.
    """
    if value is None or value == {}:
        return {}
    if not isinstance(value, dict):
        raise ValidationFailed(details={"alert_settings": "must be an object"})
    errors = _Errors()
    enabled = value.get("alert_enabled", False)
    if enabled is None:
        enabled = False
    if not isinstance(enabled, bool):
        errors.add("alert_settings.alert_enabled", "must be true or false")
        enabled = False
    levels: dict[str, dict] = {}
    for level in ALERT_LEVELS:
        raw = value.get(level)
        if raw is None:
            continue
        path = f"alert_settings.{level}"
        if not isinstance(raw, dict):
            errors.add(path, "must be an object with threshold and condition")
            continue
        if raw.get("threshold") is None or raw.get("threshold") == "":
            errors.add(f"{path}.threshold", "is required")
            threshold = ""
        else:
            threshold = _decimal_text(raw.get("threshold"), f"{path}.threshold", errors)
        if raw.get("condition") is None or raw.get("condition") == "":
            errors.add(f"{path}.condition", "is required (above or below)")
            condition = ""
        else:
            condition = _choice(raw.get("condition"), f"{path}.condition", errors, ALERT_CONDITIONS, upper=False)
        levels[level] = {"threshold": threshold, "condition": condition}

    if enabled and not levels:
        errors.add("alert_settings.alert_enabled", "needs at least one of info, warning, critical")
    conditions = {level: item["condition"] for level, item in levels.items() if item["condition"]}
    shared = conditions.get("critical") or conditions.get("warning") or conditions.get("info")
    for level, condition in conditions.items():
        if condition != shared:
            errors.add(f"alert_settings.{level}.condition", f"must match the other levels ({shared}); levels share one")
    if shared and len(set(conditions.values())) == 1:
        ordered = [
            (level, Decimal(levels[level]["threshold"]))
            for level in ALERT_LEVELS
            if levels.get(level, {}).get("threshold")
        ]
        for (lower_level, lower), (higher_level, higher) in zip(ordered, ordered[1:], strict=False):
            if shared == "above" and lower > higher:
                errors.add(
                    f"alert_settings.{lower_level}.threshold",
                    f"must not exceed the {higher_level} threshold ({decimal_to_text(higher)}) for condition above",
                )
            elif shared == "below" and lower < higher:
                errors.add(
                    f"alert_settings.{lower_level}.threshold",
                    f"must not be below the {higher_level} threshold ({decimal_to_text(higher)}) for condition below",
                )
    errors.raise_if_any()
    return {"alert_enabled": enabled, **levels}


def metadata_clean(value: Any) -> dict:
    """A string → string map of at most 50 keys (`{}` when absent)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationFailed(details={"metadata": "must be an object of string values"})
    errors = _Errors()
    if len(value) > METADATA_MAX_KEYS:
        errors.add("metadata", f"must have at most {METADATA_MAX_KEYS} keys (got {len(value)})")
    for key, text in value.items():
        if not str(key).strip():
            errors.add("metadata", "keys must not be blank")
        elif len(str(key)) > NAME_MAX_LENGTH:
            errors.add(f"metadata.{key}", f"key must be at most {NAME_MAX_LENGTH} characters")
        elif not isinstance(text, str):
            errors.add(f"metadata.{key}", "must be a string")
    errors.raise_if_any()
    return {str(key): text for key, text in value.items()}


def feature_value_clean(value: Any, *, type: str) -> str:
    """The display value of a static or config feature (`"5 seats"`); other types carry none."""
    errors = _Errors()
    text = _text(value, "value", errors, max_length=10_000, single_line=False)
    if text and type in {FeatureType.METERED, FeatureType.BOOLEAN}:
        errors.add("value", "is only allowed for static and config features")
    errors.raise_if_any()
    return text


def feature_definition_clean(data: Any) -> dict:
    """A whole feature as sent to `POST /v1/features`, without database checks.

    Returns the normalized basics, `value`, units, `alert_settings`, `metadata`, and for metered features either
    `meter_id` (the public id, still to be resolved) or `meter` (a cleaned inline definition whose name defaults
    to the feature's name). Inline meter errors are reported under `meter.` (`meter.aggregation.field`).
    """
    if not isinstance(data, dict):
        raise ValidationFailed(details={"body": "must be an object"})
    errors = _Errors()
    basics = _feature_basics(
        errors,
        name=data.get("name"),
        type=data.get("type"),
        lookup_key=data.get("lookup_key"),
        description=data.get("description"),
    )
    feature_type = basics["type"]
    value = errors.collect(feature_value_clean, data.get("value"), type=feature_type)
    units = errors.collect(units_clean, singular=data.get("unit_singular"), plural=data.get("unit_plural"))
    alert_settings = errors.collect(alert_settings_clean, data.get("alert_settings"))
    metadata = errors.collect(metadata_clean, data.get("metadata"))

    meter_id = _text(data.get("meter_id"), "meter_id", errors)
    inline = data.get("meter")
    meter = None
    if feature_type == FeatureType.METERED:
        if meter_id and inline is not None:
            errors.add("meter", "give either meter_id or meter, not both")
        elif not meter_id and inline is None:
            errors.add("meter_id", "a metered feature needs meter_id (an existing published meter) or meter")
        elif not isinstance(inline, dict) and inline is not None:
            errors.add("meter", "must be an object (a meter definition)")
        elif inline is not None:
            if not inline.get("name"):
                inline = {**inline, "name": basics["name"]}
            meter = errors.collect(meter_definition_clean, inline, prefix="meter")
    elif feature_type:
        if meter_id:
            errors.add("meter_id", "only metered features have a meter")
        if inline is not None:
            errors.add("meter", "only metered features have a meter")
    errors.raise_if_any()
    singular, plural = units
    return {
        **basics,
        "value": value,
        "unit_singular": singular,
        "unit_plural": plural,
        "alert_settings": alert_settings,
        "metadata": metadata,
        "meter_id": meter_id if feature_type == FeatureType.METERED else "",
        "meter": meter,
    }


def feature_state_of(feature: Any) -> dict:
    """The current values of a `Feature` row, as `feature_changes_clean` expects them in `current`."""
    return {
        "name": feature.name,
        "type": feature.type,
        "lookup_key": feature.lookup_key,
        "meter_id": feature.meter.public_id if feature.meter_id else "",
        "description": feature.description,
        "value": feature.value,
        "unit_singular": feature.unit_singular,
        "unit_plural": feature.unit_plural,
        "alert_settings": feature.alert_settings,
        "metadata": feature.metadata,
    }


def feature_changes_clean(*, current: dict, data: dict) -> dict:
    """Validate a partial feature update (`PUT /v1/features/{id}`); returns only the fields to change.

    `current` holds the feature's `name, type, lookup_key, meter_id, description, value, unit_singular,
    unit_plural, alert_settings, metadata`. Omitted (or null) fields stay as they are. `type`, `lookup_key` and
    `meter_id` may be resent unchanged but never changed; the meter itself cannot be replaced. `filters`, when
    given, is returned as sent, for the caller to merge into the feature's meter (`meter_changes_clean`).
    Units are checked as a pair after the update (`unit_singular` alone may change if `unit_plural` is set).
    """
    if not isinstance(data, dict):
        raise ValidationFailed(details={"body": "must be an object"})
    given = {key: value for key, value in data.items() if value is not None}
    errors = _Errors()
    changes: dict[str, Any] = {}
    if "name" in given:
        changes["name"] = _text(given["name"], "name", errors, required=True)
    if "description" in given:
        changes["description"] = _text(
            given["description"], "description", errors, max_length=10_000, single_line=False
        )
    if "type" in given:
        feature_type = _choice(given["type"], "type", errors, FeatureType.values, upper=False)
        if feature_type and feature_type != current["type"]:
            errors.add("type", "cannot be changed after creation")
    for key in ("lookup_key", "meter_id"):
        if key in given and (not isinstance(given[key], str) or given[key].strip() != current[key]):
            errors.add(key, "cannot be changed after creation")
    if "meter" in given:
        errors.add("meter", "the meter cannot be replaced; add meter filters with `filters`")
    if "value" in given:
        changes["value"] = errors.collect(feature_value_clean, given["value"], type=current["type"])
    if "unit_singular" in given or "unit_plural" in given:
        units = errors.collect(
            units_clean,
            singular=given.get("unit_singular", current["unit_singular"]),
            plural=given.get("unit_plural", current["unit_plural"]),
        )
        if units is not None:
            changes["unit_singular"], changes["unit_plural"] = units
    if "alert_settings" in given:
        changes["alert_settings"] = errors.collect(alert_settings_clean, given["alert_settings"])
    if "metadata" in given:
        changes["metadata"] = errors.collect(metadata_clean, given["metadata"])
    if "filters" in given:
        if current["type"] != FeatureType.METERED:
            errors.add("filters", "only metered features have meter filters")
        changes["filters"] = given["filters"]
    errors.raise_if_any()
    return changes


# --- display ------------------------------------------------------------------------------------------------------


def format_quantity(value: Any, *, unit_singular: str = "", unit_plural: str = "") -> str:
    """`1 credit`, `0 credits`, `2.5 credits`, `1,234,567 credits`: exact decimal digits, thousands separators,
    the singular only for exactly 1. No units → just the number. `None` (an empty AVG/MIN/MAX/LATEST) → `—`.
    """
    if value is None:
        return "—"
    if isinstance(value, float):
        value = repr(value)
    number = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    text = "0" if number == 0 else format(number.normalize(), ",f")
    unit = unit_singular if number == 1 else unit_plural
    unit = unit or unit_plural or unit_singular
    return f"{text} {unit}" if unit else text
