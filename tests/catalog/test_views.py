"""Catalog pages: feature list/detail/edit/archive and meter list/detail."""

import json

import pytest
from django.test import Client
from django.urls import reverse

from catalog.models import Feature, FeatureStatus, FeatureType, MeterStatus
from catalog.services import feature_create
from tests.catalog.factories import FeatureFactory, MeterFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def tokens(environment) -> Feature:
    return feature_create(
        environment=environment,
        data={
            "name": "Model tokens",
            "type": "metered",
            "unit_singular": "token",
            "unit_plural": "tokens",
            "meter": {
                "event_name": "llm.request",
                "aggregation": {"type": "SUM", "field": "tokens"},
                "filters": [{"key": "region", "values": ["eu", "us"]}],
            },
        },
    )


def test_feature_list_queries_do_not_grow(dashboard: Client, environment, django_assert_num_queries):
    FeatureFactory.create_batch(2, environment=environment)
    with django_assert_num_queries(7):
        assert dashboard.get(reverse("catalog:feature_list")).status_code == 200
    FeatureFactory.create_batch(30, environment=environment)
    with django_assert_num_queries(7):
        assert dashboard.get(reverse("catalog:feature_list"), {"q": "Feature", "type": "metered"}).status_code == 200


def test_feature_list_shows_features_of_this_environment(dashboard: Client, environment, other_environment, tokens):
    FeatureFactory(environment=other_environment, name="Sandbox only")
    html = dashboard.get(reverse("catalog:feature_list")).content.decode()
    assert "Model tokens" in html and "llm.request" in html and "Sandbox only" not in html


def test_feature_list_search_matches_event_name(dashboard: Client, environment, tokens):
    FeatureFactory(environment=environment, name="API calls")
    html = dashboard.get(reverse("catalog:feature_list"), {"q": "llm.req"}).content.decode()
    assert "Model tokens" in html and "API calls" not in html


def test_feature_list_filters_by_type_and_status(dashboard: Client, environment, tokens):
    FeatureFactory(environment=environment, name="SSO", type=FeatureType.BOOLEAN, meter=None)
    FeatureFactory(environment=environment, name="Old thing", status=FeatureStatus.ARCHIVED)
    by_type = dashboard.get(reverse("catalog:feature_list"), {"type": "boolean"}).content.decode()
    assert "SSO" in by_type and "Model tokens" not in by_type
    archived = dashboard.get(reverse("catalog:feature_list"), {"status": "archived"}).content.decode()
    assert "Old thing" in archived and "Model tokens" not in archived


def test_feature_list_hides_drafts_and_deleted_but_offers_to_resume_drafts(dashboard: Client, environment):
    FeatureFactory(environment=environment, name="Gone", status=FeatureStatus.DELETED)
    draft = FeatureFactory(environment=environment, name="Half done", status=FeatureStatus.DRAFT)
    html = dashboard.get(reverse("catalog:feature_list")).content.decode()
    assert "Gone" not in html
    assert "Unfinished drafts" in html and reverse("catalog:feature_detail", args=[draft.public_id]) in html
    assert "Create your first feature" in html


def test_feature_list_paginates(dashboard: Client, environment):
    FeatureFactory.create_batch(30, environment=environment)
    first = dashboard.get(reverse("catalog:feature_list")).content.decode()
    assert "1–25 of 30" in first and "?page=2" in first
    second = dashboard.get(reverse("catalog:feature_list"), {"page": 2}).content.decode()
    assert "26–30 of 30" in second


def test_feature_list_htmx_renders_only_the_results_region(dashboard: Client, environment, tokens):
    response = dashboard.get(reverse("catalog:feature_list"), {"q": "tokens"}, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="feature-results">') and "Model tokens" in html
    assert "<aside" not in html


def test_feature_list_filtered_empty_state(dashboard: Client, environment, tokens):
    html = dashboard.get(reverse("catalog:feature_list"), {"q": "nothing-like-this"}).content.decode()
    assert "No features match these filters" in html


def test_feature_detail_explains_the_feature(dashboard: Client, environment, tokens):
    response = dashboard.get(reverse("catalog:feature_detail", args=[tokens.public_id]))
    html = response.content.decode()
    assert tokens.public_id in html and "model_tokens" in html
    assert "Adds up <code>tokens</code> across matching <code>llm.request</code> events." in html
    assert "Periodic: usage starts again from zero" in html
    assert "<code>region</code> is <code>eu</code> or <code>us</code>" in html
    assert "1 token · 5 tokens" in html
    sample = html.split('<pre id="sample-event" tabindex="0">', 1)[1].split("</pre>", 1)[0]
    event = json.loads(sample.replace("&quot;", '"'))
    assert event == {
        "event_name": "llm.request",
        "external_customer_id": "customer_123",
        "properties": {"tokens": 42, "region": "eu"},
    }
    assert "curl -X POST http://testserver/v1/events" in html
    assert 'href="/events/?event_name=llm.request"' in html


def test_feature_detail_for_boolean_feature(dashboard: Client, environment):
    feature = feature_create(environment=environment, data={"name": "SSO", "type": "boolean"})
    html = dashboard.get(reverse("catalog:feature_detail", args=[feature.public_id])).content.decode()
    assert "either on or off" in html and "curl" not in html


def test_feature_detail_of_another_environment_is_404(dashboard: Client, environment, other_environment):
    feature = FeatureFactory(environment=other_environment)
    assert dashboard.get(reverse("catalog:feature_detail", args=[feature.public_id])).status_code == 404


def test_feature_detail_of_a_draft_resumes_the_wizard(dashboard: Client, environment):
    draft = FeatureFactory(environment=environment, status=FeatureStatus.DRAFT, wizard_step="units")
    response = dashboard.get(reverse("catalog:feature_detail", args=[draft.public_id]))
    assert response.url == reverse("catalog:feature_wizard_step", args=[draft.public_id, "units"])


def test_feature_edit_changes_mutable_fields(dashboard: Client, environment, tokens):
    url = reverse("catalog:feature_edit", args=[tokens.public_id])
    page = dashboard.get(url)
    assert page.status_code == 200
    assert "For “above”, info ≤ warning ≤ critical; for “below”, the reverse." in page.content.decode()
    response = dashboard.post(
        url,
        {
            "name": "LLM tokens",
            "description": "All tokens",
            "unit_singular": "credit",
            "unit_plural": "credits",
            "alert_enabled": "on",
            "alert_condition": "above",
            "warning_threshold": "800",
            "critical_threshold": "1000",
        },
    )
    assert response.status_code == 302
    tokens.refresh_from_db()
    assert (tokens.name, tokens.unit_plural) == ("LLM tokens", "credits")
    assert tokens.alert_settings == {
        "alert_enabled": True,
        "warning": {"threshold": "800", "condition": "above"},
        "critical": {"threshold": "1000", "condition": "above"},
    }


def test_feature_edit_shows_rule_errors_next_to_fields(dashboard: Client, environment, tokens):
    response = dashboard.post(
        reverse("catalog:feature_edit", args=[tokens.public_id]),
        {
            "name": "Tokens",
            "unit_singular": "credit",
            "unit_plural": "",
            "alert_condition": "above",
            "warning_threshold": "2000",
            "critical_threshold": "1000",
        },  # fmt: skip
    )
    assert response.status_code == 422
    html = response.content.decode()
    assert "Is required when unit_singular is set" in html
    assert "Must not exceed the critical threshold (1000)" in html
    tokens.refresh_from_db()
    assert tokens.unit_singular == "token"


EDIT_BASICS = {"name": "Model tokens", "unit_singular": "token", "unit_plural": "tokens", "alert_condition": "above"}


def test_feature_edit_adds_filter_values_and_filters(dashboard: Client, environment, tokens):
    url = reverse("catalog:feature_edit", args=[tokens.public_id])
    html = dashboard.get(url).content.decode()
    assert 'id="filters"' in html and 'data-testid="existing-filter"' in html
    assert '<label for="id_filters-add_0">Add values to <code>region</code></label>' in html
    response = dashboard.post(url, {**EDIT_BASICS, "filters-add_0": "eu, apac", "filters-new_key": "model",
                                    "filters-new_operator": "not_in", "filters-new_values": "gpt-3.5"})  # fmt: skip
    assert response.status_code == 302
    tokens.meter.refresh_from_db()
    assert tokens.meter.filters == [
        {"key": "region", "operator": "in", "values": ["eu", "us", "apac"]},  # added, duplicate "eu" ignored
        {"key": "model", "operator": "not_in", "values": ["gpt-3.5"]},
    ]
    response = dashboard.post(url, EDIT_BASICS)  # nothing typed: the filters stay as they are
    assert response.status_code == 302
    tokens.meter.refresh_from_db()
    assert [item["values"] for item in tokens.meter.filters] == [["eu", "us", "apac"], ["gpt-3.5"]]


def test_feature_edit_filter_errors_land_on_their_inputs(dashboard: Client, environment, tokens):
    url = reverse("catalog:feature_edit", args=[tokens.public_id])
    response = dashboard.post(url, {**EDIT_BASICS, "filters-new_key": "region", "filters-new_operator": "not_in",
                                    "filters-new_values": "mars"})  # fmt: skip
    assert response.status_code == 422
    operator_field = response.content.decode().split('for="id_filters-new_operator"', 1)[1].split("</div>", 1)[0]
    assert "Cannot change the operator of existing filter &#x27;region&#x27; (in)" in operator_field
    response = dashboard.post(url, {**EDIT_BASICS, "filters-new_key": "model", "filters-new_values": ""})
    assert response.status_code == 422
    values_field = response.content.decode().split('for="id_filters-new_values"', 1)[1].split("</div>", 1)[0]
    assert "field-error" in values_field
    tokens.meter.refresh_from_db()
    assert tokens.meter.filters == [{"key": "region", "operator": "in", "values": ["eu", "us"]}]


def test_feature_edit_has_no_filters_section_without_a_meter(dashboard: Client, environment):
    flag = FeatureFactory(environment=environment, type=FeatureType.BOOLEAN, meter=None)
    html = dashboard.get(reverse("catalog:feature_edit", args=[flag.public_id])).content.decode()
    assert 'id="filters"' not in html


def test_feature_archive(dashboard: Client, environment, tokens):
    response = dashboard.post(reverse("catalog:feature_archive", args=[tokens.public_id]), follow=True)
    tokens.refresh_from_db()
    tokens.meter.refresh_from_db()
    assert tokens.status == FeatureStatus.ARCHIVED and tokens.meter.status == MeterStatus.ARCHIVED
    html = response.content.decode()
    assert "was archived and its meter stopped counting" in html
    assert 'action="{}"'.format(reverse("catalog:feature_archive", args=[tokens.public_id])) not in html
    archived = dashboard.get(reverse("catalog:feature_list"), {"status": "archived"}).content.decode()
    assert tokens.name in archived
    assert dashboard.get(reverse("catalog:feature_archive", args=[tokens.public_id])).status_code == 405


def test_archiving_a_feature_without_meter_says_only_that(dashboard: Client, environment):
    feature = feature_create(environment=environment, data={"name": "SSO", "type": "boolean"})
    response = dashboard.post(reverse("catalog:feature_archive", args=[feature.public_id]), follow=True)
    html = response.content.decode()
    assert "“SSO” was archived." in html
    assert "stopped counting" not in html


def test_meter_list_queries_do_not_grow(dashboard: Client, environment, django_assert_num_queries):
    FeatureFactory.create_batch(2, environment=environment)
    with django_assert_num_queries(6):
        assert dashboard.get(reverse("catalog:meter_list")).status_code == 200
    FeatureFactory.create_batch(30, environment=environment)
    with django_assert_num_queries(6):
        assert dashboard.get(reverse("catalog:meter_list"), {"aggregation_type": "COUNT"}).status_code == 200


def test_meter_list_counts_features_and_hides_drafts(dashboard: Client, environment, tokens):
    MeterFactory(environment=environment, name="Wizard leftover", status=MeterStatus.DRAFT)
    html = dashboard.get(reverse("catalog:meter_list")).content.decode()
    assert "Model tokens" in html and "Wizard leftover" not in html
    assert '<td class="num">1</td>' in html


def test_meter_list_empty_state(dashboard: Client, environment):
    assert b"No meters yet" in dashboard.get(reverse("catalog:meter_list")).content


def test_meter_detail(dashboard: Client, environment, tokens):
    html = dashboard.get(reverse("catalog:meter_detail", args=[tokens.meter.public_id])).content.decode()
    assert tokens.meter.public_id in html and "Model tokens" in html and "llm.request" in html


def test_meter_detail_of_a_draft_or_another_environment_is_404(dashboard: Client, environment, other_environment):
    draft = MeterFactory(environment=environment, status=MeterStatus.DRAFT)
    foreign = MeterFactory(environment=other_environment)
    assert dashboard.get(reverse("catalog:meter_detail", args=[draft.public_id])).status_code == 404
    assert dashboard.get(reverse("catalog:meter_detail", args=[foreign.public_id])).status_code == 404
