"""The Add Feature wizard: each step validates with catalog.rules, saves the draft and moves on."""

import datetime as dt

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from catalog import services
from catalog.models import Feature, FeatureStatus, Meter, MeterStatus
from catalog.services import feature_create
from tests.catalog.factories import FeatureFactory

pytestmark = pytest.mark.django_db

START = reverse("catalog:feature_wizard_start")


def step_url(feature: Feature, step: str) -> str:
    return reverse("catalog:feature_wizard_step", args=[feature.public_id, step])


def start_metered(dashboard: Client, name: str = "Credits") -> Feature:
    response = dashboard.post(START, {"name": name, "type": "metered"})
    feature = Feature.objects.get(name=name)
    assert response.status_code == 302 and response.url == step_url(feature, "event")
    return feature


def test_a_metered_feature_through_every_step(dashboard: Client, environment):
    feature = start_metered(dashboard, "Credits consumed")
    assert feature.status == FeatureStatus.DRAFT and feature.meter.status == MeterStatus.DRAFT
    steps = [
        ("event", {"event_name": "model.usage"}, "aggregation"),
        ("aggregation", {"type": "sum"}, "field"),
        ("field", {"source": "field", "field": "credits"}, "reset"),
        ("reset", {"reset_usage": "NEVER"}, "units"),
        ("units", {"unit_singular": "credit", "unit_plural": "credits"}, "filters"),
        (
            "filters",
            {
                "filters-TOTAL_FORMS": "2",
                "filters-INITIAL_FORMS": "0",
                "filters-0-key": "region",
                "filters-0-operator": "in",
                "filters-0-values": "eu, us",
                "filters-1-key": "",
                "filters-1-operator": "in",
                "filters-1-values": "",
            },  # fmt: skip
            "review",
        ),
    ]
    for step, data, next_step in steps:
        response = dashboard.post(step_url(feature, step), data)
        assert response.status_code == 302, (step, response.content.decode()[:2000])
        assert response.url == step_url(feature, next_step)
    review = dashboard.get(step_url(feature, "review")).content.decode()
    assert "Adds up <code>credits</code> across matching <code>model.usage</code> events." in review
    assert "1 credit / 5 credits" in review and "Cumulative" in review

    response = dashboard.post(step_url(feature, "review"), {"action": "save"})
    assert response.url == reverse("catalog:feature_detail", args=[feature.public_id])
    feature.refresh_from_db()
    meter = feature.meter
    assert feature.status == FeatureStatus.PUBLISHED and meter.status == MeterStatus.PUBLISHED
    assert (meter.event_name, meter.aggregation_type, meter.aggregation_field) == ("model.usage", "SUM", "credits")
    assert meter.reset_usage == "NEVER"
    assert meter.filters == [{"key": "region", "operator": "in", "values": ["eu", "us"]}]
    assert (feature.lookup_key, feature.unit_plural) == ("credits_consumed", "credits")


def test_htmx_post_returns_the_next_fragment_and_pushes_its_url(dashboard: Client, environment):
    feature = start_metered(dashboard)
    response = dashboard.post(step_url(feature, "event"), {"event_name": "api.calls"}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response["HX-Push-Url"] == step_url(feature, "aggregation")
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="wizard-step"') and "How should usage add up?" in html
    assert "<aside" not in html


def test_htmx_validation_error_stays_on_the_step_with_the_error_inline(dashboard: Client, environment):
    feature = start_metered(dashboard)
    response = dashboard.post(step_url(feature, "event"), {"event_name": "   "}, headers={"HX-Request": "true"})
    assert response.status_code == 422
    assert "HX-Push-Url" not in response
    assert "Is required" in response.content.decode()


def test_htmx_publish_redirects_the_whole_page(dashboard: Client, environment):
    dashboard.post(START, {"name": "SSO", "type": "boolean"})
    feature = Feature.objects.get(name="SSO")
    response = dashboard.post(step_url(feature, "review"), {"action": "save"}, headers={"HX-Request": "true"})
    assert response["HX-Redirect"] == reverse("catalog:feature_detail", args=[feature.public_id])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "", "type": "metered"}, "Is required"),
        ({"name": "X", "type": ""}, "Is required (one of metered"),
        ({"name": "!!!", "type": "metered"}, "Cannot be derived from the name"),
        ({"name": "Seats", "type": "boolean", "value": "5"}, "Is only allowed for static and config features"),
    ],
)
def test_basics_errors(dashboard: Client, environment, data, message):
    response = dashboard.post(START, data)
    assert response.status_code == 422
    assert message in response.content.decode()
    assert not Feature.objects.exists()


def test_basics_rejects_a_lookup_key_already_in_use(dashboard: Client, environment):
    feature_create(environment=environment, data={"name": "SSO", "type": "boolean"})
    response = dashboard.post(START, {"name": "SSO", "type": "boolean"})
    assert response.status_code == 422
    assert "“sso” is already used by feature SSO" in response.content.decode()


def test_aggregation_step_errors_come_from_the_rules(dashboard: Client, environment):
    feature = start_metered(dashboard)
    url = step_url(feature, "aggregation")
    missing = dashboard.post(url, {"type": "SUM_WITH_MULTIPLIER", "multiplier": ""})
    assert missing.status_code == 422 and "Is required for SUM_WITH_MULTIPLIER" in missing.content.decode()
    negative = dashboard.post(url, {"type": "SUM_WITH_MULTIPLIER", "multiplier": "-1"})
    assert "Must be greater than 0" in negative.content.decode()
    group = dashboard.post(url, {"type": "MAX", "group_by": "region"})
    assert "Is only allowed for MAX with a bucket_size" in group.content.decode()
    ok = dashboard.post(url, {"type": "MAX", "bucket_size": "HOUR", "group_by": "region"})
    assert ok.status_code == 302
    feature.meter.refresh_from_db()
    assert (feature.meter.aggregation_type, feature.meter.bucket_size, feature.meter.group_by) == (
        "MAX",
        "HOUR",
        "region",
    )


def test_field_step_requires_a_field_and_checks_expressions(dashboard: Client, environment):
    feature = start_metered(dashboard)
    dashboard.post(step_url(feature, "aggregation"), {"type": "SUM"})
    url = step_url(feature, "field")
    page = dashboard.get(url).content.decode()
    assert "Property names are case-sensitive." in page
    missing = dashboard.post(url, {"source": "field", "field": ""})
    assert missing.status_code == 422 and "Is required for SUM" in missing.content.decode()
    bad = dashboard.post(url, {"source": "expression", "expression": "1 + 2"})
    assert "must reference at least one event property" in bad.content.decode()
    ok = dashboard.post(url, {"source": "expression", "expression": "input_tokens + output_tokens"})
    assert ok.status_code == 302
    feature.meter.refresh_from_db()
    assert (feature.meter.aggregation_field, feature.meter.aggregation_expression) == (
        "",
        "input_tokens + output_tokens",
    )


def test_count_skips_the_field_step(dashboard: Client, environment):
    feature = start_metered(dashboard)
    response = dashboard.post(step_url(feature, "aggregation"), {"type": "COUNT"})
    assert response.url == step_url(feature, "reset")
    assert dashboard.get(step_url(feature, "field")).url == step_url(feature, "reset")


def test_units_need_both_forms(dashboard: Client, environment):
    feature = start_metered(dashboard)
    response = dashboard.post(step_url(feature, "units"), {"unit_singular": "credit", "unit_plural": ""})
    assert response.status_code == 422
    assert "Is required when unit_singular is set" in response.content.decode()


def test_filter_rows_can_be_added_and_removed_without_javascript(dashboard: Client, environment):
    feature = start_metered(dashboard)
    url = step_url(feature, "filters")
    rows = {"filters-TOTAL_FORMS": "1", "filters-INITIAL_FORMS": "0", "filters-0-key": "region",
            "filters-0-operator": "in", "filters-0-values": "eu"}  # fmt: skip
    added = dashboard.post(url, {**rows, "action": "add"}).content.decode()
    assert 'name="filters-1-key"' in added and 'value="region"' in added
    removed = dashboard.post(url, {**rows, "action": "remove-0"}).content.decode()
    assert 'name="filters-0-key"' not in removed
    feature.meter.refresh_from_db()
    assert feature.meter.filters == []


def test_filter_errors_are_shown_on_their_row(dashboard: Client, environment):
    feature = start_metered(dashboard)
    response = dashboard.post(
        step_url(feature, "filters"),
        {
            "filters-TOTAL_FORMS": "2",
            "filters-INITIAL_FORMS": "0",
            "filters-0-key": "region",
            "filters-0-operator": "in",
            "filters-0-values": "eu",
            "filters-1-key": "region",
            "filters-1-operator": "in",
            "filters-1-values": "us",
        },  # fmt: skip
    )
    assert response.status_code == 422
    assert "Duplicate key &#x27;region&#x27; (already used by filters[0])" in response.content.decode()


def test_filter_row_without_values_is_an_error(dashboard: Client, environment):
    feature = start_metered(dashboard)
    response = dashboard.post(
        step_url(feature, "filters"),
        {
            "filters-TOTAL_FORMS": "1",
            "filters-INITIAL_FORMS": "0",
            "filters-0-key": "region",
            "filters-0-operator": "contains",
            "filters-0-values": " , ",
        },  # fmt: skip
    )
    assert response.status_code == 422
    assert "Must be a non-empty list of strings" in response.content.decode()


def test_reload_shows_what_was_saved(dashboard: Client, environment):
    feature = start_metered(dashboard)
    dashboard.post(step_url(feature, "event"), {"event_name": "api.calls"})
    page = dashboard.get(step_url(feature, "event")).content.decode()
    assert 'value="api.calls"' in page
    basics = dashboard.get(step_url(feature, "basics")).content.decode()
    assert 'value="Credits"' in basics


def test_unreached_or_unknown_steps_redirect_to_the_furthest_step(dashboard: Client, environment):
    feature = start_metered(dashboard)
    assert dashboard.get(step_url(feature, "nonsense")).url == step_url(feature, "event")


def test_boolean_feature_skips_the_metering_steps(dashboard: Client, environment):
    response = dashboard.post(START, {"name": "Single sign-on", "type": "boolean"})
    feature = Feature.objects.get(name="Single sign-on")
    assert response.url == step_url(feature, "review") and feature.meter is None
    assert dashboard.get(step_url(feature, "event")).url == step_url(feature, "review")
    dashboard.post(step_url(feature, "review"), {"action": "save"})
    feature.refresh_from_db()
    assert feature.status == FeatureStatus.PUBLISHED and feature.meter is None


def test_changing_the_type_drops_the_draft_meter(dashboard: Client, environment):
    feature = start_metered(dashboard)
    meter_pk = feature.meter.pk
    dashboard.post(step_url(feature, "basics"), {"name": "Credits", "type": "static", "value": "5 seats"})
    feature.refresh_from_db()
    assert feature.meter is None and feature.value == "5 seats"
    assert not Meter.objects.filter(pk=meter_pk).exists()


def test_publish_errors_link_to_the_step_that_fixes_them(dashboard: Client, environment):
    feature = start_metered(dashboard)
    response = dashboard.post(step_url(feature, "review"), {"action": "save"})
    assert response.status_code == 422
    html = response.content.decode()
    assert "This feature can't be saved yet." in html
    assert f'href="{step_url(feature, "event")}"' in html
    feature.refresh_from_db()
    assert feature.status == FeatureStatus.DRAFT


def test_publishing_a_duplicate_meter_is_explained(dashboard: Client, environment):
    feature_create(
        environment=environment,
        data={"name": "API calls", "type": "metered", "meter": {"event_name": "api.calls", "aggregation": "COUNT"}},
    )
    feature = start_metered(dashboard, "API calls again")
    dashboard.post(step_url(feature, "event"), {"event_name": "api.calls"})
    dashboard.post(step_url(feature, "aggregation"), {"type": "COUNT"})
    response = dashboard.post(step_url(feature, "review"), {"action": "save"})
    assert response.status_code == 422
    assert "already counts the same events" in response.content.decode()


def test_event_notice_lists_features_on_the_same_event_and_warns(dashboard: Client, environment):
    feature_create(
        environment=environment,
        data={"name": "API calls", "type": "metered", "meter": {"event_name": "api.calls", "aggregation": "COUNT"}},
    )
    draft = start_metered(dashboard)
    url = reverse("catalog:feature_wizard_event_check", args=[draft.public_id])
    same = dashboard.get(url, {"event_name": "api.calls"}).content.decode()
    assert "Also used by 1 feature" in same and "API calls" in same
    similar = dashboard.get(url, {"event_name": "API.calls"}).content.decode()
    assert "Did you mean <code>api.calls</code>?" in similar and "has upper case letters" in similar
    spaced = dashboard.get(url, {"event_name": "api calls"}).content.decode()
    assert "contains spaces" in spaced
    assert dashboard.get(url, {"event_name": "fine.name"}).content.decode().strip() == ""


def test_drafts_of_another_environment_are_404(dashboard: Client, environment, other_environment):
    draft = FeatureFactory(environment=other_environment, status=FeatureStatus.DRAFT)
    assert dashboard.get(step_url(draft, "basics")).status_code == 404


def test_a_published_feature_is_not_reopened_in_the_wizard(dashboard: Client, environment):
    feature = FeatureFactory(environment=environment)
    response = dashboard.get(step_url(feature, "basics"))
    assert response.url == reverse("catalog:feature_detail", args=[feature.public_id])


def test_discard_deletes_the_draft_and_its_meter(dashboard: Client, environment):
    feature = start_metered(dashboard)
    meter_pk = feature.meter.pk
    response = dashboard.post(reverse("catalog:feature_wizard_discard", args=[feature.public_id]))
    assert response.url == reverse("catalog:feature_list")
    assert not Feature.objects.filter(pk=feature.pk).exists() and not Meter.objects.filter(pk=meter_pk).exists()


def test_cleanup_drafts_removes_only_stale_drafts(environment, capsys):
    stale = services.draft_start(environment=environment, data={"name": "Old", "type": "metered"})
    fresh = services.draft_start(environment=environment, data={"name": "New", "type": "metered"})
    published = FeatureFactory(environment=environment)
    Feature.objects.filter(pk__in=[stale.pk, published.pk]).update(updated_at=timezone.now() - dt.timedelta(days=10))

    call_command("cleanup_drafts", "--older-than", "72", "--dry-run")
    assert "would delete 1 draft older than 72 hours" in capsys.readouterr().out
    assert Feature.objects.filter(pk=stale.pk).exists()

    call_command("cleanup_drafts", "--older-than", "72", "--batch-size", "1")
    assert "deleted 1 draft" in capsys.readouterr().out
    assert not Feature.objects.filter(pk=stale.pk).exists()
    assert not Meter.objects.filter(pk=stale.meter_id).exists()
    assert Feature.objects.filter(pk__in=[fresh.pk, published.pk]).count() == 2


def test_cleanup_drafts_rejects_bad_options(environment):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("cleanup_drafts", "--older-than", "-1")
    with pytest.raises(CommandError):
        call_command("cleanup_drafts", "--batch-size", "0")


def test_event_notice_suggests_names_that_differ_by_separators_or_whitespace(dashboard: Client, environment):
    """The debugger's near-miss rule (SPEC §7): `api_calls` and `api calls` are likely typos of `api.calls`."""
    for name, event_name in (("API calls", "api.calls"), ("Tokens", "llm.tokens")):
        feature_create(
            environment=environment,
            data={"name": name, "type": "metered", "meter": {"event_name": event_name, "aggregation": "COUNT"}},
        )
    draft = start_metered(dashboard)
    url = reverse("catalog:feature_wizard_event_check", args=[draft.public_id])
    for typed in ("api_calls", "api calls", "Api-Calls", " api:calls "):
        notice = dashboard.get(url, {"event_name": typed}).content.decode()
        assert notice.count('data-testid="event-similar"') == 1, typed
        assert "Did you mean <code>api.calls</code>?</strong> API calls counts that name" in notice, typed
    unrelated = dashboard.get(url, {"event_name": "api.call"}).content.decode()
    assert 'data-testid="event-similar"' not in unrelated


def test_field_step_flags_property_keys_that_differ_by_separators(dashboard: Client, environment):
    from tests.metering.factories import EventFactory

    EventFactory(environment=environment, event_name="model.usage", properties={"input_tokens": 5})
    feature = start_metered(dashboard)
    dashboard.post(step_url(feature, "event"), {"event_name": "model.usage"})
    dashboard.post(step_url(feature, "aggregation"), {"type": "SUM"})
    dashboard.post(step_url(feature, "field"), {"source": "field", "field": "inputTokens"})
    page = dashboard.get(step_url(feature, "field")).content.decode()
    assert "send <code>input_tokens</code>, which differs only by case or separators" in page


def test_field_step_offers_recent_property_keys_and_flags_case_near_misses(dashboard: Client, environment):
    from tests.metering.factories import EventFactory

    EventFactory(environment=environment, event_name="model.usage", properties={"Credits": 5, "region": "eu"})
    EventFactory(environment=environment, event_name="other.event", properties={"unrelated": 1})
    feature = start_metered(dashboard)
    dashboard.post(step_url(feature, "event"), {"event_name": "model.usage"})
    dashboard.post(step_url(feature, "aggregation"), {"type": "SUM"})
    page = dashboard.get(step_url(feature, "field")).content.decode()
    assert 'data-fill-value="Credits"' in page and 'data-fill-value="region"' in page and "unrelated" not in page
    assert 'data-testid="field-near-miss"' not in page
    response = dashboard.post(step_url(feature, "field"), {"source": "field", "field": "credits"})
    assert response.status_code == 302
    again = dashboard.get(step_url(feature, "field")).content.decode()
    assert 'data-testid="field-near-miss"' in again and "<code>Credits</code>, which differs only by case" in again


def test_lookup_key_preview_uses_the_rule(dashboard: Client, environment):
    url = reverse("catalog:feature_wizard_lookup_key")
    assert "<code>api_calls_v2</code>" in dashboard.get(url, {"name": "API Calls (v2)"}).content.decode()
    assert "Derived from the name when left empty." in dashboard.get(url, {"name": "!!!"}).content.decode()


def test_lookup_key_preview_says_live_when_the_key_is_taken(dashboard: Client, environment, other_environment):
    taken = FeatureFactory(environment=environment, name="LLM Tokens", lookup_key="llm_tokens")
    FeatureFactory(environment=other_environment, name="API calls", lookup_key="api_calls")
    url = reverse("catalog:feature_wizard_lookup_key")
    html = dashboard.get(url, {"name": "LLM tokens"}).content.decode()
    assert 'data-testid="lookup-key-taken"' in html
    link = f'<a href="/catalog/features/{taken.public_id}/">LLM Tokens</a>'
    assert f"<code>llm_tokens</code> is already used by {link}" in html
    assert "Type another lookup key, or change the name." in html
    html = dashboard.get(url, {"name": "LLM tokens", "lookup_key": "llm_tokens_v2"}).content.decode()
    assert 'data-testid="lookup-key-free"' in html and "<code>llm_tokens_v2</code> is free." in html
    html = dashboard.get(url, {"name": "Anything", "lookup_key": "llm_tokens"}).content.decode()
    assert "Choose another lookup key." in html
    html = dashboard.get(url, {"name": "API calls"}).content.decode()  # another environment's key is free here
    assert "Left empty, it will be <code>api_calls</code> (free)." in html


def test_near_duplicate_names_are_pointed_out_while_typing(dashboard: Client, environment):
    FeatureFactory(environment=environment, name="LLM Tokens", lookup_key="llm_tokens")
    url = reverse("catalog:feature_wizard_lookup_key")
    html = dashboard.get(url, {"name": "llm-tokens", "lookup_key": "tokens_2"}).content.decode()
    assert 'id="name-notice" hx-swap-oob="true"' in html
    assert 'data-testid="similar-names"' in html and ">LLM Tokens</a> <code>llm_tokens</code>" in html
    assert 'data-testid="similar-names"' not in dashboard.get(url, {"name": "LLM credits"}).content.decode()


def test_basics_step_shows_the_clash_and_near_names_on_render_too(dashboard: Client, environment):
    FeatureFactory(environment=environment, name="LLM Tokens", lookup_key="llm_tokens")
    response = dashboard.post(START, {"name": "LLM tokens", "type": "metered"})
    html = response.content.decode()
    assert response.status_code == 422
    assert 'data-testid="lookup-key-taken"' in html and 'data-testid="similar-names"' in html
    draft = start_metered(dashboard, "Tokens")
    html = dashboard.get(step_url(draft, "basics")).content.decode()
    assert f"?draft={draft.public_id}" in html
    assert 'data-testid="lookup-key-taken"' not in html  # a draft does not clash with itself
