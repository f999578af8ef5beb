"""Writes to the catalog. Every write validates through `catalog.rules` and is atomic.

Uniqueness is left to the database: a second published meter with the same definition violates
`meter_unique_published_definition`, a lookup key already used in the environment violates
`feature_unique_lookup_key`. Each such save runs in its own savepoint, so the IntegrityError tells exactly which
rule failed and becomes a 409 `AlreadyExists` (never a check-then-write race).
"""

from typing import Any

from django.db import IntegrityError, transaction

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
