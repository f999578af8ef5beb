"""The Add Feature wizard (SPEC §8): a draft Feature (+ draft Meter) saved one step at a time.

The wizard is a table of steps (`ALL_STEPS`): for each step its form, the form's initial data from the draft, the
service that validates and saves it (`catalog.services.draft_*`, with the same `catalog.rules` the REST API uses)
and what its template needs. Views only parse the request and render. Every step is saved on the draft row, so a
reload, the back button or a bookmark resumes where the user was. Publishing runs every rule again on the whole
draft (`catalog.services.feature_publish`). Abandoned drafts are removed by `manage.py cleanup_drafts`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.db import transaction
from django.db.models import QuerySet

from catalog import rules, services
from catalog.forms import (
    AGGREGATION_HELP,
    FEATURE_TYPE_HELP,
    RESET_HELP,
    FeatureAggregationForm,
    FeatureBasicsForm,
    FeatureEventForm,
    FeatureFieldForm,
    FeatureResetForm,
    FeatureUnitsForm,
)
from catalog.models import AggregationType, Feature, FeatureStatus, FeatureType
from flexmeter.models import Environment

#: Saves one step's cleaned form data on the draft (creating it on the first step) and returns the draft.
StepSave = Callable[[Environment, "Feature | None", dict], Feature]
#: What a step's template needs besides the shared wizard context, from the draft and the bound form.
StepContext = Callable[[Environment, "Feature | None", "forms.Form | None"], dict]


def _nothing_initial(feature: Feature | None) -> dict:
    return {}


def _nothing_more(environment: Environment, feature: Feature | None, form: forms.Form | None) -> dict:
    return {}


@dataclass(frozen=True, eq=False)
class Step:
    """One step of the wizard. `form` is None for the filters (a formset of rows) and review steps."""

    name: str
    label: str
    form: type[forms.Form] | None = None
    initial: Callable[[Feature | None], dict] = _nothing_initial
    save: StepSave | None = None
    context: StepContext = _nothing_more


def choice_cards(options: dict, selected: str) -> list[dict]:
    """Radio choices shown as cards: `{value: (title, description, example?)}` → one dict per card."""
    cards = []
    for value, texts in options.items():
        title, description, *example = texts
        cards.append({"value": value, "title": title, "description": description,
                      "example": example[0] if example else "", "checked": value == selected})  # fmt: skip
    return cards


def _bound(form: forms.Form | None, name: str) -> str:
    return (form[name].value() or "") if form is not None else ""


# --- basics -----------------------------------------------------------------------------------------------------


def _basics_initial(feature: Feature | None) -> dict:
    if feature is None:
        return {"type": FeatureType.METERED}
    return {"name": feature.name, "type": feature.type, "lookup_key": feature.lookup_key,
            "description": feature.description, "value": feature.value}  # fmt: skip


def _basics_save(environment: Environment, feature: Feature | None, data: dict) -> Feature:
    if feature is None:
        return services.draft_start(environment=environment, data=data)
    return services.draft_save_basics(feature=feature, data=data)


def _basics_context(environment: Environment, feature: Feature | None, form: forms.Form | None) -> dict:
    notice = basics_notice(
        environment=environment, name=_bound(form, "name"), lookup_key=_bound(form, "lookup_key"), exclude=feature
    )
    return {"type_cards": choice_cards(FEATURE_TYPE_HELP, _bound(form, "type")), **notice}


def basics_notice(*, environment: Environment, name: str, lookup_key: str = "", exclude: Feature | None = None) -> dict:
    """What the basics step says while the user types, before Continue: the lookup key the feature will get (typed,
    or derived from the name by the rule), the feature that already uses it (`taken_by`, the same check as saving),
    and other features whose names differ only by case, separators or spaces ("LLM Tokens" / "LLM tokens").

    Drafts reserve nothing (only published and archived features hold a key), so they are neither clashes nor
    near duplicates.
    """
    typed = lookup_key.strip()
    key = typed or rules.lookup_key_from_name(name.strip())
    held = Feature.objects.for_environment(environment).filter(
        status__in=[FeatureStatus.PUBLISHED, FeatureStatus.ARCHIVED]
    )
    if exclude is not None:
        held = held.exclude(pk=exclude.pk)
    taken_by = held.filter(lookup_key=key).first() if key else None
    similar = []
    if name.strip():
        wanted = rules.name_likeness_key(name)
        similar = [
            feature
            for feature in held.only("public_id", "name", "lookup_key", "status").order_by("name")
            if rules.name_likeness_key(feature.name) == wanted
        ][:5]
    return {"derived_key": key, "key_typed": bool(typed), "taken_by": taken_by, "similar_features": similar}


# --- event name -------------------------------------------------------------------------------------------------


def _event_initial(feature: Feature | None) -> dict:
    return {"event_name": feature.meter.event_name}


def _event_save(environment: Environment, feature: Feature | None, data: dict) -> Feature:
    return services.draft_save_event(feature=feature, event_name=data["event_name"])


def _event_context(environment: Environment, feature: Feature | None, form: forms.Form | None) -> dict:
    notice = event_name_notice(environment=environment, event_name=_bound(form, "event_name"), exclude=feature)
    return {"notice": notice}


# --- aggregation ------------------------------------------------------------------------------------------------


def _aggregation_initial(feature: Feature | None) -> dict:
    meter = feature.meter
    return {"type": meter.aggregation_type, "multiplier": meter.multiplier, "bucket_size": meter.bucket_size,
            "group_by": meter.group_by}  # fmt: skip


def _aggregation_save(environment: Environment, feature: Feature | None, data: dict) -> Feature:
    return services.draft_save_aggregation(feature=feature, data=data)


def _aggregation_context(environment: Environment, feature: Feature | None, form: forms.Form | None) -> dict:
    return {"aggregation_cards": choice_cards(AGGREGATION_HELP, _bound(form, "type"))}


# --- field ------------------------------------------------------------------------------------------------------


def _field_initial(feature: Feature | None) -> dict:
    meter = feature.meter
    source = "expression" if meter.aggregation_expression else "field"
    return {"source": source, "field": meter.aggregation_field, "expression": meter.aggregation_expression}


def _field_save(environment: Environment, feature: Feature | None, data: dict) -> Feature:
    use_expression = data.get("source") == "expression"
    return services.draft_save_field(
        feature=feature,
        field="" if use_expression else data["field"],
        expression=data["expression"] if use_expression else "",
    )


def _field_context(environment: Environment, feature: Feature | None, form: forms.Form | None) -> dict:
    seen_keys = recent_property_keys(environment=environment, event_name=feature.meter.event_name)
    typed = _bound(form, "field").strip()
    return {
        "expression_allowed": feature.meter.aggregation_type in rules.EXPRESSION_TYPES,
        "seen_keys": seen_keys,
        "case_near_miss": rules.similar_names(typed, seen_keys) if typed else [],
    }


# --- reset, units, filters, review ------------------------------------------------------------------------------


def _reset_initial(feature: Feature | None) -> dict:
    return {"reset_usage": feature.meter.reset_usage}


def _reset_save(environment: Environment, feature: Feature | None, data: dict) -> Feature:
    return services.draft_save_reset(feature=feature, reset_usage=data["reset_usage"])


def _reset_context(environment: Environment, feature: Feature | None, form: forms.Form | None) -> dict:
    return {"reset_cards": choice_cards(RESET_HELP, _bound(form, "reset_usage") or "BILLING_PERIOD")}


def _units_initial(feature: Feature | None) -> dict:
    return {"unit_singular": feature.unit_singular, "unit_plural": feature.unit_plural}


def _units_save(environment: Environment, feature: Feature | None, data: dict) -> Feature:
    return services.draft_save_units(feature=feature, singular=data["unit_singular"], plural=data["unit_plural"])


def _filters_save(environment: Environment, feature: Feature | None, data: dict) -> Feature:
    return services.draft_save_filters(feature=feature, filters=data["filters"])


def _filters_context(environment: Environment, feature: Feature | None, form: forms.Form | None) -> dict:
    return {"seen_keys": recent_property_keys(environment=environment, event_name=feature.meter.event_name)}


BASICS = Step("basics", "Basics", FeatureBasicsForm, _basics_initial, _basics_save, _basics_context)
EVENT = Step("event", "Event name", FeatureEventForm, _event_initial, _event_save, _event_context)
AGGREGATION = Step(
    "aggregation", "Aggregation", FeatureAggregationForm, _aggregation_initial, _aggregation_save, _aggregation_context
)
FIELD = Step("field", "Field", FeatureFieldForm, _field_initial, _field_save, _field_context)
RESET = Step("reset", "Usage reset", FeatureResetForm, _reset_initial, _reset_save, _reset_context)
UNITS = Step("units", "Units", FeatureUnitsForm, _units_initial, _units_save)
FILTERS = Step("filters", "Filters", save=_filters_save, context=_filters_context)
REVIEW = Step("review", "Review")

ALL_STEPS = (BASICS, EVENT, AGGREGATION, FIELD, RESET, UNITS, FILTERS, REVIEW)
STEPS_BY_NAME = {step.name: step for step in ALL_STEPS}


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
    if step not in steps:
        return steps[0]
    return steps[min(steps.index(step) + 1, len(steps) - 1)]


def step_before(feature: Feature | None, step: Step) -> Step | None:
    steps = steps_for(feature)
    if step not in steps or steps.index(step) == 0:
        return None
    return steps[steps.index(step) - 1]


def furthest_step(feature: Feature) -> Step:
    """The furthest step this draft has reached (where "resume" goes); a step it no longer has maps to review."""
    names = [item.name for item in steps_for(feature)]
    if feature.wizard_step in names:
        return STEPS_BY_NAME[feature.wizard_step]
    return BASICS if not feature.wizard_step else REVIEW


@transaction.atomic
def step_submit(step: Step, *, environment: Environment, feature: Feature | None, data: dict[str, Any]) -> Feature:
    """Validate and save one step on the draft (raises ValidationFailed), and record how far the draft got."""
    feature = step.save(environment, feature, data)
    steps = steps_for(feature)
    names = [item.name for item in steps]
    reached = names.index(feature.wizard_step) if feature.wizard_step in names else -1
    following = step_after(feature, step)
    furthest = following.name if following in steps and steps.index(following) > reached else feature.wizard_step
    return services.draft_progress_save(feature=feature, wizard_step=furthest)


def draft_queryset(environment: Environment) -> QuerySet[Feature]:
    return Feature.objects.for_environment(environment).filter(status=FeatureStatus.DRAFT).select_related("meter")


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


PropertyKeysReader = Callable[..., list[str]]
# Catalog never reads metering's tables: metering registers the reader of recent events' keys when it loads
# (`MeteringConfig.ready`). Without it the field step simply offers no suggestions.
_property_keys_reader: PropertyKeysReader | None = None


def property_keys_reader_register(reader: PropertyKeysReader) -> None:
    """Install `reader(environment=, event_name=) -> [key, …]`, the top-level property keys recent events send."""
    global _property_keys_reader
    _property_keys_reader = reader


def recent_property_keys(*, environment: Environment, event_name: str) -> list[str]:
    """Property keys that recent events of this name really send, so the field step can offer them."""
    if not event_name or _property_keys_reader is None:
        return []
    return _property_keys_reader(environment=environment, event_name=event_name)
