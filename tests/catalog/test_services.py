import pytest

from catalog import services
from catalog.models import Feature, FeatureStatus, Meter, MeterStatus
from flexmeter.errors import AlreadyExists, InvalidOperation, ValidationFailed
from tests.catalog.factories import FeatureFactory, MeterFactory

pytestmark = pytest.mark.django_db

SUM_TOKENS = {"name": "Tokens", "event_name": "llm.request", "aggregation": {"type": "SUM", "field": "tokens"}}


def test_meter_create_stores_the_normalized_definition_and_fingerprint(environment):
    meter = services.meter_create(
        environment=environment,
        data={
            **SUM_TOKENS,
            "aggregation": {"type": "sum", "field": "tokens"},
            "filters": [{"key": "m", "values": ["a"]}],
        },
    )
    meter.refresh_from_db()
    assert meter.status == MeterStatus.PUBLISHED
    assert meter.aggregation_type == "SUM"
    assert meter.filters == [{"key": "m", "operator": "in", "values": ["a"]}]
    assert len(meter.fingerprint) == 64
    assert meter.public_id.startswith("meter_")


def test_same_event_may_feed_several_meters(environment):
    services.meter_create(environment=environment, data=SUM_TOKENS)
    count = services.meter_create(
        environment=environment, data={**SUM_TOKENS, "name": "Requests", "aggregation": {"type": "COUNT"}}
    )
    eu = services.meter_create(
        environment=environment, data={**SUM_TOKENS, "filters": [{"key": "r", "values": ["eu"]}]}
    )
    assert Meter.objects.filter(event_name="llm.request").count() == 3
    assert count.fingerprint != eu.fingerprint


def test_duplicate_published_meter_is_already_exists_naming_the_original(environment):
    original = services.meter_create(environment=environment, data=SUM_TOKENS)
    with pytest.raises(AlreadyExists) as exc_info:
        services.meter_create(environment=environment, data={**SUM_TOKENS, "name": "Other name"})
    assert exc_info.value.details == {"existing_meter_id": original.public_id}
    assert Meter.objects.count() == 1


def test_duplicate_is_allowed_once_the_original_is_archived_or_elsewhere(environment, other_environment):
    original = services.meter_create(environment=environment, data=SUM_TOKENS)
    services.meter_create(environment=other_environment, data=SUM_TOKENS)
    services.meter_archive(meter=original)
    assert services.meter_create(environment=environment, data=SUM_TOKENS).status == MeterStatus.PUBLISHED


def test_meter_update_renames_and_adds_filters(environment):
    meter = services.meter_create(
        environment=environment, data={**SUM_TOKENS, "filters": [{"key": "r", "values": ["eu"]}]}
    )
    before = meter.fingerprint
    services.meter_update(meter=meter, data={"name": "Renamed", "filters": [{"key": "r", "values": ["eu", "us"]}]})
    meter.refresh_from_db()
    assert meter.name == "Renamed"
    assert meter.filters == [{"key": "r", "operator": "in", "values": ["eu", "us"]}]
    assert meter.fingerprint != before


def test_meter_update_merges_into_the_stored_filters_not_a_stale_copy(environment):
    meter = services.meter_create(environment=environment, data=SUM_TOKENS)
    stale = Meter.objects.get(pk=meter.pk)
    services.meter_update(meter=meter, data={"filters": [{"key": "region", "values": ["eu"]}]})
    updated = services.meter_update(meter=stale, data={"filters": [{"key": "model", "values": ["gpt"]}]})
    assert [item["key"] for item in updated.filters] == ["region", "model"]


def test_meter_update_rejects_changes_to_immutable_fields(environment):
    meter = services.meter_create(environment=environment, data=SUM_TOKENS)
    with pytest.raises(ValidationFailed) as exc_info:
        services.meter_update(meter=meter, data={"event_name": "other", "reset_usage": "NEVER"})
    assert set(exc_info.value.details) == {"event_name", "reset_usage"}
    meter.refresh_from_db()
    assert meter.event_name == "llm.request"


def test_adding_filters_that_duplicate_another_meter_is_already_exists(environment):
    services.meter_create(environment=environment, data={**SUM_TOKENS, "filters": [{"key": "r", "values": ["eu"]}]})
    plain = services.meter_create(environment=environment, data=SUM_TOKENS)
    with pytest.raises(AlreadyExists):
        services.meter_update(meter=plain, data={"filters": [{"key": "r", "values": ["eu"]}]})
    plain.refresh_from_db()
    assert plain.filters == []


def test_archived_meter_may_only_be_renamed(environment):
    meter = services.meter_archive(meter=services.meter_create(environment=environment, data=SUM_TOKENS))
    assert services.meter_update(meter=meter, data={"name": "Old"}).name == "Old"
    with pytest.raises(ValidationFailed) as exc_info:
        services.meter_update(meter=meter, data={"filters": [{"key": "r", "values": ["eu"]}]})
    assert "filters" in exc_info.value.details


def test_meter_archive_is_idempotent(environment):
    meter = services.meter_create(environment=environment, data=SUM_TOKENS)
    services.meter_archive(meter=meter)
    services.meter_archive(meter=meter)
    meter.refresh_from_db()
    assert meter.status == MeterStatus.ARCHIVED


def test_feature_create_with_inline_meter_creates_both(environment):
    feature = services.feature_create(
        environment=environment,
        data={
            "name": "API Calls (v2)",
            "type": "METERED",
            "meter": {"event_name": "api.calls", "aggregation": {"type": "COUNT"}},
        },
    )
    assert feature.lookup_key == "api_calls_v2"
    assert feature.type == "metered"
    assert feature.meter.name == "API Calls (v2)"
    assert feature.meter.status == MeterStatus.PUBLISHED


def test_feature_create_with_meter_id_needs_a_published_meter_of_the_environment(environment, other_environment):
    foreign = MeterFactory(environment=other_environment)
    with pytest.raises(ValidationFailed) as exc_info:
        services.feature_create(
            environment=environment, data={"name": "X", "type": "metered", "meter_id": foreign.public_id}
        )
    assert "meter_id" in exc_info.value.details
    archived = MeterFactory(environment=environment, status=MeterStatus.ARCHIVED)
    with pytest.raises(ValidationFailed) as exc_info:
        services.feature_create(
            environment=environment, data={"name": "X", "type": "metered", "meter_id": archived.public_id}
        )
    assert "archived" in exc_info.value.details["meter_id"]


def test_inline_meter_duplicate_rolls_back_the_whole_feature(environment):
    services.meter_create(environment=environment, data=SUM_TOKENS)
    with pytest.raises(AlreadyExists):
        services.feature_create(
            environment=environment, data={"name": "Tokens", "type": "metered", "meter": SUM_TOKENS}
        )
    assert Feature.objects.count() == 0
    assert Meter.objects.count() == 1


def test_lookup_key_clash_is_already_exists_and_rolls_back_the_inline_meter(environment):
    services.feature_create(environment=environment, data={"name": "SSO", "type": "boolean"})
    with pytest.raises(AlreadyExists) as exc_info:
        services.feature_create(environment=environment, data={"name": "sso", "type": "metered", "meter": SUM_TOKENS})
    assert "lookup_key" in exc_info.value.details
    assert Meter.objects.count() == 0


def test_lookup_key_is_free_again_after_delete_and_in_other_environments(environment, other_environment):
    first = services.feature_create(environment=environment, data={"name": "SSO", "type": "boolean"})
    services.feature_create(environment=other_environment, data={"name": "SSO", "type": "boolean"})
    services.feature_delete(feature=first)
    assert services.feature_create(environment=environment, data={"name": "SSO", "type": "boolean"}).lookup_key == "sso"


def test_feature_delete_is_soft_and_archives_its_meter(environment):
    feature = services.feature_create(
        environment=environment, data={"name": "T", "type": "metered", "meter": SUM_TOKENS}
    )
    services.feature_delete(feature=feature)
    feature.refresh_from_db()
    feature.meter.refresh_from_db()
    assert feature.status == FeatureStatus.DELETED
    assert feature.meter.status == MeterStatus.ARCHIVED


def test_feature_archive_keeps_the_lookup_key_and_archives_its_meter(environment):
    feature = services.feature_create(
        environment=environment, data={"name": "T", "type": "metered", "meter": SUM_TOKENS}
    )
    services.feature_archive(feature=feature)
    feature.refresh_from_db()
    feature.meter.refresh_from_db()
    assert feature.status == FeatureStatus.ARCHIVED
    assert feature.meter.status == MeterStatus.ARCHIVED
    with pytest.raises(AlreadyExists):
        services.feature_create(environment=environment, data={"name": "T", "type": "boolean"})


def test_deleted_feature_cannot_be_archived(environment):
    feature = services.feature_create(environment=environment, data={"name": "SSO", "type": "boolean"})
    services.feature_delete(feature=feature)
    with pytest.raises(InvalidOperation):
        services.feature_archive(feature=feature)


def test_feature_delete_keeps_a_meter_that_another_feature_uses(environment):
    meter = services.meter_create(environment=environment, data=SUM_TOKENS)
    one = services.feature_create(
        environment=environment, data={"name": "A", "type": "metered", "meter_id": meter.public_id}
    )
    services.feature_create(environment=environment, data={"name": "B", "type": "metered", "meter_id": meter.public_id})
    services.feature_delete(feature=one)
    meter.refresh_from_db()
    assert meter.status == MeterStatus.PUBLISHED


def test_feature_update_changes_mutable_fields_and_adds_meter_filters(environment):
    feature = services.feature_create(
        environment=environment, data={"name": "T", "type": "metered", "meter": SUM_TOKENS}
    )
    services.feature_update(
        feature=feature,
        data={
            "name": "Tokens",
            "unit_singular": "token",
            "unit_plural": "tokens",
            "metadata": {"team": "ml"},
            "filters": [{"key": "model", "values": ["gpt"]}],
        },
    )
    feature.refresh_from_db()
    feature.meter.refresh_from_db()
    assert (feature.name, feature.unit_singular, feature.metadata) == ("Tokens", "token", {"team": "ml"})
    assert feature.meter.filters == [{"key": "model", "operator": "in", "values": ["gpt"]}]


def test_feature_update_reports_all_errors_including_meter_filters(environment):
    feature = services.feature_create(
        environment=environment,
        data={"name": "T", "type": "metered", "meter": {**SUM_TOKENS, "filters": [{"key": "r", "values": ["eu"]}]}},
    )
    with pytest.raises(ValidationFailed) as exc_info:
        services.feature_update(
            feature=feature,
            data={
                "type": "boolean",
                "lookup_key": "other",
                "unit_singular": "x",
                "filters": [{"key": "r", "values": ["us"], "operator": "not_in"}],
            },
        )
    assert set(exc_info.value.details) == {"type", "lookup_key", "unit_plural", "filters[0].operator"}


def test_deleted_feature_cannot_be_updated(environment):
    feature = services.feature_delete(
        feature=services.feature_create(environment=environment, data={"name": "S", "type": "boolean"})
    )
    with pytest.raises(InvalidOperation):
        services.feature_update(feature=feature, data={"name": "again"})


def _draft(environment, **meter_fields):
    meter = MeterFactory(environment=environment, status=MeterStatus.DRAFT, name="", fingerprint="", **meter_fields)
    return FeatureFactory(
        environment=environment, status=FeatureStatus.DRAFT, name="GPU hours", lookup_key="", meter=meter
    )


def test_feature_publish_publishes_draft_feature_and_meter_together(environment):
    draft = _draft(environment, event_name="gpu.used", aggregation_type="sum", aggregation_field="hours")
    feature = services.feature_publish(feature=draft)
    assert feature.status == FeatureStatus.PUBLISHED
    assert feature.lookup_key == "gpu_hours"
    assert feature.meter.status == MeterStatus.PUBLISHED
    assert feature.meter.aggregation_type == "SUM"
    assert feature.meter.name == "GPU hours"
    assert feature.meter.fingerprint


def test_feature_publish_runs_every_rule(environment):
    draft = _draft(environment, event_name="", aggregation_type="SUM", aggregation_field="")
    with pytest.raises(ValidationFailed) as exc_info:
        services.feature_publish(feature=draft)
    assert set(exc_info.value.details) == {"meter.event_name", "meter.aggregation.field"}
    draft.refresh_from_db()
    assert draft.status == FeatureStatus.DRAFT


def test_feature_publish_duplicate_meter_leaves_the_drafts(environment):
    services.meter_create(
        environment=environment, data={"name": "x", "event_name": "gpu.used", "aggregation": {"type": "COUNT"}}
    )
    draft = _draft(environment, event_name="gpu.used", aggregation_type="COUNT")
    with pytest.raises(AlreadyExists):
        services.feature_publish(feature=draft)
    draft.refresh_from_db()
    draft.meter.refresh_from_db()
    assert (draft.status, draft.meter.status) == (FeatureStatus.DRAFT, MeterStatus.DRAFT)


def test_feature_publish_lookup_key_clash_is_already_exists(environment):
    services.feature_create(environment=environment, data={"name": "GPU hours", "type": "boolean"})
    draft = _draft(environment, event_name="gpu.used", aggregation_type="COUNT")
    with pytest.raises(AlreadyExists):
        services.feature_publish(feature=draft)
    draft.meter.refresh_from_db()
    assert draft.meter.status == MeterStatus.DRAFT


def test_only_drafts_are_published(environment):
    feature = services.feature_create(environment=environment, data={"name": "SSO", "type": "boolean"})
    with pytest.raises(InvalidOperation):
        services.feature_publish(feature=feature)


def test_publishing_a_feature_switched_to_boolean_drops_its_draft_meter(environment):
    draft = _draft(environment, event_name="gpu.used", aggregation_type="COUNT")
    draft.type = "boolean"
    draft.save()
    feature = services.feature_publish(feature=draft)
    assert (feature.status, feature.meter) == (FeatureStatus.PUBLISHED, None)
    assert not Meter.objects.exists()
