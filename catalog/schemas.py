"""Wire shapes of meters and features (SPEC §6.3, §6.4), in the Flexprice format.

Request schemas are deliberately permissive (values typed `Any`, documented with their real JSON types): the
checks live in `catalog.rules`, so the API reports the same messages under the same field paths as the dashboard
and admin. Response schemas are exact: ids are public ids, decimal settings (`multiplier`, alert `threshold`s)
and metadata values are strings, timestamps are RFC 3339 UTC (`2026-01-31T12:00:00.123Z`).
"""

import json
from datetime import datetime
from typing import Annotated, Any

from django.conf import settings
from ninja import Field, Schema
from pydantic import BaseModel, ConfigDict, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from catalog.models import AggregationType, BucketSize, Feature, FeatureStatus, FeatureType, Meter, MeterStatus
from catalog.rules import (
    ALERT_CONDITIONS,
    ALERT_LEVELS,
    FILTER_MAX_VALUES,
    FILTER_OPERATORS,
    FILTER_VALUE_MAX_LENGTH,
)
from flexmeter.models import Environment
from flexmeter.pagination import DEFAULT_PAGE_SIZE, MAX_OFFSET, MAX_PAGE_SIZE

DECIMAL_TEXT = {"anyOf": [{"type": "string"}, {"type": "number"}], "description": 'decimal, e.g. "1.5"'}


def _doc(schema: dict) -> Any:
    """An input value accepted as-is (the rules check it), documented in OpenAPI with its intended JSON schema."""
    return Annotated[Any, WithJsonSchema(schema)]


def _string(description: str = "", enum: list[str] | tuple[str, ...] | None = None) -> Any:
    schema: dict[str, Any] = {"type": "string"}
    if description:
        schema["description"] = description
    if enum:
        schema["enum"] = list(enum)
    return _doc(schema)


# --- requests ---------------------------------------------------------------------------------------------------


class RequestSchema(BaseModel):
    """A JSON object in a request. Plain pydantic (not ninja's Schema, which reads any value as an object by
    attribute access), so a body or nested value that is not an object is a 400 instead of an empty update."""

    @model_validator(mode="before")
    @classmethod
    def _must_be_an_object(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise PydanticCustomError("object_expected", "must be a JSON object")
        return value


class AggregationIn(RequestSchema):
    type: _string("case-insensitive", AggregationType.values) = None
    field: _string("event property to aggregate (not used by COUNT)") = None
    expression: _string("CEL expression over event properties (SUM, AVG, MIN, MAX, LATEST)") = None
    multiplier: _doc({**DECIMAL_TEXT, "description": "> 0, SUM_WITH_MULTIPLIER only"}) = None
    bucket_size: _string("SUM and MAX only", BucketSize.values) = None
    group_by: _string("MAX with bucket_size only") = None


class FilterIn(RequestSchema):
    key: _string("event property") = None
    values: _doc(
        {
            "type": "array",
            "items": {"type": "string", "maxLength": FILTER_VALUE_MAX_LENGTH},
            "minItems": 1,
            "maxItems": FILTER_MAX_VALUES,
        }
    ) = None
    operator: _string("default in", FILTER_OPERATORS) = None


_AGGREGATION_DOC = {**AggregationIn.model_json_schema(), "title": "AggregationIn"}
_FILTERS_DOC = {"type": "array", "items": {**FilterIn.model_json_schema(), "title": "FilterIn"}}


class MeterIn(RequestSchema):
    model_config = ConfigDict(json_schema_extra={"required": ["name", "event_name", "aggregation"]})

    name: _string() = None
    event_name: _string("exact, case-sensitive") = None
    aggregation: _doc(_AGGREGATION_DOC) = None
    filters: _doc(_FILTERS_DOC) = None
    reset_usage: _string("default BILLING_PERIOD", ["BILLING_PERIOD", "NEVER"]) = None


class MeterUpdateIn(RequestSchema):
    """Rename and/or add filters: new keys are added, values sent for an existing key are added to it."""

    name: _string() = None
    filters: _doc(_FILTERS_DOC) = None
    event_name: _string("may be resent unchanged; immutable after publishing") = None
    aggregation: _doc({**_AGGREGATION_DOC, "description": "may be resent unchanged; immutable"}) = None
    reset_usage: _string("may be resent unchanged; immutable after publishing") = None


class AlertLevelIn(RequestSchema):
    threshold: _doc(DECIMAL_TEXT) = None
    condition: _string(enum=ALERT_CONDITIONS) = None


_ALERT_LEVEL_DOC = {**AlertLevelIn.model_json_schema(), "title": "AlertLevelIn"}
_ALERT_SETTINGS_DOC = {
    "type": "object",
    "title": "AlertSettingsIn",
    "properties": {
        "alert_enabled": {"type": "boolean"},
        "critical": _ALERT_LEVEL_DOC,
        "warning": _ALERT_LEVEL_DOC,
        "info": _ALERT_LEVEL_DOC,
    },
}
_METADATA_DOC = {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 50}


_INLINE_METER_DOC = {
    **MeterIn.model_json_schema(),
    "title": "MeterIn",
    "required": ["event_name", "aggregation"],
    "description": "metered: a meter created with the feature (name defaults to the feature's)",
}


class FeatureIn(RequestSchema):
    model_config = ConfigDict(json_schema_extra={"required": ["name", "type"]})

    name: _string() = None
    type: _string("case-insensitive", FeatureType.values) = None
    lookup_key: _string("default: derived from the name") = None
    description: _string() = None
    meter_id: _string("metered: a published meter of this environment") = None
    meter: _doc(_INLINE_METER_DOC) = None
    value: _string("static and config features") = None
    unit_singular: _string() = None
    unit_plural: _string() = None
    alert_settings: _doc(_ALERT_SETTINGS_DOC) = None
    metadata: _doc(_METADATA_DOC) = None


class FeatureUpdateIn(RequestSchema):
    """Partial update: omitted fields stay. `filters` are added to the feature's meter."""

    name: _string() = None
    description: _string() = None
    value: _string() = None
    unit_singular: _string() = None
    unit_plural: _string() = None
    alert_settings: _doc(_ALERT_SETTINGS_DOC) = None
    metadata: _doc(_METADATA_DOC) = None
    filters: _doc(_FILTERS_DOC) = None
    type: _string("may be resent unchanged; immutable") = None
    lookup_key: _string("may be resent unchanged; immutable") = None
    meter_id: _string("may be resent unchanged; immutable") = None


class FeatureCloneIn(RequestSchema):
    """The clone's own name (required, different from the source's) and lookup key (default: from the name)."""

    model_config = ConfigDict(json_schema_extra={"required": ["name"]})

    name: _string() = None
    lookup_key: _string("default: derived from the name") = None
    description: _string("default: the source's") = None
    metadata: _doc(_METADATA_DOC) = None


class PageQuery(RequestSchema):
    limit: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)


class MeterListQuery(PageQuery):
    status: str | None = Field(None, json_schema_extra={"enum": MeterStatus.values})
    event_name: str | None = None
    meter_ids: list[str] | None = None


class FeatureFilters(PageQuery):
    feature_ids: list[str] | None = Field(None, description="repeat the parameter or separate ids by commas")
    lookup_key: str | None = None
    lookup_keys: list[str] | None = None
    name_contains: str | None = None
    type: str | None = Field(None, json_schema_extra={"enum": FeatureType.values})
    status: str | None = Field(None, json_schema_extra={"enum": FeatureStatus.values})
    expand: str | None = Field(None, description="`meters` embeds each feature's meter")


# --- responses --------------------------------------------------------------------------------------------------


class AggregationOut(Schema):
    type: str
    field: str | None
    expression: str | None
    multiplier: str | None = Field(description="decimal as a string")
    bucket_size: str | None
    group_by: str | None


class FilterOut(Schema):
    key: str
    operator: str
    values: list[str]


class MeterOut(Schema):
    id: str
    name: str
    tenant_id: str
    environment_id: str
    event_name: str
    aggregation: AggregationOut
    filters: list[FilterOut]
    reset_usage: str
    status: str
    created_at: datetime
    updated_at: datetime


class Pagination(Schema):
    total: int
    limit: int
    offset: int


class MeterListOut(Schema):
    items: list[MeterOut]
    pagination: Pagination


class AlertLevelOut(Schema):
    threshold: str = Field(description="decimal as a string")
    condition: str


class AlertSettingsOut(Schema):
    alert_enabled: bool
    critical: AlertLevelOut | None = None
    warning: AlertLevelOut | None = None
    info: AlertLevelOut | None = None


class FeatureOut(Schema):
    id: str
    name: str
    lookup_key: str
    type: str
    description: str
    meter_id: str | None
    meter: MeterOut | None = Field(None, description="only with expand=meters")
    value: str | None
    unit_singular: str | None
    unit_plural: str | None
    alert_settings: AlertSettingsOut | None
    metadata: dict[str, str]
    status: str
    tenant_id: str
    environment_id: str
    created_at: datetime
    updated_at: datetime


class FeatureListOut(Schema):
    items: list[FeatureOut]
    pagination: Pagination


# --- serializers ------------------------------------------------------------------------------------------------


def tenant_id() -> str:
    """flexmeter is single-tenant; the Flexprice `tenant_id` field carries a constant (settings.FLEXMETER_TENANT_ID)."""
    return getattr(settings, "FLEXMETER_TENANT_ID", "default")


def _text(value: Any) -> str:
    """Settings are validated to strings on the way in; rows written around the rules still serialize."""
    return value if isinstance(value, str) else json.dumps(value)


def meter_to_wire(meter: Meter, *, environment: Environment) -> dict:
    return {
        "id": meter.public_id,
        "name": meter.name,
        "tenant_id": tenant_id(),
        "environment_id": environment.public_id,
        "event_name": meter.event_name,
        "aggregation": {
            "type": meter.aggregation_type,
            "field": meter.aggregation_field or None,
            "expression": meter.aggregation_expression or None,
            "multiplier": meter.multiplier or None,
            "bucket_size": meter.bucket_size or None,
            "group_by": meter.group_by or None,
        },
        "filters": [
            {
                "key": _text(item.get("key", "")),
                "operator": item.get("operator") or "in",
                "values": [_text(value) for value in item.get("values") or []],
            }
            for item in meter.filters or []
        ],
        "reset_usage": meter.reset_usage,
        "status": meter.status,
        "created_at": meter.created_at,
        "updated_at": meter.updated_at,
    }


def _alert_settings_wire(settings: Any) -> dict | None:
    if not isinstance(settings, dict) or not settings:
        return None
    wire: dict[str, Any] = {"alert_enabled": bool(settings.get("alert_enabled"))}
    for level in ALERT_LEVELS:
        item = settings.get(level)
        if isinstance(item, dict):
            wire[level] = {"threshold": _text(item.get("threshold", "")), "condition": _text(item.get("condition", ""))}
    return wire


def feature_to_wire(feature: Feature, *, environment: Environment, expand_meter: bool = False) -> dict:
    """`meter` is only present when expanded, as in Flexprice (`expand=meters`)."""
    wire = {
        "id": feature.public_id,
        "name": feature.name,
        "lookup_key": feature.lookup_key,
        "type": feature.type,
        "description": feature.description,
        "meter_id": feature.meter.public_id if feature.meter_id else None,
        "value": feature.value or None,
        "unit_singular": feature.unit_singular or None,
        "unit_plural": feature.unit_plural or None,
        "alert_settings": _alert_settings_wire(feature.alert_settings),
        "metadata": {str(key): _text(value) for key, value in (feature.metadata or {}).items()},
        "status": feature.status,
        "tenant_id": tenant_id(),
        "environment_id": environment.public_id,
        "created_at": feature.created_at,
        "updated_at": feature.updated_at,
    }
    if expand_meter:
        wire["meter"] = meter_to_wire(feature.meter, environment=environment) if feature.meter_id else None
    return wire
