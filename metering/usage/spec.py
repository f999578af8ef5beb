"""What to measure and for whom: `AggregationSpec` (a meter's definition or an ad-hoc aggregation, validated by
`aggregation_spec_build`), `UsageQuery` (customer and time range) and the `UsageResult` the engine answers."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import NamedTuple
from zoneinfo import ZoneInfo

from catalog.expressions import CompiledExpression, ExpressionError, compile_expression
from catalog.models import AggregationType, BucketSize, ResetUsage
from flexmeter import errors
from flexmeter.errors import ValidationFailed
from metering.usage.periods import MonthAnchor

FILTER_OPERATORS = ("in", "not_in", "contains", "not_contains")
VALUE_TYPES = frozenset(AggregationType.values) - {AggregationType.COUNT}
EXPRESSION_TYPES = frozenset({"SUM", "AVG", "MIN", "MAX", "LATEST"})
BUCKET_TYPES = frozenset({"SUM", "MAX"})
NULL_WHEN_EMPTY = frozenset({"AVG", "MIN", "MAX", "LATEST"})


@dataclass(frozen=True)
class Filter:
    key: str
    operator: str
    values: tuple[str, ...]


class MeterNotComputable(errors.InvalidOperation, ValueError):
    """A meter stored before a rule it now breaks (an expression constant beyond flexmeter/limits.py): a 400 that says
    what to do instead of a 500. A ValueError too, so code that skips uncompilable meters keeps skipping it."""


@dataclass(frozen=True)
class AggregationSpec:
    """What to measure: event name, filters and aggregation — a meter's definition or an ad-hoc one."""

    event_name: str
    aggregation_type: str
    field: str = ""
    expression: CompiledExpression | None = None
    multiplier: Decimal | None = None
    bucket_size: str = ""
    group_by: str = ""
    filters: tuple[Filter, ...] = ()
    reset_usage: str = ResetUsage.BILLING_PERIOD

    @classmethod
    def from_meter(cls, meter) -> AggregationSpec:
        try:
            expression = compile_expression(meter.aggregation_expression) if meter.aggregation_expression else None
        except ExpressionError as exc:
            raise MeterNotComputable(
                f"Meter {meter.public_id} cannot be computed: its expression no longer compiles ({exc.message}). "
                "Archive it and create a new one.",
                details={"meter_id": "its expression no longer compiles"},
            ) from exc
        multiplier = Decimal(meter.multiplier) if meter.multiplier else None
        filters = tuple(
            Filter(key=f["key"], operator=f.get("operator") or "in", values=tuple(str(v) for v in f["values"]))
            for f in (meter.filters or [])
        )
        return cls(
            event_name=meter.event_name,
            aggregation_type=meter.aggregation_type,
            field=meter.aggregation_field or "",
            expression=expression,
            multiplier=multiplier,
            bucket_size=meter.bucket_size or "",
            group_by=meter.group_by or "",
            filters=filters,
            reset_usage=meter.reset_usage or ResetUsage.BILLING_PERIOD,
        )

    @property
    def is_cumulative(self) -> bool:
        return self.reset_usage == ResetUsage.NEVER

    @property
    def is_bucketed_max(self) -> bool:
        return self.aggregation_type == AggregationType.MAX and bool(self.bucket_size)


def aggregation_spec_build(
    *,
    event_name: str,
    aggregation_type: str,
    field: str = "",
    expression: str = "",
    multiplier=None,
    bucket_size: str = "",
    group_by: str = "",
    filters: dict[str, list[str]] | list[dict] | None = None,
    reset_usage: str = ResetUsage.BILLING_PERIOD,
) -> AggregationSpec:
    """Validate an ad-hoc aggregation (SPEC §2.1 rules) into a spec; ValidationFailed names every bad field."""
    errors: dict[str, str] = {}
    kind = (aggregation_type or "").strip().upper()
    if not (event_name or "").strip():
        errors["event_name"] = "event_name is required"
    if kind not in AggregationType.values:
        errors["aggregation_type"] = f"Unknown aggregation type; use one of {', '.join(AggregationType.values)}"
    compiled = None
    if expression:
        if kind and kind not in EXPRESSION_TYPES:
            errors["expression"] = "An expression is allowed only for SUM, AVG, MIN, MAX and LATEST"
        elif field:
            errors["expression"] = "Give either a field or an expression, not both"
        else:
            try:
                compiled = compile_expression(expression)
            except ExpressionError as exc:
                errors["expression"] = exc.message
    elif kind in VALUE_TYPES and not field:
        errors["property_name"] = f"property_name is required for {kind}"
    parsed_multiplier = None
    if kind == AggregationType.SUM_WITH_MULTIPLIER:
        try:
            parsed_multiplier = Decimal(str(multiplier).strip()) if multiplier not in (None, "") else None
        except InvalidOperation:
            parsed_multiplier = None
        if parsed_multiplier is None or not parsed_multiplier.is_finite() or parsed_multiplier <= 0:
            errors["multiplier"] = "multiplier must be a decimal number greater than 0"
    elif multiplier not in (None, ""):
        errors["multiplier"] = "multiplier is allowed only for SUM_WITH_MULTIPLIER"
    size = (bucket_size or "").strip().upper()
    if size:
        if size not in BucketSize.values:
            errors["bucket_size"] = f"Unknown bucket size; use one of {', '.join(BucketSize.values)}"
        elif kind not in BUCKET_TYPES:
            errors["bucket_size"] = "bucket_size is allowed only for SUM and MAX"
    if group_by and not (kind == AggregationType.MAX and size):
        errors["group_by"] = "group_by is allowed only for MAX with a bucket_size"
    parsed_filters = _parse_filters(filters, errors)
    if errors:
        raise ValidationFailed(details=errors)
    return AggregationSpec(
        event_name=event_name.strip(),
        aggregation_type=kind,
        field="" if kind == AggregationType.COUNT else field,
        expression=compiled,
        multiplier=parsed_multiplier,
        bucket_size=size,
        group_by=group_by or "",
        filters=parsed_filters,
        reset_usage=reset_usage,
    )


def _parse_filters(filters, errors: dict[str, str]) -> tuple[Filter, ...]:
    if not filters:
        return ()
    items = (
        [{"key": key, "values": values, "operator": "in"} for key, values in filters.items()]
        if isinstance(filters, dict)
        else filters
    )
    parsed = []
    for index, item in enumerate(items):
        path = f"filters.{item.get('key')}" if isinstance(filters, dict) else f"filters[{index}]"
        values = item.get("values")
        operator = item.get("operator") or "in"
        if not item.get("key"):
            errors[path] = "filter key must not be empty"
        elif not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            errors[path] = "filter values must be a non-empty list of strings"
        elif operator not in FILTER_OPERATORS:
            errors[path] = f"filter operator must be one of {', '.join(FILTER_OPERATORS)}"
        else:
            parsed.append(Filter(key=item["key"], operator=operator, values=tuple(values)))
    return tuple(parsed)


@dataclass(frozen=True)
class UsageQuery:
    """For whom and when: one customer (or everyone, or everyone grouped by customer) over `[start, end)`."""

    spec: AggregationSpec
    environment_id: int
    start: dt.datetime
    end: dt.datetime
    customer: str | None = None
    by_customer: bool = False
    window_size: str = ""
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    anchor: MonthAnchor | None = None

    @property
    def windows(self) -> str:
        """Size of the reported windows: the asked window_size, else the spec's buckets for SUM/MAX."""
        if self.window_size:
            return self.window_size
        return self.spec.bucket_size if self.spec.aggregation_type in BUCKET_TYPES else ""


class UsageWindow(NamedTuple):
    start: dt.datetime
    value: Decimal | None


@dataclass
class UsageResult:
    value: Decimal | None
    windows: list[UsageWindow] = field(default_factory=list)
