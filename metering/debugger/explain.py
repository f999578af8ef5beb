"""The event debugger (SPEC §7): why an event counts, or why it does not.

`event_debug_report` explains a stored event or a candidate event that was never stored (the "test an event"
box and POST /v1/events/validate). Every yes/no and every quantity comes from the SQL the totals use
(`metering.usage.predicate.match_columns`, the pieces of the engine's WHERE) evaluated on that one event, so
the debugger cannot disagree with usage. Python only words the explanation: which filter failed, what kind of
value a property holds. Pure domain code: plain dataclasses out, no HTTP.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from decimal import Decimal

from django.db import connection

from catalog.expressions import ExpressionError, compile_expression
from catalog.models import AggregationType, Feature, Meter
from catalog.rules import name_likeness_key
from flexmeter.limits import NUMBER_RULE
from metering.clickhouse import reads as clickhouse_reads
from metering.clickhouse.config import events_backend
from metering.ingest.validation import EventInput
from metering.models import Customer, Event
from metering.usage.dialects import dialect_for
from metering.usage.dialects.base import Params
from metering.usage.dialects.clickhouse import ClickHouseDialect
from metering.usage.numbers import EXACT, canonical_text, cel_input, normalize, numeric_value, value_kind
from metering.usage.predicate import match_columns
from metering.usage.spec import AggregationSpec, Filter

STATUS_PROCESSED = "processed"
STATUS_UNMATCHED = "unmatched"
STATUS_CUSTOMER_NOT_FOUND = "customer_not_found"
#: Not a §7 status of the API: how the dashboard shows an `unmatched` event that a meter's filter left out on
#: purpose (`DebugReport.cause == CAUSE_FILTERED_OUT`), so it is not mistaken for a broken one.
STATUS_FILTERED_OUT = "filtered_out"

# Why nothing counted an `unmatched` event (`DebugReport.cause`):
CAUSE_NO_METER = "no_meter"  # no published meter counts its event name
CAUSE_FILTERED_OUT = "filtered_out"  # every meter of its name rejected it by a filter: excluded on purpose
CAUSE_NO_VALUE = "no_value"  # a meter's filters let it through, but it has no usable value: broken

_MISSING = object()


@dataclass
class CustomerLookup:
    found: bool
    external_customer_id: str
    customer_id: str | None = None


@dataclass
class MeterMatch:
    """One published meter with the event's name: matched with its quantity, or not matched with the first reason.

    `quantity` is what the event adds to the meter's usage: 1 for COUNT and COUNT_UNIQUE, the value (or CEL
    result) for the other types, value × multiplier for SUM_WITH_MULTIPLIER. `value` is the raw value.
    """

    meter_id: str
    meter_name: str
    event_name: str
    aggregation_type: str
    matched: bool
    quantity: Decimal | None = None
    value: Decimal | str | None = None
    reason_code: str | None = None
    reason: str | None = None
    filter: dict | None = None


@dataclass
class NearMiss:
    kind: str  # "event_name" or "property_key"
    meter_id: str
    meter_name: str
    expected: str
    actual: str
    message: str


@dataclass
class FedFeature:
    feature_id: str
    name: str
    lookup_key: str
    meter_id: str


@dataclass
class DebugReport:
    """The §7 report. `status` is the API's three-valued status; `cause` says why an `unmatched` event counted
    nowhere (CAUSE_*; None when something matched), and `shown_status` is the dashboard's status, which tells an
    event filtered out on purpose from a broken one."""

    status: str
    customer_lookup: CustomerLookup
    meters: list[MeterMatch] = field(default_factory=list)
    near_misses: list[NearMiss] = field(default_factory=list)
    features: list[FedFeature] = field(default_factory=list)
    cause: str | None = None

    @property
    def shown_status(self) -> str:
        return STATUS_FILTERED_OUT if self.cause == CAUSE_FILTERED_OUT else self.status

    def to_dict(self) -> dict:
        return asdict(self)


def unmatched_cause(matches: list[MeterMatch]) -> str:
    """Why no meter counted the event, from its per-meter results. Meters whose definition cannot be evaluated
    count nothing and are left out, as the stream leaves them out."""
    evaluated = [match for match in matches if match.reason_code != "meter_invalid"]
    if not evaluated:
        return CAUSE_NO_METER
    if all(match.reason_code == "filter_failed" for match in evaluated):
        return CAUSE_FILTERED_OUT
    return CAUSE_NO_VALUE


def event_debug_report(*, environment, event: Event | EventInput) -> DebugReport:
    """Explain `event` (stored `Event`, or a validated `EventInput` that is not stored) against this environment."""
    properties = event.properties if isinstance(event.properties, dict) else {}
    meters = list(Meter.objects.for_environment(environment).published().order_by("created_at", "id"))
    candidates = [meter for meter in meters if meter.event_name == event.event_name]

    customer = (
        Customer.objects.for_environment(environment).active().filter(external_id=event.external_customer_id).first()
    )
    lookup = CustomerLookup(
        found=customer is not None,
        external_customer_id=event.external_customer_id,
        customer_id=customer.public_id if customer else None,
    )
    matches = _evaluate(candidates, event, properties)
    matched_ids = {match.meter_id for match in matches if match.matched}
    if matched_ids:
        status = STATUS_PROCESSED if customer is not None else STATUS_CUSTOMER_NOT_FOUND
    else:
        status = STATUS_UNMATCHED
    report = DebugReport(status=status, customer_lookup=lookup, meters=matches)
    if not matched_ids:
        report.cause = unmatched_cause(matches)
    if matched_ids:
        features = (
            Feature.objects.for_environment(environment)
            .visible()
            .filter(meter__public_id__in=matched_ids)
            .select_related("meter")
            .order_by("name", "id")
        )
        report.features = [
            FedFeature(feature_id=f.public_id, name=f.name, lookup_key=f.lookup_key, meter_id=f.meter.public_id)
            for f in features
        ]
    else:
        report.near_misses = _near_misses(meters, event.event_name, properties)
    return report


def _evaluate(meters: list[Meter], event, properties: dict) -> list[MeterMatch]:
    """Evaluate every candidate meter's filters and quantity on this one event, in one SQL statement."""
    if not meters:
        return []
    backend = events_backend()
    d = ClickHouseDialect(backend.database) if backend.is_clickhouse else dialect_for(connection)
    p = Params()
    columns: list[str] = ["1"]  # the row exists: a stored event may have been deleted meanwhile
    plans = []
    for meter in meters:
        try:
            spec = AggregationSpec.from_meter(meter)
        except (ExpressionError, ArithmeticError, ValueError):
            plans.append((meter, None, [], None))
            continue
        pieces = match_columns(spec, d, p)
        filter_columns = list(range(len(columns), len(columns) + len(pieces.filters)))
        columns.extend(pieces.filters)
        value_column = None
        if pieces.value is not None:
            value_column = len(columns)
            columns.append(pieces.value)
        plans.append((meter, spec, filter_columns, value_column))
    if isinstance(event, Event) and backend.is_clickhouse:
        key = (event.external_customer_id, event.event_name, event.timestamp)
        where = clickhouse_reads.key_conditions(
            d, p, environment_id=event.environment_id, event_id=event.event_id, key=key
        )
        source = f"{d.events_source('')} WHERE {' AND '.join(where)}"
    elif isinstance(event, Event) and event.pk:
        source = f"{Event._meta.db_table} e WHERE e.id = {p(event.pk)}"
    else:
        json_text = getattr(event, "properties_json", None) or "{}"
        source = f"(SELECT {d.candidate_columns(p, json_text)}) e"
    statement = f"SELECT {', '.join(columns)} FROM {source}"
    if backend.is_clickhouse:
        rows = clickhouse_reads.query_rows(backend, statement, p)
        row = rows[0] if rows else ()
    else:
        with connection.cursor() as cursor:
            cursor.execute(statement, p.values)
            row = cursor.fetchone() or ()
    return [
        _explain(meter, spec, filter_columns, value_column, row, properties)
        for meter, spec, filter_columns, value_column in plans
    ]


def _explain(meter: Meter, spec, filter_columns, value_column, row, properties) -> MeterMatch:
    match = MeterMatch(
        meter_id=meter.public_id,
        meter_name=meter.name,
        event_name=meter.event_name,
        aggregation_type=meter.aggregation_type,
        matched=False,
    )
    if spec is None:
        match.reason_code, match.reason = "meter_invalid", "Not counted: this meter’s definition cannot be evaluated."
        return match
    if not row:
        match.reason_code, match.reason = "event_missing", "Not counted: the event is no longer stored."
        return match
    for filter_, column in zip(spec.filters, filter_columns, strict=True):
        if not row[column]:
            match.reason_code = "filter_failed"
            match.reason, match.filter = _filter_reason(filter_, properties)
            return match
    kind = spec.aggregation_type
    if kind == AggregationType.COUNT:
        match.matched, match.quantity, match.value = True, Decimal(1), Decimal(1)
        return match
    raw = row[value_column]
    if raw is None:
        match.reason_code, match.reason = _value_reason(spec, properties)
        return match
    match.matched = True
    if kind == AggregationType.COUNT_UNIQUE:
        match.quantity, match.value = Decimal(1), raw
        return match
    value = normalize(Decimal(str(raw)))
    match.value = value
    match.quantity = normalize(EXACT.multiply(value, spec.multiplier)) if spec.multiplier is not None else value
    return match


def quoted_list(values, *, conjunction: str = "or") -> str:
    """`“a”`, `“a” or “b”`, `“a”, “b” or “c”`: values as a person writes them in a sentence."""
    quoted = [f"“{value}”" for value in values]
    if len(quoted) <= 1:
        return "".join(quoted)
    return f"{', '.join(quoted[:-1])} {conjunction} {quoted[-1]}"


_FILTER_WORDS = {
    "in": "counts only events whose {key} is {values}",
    "not_in": "leaves out events whose {key} is {values}",
    "contains": "counts only events whose {key} contains {values}",
    "not_contains": "leaves out events whose {key} contains {values}",
}


def _filter_reason(filter_: Filter, properties: dict) -> tuple[str, dict]:
    value = properties.get(filter_.key, _MISSING)
    actual = None if value is _MISSING else canonical_text(value)
    rule = _FILTER_WORDS[filter_.operator].format(key=f"“{filter_.key}”", values=quoted_list(filter_.values))
    if value is _MISSING:
        got = f"this event has no “{filter_.key}” property"
    elif actual is None:
        got = f"this event’s “{filter_.key}” is {value_kind(value)}, which has no text to compare"
    else:
        got = f"this event’s “{filter_.key}” is “{actual}”"
    reason = f"Filtered out: this meter {rule}, and {got}."
    detail = {
        "key": filter_.key,
        "operator": filter_.operator,
        "expected": list(filter_.values),
        "actual": actual,
        "missing": value is _MISSING,
    }
    return reason, detail


def _value_reason(spec: AggregationSpec, properties: dict) -> tuple[str, str]:
    if spec.expression is not None:
        for name in sorted(spec.expression.properties):
            value = properties.get(name, _MISSING)
            if value is not _MISSING and numeric_value(value) is None:
                return "expression_error", (
                    f"Not counted: this meter’s expression reads “{name}” as a number, and this event’s “{name}” "
                    f"is {value_kind(value)}."
                )
            if value is not _MISSING and cel_input(value) is None:
                return "expression_error", (
                    f"Not counted: this event’s “{name}” is out of range for the meter’s expression ({NUMBER_RULE})."
                )
        return "expression_error", (
            "Not counted: this meter’s expression gives no finite number for this event (a division by zero, the "
            "square root or logarithm of a value outside its domain, or an overflow)."
        )
    value = properties.get(spec.field, _MISSING)
    if spec.aggregation_type == AggregationType.COUNT_UNIQUE:
        needs = f"this meter counts the distinct values of “{spec.field}”"
    else:
        needs = f"this meter reads the number in “{spec.field}”"
    if value is _MISSING:
        return "field_missing", f"Not counted: {needs}, and this event has no “{spec.field}” property."
    if spec.aggregation_type == AggregationType.COUNT_UNIQUE:
        return "not_countable", (
            f"Not counted: {needs}, and this event’s “{spec.field}” is {value_kind(value)}, which has no text to count."
        )
    return "not_numeric", (
        f"Not counted: {needs}, and this event’s “{spec.field}” is {value_kind(value)}, not a number."
    )


def _near_misses(meters: list[Meter], event_name: str, properties: dict) -> list[NearMiss]:
    """Meters whose event name differs only by case/separators/whitespace; keys that differ only by case or
    separators from a field the meter reads."""
    misses: list[NearMiss] = []
    wanted = name_likeness_key(event_name)
    for meter in meters:
        if meter.event_name != event_name and name_likeness_key(meter.event_name) == wanted:
            misses.append(
                NearMiss(
                    kind="event_name",
                    meter_id=meter.public_id,
                    meter_name=meter.name,
                    expected=meter.event_name,
                    actual=event_name,
                    message=f"Meter “{meter.name}” counts “{meter.event_name}” events; this event is “{event_name}”.",
                )
            )
    keys = {name_likeness_key(key): key for key in properties}
    for meter in meters:
        if name_likeness_key(meter.event_name) != wanted:
            continue
        for wanted_key in _keys_read(meter):
            actual = keys.get(name_likeness_key(wanted_key))
            if wanted_key not in properties and actual is not None:
                misses.append(
                    NearMiss(
                        kind="property_key",
                        meter_id=meter.public_id,
                        meter_name=meter.name,
                        expected=wanted_key,
                        actual=actual,
                        message=f"Meter “{meter.name}” reads “{wanted_key}”; this event has “{actual}”.",
                    )
                )
    return misses


def _keys_read(meter: Meter) -> list[str]:
    keys = [meter.aggregation_field] if meter.aggregation_field else []
    if meter.aggregation_expression:
        with contextlib.suppress(ExpressionError):  # a broken expression reads nothing worth suggesting
            keys.extend(sorted(compile_expression(meter.aggregation_expression).properties))
    keys.extend(f.get("key", "") for f in (meter.filters or []) if f.get("key"))
    return list(dict.fromkeys(keys))
