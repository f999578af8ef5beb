import pytest
from django.urls import reverse

from catalog import rules, services
from catalog.models import Feature, FeatureStatus, Meter, MeterStatus
from tests.catalog.factories import FeatureFactory, MeterFactory

pytestmark = pytest.mark.django_db


def meter_form(environment, **overrides):
    data = {
        "environment": environment.pk,
        "name": "Tokens",
        "event_name": "llm.request",
        "aggregation_type": "SUM",
        "aggregation_field": "tokens",
        "aggregation_expression": "",
        "multiplier": "",
        "bucket_size": "",
        "group_by": "",
        "filters": "[]",
        "reset_usage": "BILLING_PERIOD",
    }
    return {**data, **overrides}


def test_admin_lists_render(dashboard, environment):
    FeatureFactory(environment=environment)
    for name in ("catalog_meter_changelist", "catalog_feature_changelist", "catalog_meter_add", "catalog_feature_add"):
        assert dashboard.get(reverse(f"admin:{name}")).status_code == 200


def test_admin_creates_a_meter_through_the_rules(dashboard, environment):
    response = dashboard.post(
        reverse("admin:catalog_meter_add"), meter_form(environment, filters='[{"key": "m", "values": ["a"]}]')
    )
    assert response.status_code == 302
    meter = Meter.objects.get()
    assert meter.status == MeterStatus.PUBLISHED
    assert meter.fingerprint
    assert meter.filters == [{"key": "m", "operator": "in", "values": ["a"]}]


def test_admin_shows_rule_errors_on_the_fields(dashboard, environment):
    response = dashboard.post(
        reverse("admin:catalog_meter_add"),
        meter_form(environment, aggregation_field="", multiplier="2", filters='[{"key": "m", "values": []}]'),
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "is required for SUM" in errors["aggregation_field"][0]
    assert errors["multiplier"] == ["is only allowed for SUM_WITH_MULTIPLIER"]
    assert errors["filters"][0].startswith("filters[0].values:")
    assert not Meter.objects.exists()


def test_admin_rejects_a_duplicate_published_meter(dashboard, environment):
    services.meter_create(
        environment=environment,
        data={"name": "x", "event_name": "llm.request", "aggregation": {"type": "SUM", "field": "tokens"}},
    )
    response = dashboard.post(reverse("admin:catalog_meter_add"), meter_form(environment))
    assert response.status_code == 200
    assert "already counts this" in str(response.context["adminform"].form.non_field_errors())
    assert Meter.objects.count() == 1


def test_published_meter_definition_is_read_only_and_filters_additive(dashboard, environment):
    meter = services.meter_create(
        environment=environment,
        data={
            "name": "x",
            "event_name": "e",
            "aggregation": {"type": "COUNT"},
            "filters": [{"key": "r", "values": ["eu"]}],
        },
    )
    url = reverse("admin:catalog_meter_change", args=[meter.pk])
    form = dashboard.get(url).context["adminform"].form
    assert "event_name" not in form.fields
    assert "aggregation_type" not in form.fields
    removing = dashboard.post(url, {"name": "x", "filters": '[{"key": "r", "values": ["us"]}]'})
    assert "cannot remove" in removing.context["adminform"].form.errors["filters"][0]
    response = dashboard.post(url, {"name": "renamed", "filters": '[{"key": "r", "values": ["eu", "us"]}]'})
    assert response.status_code == 302
    meter.refresh_from_db()
    assert (meter.name, meter.filters[0]["values"]) == ("renamed", ["eu", "us"])


def test_admin_filters_box_says_why_it_refuses_to_drop_a_filter(dashboard, environment):
    """Leaving a filter out of the box used to answer "changed successfully" while every filter stayed."""
    meter = services.meter_create(
        environment=environment,
        data={
            "name": "x",
            "event_name": "e",
            "aggregation": {"type": "COUNT"},
            "filters": [{"key": "r", "values": ["eu"]}, {"key": "tier", "values": ["pro"]}],
        },
    )
    url = reverse("admin:catalog_meter_change", args=[meter.pk])
    response = dashboard.post(url, {"name": "x", "filters": '[{"key": "r", "values": ["eu", "us"]}]'})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["filters"]
    assert errors == [f"cannot remove filter 'tier'; {rules.ONLY_ADDED_TO}"]
    meter.refresh_from_db()
    assert meter.filters == [
        {"key": "r", "operator": "in", "values": ["eu"]},
        {"key": "tier", "operator": "in", "values": ["pro"]},
    ]


def test_archive_action(dashboard, environment):
    meter = MeterFactory(environment=environment)
    dashboard.post(
        reverse("admin:catalog_meter_changelist"), {"action": "archive_meters", "_selected_action": [meter.pk]}
    )
    meter.refresh_from_db()
    assert meter.status == MeterStatus.ARCHIVED


def test_admin_creates_a_feature_with_a_derived_lookup_key(dashboard, environment):
    meter = MeterFactory(environment=environment)
    response = dashboard.post(
        reverse("admin:catalog_feature_add"),
        {
            "environment": environment.pk,
            "name": "API Calls (v2)",
            "type": "metered",
            "lookup_key": "",
            "description": "",
            "meter": meter.pk,
            "value": "",
            "unit_singular": "call",
            "unit_plural": "calls",
            "alert_settings": "{}",
            "metadata": "{}",
        },
    )
    assert response.status_code == 302
    feature = Feature.objects.get()
    assert (feature.lookup_key, feature.meter, feature.status) == ("api_calls_v2", meter, FeatureStatus.PUBLISHED)


def test_admin_feature_errors_and_meter_of_another_environment(dashboard, environment, other_environment):
    FeatureFactory(environment=environment, lookup_key="sso", type="boolean", meter=None)
    foreign = MeterFactory(environment=other_environment)
    response = dashboard.post(
        reverse("admin:catalog_feature_add"),
        {
            "environment": environment.pk,
            "name": "SSO",
            "type": "metered",
            "lookup_key": "",
            "meter": foreign.pk,
            "unit_singular": "seat",
            "alert_settings": "{}",
            "metadata": '{"a": 1}',
        },
    )
    errors = response.context["adminform"].form.errors
    assert {"meter", "unit_plural", "metadata", "lookup_key"} <= set(errors)
    assert Feature.objects.count() == 1


def test_soft_delete_action_archives_the_meter_and_deleted_features_are_read_only(dashboard, environment):
    feature = FeatureFactory(environment=environment)
    dashboard.post(
        reverse("admin:catalog_feature_changelist"), {"action": "delete_features", "_selected_action": [feature.pk]}
    )
    feature.refresh_from_db()
    feature.meter.refresh_from_db()
    assert (feature.status, feature.meter.status) == (FeatureStatus.DELETED, MeterStatus.ARCHIVED)
    response = dashboard.get(reverse("admin:catalog_feature_change", args=[feature.pk]))
    assert response.context["has_change_permission"] is False


def test_admin_names_the_reset_with_the_dashboards_words(dashboard, environment):
    """Admin said "Billing Period / Never" where the dashboard's wizard says Periodic / Cumulative."""
    html = dashboard.get(reverse("admin:catalog_meter_add")).content.decode()
    assert ">Periodic (resets each billing period)</option>" in html
    assert ">Cumulative (never resets)</option>" in html
    assert "Billing Period" not in html and ">Never</option>" not in html
    listing = dashboard.get(reverse("admin:catalog_meter_changelist")).content.decode()
    assert "Periodic (resets each billing period)" in listing and "Cumulative (never resets)" in listing
