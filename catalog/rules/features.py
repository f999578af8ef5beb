"""Feature rules (SPEC §2.2): basics and lookup key, value, units, alert settings, metadata, meter choice."""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal
from typing import Any

from catalog.models import FeatureType
from catalog.rules.common import NAME_MAX_LENGTH, Errors, choice_value, decimal_value, text_value
from catalog.rules.meters import meter_definition_clean
from flexmeter.decimals import decimal_text
from flexmeter.errors import ValidationFailed

UNIT_MAX_LENGTH = 64
METADATA_MAX_KEYS = 50
ALERT_LEVELS = ("info", "warning", "critical")  # in increasing severity
ALERT_CONDITIONS = ("above", "below")
_LOOKUP_KEY_SEPARATORS = re.compile(r"[^a-z0-9]+")


# --- feature basics (wizard step 1) --------------------------------------------------------------------------


def lookup_key_from_name(name: str) -> str:
    """`"API Calls (v2)"` → `"api_calls_v2"`: lower case, runs of non-`[a-z0-9]` become `_`, trimmed.

    Accents are folded first (`"Café"` → `"cafe"`) so a Latin name keeps its letters instead of losing them.
    """
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return _LOOKUP_KEY_SEPARATORS.sub("_", folded.lower()).strip("_")[:NAME_MAX_LENGTH]


def _feature_basics(errors: Errors, *, name: Any, type: Any, lookup_key: Any, description: Any) -> dict:
    name = text_value(name, "name", errors, required=True)
    if type is None or type == "":
        errors.add("type", f"is required (one of {', '.join(FeatureType.values)})")
        feature_type = ""
    else:
        feature_type = choice_value(type, "type", errors, FeatureType.values, upper=False)
    key = text_value(lookup_key, "lookup_key", errors)
    if key and re.search(r"\s", key):
        errors.add("lookup_key", "must not contain whitespace")
    if not key and name:
        key = lookup_key_from_name(name)
        if not key:
            errors.add("lookup_key", "cannot be derived from the name (it has no letters or digits); give one")
    description = text_value(description, "description", errors, max_length=10_000, single_line=False)
    return {"name": name, "type": feature_type, "lookup_key": key, "description": description}


def feature_basics_clean(*, name: Any, type: Any, lookup_key: Any = None, description: Any = "") -> dict:
    """Name, type, lookup key (derived from the name when absent) and description of a feature.

    Returns `{"name", "type", "lookup_key", "description"}`; the type comes out lower case.
    """
    errors = Errors()
    result = _feature_basics(errors, name=name, type=type, lookup_key=lookup_key, description=description)
    errors.raise_if_any()
    return result


# --- feature parts ----------------------------------------------------------------------------------------------


def units_clean(*, singular: Any, plural: Any) -> tuple[str, str]:
    """Unit names for display (`credit`/`credits`): both or neither."""
    errors = Errors()
    singular = text_value(singular, "unit_singular", errors, max_length=UNIT_MAX_LENGTH)
    plural = text_value(plural, "unit_plural", errors, max_length=UNIT_MAX_LENGTH)
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
    errors = Errors()
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
            threshold = decimal_value(raw.get("threshold"), f"{path}.threshold", errors)
        if raw.get("condition") is None or raw.get("condition") == "":
            errors.add(f"{path}.condition", "is required (above or below)")
            condition = ""
        else:
            condition = choice_value(raw.get("condition"), f"{path}.condition", errors, ALERT_CONDITIONS, upper=False)
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
                    f"must not exceed the {higher_level} threshold ({decimal_text(higher)}) for condition above",
                )
            elif shared == "below" and lower < higher:
                errors.add(
                    f"alert_settings.{lower_level}.threshold",
                    f"must not be below the {higher_level} threshold ({decimal_text(higher)}) for condition below",
                )
    errors.raise_if_any()
    return {"alert_enabled": enabled, **levels}


def metadata_clean(value: Any) -> dict:
    """A string → string map of at most 50 keys (`{}` when absent)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationFailed(details={"metadata": "must be an object of string values"})
    errors = Errors()
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
    errors = Errors()
    text = text_value(value, "value", errors, max_length=10_000, single_line=False)
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
    errors = Errors()
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

    meter_id = text_value(data.get("meter_id"), "meter_id", errors)
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
    errors = Errors()
    changes: dict[str, Any] = {}
    if "name" in given:
        changes["name"] = text_value(given["name"], "name", errors, required=True)
    if "description" in given:
        changes["description"] = text_value(
            given["description"], "description", errors, max_length=10_000, single_line=False
        )
    if "type" in given:
        feature_type = choice_value(given["type"], "type", errors, FeatureType.values, upper=False)
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
