"""Meter rules (SPEC §2.1): event name, aggregation, filters, reset policy, immutability after publishing."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from catalog.models import AggregationType, BucketSize, MeterStatus, ResetUsage
from catalog.rules.common import Errors, choice_value, decimal_value, text_value
from flexmeter.errors import ValidationFailed

FILTER_OPERATORS = ("in", "not_in", "contains", "not_contains")
#: Bounds of one filter: every event read and every usage query carries its values.
FILTER_MAX_VALUES = 1_000
FILTER_VALUE_MAX_LENGTH = 1_024
#: Types that may compute their quantity with a CEL expression instead of a field.
EXPRESSION_TYPES = frozenset({"SUM", "AVG", "MIN", "MAX", "LATEST"})
#: Types that may report per-bucket results.
BUCKET_TYPES = frozenset({"SUM", "MAX"})
#: Spellings other products use for our aggregation types (the Flexprice docs say UNIQUE_COUNT).
AGGREGATION_ALIASES = {"UNIQUE_COUNT": "COUNT_UNIQUE"}


# --- meter parts (wizard steps) --------------------------------------------------------------------------------


def event_name_clean(value: Any) -> str:
    """Required, trimmed, ≤ 255 characters, no control characters. Case is kept: matching is exact."""
    errors = Errors()
    event_name = text_value(value, "event_name", errors, required=True)
    errors.raise_if_any()
    return event_name


def _compile_expression(text: str, path: str, errors: Errors) -> None:
    from catalog.expressions import ExpressionError, compile_expression

    try:
        compiled = compile_expression(text)
    except ExpressionError as exc:
        errors.add(path, str(exc))
        return
    if not compiled.properties:
        errors.add(path, "must reference at least one event property")


#: Where `aggregation_clean` reports each part of an aggregation: in a meter definition (the default)…
METER_AGGREGATION_PATHS: Mapping[str, str] = {
    "type": "aggregation.type",
    "field": "aggregation.field",
    "expression": "aggregation.expression",
    "multiplier": "aggregation.multiplier",
    "bucket_size": "aggregation.bucket_size",
    "group_by": "aggregation.group_by",
}
#: …and in an ad-hoc usage request (`POST /v1/events/usage`), whose fields are flat and named as in Flexprice.
USAGE_REQUEST_PATHS: Mapping[str, str] = {
    "type": "aggregation_type",
    "field": "property_name",
    "expression": "expression",
    "multiplier": "multiplier",
    "bucket_size": "bucket_size",
    "group_by": "group_by",
}


def aggregation_clean(data: Any, *, paths: Mapping[str, str] = METER_AGGREGATION_PATHS) -> dict:
    """Validate an aggregation (SPEC §2.1) — of a meter, a wizard draft or an ad-hoc usage request.

    `data` holds `type`, `field`, `expression`, `multiplier`, `bucket_size`, `group_by` (absent or None when not
    given). Returns every key, `""` where unused: `{"type", "field", "expression", "multiplier", "bucket_size",
    "group_by"}`, the multiplier as exact decimal text. Errors name `paths[part]` (`METER_AGGREGATION_PATHS`, or
    `USAGE_REQUEST_PATHS` for `POST /v1/events/usage`).

    The type is case-insensitive in, upper case out. COUNT accepts and ignores `field` (Flexprice clients send
    one). A bare string is read as the type (`"COUNT"` ≡ `{"type": "COUNT"}`), as in Flexprice's inline meters.
    """
    errors = Errors()
    if isinstance(data, str):
        data = {"type": data}
    if not isinstance(data, dict):
        raise ValidationFailed(details={"aggregation": "must be an object with at least a type"})

    raw_type = data.get("type")
    if isinstance(raw_type, str):
        raw_type = AGGREGATION_ALIASES.get(raw_type.strip().upper(), raw_type)
    if raw_type is None or raw_type == "":
        errors.add(paths["type"], f"is required (one of {', '.join(AggregationType.values)})")
        agg_type = ""
    else:
        agg_type = choice_value(raw_type, paths["type"], errors, AggregationType.values, upper=True)

    field = text_value(data.get("field"), paths["field"], errors)
    expression = text_value(data.get("expression"), paths["expression"], errors, max_length=4000, single_line=False)
    multiplier = decimal_value(data.get("multiplier"), paths["multiplier"], errors, positive=True)
    bucket_size = choice_value(data.get("bucket_size"), paths["bucket_size"], errors, BucketSize.values, upper=True)
    group_by = text_value(data.get("group_by"), paths["group_by"], errors)

    if agg_type == AggregationType.COUNT:
        field = ""
    if expression:
        if agg_type and agg_type not in EXPRESSION_TYPES:
            errors.add(paths["expression"], f"is only allowed for {', '.join(sorted(EXPRESSION_TYPES))}")
        elif field:
            errors.add(paths["expression"], "give either a field or an expression, not both")
        else:
            _compile_expression(expression, paths["expression"], errors)
    elif agg_type and agg_type != AggregationType.COUNT and not field and paths["field"] not in errors:
        alternative = " or an expression" if agg_type in EXPRESSION_TYPES else ""
        errors.add(paths["field"], f"is required for {agg_type} (the event property to aggregate){alternative}")

    if agg_type == AggregationType.SUM_WITH_MULTIPLIER:
        if not multiplier and paths["multiplier"] not in errors:
            errors.add(paths["multiplier"], "is required for SUM_WITH_MULTIPLIER (a decimal greater than 0)")
    elif multiplier and agg_type:
        errors.add(paths["multiplier"], "is only allowed for SUM_WITH_MULTIPLIER")

    if bucket_size and agg_type and agg_type not in BUCKET_TYPES:
        errors.add(paths["bucket_size"], "is only allowed for SUM and MAX")
    if group_by and agg_type and (agg_type != AggregationType.MAX or not bucket_size):
        errors.add(paths["group_by"], "is only allowed for MAX with a bucket_size")

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
    `contains`/`not_contains` reject the empty string, which would match (or exclude) every value. A filter holds
    at most FILTER_MAX_VALUES values of at most FILTER_VALUE_MAX_LENGTH characters each: every event read and
    every usage query carries them.
    """
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValidationFailed(details={"filters": "must be a list of {key, values, operator} objects"})
    errors = Errors()
    cleaned: list[dict] = []
    first_index_of_key: dict[str, int] = {}
    for index, item in enumerate(value):
        path = f"filters[{index}]"
        if not isinstance(item, dict):
            errors.add(path, "must be an object with key and values")
            continue
        key = text_value(item.get("key"), f"{path}.key", errors, required=True)
        operator = choice_value(item.get("operator"), f"{path}.operator", errors, FILTER_OPERATORS, upper=False) or "in"
        values = _filter_values(item.get("values"), path, operator, errors)
        if key:
            if key in first_index_of_key:
                errors.add(f"{path}.key", f"duplicate key {key!r} (already used by filters[{first_index_of_key[key]}])")
            else:
                first_index_of_key[key] = index
        cleaned.append({"key": key, "operator": operator, "values": values})
    errors.raise_if_any()
    return cleaned


def _filter_values(raw_values: Any, path: str, operator: str, errors: Errors) -> list[str]:
    if not isinstance(raw_values, list) or not raw_values:
        errors.add(f"{path}.values", "must be a non-empty list of strings")
        return []
    if len(raw_values) > FILTER_MAX_VALUES:
        errors.add(f"{path}.values", f"must have at most {FILTER_MAX_VALUES:,} values (got {len(raw_values):,})")
        return []
    values: dict[str, None] = {}
    for value_index, text in enumerate(raw_values):
        value_path = f"{path}.values[{value_index}]"
        if not isinstance(text, str):
            errors.add(value_path, "must be a string")
        elif len(text) > FILTER_VALUE_MAX_LENGTH:
            errors.add(value_path, f"must be at most {FILTER_VALUE_MAX_LENGTH:,} characters (got {len(text):,})")
        elif text == "" and operator in {"contains", "not_contains"}:
            errors.add(value_path, f"must not be empty for {operator}")
        else:
            values[text] = None
    return list(values)


ONLY_ADDED_TO = "filters can only be added to (archive the meter and create a new one to narrow it)"


def filters_merge(*, existing: list, added: Any, complete: bool = False) -> list[dict]:
    """Merge filters into a published meter's filters, additively, as Flexprice does (SPEC §2.1, §6.3).

    `existing` is the stored (normalized) list; `added` is what the caller sent and is validated here.
    - A new key is appended; the values sent for an existing key are added to its values (duplicates ignored).
    - Nothing is ever removed: a key or value the caller leaves out is kept.
    - Changing the operator of an existing key is refused (it would change what the kept values mean).
    - `complete=True` says `added` is the whole intended list (the admin's filters box shows every filter), so a
      key or value left out of it is an attempt to remove it, and is refused naming it instead of being kept
      silently while the form reports success.
    The merged filter must stay within FILTER_MAX_VALUES values.
    """
    cleaned = filters_clean(added)
    errors = Errors()
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
        kept = set(current["values"])
        missing = [text for text in current["values"] if text not in set(item["values"])] if complete else []
        if missing:
            removed = ", ".join(repr(text) for text in missing)
            errors.add(
                f"filters[{index}].values", f"cannot remove {removed} from filter {item['key']!r}; {ONLY_ADDED_TO}"
            )
            continue
        current["values"].extend(text for text in item["values"] if text not in kept)
        if len(current["values"]) > FILTER_MAX_VALUES:
            errors.add(
                f"filters[{index}].values",
                f"filter {item['key']!r} would hold {len(current['values']):,} values; at most {FILTER_MAX_VALUES:,}",
            )
    if complete:
        sent = {item["key"] for item in cleaned}
        dropped = [item["key"] for item in existing if item["key"] not in sent]
        if dropped:
            errors.add("filters", f"cannot remove filter {', '.join(repr(key) for key in dropped)}; {ONLY_ADDED_TO}")
    errors.raise_if_any()
    return merged


def reset_usage_clean(value: Any) -> str:
    """`BILLING_PERIOD` (default) or `NEVER`, case-insensitive in, upper case out."""
    errors = Errors()
    reset = choice_value(value, "reset_usage", errors, ResetUsage.values, upper=True)
    errors.raise_if_any()
    return reset or ResetUsage.BILLING_PERIOD


def meter_definition_clean(data: Any) -> dict:
    """A whole meter: returns `{"name", "event_name", "aggregation", "filters", "reset_usage"}`, all normalized.

    Reports the errors of every part at once. Flexprice's documented inline-meter spelling is accepted too:
    `event_type` for `event_name` (when `event_name` is absent) and a bare aggregation type string.
    """
    if not isinstance(data, dict):
        raise ValidationFailed(details={"meter": "must be an object"})
    if data.get("event_name") is None and data.get("event_type") is not None:
        data = {**data, "event_name": data["event_type"]}
    errors = Errors()
    name = text_value(data.get("name"), "name", errors, required=True)
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


def meter_changes_clean(*, current: dict, status: str, data: dict, filters_complete: bool = False) -> dict:
    """The definition a meter would have after the partial update `data`; returns it cleaned.

    `current` is the meter's definition (`meter_definition_of`). A draft may change anything. Once published,
    `name` may change and `filters` merge additively (`filters_merge`; `filters_complete` when the caller sent
    its whole list, as the admin form does); `event_name`, `aggregation` and `reset_usage` may be resent
    unchanged (clients that PUT the whole object) but not changed. An archived meter may only be renamed.
    """
    if not isinstance(data, dict):
        raise ValidationFailed(details={"body": "must be an object"})
    given = {key: value for key, value in data.items() if value is not None}
    if status == MeterStatus.DRAFT:
        return meter_definition_clean({**current, **given})
    errors = Errors()
    result = {**current, "filters": list(current["filters"])}
    if "name" in given:
        result["name"] = text_value(given["name"], "name", errors, required=True)
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
        filters = errors.collect(
            filters_merge, existing=current["filters"], added=given["filters"], complete=filters_complete
        )
        if filters is not None and status == MeterStatus.ARCHIVED and filters != current["filters"]:
            errors.add("filters", "cannot be changed on an archived meter")
        elif filters is not None:
            result["filters"] = filters
    errors.raise_if_any()
    return result
