"""Every validation rule for meters and features (SPEC §2.1–2.2), in one package: `from catalog import rules`.

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

Layout: `meters.py` (§2.1), `features.py` (§2.2), `common.py` (the error collector and typed value readers),
`names.py` (names that differ only by case, separators or whitespace: the near-miss rule of §7).
"""

from catalog.rules.common import (
    DECIMAL_MAX_LENGTH,
    NAME_MAX_LENGTH,
)
from catalog.rules.features import (
    ALERT_CONDITIONS,
    ALERT_LEVELS,
    METADATA_MAX_KEYS,
    UNIT_MAX_LENGTH,
    alert_settings_clean,
    feature_basics_clean,
    feature_changes_clean,
    feature_definition_clean,
    feature_state_of,
    feature_value_clean,
    lookup_key_from_name,
    metadata_clean,
    units_clean,
)
from catalog.rules.meters import (
    AGGREGATION_ALIASES,
    BUCKET_TYPES,
    EXPRESSION_TYPES,
    FILTER_MAX_VALUES,
    FILTER_OPERATORS,
    FILTER_VALUE_MAX_LENGTH,
    IMMUTABLE_AFTER_PUBLISH,
    METER_AGGREGATION_PATHS,
    ONLY_ADDED_TO,
    USAGE_REQUEST_PATHS,
    aggregation_clean,
    event_name_clean,
    filters_clean,
    filters_merge,
    meter_changes_clean,
    meter_definition_clean,
    meter_definition_of,
    meter_fingerprint,
    reset_usage_clean,
)
from catalog.rules.names import name_likeness_key, similar_names

__all__ = [
    "AGGREGATION_ALIASES",
    "ALERT_CONDITIONS",
    "ALERT_LEVELS",
    "BUCKET_TYPES",
    "DECIMAL_MAX_LENGTH",
    "EXPRESSION_TYPES",
    "FILTER_MAX_VALUES",
    "FILTER_OPERATORS",
    "FILTER_VALUE_MAX_LENGTH",
    "IMMUTABLE_AFTER_PUBLISH",
    "METADATA_MAX_KEYS",
    "METER_AGGREGATION_PATHS",
    "NAME_MAX_LENGTH",
    "ONLY_ADDED_TO",
    "UNIT_MAX_LENGTH",
    "USAGE_REQUEST_PATHS",
    "aggregation_clean",
    "alert_settings_clean",
    "event_name_clean",
    "feature_basics_clean",
    "feature_changes_clean",
    "feature_definition_clean",
    "feature_state_of",
    "feature_value_clean",
    "filters_clean",
    "filters_merge",
    "lookup_key_from_name",
    "metadata_clean",
    "meter_changes_clean",
    "meter_definition_clean",
    "meter_definition_of",
    "meter_fingerprint",
    "name_likeness_key",
    "reset_usage_clean",
    "similar_names",
    "units_clean",
]
