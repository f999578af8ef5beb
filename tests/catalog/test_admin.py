import re

import pytest
from django.urls import reverse

from catalog import rules, services
from catalog.models import Feature, FeatureStatus, Meter, MeterStatus
from tests.catalog.factories import FeatureFactory, MeterFactory

pytestmark = pytest.mark.django_db


def rows(name, *items):
    """POST data of an admin rows field: `rows("filters", {"key": "m", "values": "a"})`."""
    data = {f"{name}-rows": str(len(items))}
    for index, item in enumerate(items):
        data.update({f"{name}-{index}-{column}": text for column, text in item.items()})
    return data


def filter_rows(*filters):
    """Filter rows as the admin posts them: `("region", "in", "eu\nus")` per row."""
    return rows("filters", *({"key": key, "operator": operator, "values": values} for key, operator, values in filters))


def no_alerts():
    return {"alert_enabled": "", "alert_condition": "above", "info_threshold": "", "warning_threshold": "",
            "critical_threshold": ""}  # fmt: skip


def published_meter(environment):
    """A published COUNT meter of `e` with one filter, r ∈ {eu}."""
    return services.meter_create(
        environment=environment,
        data={
            "name": "x",
            "event_name": "e",
            "aggregation": {"type": "COUNT"},
            "filters": [{"key": "r", "values": ["eu"]}],
        },
    )


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
        "reset_usage": "BILLING_PERIOD",
        **filter_rows(),
    }
    return {**data, **overrides}


def test_admin_lists_render(dashboard, environment):
    FeatureFactory(environment=environment)
    for name in ("catalog_meter_changelist", "catalog_feature_changelist", "catalog_meter_add", "catalog_feature_add"):
        assert dashboard.get(reverse(f"admin:{name}")).status_code == 200


def test_admin_creates_a_meter_through_the_rules(dashboard, environment):
    response = dashboard.post(
        reverse("admin:catalog_meter_add"), meter_form(environment, **filter_rows(("m", "in", "a")))
    )
    assert response.status_code == 302
    meter = Meter.objects.get()
    assert meter.status == MeterStatus.PUBLISHED
    assert meter.fingerprint
    assert meter.filters == [{"key": "m", "operator": "in", "values": ["a"]}]


def test_admin_shows_rule_errors_on_the_fields(dashboard, environment):
    response = dashboard.post(
        reverse("admin:catalog_meter_add"),
        meter_form(environment, aggregation_field="", multiplier="2", **filter_rows(("m", "in", ""))),
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "is required for SUM" in errors["aggregation_field"][0]
    assert errors["multiplier"] == ["is only allowed for SUM_WITH_MULTIPLIER"]
    assert errors["filters"] == ["Filter 1 (m), values: must be a non-empty list of strings"]
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
    meter = published_meter(environment)
    url = reverse("admin:catalog_meter_change", args=[meter.pk])
    form = dashboard.get(url).context["adminform"].form
    assert "event_name" not in form.fields
    assert "aggregation_type" not in form.fields
    removing = dashboard.post(url, {"name": "x", **filter_rows(("r", "in", "us"))})
    assert "cannot remove 'eu'" in removing.context["adminform"].form.errors["filters"][0]
    response = dashboard.post(url, {"name": "renamed", **filter_rows(("r", "in", "eu\nus"))})
    assert response.status_code == 302
    meter.refresh_from_db()
    assert (meter.name, meter.filters[0]["values"]) == ("renamed", ["eu", "us"])


def test_admin_filter_rows_say_why_they_refuse_to_drop_a_filter(dashboard, environment):
    """Leaving a filter out used to answer "changed successfully" while every filter stayed."""
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
    response = dashboard.post(url, {"name": "x", **filter_rows(("r", "in", "eu\nus"), ("", "in", ""))})
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
            **no_alerts(),
            **rows("metadata"),
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
            **no_alerts(),
            **rows("metadata", {"key": " ", "value": "1"}),
        },
    )
    errors = response.context["adminform"].form.errors
    assert {"meter", "unit_plural", "metadata", "lookup_key"} <= set(errors)
    assert errors["metadata"] == ["keys must not be blank"]
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


# --- structured fields instead of JSON text boxes (issue #18) -------------------------------------------------


def test_meter_change_form_shows_filters_as_rows_not_a_json_box(dashboard, environment):
    meter = services.meter_create(
        environment=environment,
        data={
            "name": "x",
            "event_name": "e",
            "aggregation": {"type": "COUNT"},
            "filters": [
                {"key": "region", "values": ["eu", "us"]},
                {"key": "model", "operator": "not_in", "values": ["gpt-3.5"]},
            ],
        },
    )
    html = dashboard.get(reverse("admin:catalog_meter_change", args=[meter.pk])).content.decode()
    assert not re.search(r'<textarea[^>]*name="filters"', html)
    assert 'name="filters-rows" value="4"' in html  # two filters and two blank rows for new ones
    assert re.search(r'<input type="text" name="filters-0-key"[^>]*value="region"', html)
    assert re.search(r'<textarea name="filters-0-values"[^>]*>\neu\nus</textarea>', html)
    assert re.search(r'name="filters-1-operator".*?<option value="not_in" selected>is not one of</option>', html, re.S)
    assert 'aria-label="Filter 2 values"' in html
    assert "js/admin_rows.js" in html and "css/admin_rows.css" in html


def test_feature_change_form_shows_alert_fields_and_metadata_rows_not_json_boxes(dashboard, environment):
    feature = services.feature_create(
        environment=environment,
        data={
            "name": "Tokens",
            "type": "metered",
            "meter": {"event_name": "llm", "aggregation": {"type": "SUM", "field": "tokens"}},
            "unit_singular": "token",
            "unit_plural": "tokens",
            "alert_settings": {"alert_enabled": True, "warning": {"threshold": "800", "condition": "above"}},
            "metadata": {"category": "ai"},
        },
    )
    html = dashboard.get(reverse("admin:catalog_feature_change", args=[feature.pk])).content.decode()
    assert not re.search(r'<textarea[^>]*name="(alert_settings|metadata)"', html)
    assert re.search(r'<input type="checkbox" name="alert_enabled"[^>]*checked', html)
    assert re.search(r'<input type="text" name="warning_threshold" value="800"', html)
    assert re.search(r'<input type="text" name="info_threshold"', html) and 'name="critical_threshold"' in html
    assert '<option value="above" selected>Usage goes above</option>' in html
    assert re.search(r'name="metadata-0-key"[^>]*value="category"', html)
    assert re.search(r'name="metadata-0-value"[^>]*value="ai"', html)
    assert "Static and config features" not in html  # a metered feature has no display value to edit


def test_admin_meter_with_two_filters_stores_what_the_api_stores(dashboard, environment, other_api):
    posted = dashboard.post(
        reverse("admin:catalog_meter_add"),
        meter_form(
            environment,
            **filter_rows(
                ("region", "in", "eu-west\n eu-central \n\neu-west"), ("model", "not_contains", "mini"), ("", "in", "")
            ),
        ),
    )
    assert posted.status_code == 302
    body = {
        "name": "Tokens",
        "event_name": "llm.request",
        "aggregation": {"type": "SUM", "field": "tokens"},
        "filters": [
            {"key": "region", "values": ["eu-west", "eu-central", "eu-west"]},
            {"key": "model", "operator": "not_contains", "values": ["mini"]},
        ],
    }
    assert other_api.post("/v1/meters", body).status_code == 201
    by_admin, by_api = Meter.objects.get(environment=environment), Meter.objects.exclude(environment=environment).get()
    assert (
        by_admin.filters
        == by_api.filters
        == [
            {"key": "region", "operator": "in", "values": ["eu-west", "eu-central"]},
            {"key": "model", "operator": "not_contains", "values": ["mini"]},
        ]
    )
    assert rules.meter_definition_of(by_admin) == rules.meter_definition_of(by_api)
    assert by_admin.fingerprint == by_api.fingerprint


THRESHOLDS = ("info_threshold", "warning_threshold", "critical_threshold")
ABOVE_CRITICAL = "must not exceed the critical threshold (400000) for condition above"
SIDEWAYS = "must be one of in, not_in, contains, not_contains (got 'sideways')"


def feature_form(environment, meter, **overrides):
    data = {
        "environment": environment.pk,
        "name": "LLM Tokens",
        "type": "metered",
        "lookup_key": "",
        "description": "",
        "meter": meter.pk,
        "value": "",
        "unit_singular": "token",
        "unit_plural": "tokens",
        "alert_enabled": "on",
        "alert_condition": "above",
        "info_threshold": "100000",
        "warning_threshold": "250000.50",
        "critical_threshold": "400000",
        **rows(
            "metadata",
            {"key": "category", "value": "ai"},
            {"key": "owner", "value": "ML team"},
            {"key": "", "value": ""},
        ),
    }
    return {**data, **overrides}


def test_admin_feature_with_three_alert_levels_stores_what_the_api_stores(dashboard, environment, other_api):
    meter = services.meter_create(
        environment=environment, data={"name": "t", "event_name": "llm", "aggregation": {"type": "SUM", "field": "t"}}
    )
    assert dashboard.post(reverse("admin:catalog_feature_add"), feature_form(environment, meter)).status_code == 302
    api_meter = other_api.post(
        "/v1/meters", {"name": "t", "event_name": "llm", "aggregation": {"type": "SUM", "field": "t"}}
    )
    body = {
        "name": "LLM Tokens",
        "type": "metered",
        "meter_id": api_meter.json()["id"],
        "unit_singular": "token",
        "unit_plural": "tokens",
        "alert_settings": {
            "alert_enabled": True,
            "info": {"threshold": "100000", "condition": "above"},
            "warning": {"threshold": "250000.50", "condition": "above"},
            "critical": {"threshold": "400000", "condition": "above"},
        },
        "metadata": {"category": "ai", "owner": "ML team"},
    }
    assert other_api.post("/v1/features", body).status_code == 201
    by_admin, by_api = (
        Feature.objects.get(environment=environment),
        Feature.objects.exclude(environment=environment).get(),
    )
    fields = (
        "name",
        "type",
        "lookup_key",
        "description",
        "value",
        "unit_singular",
        "unit_plural",
        "alert_settings",
        "metadata",
    )
    assert {field: getattr(by_admin, field) for field in fields} == {field: getattr(by_api, field) for field in fields}
    assert by_admin.alert_settings == {
        "alert_enabled": True,
        "info": {"threshold": "100000", "condition": "above"},
        "warning": {"threshold": "250000.5", "condition": "above"},
        "critical": {"threshold": "400000", "condition": "above"},
    }
    assert by_admin.metadata == {"category": "ai", "owner": "ML team"}


def test_saving_a_feature_unchanged_keeps_its_alerts_and_metadata(dashboard, environment):
    alerts = {
        "alert_enabled": True,
        "info": {"threshold": "10", "condition": "below"},
        "warning": {"threshold": "5", "condition": "below"},
        "critical": {"threshold": "0.5", "condition": "below"},
    }
    feature = services.feature_create(
        environment=environment,
        data={
            "name": "Credits left",
            "type": "metered",
            "meter": {"event_name": "c", "aggregation": {"type": "SUM", "field": "n"}},
            "alert_settings": alerts,
            "metadata": {"a": "1", "b": ""},
        },
    )
    url = reverse("admin:catalog_feature_change", args=[feature.pk])
    form = dashboard.get(url).context["adminform"].form
    shown = ("name", "description", "unit_singular", "unit_plural", "alert_condition", *THRESHOLDS)
    data = {name: form[name].value() for name in shown}
    data["alert_enabled"] = "on" if form["alert_enabled"].value() else ""
    data.update(rows("metadata", *form["metadata"].value()))
    assert dashboard.post(url, data).status_code == 302
    feature.refresh_from_db()
    assert (feature.alert_settings, feature.metadata) == (alerts, {"a": "1", "b": ""})


def test_admin_adds_a_filter_to_a_published_meter_through_a_new_row(dashboard, environment):
    meter = published_meter(environment)
    url = reverse("admin:catalog_meter_change", args=[meter.pk])
    response = dashboard.post(
        url, {"name": "x", **filter_rows(("r", "in", "eu"), ("tier", "not_in", "free"), ("", "in", ""))}
    )
    assert response.status_code == 302
    meter.refresh_from_db()
    assert meter.filters == [
        {"key": "r", "operator": "in", "values": ["eu"]},
        {"key": "tier", "operator": "not_in", "values": ["free"]},
    ]
    changed_operator = dashboard.post(
        url, {"name": "x", **filter_rows(("r", "not_in", "eu"), ("tier", "not_in", "free"))}
    )
    assert changed_operator.context["adminform"].form.errors["filters"] == [
        "Filter 1 (r), operator: cannot change the operator of existing filter 'r' (in); filters can only be added to"
    ]


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"info_threshold": "lots"}, "info_threshold", "must be a decimal number (got 'lots')"),
        ({"warning_threshold": "500000"}, "warning_threshold", ABOVE_CRITICAL),
        ({"info_threshold": "", "warning_threshold": "", "critical_threshold": ""}, "alert_enabled",
         "needs at least one of info, warning, critical"),
        (rows("metadata", {"key": "a", "value": "1"}, {"key": "a", "value": "2"}), "metadata",
         "Entry 2: the key “a” is already used by an earlier row"),
        (rows("metadata", *({"key": f"k{n}", "value": ""} for n in range(51))), "metadata",
         "must have at most 50 keys (got 51)"),
    ],
)  # fmt: skip
def test_invalid_feature_input_is_a_form_error_on_its_field(dashboard, environment, overrides, field, message):
    meter = MeterFactory(environment=environment)
    response = dashboard.post(reverse("admin:catalog_feature_add"), feature_form(environment, meter, **overrides))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors[field] == [message]
    assert not Feature.objects.exists()


@pytest.mark.parametrize(
    ("filters", "message", "invalid_input"),
    [
        ((("region", "in", "eu"), ("region", "in", "us")),
         "Filter 2 (region), key: duplicate key 'region' (already used by filters[0])", "filters-1-key"),
        ((("", "in", "eu"),), "Filter 1, key: is required", "filters-0-key"),
        ((("", "in", ""), ("m", "sideways", "a")), f"Filter 2 (m), operator: {SIDEWAYS}", "filters-1-operator"),
        ((("m", "in", "x" * 1025),),
         "Filter 1 (m), value 1: must be at most 1,024 characters (got 1,025)", "filters-0-values"),
    ],
)  # fmt: skip
def test_invalid_filter_rows_name_the_row_and_mark_its_input(dashboard, environment, filters, message, invalid_input):
    response = dashboard.post(reverse("admin:catalog_meter_add"), meter_form(environment, **filter_rows(*filters)))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["filters"] == [message]
    assert re.search(rf'name="{invalid_input}"[^>]*aria-invalid="true"', response.content.decode())
    assert not Meter.objects.exists()


@pytest.mark.parametrize("count", ["many", "-3", "100000"])
def test_a_forged_row_count_is_never_a_500(dashboard, environment, count):
    response = dashboard.post(reverse("admin:catalog_meter_add"), meter_form(environment, **{"filters-rows": count}))
    assert response.status_code == 302
    assert Meter.objects.get().filters == []


def test_filter_values_are_escaped_in_the_rows(dashboard, environment):
    meter = services.meter_create(
        environment=environment,
        data={"name": "x", "event_name": "e", "aggregation": {"type": "COUNT"},
              "filters": [{"key": "k", "values": ["</textarea><script>alert(1)</script>"]}]},
    )  # fmt: skip
    html = dashboard.get(reverse("admin:catalog_meter_change", args=[meter.pk])).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;/textarea&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_admin_uses_the_dashboards_words_for_every_choice(dashboard, environment):
    meter = services.meter_create(
        environment=environment,
        data={
            "name": "Latency",
            "event_name": "req",
            "aggregation": {"type": "AVG", "field": "ms"},
            "reset_usage": "NEVER",
        },
    )
    add = dashboard.get(reverse("admin:catalog_meter_add")).content.decode()
    for words in ("Average", "Minimum", "Maximum", "Count unique", "Sum with multiplier", "Weighted sum", "No buckets",
                  "15 minutes", "is one of", "is not one of", "doesn&#x27;t contain"):  # fmt: skip
        assert re.search(rf">{words}</option>", add), words
    assert ">Avg</option>" not in add and "Count Unique" not in add and "Sum With Multiplier" not in add
    assert 'for="id_aggregation_type">Aggregation:</label>' in add
    assert 'for="id_reset_usage">Usage reset:</label>' in add
    change = dashboard.get(reverse("admin:catalog_meter_change", args=[meter.pk])).content.decode()
    assert '<div class="readonly">Average</div>' in change
    assert '<div class="readonly">Cumulative (never resets)</div>' in change
    detail = dashboard.get(reverse("catalog:meter_detail", args=[meter.public_id])).content.decode()
    assert 'Average <span class="muted mono">(AVG)</span>' in detail and "Cumulative" in detail
    meter_list = dashboard.get(reverse("catalog:meter_list")).content.decode()
    assert '<option value="AVG">Average</option>' in meter_list  # the dashboard's own filter said "Avg" too
    feature_add = dashboard.get(reverse("admin:catalog_feature_add")).content.decode()
    for words in ("Usage goes above", "Usage drops below", "Metered", "Boolean", "Static", "Config"):
        assert re.search(rf">{words}</option>", feature_add), words
    assert "Send usage alerts" in feature_add
    assert "For “above”, info ≤ warning ≤ critical; for “below”, the reverse." in feature_add
    listing = dashboard.get(reverse("admin:catalog_meter_changelist")).content.decode()
    assert '<td class="field-aggregation_type">Average</td>' in listing


def test_a_deleted_features_alerts_and_metadata_read_as_words(dashboard, environment):
    feature = services.feature_create(
        environment=environment,
        data={"name": "Calls", "type": "metered", "meter": {"event_name": "c", "aggregation": {"type": "COUNT"}},
              "alert_settings": {"alert_enabled": True, "warning": {"threshold": "80", "condition": "above"},
                                 "critical": {"threshold": "100", "condition": "above"}},
              "metadata": {"team": "<core>"}},
    )  # fmt: skip
    services.feature_delete(feature=feature)
    response = dashboard.get(reverse("admin:catalog_feature_change", args=[feature.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "On: usage goes above — warning 80, critical 100" in html
    assert "<code>team</code> = &lt;core&gt;" in html
    assert "alert_enabled" not in html and '"warning"' not in html
