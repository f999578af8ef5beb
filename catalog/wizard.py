"""The Add Feature wizard (SPEC §8): a draft Feature (+ draft Meter) saved one step at a time.

Every step validates with the catalog rules (`catalog.rules`), the same functions the REST API uses, and saves
what it validated on the draft row, so a reload, the back button or a bookmark resumes where the user was.
Publishing runs every rule again on the whole draft (`catalog.services.feature_publish`). Abandoned drafts are
removed by `manage.py cleanup_drafts`.
"""

import datetime as dt
from dataclasses import dataclass

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from catalog import rules
from catalog.models import AggregationType, Feature, FeatureStatus, FeatureType, Meter, MeterStatus
from catalog.services import feature_publish
from flexmeter.errors import ValidationFailed
from flexmeter.models import Environment


@dataclass(frozen=True)
class Step:
    name: str
    label: str


BASICS = Step("basics", "Basics")
EVENT = Step("event", "Event name")
AGGREGATION = Step("aggregation", "Aggregation")
FIELD = Step("field", "Field")
RESET = Step("reset", "Usage reset")
UNITS = Step("units", "Units")
FILTERS = Step("filters", "Filters")
REVIEW = Step("review", "Review")

ALL_STEPS = (BASICS, EVENT, AGGREGATION, FIELD, RESET, UNITS, FILTERS, REVIEW)
STEPS_BY_NAME = {step.name: step for step in ALL_STEPS}

#: Rule error paths that belong to the field step, not the aggregation step.
QUANTITY_PATHS = frozenset({"aggregation.field", "aggregation.expression"})
#: Stands in for the property while the aggregation step validates everything but the property.
_PLACEHOLDER_FIELD = "__field_chosen_on_the_next_step__"


def steps_for(feature: Feature | None) -> list[Step]:
    """The steps this draft walks through: metering steps only for metered features, no field step for COUNT."""
    if feature is not None and feature.type != FeatureType.METERED:
        return [BASICS, REVIEW]
    steps = list(ALL_STEPS)
    meter = feature.meter if feature is not None else None
    if meter is not None and meter.aggregation_type == AggregationType.COUNT:
        steps.remove(FIELD)
    return steps


def step_after(feature: Feature, step: Step) -> Step:
    steps = steps_for(feature)
    names = [item.name for item in steps]
    if step.name not in names:
        return steps[0]
    return steps[min(names.index(step.name) + 1, len(steps) - 1)]


def step_before(feature: Feature | None, step: Step) -> Step | None:
    steps = steps_for(feature)
    names = [item.name for item in steps]
    if step.name not in names or names.index(step.name) == 0:
        return None
    return steps[names.index(step.name) - 1]


def furthest_step(feature: Feature) -> Step:
    """The furthest step this draft has reached (where "resume" goes); a step it no longer has maps to review."""
    names = [item.name for item in steps_for(feature)]
    if feature.wizard_step in names:
        return STEPS_BY_NAME[feature.wizard_step]
    return BASICS if not feature.wizard_step else REVIEW


def _reach(feature: Feature, step: Step) -> None:
    names = [item.name for item in steps_for(feature)]
    current = names.index(feature.wizard_step) if feature.wizard_step in names else -1
    if step.name in names and names.index(step.name) > current:
        feature.wizard_step = step.name


def draft_queryset(environment: Environment) -> QuerySet[Feature]:
    return Feature.objects.for_environment(environment).filter(status=FeatureStatus.DRAFT).select_related("meter")


def _basics_clean(*, environment: Environment, data: dict, exclude: Feature | None = None) -> dict:
    errors: dict[str, str] = {}
    basics: dict = {}
    try:
        basics = rules.feature_basics_clean(
            name=data.get("name"), type=data.get("type"), lookup_key=data.get("lookup_key"),
            description=data.get("description"),
        )  # fmt: skip
    except ValidationFailed as exc:
        errors.update(exc.details)
    try:
        value = rules.feature_value_clean(data.get("value"), type=basics.get("type") or data.get("type") or "")
    except ValidationFailed as exc:
        errors.update(exc.details)
        value = ""
    if basics.get("type") in {FeatureType.METERED, FeatureType.BOOLEAN}:
        value = ""
    if basics.get("lookup_key") and "lookup_key" not in errors:
        taken = (
            Feature.objects.for_environment(environment)
            .filter(lookup_key=basics["lookup_key"], status__in=[FeatureStatus.PUBLISHED, FeatureStatus.ARCHIVED])
            .exclude(pk=exclude.pk if exclude else None)
            .first()
        )
        if taken is not None:
            errors["lookup_key"] = (
                f"“{basics['lookup_key']}” is already used by feature {taken.name} ({taken.public_id})"
            )
    if errors:
        raise ValidationFailed(details=errors)
    return {**basics, "value": value}


def _sync_meter(feature: Feature) -> None:
    """A metered draft owns a draft meter named after it; other types have none."""
    if feature.type == FeatureType.METERED:
        if feature.meter is None:
            feature.meter = Meter.objects.create(
                environment=feature.environment,
                name=feature.name,
                event_name="",
                aggregation_type="",
                status=MeterStatus.DRAFT,
            )
        elif feature.meter.status == MeterStatus.DRAFT and feature.meter.name != feature.name:
            feature.meter.name = feature.name
            feature.meter.save(update_fields=["name", "updated_at"])
    elif feature.meter is not None:
        meter, feature.meter = feature.meter, None
        feature.save(update_fields=["meter", "updated_at"])
        if meter.status == MeterStatus.DRAFT:
            meter.delete()


@transaction.atomic
def draft_start(*, environment: Environment, data: dict) -> Feature:
    """Validate the basics and create the draft (and its draft meter for metered features)."""
    basics = _basics_clean(environment=environment, data=data)
    feature = Feature(environment=environment, status=FeatureStatus.DRAFT, **basics)
    _sync_meter(feature)
    _reach(feature, step_after(feature, BASICS))
    feature.save()
    return feature


@transaction.atomic
def draft_save_basics(*, feature: Feature, data: dict) -> Feature:
    basics = _basics_clean(environment=feature.environment, data=data, exclude=feature)
    for key, value in basics.items():
        setattr(feature, key, value)
    feature.save()
    _sync_meter(feature)
    _reach(feature, step_after(feature, BASICS))
    feature.save()
    return feature


def _save_meter(feature: Feature, step: Step, **changes) -> Feature:
    meter = feature.meter
    for key, value in changes.items():
        setattr(meter, key, value)
    meter.save()
    _reach(feature, step_after(feature, step))
    feature.save(update_fields=["wizard_step", "updated_at"])
    return feature


def draft_save_event(*, feature: Feature, event_name: str) -> Feature:
    return _save_meter(feature, EVENT, event_name=rules.event_name_clean(event_name))


def draft_save_aggregation(*, feature: Feature, data: dict) -> Feature:
    """Type, multiplier, bucket size and group-by. The property is asked on the next step, so its errors wait."""
    meter = feature.meter
    given = {
        "type": data.get("type"),
        "multiplier": data.get("multiplier"),
        "bucket_size": data.get("bucket_size"),
        "group_by": data.get("group_by"),
        "field": meter.aggregation_field,
        "expression": meter.aggregation_expression,
    }
    try:
        aggregation = rules.aggregation_clean(given)
    except ValidationFailed as exc:
        others = {path: message for path, message in exc.details.items() if path not in QUANTITY_PATHS}
        if others:
            raise ValidationFailed(details=others) from None
        aggregation = rules.aggregation_clean({**given, "field": _PLACEHOLDER_FIELD, "expression": ""})
        aggregation = {**aggregation, "field": "", "expression": ""}
    return _save_meter(
        feature,
        AGGREGATION,
        aggregation_type=aggregation["type"],
        aggregation_field=aggregation["field"],
        aggregation_expression=aggregation["expression"],
        multiplier=aggregation["multiplier"],
        bucket_size=aggregation["bucket_size"],
        group_by=aggregation["group_by"],
    )


def draft_save_field(*, feature: Feature, field: str, expression: str) -> Feature:
    meter = feature.meter
    aggregation = rules.aggregation_clean(
        {
            "type": meter.aggregation_type,
            "field": field,
            "expression": expression,
            "multiplier": meter.multiplier,
            "bucket_size": meter.bucket_size,
            "group_by": meter.group_by,
        }
    )
    return _save_meter(
        feature, FIELD, aggregation_field=aggregation["field"], aggregation_expression=aggregation["expression"]
    )


def draft_save_reset(*, feature: Feature, reset_usage: str) -> Feature:
    return _save_meter(feature, RESET, reset_usage=rules.reset_usage_clean(reset_usage))


def draft_save_units(*, feature: Feature, singular: str, plural: str) -> Feature:
    feature.unit_singular, feature.unit_plural = rules.units_clean(singular=singular, plural=plural)
    _reach(feature, step_after(feature, UNITS))
    feature.save()
    return feature


def draft_save_filters(*, feature: Feature, filters: list[dict]) -> Feature:
    return _save_meter(feature, FILTERS, filters=rules.filters_clean(filters))


def draft_publish(*, feature: Feature) -> Feature:
    """Run every rule on the whole draft and publish it with its meter (raises ValidationFailed/AlreadyExists)."""
    return feature_publish(feature=feature)


@transaction.atomic
def draft_discard(*, feature: Feature) -> None:
    """Delete a draft and its draft meter. Published features are never touched."""
    if feature.status != FeatureStatus.DRAFT:
        return
    meter = feature.meter
    feature.delete()
    if meter is not None and meter.status == MeterStatus.DRAFT and not meter.features.exists():
        meter.delete()


def step_for_error_path(path: str) -> Step:
    """Which step fixes a publish error: `meter.aggregation.field` → field, `unit_plural` → units…"""
    path = path.removeprefix("meter.")
    if path.startswith("aggregation.field") or path.startswith("aggregation.expression"):
        return FIELD
    if path.startswith("aggregation"):
        return AGGREGATION
    if path.startswith("filters"):
        return FILTERS
    if path.startswith("unit_"):
        return UNITS
    prefixes = {"event_name": EVENT, "reset_usage": RESET, "existing_meter_id": FILTERS}
    for prefix, step in prefixes.items():
        if path.startswith(prefix):
            return step
    return BASICS


def event_name_notice(*, environment: Environment, event_name: str, exclude: Feature | None = None) -> dict:
    """What the event step tells the user about an event name while they type.

    `same`: live features whose meter counts this exact event name (sharing is allowed, SPEC §2.1);
    `similar`: `[{"event_name", "features"}]` for names that differ only by case, separators or whitespace (a
    likely typo; `rules.similar_names`, the debugger's near-miss rule);
    `warnings`: upper case or whitespace in the name, which rarely matches what applications send.
    """
    name = event_name.strip()
    warnings = []
    if any(char.isspace() for char in name):
        warnings.append("contains spaces; event names are usually lowercase.with.dots")
    if name != name.lower():
        warnings.append(f"has upper case letters; matching is case-sensitive, so “{name.lower()}” would not count")
    if not name:
        return {"same": [], "similar": [], "warnings": warnings, "event_name": name}
    live = Feature.objects.for_environment(environment).filter(
        status__in=[FeatureStatus.PUBLISHED, FeatureStatus.ARCHIVED], meter__isnull=False
    )
    if exclude is not None:
        live = live.exclude(pk=exclude.pk)
    event_names = set(live.values_list("meter__event_name", flat=True).distinct())
    similar_names = rules.similar_names(name, event_names)
    features = list(
        live.filter(meter__event_name__in=[name, *similar_names]).select_related("meter").order_by("name")[:20]
    )
    similar = {
        similar_name: [f for f in features if f.meter.event_name == similar_name] for similar_name in similar_names
    }
    return {
        "same": [feature for feature in features if feature.meter.event_name == name],
        "similar": [{"event_name": key, "features": value} for key, value in similar.items() if value],
        "warnings": warnings,
        "event_name": name,
    }


RECENT_EVENTS_SAMPLED = 50


def recent_property_keys(*, environment: Environment, event_name: str) -> list[str]:
    """Top-level property keys of the latest events with this name, so the field step can offer what is really sent.

    Reads at most RECENT_EVENTS_SAMPLED rows through the (environment, event_name, …) index.
    """
    from metering.models import Event

    if not event_name:
        return []
    recent = (
        Event.objects.for_environment(environment)
        .filter(event_name=event_name)
        .order_by("-timestamp", "-id")
        .values_list("properties", flat=True)[:RECENT_EVENTS_SAMPLED]
    )
    keys: dict[str, None] = {}
    for properties in recent:
        if isinstance(properties, dict):
            keys.update(dict.fromkeys(properties))
    return sorted(keys)


def drafts_cleanup(*, older_than: dt.timedelta, dry_run: bool = False, batch_size: int = 500) -> int:
    """Delete drafts (and their draft meters) untouched for longer than `older_than`; returns how many."""
    cutoff = timezone.now() - older_than
    stale = Feature.objects.filter(status=FeatureStatus.DRAFT, updated_at__lt=cutoff).order_by("pk")
    if dry_run:
        return stale.count()
    removed = 0
    while True:
        batch = list(stale.values_list("pk", "meter_id")[:batch_size])
        if not batch:
            return removed
        with transaction.atomic():
            Feature.objects.filter(pk__in=[pk for pk, _ in batch]).delete()
            meter_ids = [meter_id for _, meter_id in batch if meter_id is not None]
            Meter.objects.filter(pk__in=meter_ids, status=MeterStatus.DRAFT, features__isnull=True).delete()
        removed += len(batch)
