"""REST endpoints of usage and the debugger (SPEC §6.2 usage/validate/lookup, §6.5 customer usage, §7).

Computed usage values go out as JSON numbers with every digit (`metering.exactjson`), never as floats or
strings, so responses are written by hand while the schemas below document them in OpenAPI.
"""

from __future__ import annotations

import datetime as dt
import functools
from decimal import Decimal
from typing import Annotated, Any

from django.http import HttpRequest
from django.utils import timezone
from ninja import Field, Query, Router, Schema
from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from catalog.models import BucketSize
from catalog.schemas import feature_to_wire, meter_to_wire
from catalog.selectors import meter_get
from flexmeter.decimals import decimal_text, rfc3339
from flexmeter.errors import NotFound, ValidationFailed
from metering.api.http import request_json, wire_response
from metering.api.schemas import event_to_dict, property_filters_clean
from metering.debugger.explain import DebugReport, event_debug_report
from metering.exactjson import Written, number_text
from metering.ingest.validation import event_clean, text_problem
from metering.selectors import customer_get, customer_get_by_external_id, event_lookup
from metering.usage.engine import run_usage_queries
from metering.usage.periods import MAX_TIMEZONE_LENGTH, usage_time_problem
from metering.usage.selectors import AnalyticsItem, customer_current_usage, usage_analytics, usage_query_build
from metering.usage.spec import AggregationSpec, UsageResult, UsageWindow, aggregation_spec_build

usage_events_router = Router(tags=["usage"])
usage_customers_router = Router(tags=["usage"])

DEFAULT_USAGE_SPAN = dt.timedelta(days=7)


def _usage_time(value: dt.datetime) -> dt.datetime:
    if problem := usage_time_problem(value):
        raise PydanticCustomError("usage_time", problem)
    return value


# Checked while parsing, so the default window (end_time − 7 days) is computed only from an instant that has room.
UsageTime = Annotated[dt.datetime, AfterValidator(_usage_time)]


class UsageWindowIn(Schema):
    external_customer_id: str | None = Field(None, max_length=255)
    start_time: UsageTime | None = Field(None, description="RFC 3339, years 0002–9998; default end_time − 7 days")
    end_time: UsageTime | None = Field(None, description="RFC 3339, years 0002–9998; default now")
    window_size: str | None = Field(None, json_schema_extra={"enum": list(BucketSize.values)})
    timezone: str | None = Field(
        None, max_length=MAX_TIMEZONE_LENGTH, description="IANA name for bucket alignment; default UTC"
    )
    billing_anchor: UsageTime | None = Field(None, description="month buckets start on this day")


class UsageIn(UsageWindowIn):
    event_name: str
    aggregation_type: str
    property_name: str | None = None
    bucket_size: str | None = None
    filters: dict[str, list[str]] | None = None
    multiplier: Decimal | str | None = None
    group_by: str | None = None


class MeterUsageIn(UsageWindowIn):
    meter_id: str


class UsageResultOut(Schema):
    window_size: str = Field(description="start of the window, RFC 3339 UTC")
    value: float | None = Field(description="exact decimal digits")


class UsageOut(Schema):
    event_name: str
    type: str
    value: float | None = Field(description="exact decimal digits; null for an empty AVG/MIN/MAX/LATEST")
    results: list[UsageResultOut]


class LookupQuery(Schema):
    id: str = Field(min_length=1, description="the event's event_id")
    external_customer_id: str | None = Field(None, description="when given, the event must be this customer's")
    start_time: dt.datetime | None = Field(None, description="when given, the event must be at or after it")
    end_time: dt.datetime | None = Field(None, description="when given, the event must be before it")


class DebugOut(Schema):
    event: dict[str, Any]
    status: str = Field(description="processed, unmatched or customer_not_found")
    debug_tracker: dict[str, Any]


class PeriodOut(Schema):
    start_time: str
    end_time: str


class FeatureUsageOut(Schema):
    feature: dict[str, Any]
    current_usage: float | None = Field(description="exact decimal digits")
    unit: str
    next_usage_reset_at: str | None


class CustomerUsageOut(Schema):
    customer_id: str
    period: PeriodOut
    features: list[FeatureUsageOut]


def _window(payload: UsageWindowIn) -> tuple[dt.datetime, dt.datetime]:
    end = payload.end_time or timezone.now()
    start = payload.start_time or end - DEFAULT_USAGE_SPAN
    return start, end


def _usage_body(*, event_name: str, kind: str, result: UsageResult) -> dict:
    return {
        "event_name": event_name,
        "type": kind,
        "value": result.value,
        "results": _windows_written(result.windows),
    }


def _windows_written(windows: list[UsageWindow]) -> Written:
    # written here, each window's head remembered: a dict per window for the encoder cost twice as much (a month of
    # hourly windows is 720)
    return Written(f"[{','.join(_window_head(w.start) + number_text(w.value) + '}' for w in windows)}]")


@functools.lru_cache(maxsize=1 << 14)
def _window_head(start: dt.datetime) -> str:
    return f'{{"window_size":"{rfc3339(start)}","value":'


def _run(request: HttpRequest, spec: AggregationSpec, payload: UsageWindowIn) -> UsageResult:
    start, end = _window(payload)
    query = usage_query_build(
        spec=spec,
        environment_id=request.environment.pk,
        start=start,
        end=end,
        customer_external_id=payload.external_customer_id or None,
        window_size=payload.window_size,
        timezone=payload.timezone,
        billing_anchor=payload.billing_anchor,
    )
    return run_usage_queries([query])[0]


@usage_events_router.post("/usage", response=UsageOut, summary="Ad-hoc usage: aggregate events without a meter")
def events_usage(request: HttpRequest, payload: UsageIn):
    spec = aggregation_spec_build(
        event_name=payload.event_name,
        aggregation_type=payload.aggregation_type,
        field=payload.property_name or "",
        multiplier=payload.multiplier,
        bucket_size=payload.bucket_size or "",
        group_by=payload.group_by or "",
        filters=payload.filters,
    )
    result = _run(request, spec, payload)
    return wire_response(_usage_body(event_name=spec.event_name, kind=spec.aggregation_type, result=result))


@usage_events_router.post(
    "/usage/meter", response=UsageOut, summary="Usage of a meter (its filters always apply; honours reset_usage)"
)
def events_usage_meter(request: HttpRequest, payload: MeterUsageIn):
    meter = meter_get(environment=request.environment, meter_id=payload.meter_id)
    result = _run(request, AggregationSpec.from_meter(meter), payload)
    body = _usage_body(event_name=meter.event_name, kind=meter.aggregation_type, result=result)
    body["meter_id"] = meter.public_id
    return wire_response(body)


class AnalyticsIn(Schema):
    """Flexprice's usage analytics request. Cost and commitment options are accepted and have no effect here."""

    external_customer_id: str | None = Field(None, description="one customer; default all customers together")
    feature_ids: list[str] | None = Field(None, description="default: every published metered feature")
    start_time: dt.datetime | None = Field(None, description="RFC 3339; default end_time − 7 days")
    end_time: dt.datetime | None = Field(None, description="RFC 3339; default now")
    window_size: str | None = Field(None, description="points per MINUTE … MONTH window; none: the total only")
    group_by: list[str] | None = Field(None, description="`properties.<key>` (split by that property), `feature_id`")
    property_filters: dict[str, list[str]] | None = Field(None, description="property key → accepted values")
    expand: list[str] | None = Field(None, description="`feature`, `meter` embed those objects")
    sources: list[str] | None = Field(None, description="not supported: must be absent or empty")
    breakdown_bucket: bool | None = None
    include_children: bool | None = None


class AnalyticsPointOut(Schema):
    timestamp: str = Field(description="start of the window, RFC 3339 UTC")
    usage: str | None = Field(description="exact decimal text")


class AnalyticsItemOut(Schema):
    feature_id: str
    name: str
    event_name: str
    meter_id: str
    aggregation_type: str
    external_customer_id: str | None
    properties: dict[str, str] = Field(description="the group's property values (absent: events without it)")
    total_usage: str | None = Field(description="exact decimal text")
    unit: str | None
    unit_plural: str | None
    window_size: str | None
    points: list[AnalyticsPointOut]
    feature: dict[str, Any] | None = None
    meter: dict[str, Any] | None = None


class AnalyticsOut(Schema):
    items: list[AnalyticsItemOut]


PROPERTY_GROUP_PREFIX = "properties."


def _analytics_group_keys(group_by: list[str] | None) -> list[str]:
    keys = []
    for index, item in enumerate(group_by or []):
        if item == "feature_id":
            continue  # every item is one feature's already
        key = item.removeprefix(PROPERTY_GROUP_PREFIX)
        if not item.startswith(PROPERTY_GROUP_PREFIX) or not key or text_problem(key):
            raise ValidationFailed(details={f"group_by[{index}]": "must be feature_id or properties.<key>"})
        if key not in keys:
            keys.append(key)
    return keys


@usage_events_router.post(
    "/analytics",
    response=AnalyticsOut,
    summary="Usage per feature, split by properties, with points per window (Flexprice's usage analytics)",
)
def events_analytics(request: HttpRequest, payload: AnalyticsIn):
    if payload.sources:
        raise ValidationFailed(details={"sources": "filtering by source is not supported"})
    keys = _analytics_group_keys(payload.group_by)
    try:
        property_filters = property_filters_clean(payload.property_filters)
    except ValueError as exc:
        raise ValidationFailed(details={"property_filters": str(exc)}) from None
    start, end = _window(payload)
    items = usage_analytics(
        environment=request.environment,
        start=start,
        end=end,
        external_customer_id=payload.external_customer_id or None,
        feature_ids=payload.feature_ids or (),
        group_by=keys,
        property_filters=property_filters,
        window_size=payload.window_size,
    )
    expand = {item.strip().lower() for item in payload.expand or []}
    window_size = (payload.window_size or "").strip().upper() or None
    return wire_response({"items": [_analytics_item(request, item, payload, expand, window_size) for item in items]})


def _decimal_or_none(value: Decimal | None) -> str | None:
    """Usage as exact decimal text, as Flexprice's analytics and summary answers carry it; null for no value."""
    return None if value is None else decimal_text(value)


def _analytics_item(request: HttpRequest, item: AnalyticsItem, payload: AnalyticsIn, expand: set, window_size) -> dict:
    feature, meter = item.feature, item.feature.meter
    body = {
        "feature_id": feature.public_id,
        "name": feature.name,
        "event_name": meter.event_name,
        "meter_id": meter.public_id,
        "aggregation_type": meter.aggregation_type,
        "external_customer_id": payload.external_customer_id or None,
        "properties": {key: value for key, value in item.group.items() if value is not None},
        "total_usage": _decimal_or_none(item.total),
        "unit": feature.unit_singular or None,
        "unit_plural": feature.unit_plural or None,
        "window_size": window_size,
        "points": [{"timestamp": window.start, "usage": _decimal_or_none(window.value)} for window in item.windows],
    }
    if "feature" in expand:
        body["feature"] = feature_to_wire(feature, environment=request.environment)
    if "meter" in expand:
        body["meter"] = meter_to_wire(meter, environment=request.environment)
    return body


def _debug_body(event: dict, report: DebugReport) -> dict:
    event["customer_id"] = report.customer_lookup.customer_id
    return {"event": event, "status": report.status, "debug_tracker": report.to_dict()}


@usage_events_router.get("/lookup", response={200: DebugOut}, summary="A stored event and why it counts (or not)")
def events_lookup(request: HttpRequest, query: Query[LookupQuery]):
    event = event_lookup(
        environment=request.environment,
        event_id=query.id,
        external_customer_id=query.external_customer_id or None,
        start=query.start_time,
        end=query.end_time,
    )
    if event is None:
        raise NotFound(f"Event {query.id!r} not found", details={"id": "no such event in this environment"})
    report = event_debug_report(environment=request.environment, event=event)
    event_dict = event_to_dict(event, None, environment_id=request.environment.public_id)
    return wire_response(_debug_body(event_dict, report))


@usage_events_router.post("/validate", response={200: DebugOut}, summary="Dry run: explain an event without storing it")
def events_validate(request: HttpRequest):
    candidate = event_clean(request_json(request))
    report = event_debug_report(environment=request.environment, event=candidate)
    event_dict = {
        "id": candidate.event_id,
        "event_name": candidate.event_name,
        "external_customer_id": candidate.external_customer_id,
        "customer_id": None,
        "timestamp": candidate.timestamp,
        "ingested_at": None,
        "source": candidate.source,
        "properties": candidate.properties,
        "environment_id": request.environment.public_id,
    }
    return wire_response(_debug_body(event_dict, report))


class UsageSummaryQuery(Schema):
    customer_id: str | None = Field(None, description="the customer's id (cust_…)")
    customer_lookup_key: str | None = Field(None, description="or its external id")
    feature_ids: list[str] | None = Field(None, description="comma-separated or repeated; default: all")
    feature_lookup_keys: list[str] | None = Field(None, description="comma-separated or repeated")
    subscription_ids: list[str] | None = Field(None, description="accepted for Flexprice clients; not used")


class FeatureUsageSummaryOut(Schema):
    feature: dict[str, Any]
    current_usage: str | None = Field(description="exact decimal text, as Flexprice sends it")
    unit: str
    next_usage_reset_at: str | None


class SummaryPeriodOut(PeriodOut):
    period: str = Field(description="the customer's billing period (MONTHLY, …)")


class CustomerUsageSummaryOut(Schema):
    customer_id: str
    period: SummaryPeriodOut
    features: list[FeatureUsageSummaryOut]


def _listed(values: list[str] | None) -> list[str]:
    """Values of a list parameter sent repeated and/or comma-separated (Flexprice's SDK sends `a,b`)."""
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


@usage_customers_router.get(
    "/usage",
    response=CustomerUsageSummaryOut,
    summary="Current billing period usage of a customer (by id or lookup key), optionally of some features only",
)
def customer_usage_summary(request: HttpRequest, query: Query[UsageSummaryQuery]):
    if bool(query.customer_id) == bool(query.customer_lookup_key):
        raise ValidationFailed(details={"customer_id": "give customer_id or customer_lookup_key, not both or neither"})
    if query.customer_id:
        customer = customer_get(environment=request.environment, customer_id=query.customer_id)
    else:
        customer = customer_get_by_external_id(environment=request.environment, external_id=query.customer_lookup_key)
    usage = customer_current_usage(
        customer=customer, feature_ids=_listed(query.feature_ids), lookup_keys=_listed(query.feature_lookup_keys)
    )
    body = {
        "customer_id": customer.public_id,
        "period": {"start_time": usage.period_start, "end_time": usage.period_end, "period": customer.billing_period},
        "features": [
            {
                "feature": feature_to_wire(row.feature, environment=request.environment),
                "current_usage": _decimal_or_none(row.value),
                "unit": row.unit,
                "next_usage_reset_at": row.next_usage_reset_at,
            }
            for row in usage.features
        ],
    }
    return wire_response(body)


@usage_customers_router.get(
    "/{customer_id}/usage", response=CustomerUsageOut, summary="Current billing period usage of every metered feature"
)
def customer_usage(request: HttpRequest, customer_id: str):
    customer = customer_get(environment=request.environment, customer_id=customer_id)
    usage = customer_current_usage(customer=customer)
    body = {
        "customer_id": customer.public_id,
        "period": {"start_time": usage.period_start, "end_time": usage.period_end},
        "features": [
            {
                "feature": feature_to_wire(row.feature, environment=request.environment),
                "current_usage": row.value,
                "unit": row.unit,
                "next_usage_reset_at": row.next_usage_reset_at,
            }
            for row in usage.features
        ],
    }
    return wire_response(body)
