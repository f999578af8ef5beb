"""Rows stored before the rule for what can be stored (flexmeter/limits.py) that break it, and meters whose CEL
expression no longer compiles under it. `manage.py check_events` reports them and says what to do.

Readers already cope with such rows (they show them as such, and CEL excludes their values), but their numbers cannot
be totalled on every backend, and a future ClickHouse backend would refuse them: they should be re-sent within the
rule (a redelivery with the same `event_id` replaces the row) or deleted.
"""

from collections.abc import Iterator
from dataclasses import dataclass

from catalog.expressions import ExpressionError, compile_expression
from catalog.models import Meter, MeterStatus
from flexmeter.limits import json_value_problems
from flexmeter.models import Environment
from metering.exactjson import UnreadableJSON
from metering.models import Event


@dataclass(frozen=True, slots=True)
class StoredEventProblem:
    """One stored event that breaks the rule: where, and why (`{json path: message}`)."""

    environment: str
    event_id: str
    problems: dict[str, str]


@dataclass(frozen=True, slots=True)
class StoredMeterProblem:
    environment: str
    meter_id: str
    name: str
    problem: str


def stored_events_breaking_the_rule(
    *, environment: Environment | None = None, batch_size: int = 2000
) -> Iterator[StoredEventProblem]:
    """Every stored event whose properties break the rule, oldest first (one pass, `batch_size` rows at a time)."""
    events = Event.objects.all() if environment is None else Event.objects.for_environment(environment)
    rows = events.order_by("id").values_list("environment__slug", "event_id", "properties")
    for slug, event_id, properties in rows.iterator(chunk_size=batch_size):
        if isinstance(properties, UnreadableJSON):
            problems = {"properties": f"cannot be read: {properties.reason}"}
        elif isinstance(properties, dict):
            problems = json_value_problems(properties, path="properties")
        else:
            problems = {"properties": "is not a JSON object"}
        if problems:
            yield StoredEventProblem(environment=slug, event_id=event_id, problems=problems)


def stored_meters_breaking_the_rule(*, environment: Environment | None = None) -> list[StoredMeterProblem]:
    """Meters that are not archived and whose CEL expression no longer compiles (out-of-range constants, results
    that could exceed the bound): they count nothing until archived and replaced."""
    meters = Meter.objects.exclude(status=MeterStatus.ARCHIVED).exclude(aggregation_expression="")
    if environment is not None:
        meters = meters.filter(environment=environment)
    found = []
    for meter in meters.select_related("environment").order_by("id"):
        try:
            compile_expression(meter.aggregation_expression)
        except ExpressionError as exc:
            found.append(
                StoredMeterProblem(
                    environment=meter.environment.slug, meter_id=meter.public_id, name=meter.name, problem=exc.message
                )
            )
    return found
