"""Writes to the catalog. Every write validates through `catalog.rules` and is atomic.

Uniqueness is left to the database: a second published meter with the same definition violates
`meter_unique_published_definition`, a lookup key already used in the environment violates
`feature_unique_lookup_key`. Each such save runs in its own savepoint, so the IntegrityError tells exactly which
rule failed and becomes a 409 `AlreadyExists` (never a check-then-write race).
"""

import datetime as dt
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from catalog import rules
from catalog.models import Feature, FeatureStatus, FeatureType, Meter, MeterStatus
from flexmeter.errors import AlreadyExists, InvalidOperation, ValidationFailed
from flexmeter.models import Environment

LIVE_FEATURE_STATUSES = (FeatureStatus.DRAFT, FeatureStatus.PUBLISHED, FeatureStatus.ARCHIVED)


def _meter_apply_definition(meter: Meter, definition: dict) -> None:
    aggregation = definition["aggregation"]
    meter.name = definition["name"]
    meter.event_name = definition["event_name"]
    meter.aggregation_type = aggregation["type"]
    meter.aggregation_field = aggregation["field"]
    meter.aggregation_expression = aggregation["expression"]
    meter.multiplier = aggregation["multiplier"]
    meter.bucket_size = aggregation["bucket_size"]
    meter.group_by = aggregation["group_by"]
    meter.filters = definition["filters"]
    meter.reset_usage = definition["reset_usage"]
    meter.fingerprint = rules.meter_fingerprint(definition)


def _meter_save(meter: Meter) -> None:
    """Save in a savepoint; a duplicate published definition becomes `AlreadyExists` naming the existing meter."""
    try:
        with transaction.atomic():
            meter.save()
    except IntegrityError:
        existing = (
            Meter.objects.for_environment(meter.environment)
            .published()
            .filter(fingerprint=meter.fingerprint)
            .exclude(pk=meter.pk)
            .first()
        )
        if existing is None:
            raise
        raise AlreadyExists(
            f"Published meter {existing.public_id} ({existing.name}) already counts the same events with the same "
            "aggregation and filters; use it, or archive it first",
            details={"existing_meter_id": existing.public_id},
        ) from None


def meter_create(*, environment: Environment, data: dict[str, Any]) -> Meter:
    """Create a published meter from an API-shaped definition (name, event_name, aggregation, filters, reset_usage)."""
    definition = rules.meter_definition_clean(data)
    meter = Meter(environment=environment, status=MeterStatus.PUBLISHED)
    _meter_apply_definition(meter, definition)
    with transaction.atomic():
        _meter_save(meter)
    return meter


@transaction.atomic
def meter_update(*, meter: Meter, data: dict[str, Any]) -> Meter:
    """Rename a meter and/or add filters (`filters_merge`); the rest is immutable once published.

    Adding filters changes the fingerprint, so the new definition may collide with another published meter (409).
    The row is locked while merging, so two concurrent additions both land. Returns the updated row.
    """
    meter = _meter_locked(meter)
    definition = rules.meter_changes_clean(current=rules.meter_definition_of(meter), status=meter.status, data=data)
    _meter_apply_definition(meter, definition)
    _meter_save(meter)
    return meter


def _meter_locked(meter: Meter) -> Meter:
    """The meter's current row, locked until the transaction ends (filters merge read-modify-write)."""
    return Meter.objects.select_for_update().select_related("environment").get(pk=meter.pk)


def meter_archive(*, meter: Meter) -> Meter:
    """Stop counting new usage for a meter. Its events and usage history stay queryable. Idempotent."""
    if meter.status != MeterStatus.ARCHIVED:
        meter.status = MeterStatus.ARCHIVED
        meter.save(update_fields=["status", "updated_at"])
    return meter


def _feature_save(feature: Feature) -> None:
    """Save in a savepoint; a lookup key already used in the environment becomes `AlreadyExists`."""
    try:
        with transaction.atomic():
            feature.save()
    except IntegrityError:
        existing = (
            Feature.objects.for_environment(feature.environment)
            .filter(lookup_key=feature.lookup_key, status__in=[FeatureStatus.PUBLISHED, FeatureStatus.ARCHIVED])
            .exclude(pk=feature.pk)
            .first()
        )
        if existing is None:
            raise
        raise AlreadyExists(
            f"Lookup key {feature.lookup_key!r} is already used by feature {existing.public_id} ({existing.name})",
            details={"lookup_key": f"already used by feature {existing.public_id}"},
        ) from None


def feature_meter_resolve(*, environment: Environment, meter_id: str) -> Meter:
    """The published meter `meter_id` of `environment` that a metered feature may use, else `ValidationFailed`."""
    meter = Meter.objects.for_environment(environment).filter(public_id=meter_id).first()
    if meter is None:
        raise ValidationFailed(details={"meter_id": f"no meter {meter_id} in this environment"})
    if meter.status != MeterStatus.PUBLISHED:
        raise ValidationFailed(
            details={"meter_id": f"meter {meter_id} is {meter.status}; a feature needs a published meter"}
        )
    return meter


def _feature_apply_definition(feature: Feature, definition: dict) -> None:
    for field in ("name", "type", "lookup_key", "description", "value", "unit_singular", "unit_plural"):
        setattr(feature, field, definition[field])
    feature.alert_settings = definition["alert_settings"]
    feature.metadata = definition["metadata"]


@transaction.atomic
def feature_create(*, environment: Environment, data: dict[str, Any]) -> Feature:
    """Create a published feature. A metered feature names a published meter (`meter_id`) or defines one inline
    (`meter`), which is created in the same transaction (a duplicate definition fails the whole request).
    """
    definition = rules.feature_definition_clean(data)
    meter = None
    if definition["meter_id"]:
        meter = feature_meter_resolve(environment=environment, meter_id=definition["meter_id"])
    elif definition["meter"] is not None:
        meter = Meter(environment=environment, status=MeterStatus.PUBLISHED)
        _meter_apply_definition(meter, definition["meter"])
        _meter_save(meter)
    feature = Feature(environment=environment, meter=meter, status=FeatureStatus.PUBLISHED)
    _feature_apply_definition(feature, definition)
    _feature_save(feature)
    return feature


CLONE_OVERRIDES = ("name", "lookup_key", "description", "metadata")


@transaction.atomic
def feature_clone(*, feature: Feature, data: dict[str, Any]) -> Feature:
    """A new published feature like `feature`, with a new `name` (required, different) and `lookup_key` (default
    derived from the name); `description` and `metadata` are copied unless given. A metered clone counts through
    the same meter, so both report the same usage (a second identical meter would be a duplicate definition).
    """
    if feature.status not in (FeatureStatus.PUBLISHED, FeatureStatus.ARCHIVED):
        raise InvalidOperation(
            f"Feature {feature.public_id} is {feature.status} and cannot be cloned", details={"id": feature.status}
        )
    name = data.get("name")
    if isinstance(name, str) and name.strip() == feature.name:
        raise ValidationFailed(details={"name": "must differ from the source feature's name"})
    source = {
        "name": None,
        "type": feature.type,
        "description": feature.description,
        "meter_id": feature.meter.public_id if feature.meter_id else None,
        "value": feature.value or None,
        "unit_singular": feature.unit_singular or None,
        "unit_plural": feature.unit_plural or None,
        "alert_settings": feature.alert_settings or None,
        "metadata": feature.metadata,
    }
    given = {key: value for key, value in data.items() if key in CLONE_OVERRIDES and value is not None}
    return feature_create(environment=feature.environment, data={**source, **given})


@transaction.atomic
def feature_update(*, feature: Feature, data: dict[str, Any]) -> Feature:
    """Change name, description, value, units, alert settings, metadata; add filters to the feature's meter.

    Omitted fields stay as they are. Meter filter errors are reported under `filters…` as sent.
    """
    if feature.status == FeatureStatus.DELETED:
        raise InvalidOperation(f"Feature {feature.public_id} is deleted")
    errors: dict[str, str] = {}
    changes: dict[str, Any] = {}
    try:
        changes = rules.feature_changes_clean(current=rules.feature_state_of(feature), data=data)
    except ValidationFailed as exc:
        errors.update(exc.details)
    filters = data.get("filters") if isinstance(data, dict) else None
    meter = _meter_locked(feature.meter) if filters is not None and feature.meter is not None else None
    meter_definition = None
    if meter is not None:
        try:
            meter_definition = rules.meter_changes_clean(
                current=rules.meter_definition_of(meter), status=meter.status, data={"filters": filters}
            )
        except ValidationFailed as exc:
            errors.update({path: message for path, message in exc.details.items() if path not in errors})
    if errors:
        raise ValidationFailed(details=errors)
    changes.pop("filters", None)
    if meter_definition is not None:
        _meter_apply_definition(meter, meter_definition)
        _meter_save(meter)
        feature.meter = meter
    for field, value in changes.items():
        setattr(feature, field, value)
    feature.save()
    return feature


@transaction.atomic
def feature_delete(*, feature: Feature) -> Feature:
    """Soft-delete a feature (its lookup key becomes free) and archive its meter.

    The meter stays published when another live feature still uses it, so deleting one feature never silently
    stops another from counting.
    """
    return _feature_retire(feature=feature, status=FeatureStatus.DELETED)


@transaction.atomic
def feature_archive(*, feature: Feature) -> Feature:
    """Archive a feature: it stays in the catalog (lookup key kept) but stops counting; its meter is archived
    unless another live feature still uses it. Usage history stays queryable."""
    if feature.status == FeatureStatus.DELETED:
        raise InvalidOperation("A deleted feature cannot be archived", details={"status": "feature is deleted"})
    return _feature_retire(feature=feature, status=FeatureStatus.ARCHIVED)


def _feature_retire(*, feature: Feature, status: str) -> Feature:
    if feature.status == status:
        return feature
    feature.status = status
    feature.save(update_fields=["status", "updated_at"])
    if feature.meter is not None:
        shared = (
            Feature.objects.filter(meter=feature.meter, status__in=LIVE_FEATURE_STATUSES)
            .exclude(pk=feature.pk)
            .exists()
        )
        if not shared:
            meter_archive(meter=feature.meter)
    return feature


@transaction.atomic
def feature_publish(*, feature: Feature) -> Feature:
    """Publish a draft feature built step by step by the dashboard wizard, together with its draft meter.

    Every rule runs again on the whole draft (errors use the API's paths: `name`, `meter.aggregation.field`…).
    A draft meter is published in the same transaction; an already published meter of the same environment is
    used as is. A feature whose type was switched away from metered drops its draft meter. A duplicate meter
    definition or a taken lookup key is a 409 and leaves both drafts unchanged. Returns a freshly loaded instance
    (the row is locked while publishing, so a double submit cannot publish twice).
    """
    feature = Feature.objects.select_for_update(of=("self",)).select_related("meter").get(pk=feature.pk)
    if feature.status != FeatureStatus.DRAFT:
        raise InvalidOperation(f"Feature {feature.public_id} is {feature.status}; only drafts can be published")
    data = rules.feature_state_of(feature)
    meter = feature.meter
    if feature.type == FeatureType.METERED and meter is not None:
        if meter.environment_id != feature.environment_id:
            raise ValidationFailed(details={"meter_id": "the meter belongs to another environment"})
        if meter.status == MeterStatus.DRAFT:
            data["meter_id"] = ""
            data["meter"] = rules.meter_definition_of(meter)
        elif meter.status != MeterStatus.PUBLISHED:
            raise ValidationFailed(details={"meter_id": f"meter {meter.public_id} is {meter.status}"})
    else:
        data["meter_id"] = ""
    stale_meter = meter if feature.type != FeatureType.METERED and meter is not None else None
    definition = rules.feature_definition_clean(data)
    if definition["meter"] is not None:
        _meter_apply_definition(meter, definition["meter"])
        meter.status = MeterStatus.PUBLISHED
        _meter_save(meter)
    _feature_apply_definition(feature, definition)
    feature.status = FeatureStatus.PUBLISHED
    feature.wizard_step = ""
    if stale_meter is not None:
        feature.meter = None
    _feature_save(feature)
    if stale_meter is not None and stale_meter.status == MeterStatus.DRAFT and not stale_meter.features.exists():
        stale_meter.delete()
    return feature


# --- drafts of the Add Feature wizard (catalog/wizard.py walks the steps) ---------------------------------------
#
# Each write validates one step's part with the same rules the API uses and saves it on the draft row. Which
# step comes next, and how far the draft got, is the wizard's business (`draft_progress_save`).

#: Rule error paths that belong to the field step, not the aggregation step.
QUANTITY_PATHS = frozenset({"aggregation.field", "aggregation.expression"})
#: Stands in for the property while the aggregation step validates everything but the property.
_PLACEHOLDER_FIELD = "__field_chosen_on_the_next_step__"


def _draft_basics_clean(*, environment: Environment, data: dict, exclude: Feature | None = None) -> dict:
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


def _draft_meter_sync(feature: Feature) -> None:
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
    basics = _draft_basics_clean(environment=environment, data=data)
    feature = Feature(environment=environment, status=FeatureStatus.DRAFT, **basics)
    _draft_meter_sync(feature)
    feature.save()
    return feature


@transaction.atomic
def draft_save_basics(*, feature: Feature, data: dict) -> Feature:
    """Name, type, lookup key, description, value. Switching to or from metered adds or drops the draft meter."""
    basics = _draft_basics_clean(environment=feature.environment, data=data, exclude=feature)
    for key, value in basics.items():
        setattr(feature, key, value)
    feature.save()
    _draft_meter_sync(feature)
    feature.save()
    return feature


def _draft_meter_save(feature: Feature, **changes: Any) -> Feature:
    meter = feature.meter
    for key, value in changes.items():
        setattr(meter, key, value)
    meter.save()
    return feature


def draft_save_event(*, feature: Feature, event_name: str) -> Feature:
    return _draft_meter_save(feature, event_name=rules.event_name_clean(event_name))


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
    return _draft_meter_save(
        feature,
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
    return _draft_meter_save(
        feature, aggregation_field=aggregation["field"], aggregation_expression=aggregation["expression"]
    )


def draft_save_reset(*, feature: Feature, reset_usage: str) -> Feature:
    return _draft_meter_save(feature, reset_usage=rules.reset_usage_clean(reset_usage))


def draft_save_units(*, feature: Feature, singular: str, plural: str) -> Feature:
    feature.unit_singular, feature.unit_plural = rules.units_clean(singular=singular, plural=plural)
    feature.save()
    return feature


def draft_save_filters(*, feature: Feature, filters: list[dict]) -> Feature:
    """A draft's filters are replaced as given: nothing counts with them before publishing."""
    return _draft_meter_save(feature, filters=rules.filters_clean(filters))


def draft_progress_save(*, feature: Feature, wizard_step: str) -> Feature:
    """Remember the furthest wizard step a draft reached (where "resume" goes); also marks the draft as touched,
    so `drafts_cleanup` leaves drafts that are being worked on alone."""
    feature.wizard_step = wizard_step
    feature.save(update_fields=["wizard_step", "updated_at"])
    return feature


@transaction.atomic
def draft_discard(*, feature: Feature) -> None:
    """Delete a draft and its draft meter. Published features are never touched."""
    if feature.status != FeatureStatus.DRAFT:
        return
    meter = feature.meter
    feature.delete()
    if meter is not None and meter.status == MeterStatus.DRAFT and not meter.features.exists():
        meter.delete()


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
