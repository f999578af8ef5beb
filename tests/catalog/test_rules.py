"""Every rule of SPEC §2.1–2.2: a valid case, and an invalid one whose error names the offending field's path."""

from decimal import Decimal

import pytest

from catalog import rules
from catalog.models import AggregationType
from flexmeter.decimals import format_quantity
from flexmeter.errors import ValidationFailed


def errors_of(fn, *args, **kwargs) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as exc_info:
        fn(*args, **kwargs)
    return exc_info.value.details


# --- feature basics -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("API Calls (v2)", "api_calls_v2"),
        ("  Tokens  ", "tokens"),
        ("GPU-hours / month", "gpu_hours_month"),
        ("Café crème", "cafe_creme"),
        ("__x__", "x"),
    ],
)
def test_lookup_key_is_derived_from_the_name(name, expected):
    assert rules.feature_basics_clean(name=name, type="metered")["lookup_key"] == expected


def test_feature_basics_normalize_type_and_keep_a_given_lookup_key():
    result = rules.feature_basics_clean(name=" API ", type="METERED", lookup_key=" api-v1 ", description=" d ")
    assert result == {"name": "API", "type": "metered", "lookup_key": "api-v1", "description": "d"}


def test_feature_basics_report_every_error_at_once():
    details = errors_of(rules.feature_basics_clean, name="", type="metric", lookup_key="has space")
    assert set(details) == {"name", "type", "lookup_key"}
    assert "metered" in details["type"]


def test_feature_type_is_required():
    assert "type" in errors_of(rules.feature_basics_clean, name="API", type=None)


def test_feature_name_length_limit():
    assert rules.feature_basics_clean(name="x" * 255, type="boolean")["name"] == "x" * 255
    assert "255" in errors_of(rules.feature_basics_clean, name="x" * 256, type="boolean")["name"]


def test_lookup_key_that_cannot_be_derived_asks_for_one():
    assert "lookup_key" in errors_of(rules.feature_basics_clean, name="!!!", type="boolean")


# --- event name -----------------------------------------------------------------------------------------------


def test_event_name_is_trimmed_and_case_kept():
    assert rules.event_name_clean("  API.calls ") == "API.calls"


@pytest.mark.parametrize("value", [None, "", "   ", 12, "a" * 256, "api\ncalls", "api\x00"])
def test_invalid_event_names(value):
    assert set(errors_of(rules.event_name_clean, value)) == {"event_name"}


# --- aggregation ----------------------------------------------------------------------------------------------


def test_aggregation_type_is_case_insensitive_and_upper_cased_out():
    result = rules.aggregation_clean({"type": "sum", "field": "tokens"})
    assert result == {
        "type": "SUM",
        "field": "tokens",
        "expression": "",
        "multiplier": "",
        "bucket_size": "",
        "group_by": "",
    }


def test_unknown_aggregation_type_is_rejected():
    assert "aggregation.type" in errors_of(rules.aggregation_clean, {"type": "MEDIAN", "field": "x"})


def test_aggregation_type_is_required():
    assert "aggregation.type" in errors_of(rules.aggregation_clean, {"field": "x"})


def test_aggregation_must_be_an_object():
    assert "aggregation" in errors_of(rules.aggregation_clean, 5)


def test_flexprice_unique_count_spelling_is_accepted():
    assert rules.aggregation_clean({"type": "unique_count", "field": "user"})["type"] == "COUNT_UNIQUE"


def test_count_accepts_and_ignores_a_field():
    assert rules.aggregation_clean({"type": "COUNT", "field": "anything"})["field"] == ""


@pytest.mark.parametrize("agg_type", ["SUM", "AVG", "MIN", "MAX", "COUNT_UNIQUE", "LATEST", "WEIGHTED_SUM"])
def test_field_is_required_for_value_aggregations(agg_type):
    assert rules.aggregation_clean({"type": agg_type, "field": "Credits"})["field"] == "Credits"
    assert "aggregation.field" in errors_of(rules.aggregation_clean, {"type": agg_type})


@pytest.mark.parametrize("agg_type", ["SUM", "AVG", "MIN", "MAX", "LATEST"])
def test_expression_replaces_the_field_for_expression_types(agg_type):
    result = rules.aggregation_clean({"type": agg_type, "expression": "input_tokens + output_tokens"})
    assert result["expression"] == "input_tokens + output_tokens"
    assert result["field"] == ""


@pytest.mark.parametrize("agg_type", ["COUNT", "COUNT_UNIQUE", "SUM_WITH_MULTIPLIER", "WEIGHTED_SUM"])
def test_expression_is_rejected_for_other_types(agg_type):
    data = {"type": agg_type, "field": "x", "expression": "a + b", "multiplier": "2"}
    assert "aggregation.expression" in errors_of(rules.aggregation_clean, data)


def test_expression_and_field_are_mutually_exclusive():
    details = errors_of(rules.aggregation_clean, {"type": "SUM", "field": "a", "expression": "a * 2"})
    assert "not both" in details["aggregation.expression"]


@pytest.mark.parametrize("expression", ["a +", "nosuchfn(a)", "1 + 2", "min(a)"])
def test_expression_must_compile_and_reference_a_property(expression):
    assert "aggregation.expression" in errors_of(rules.aggregation_clean, {"type": "SUM", "expression": expression})


@pytest.mark.parametrize(("given", "stored"), [("1.50", "1.5"), (2, "2"), (0.1, "0.1"), (" 1e3 ", "1000")])
def test_multiplier_is_normalized_decimal_text(given, stored):
    data = {"type": "sum_with_multiplier", "field": "x", "multiplier": given}
    assert rules.aggregation_clean(data)["multiplier"] == stored


@pytest.mark.parametrize("multiplier", [None, "", "0", "-1", "abc", "NaN", "Infinity", True])
def test_multiplier_is_required_and_positive_for_sum_with_multiplier(multiplier):
    data = {"type": "SUM_WITH_MULTIPLIER", "field": "x", "multiplier": multiplier}
    assert set(errors_of(rules.aggregation_clean, data)) == {"aggregation.multiplier"}


def test_multiplier_is_rejected_for_other_types():
    details = errors_of(rules.aggregation_clean, {"type": "SUM", "field": "x", "multiplier": "2"})
    assert details == {"aggregation.multiplier": "is only allowed for SUM_WITH_MULTIPLIER"}


@pytest.mark.parametrize("agg_type", ["SUM", "MAX"])
def test_bucket_size_is_allowed_for_sum_and_max(agg_type):
    assert rules.aggregation_clean({"type": agg_type, "field": "x", "bucket_size": "15min"})["bucket_size"] == "15MIN"


def test_bucket_size_is_rejected_for_other_types_and_unknown_sizes():
    assert "aggregation.bucket_size" in errors_of(
        rules.aggregation_clean, {"type": "AVG", "field": "x", "bucket_size": "DAY"}
    )
    assert "aggregation.bucket_size" in errors_of(
        rules.aggregation_clean, {"type": "SUM", "field": "x", "bucket_size": "YEAR"}
    )


def test_group_by_needs_max_with_bucket_size():
    ok = rules.aggregation_clean({"type": "MAX", "field": "x", "bucket_size": "HOUR", "group_by": "user_id"})
    assert ok["group_by"] == "user_id"
    assert "aggregation.group_by" in errors_of(rules.aggregation_clean, {"type": "MAX", "field": "x", "group_by": "u"})
    data = {"type": "SUM", "field": "x", "bucket_size": "HOUR", "group_by": "u"}
    assert "aggregation.group_by" in errors_of(rules.aggregation_clean, data)


def test_aggregation_reports_all_errors_together():
    data = {"type": "COUNT", "multiplier": "2", "bucket_size": "DAY", "group_by": "u", "expression": "a"}
    assert set(errors_of(rules.aggregation_clean, data)) == {
        "aggregation.multiplier",
        "aggregation.bucket_size",
        "aggregation.group_by",
        "aggregation.expression",
    }


# --- filters --------------------------------------------------------------------------------------------------


def test_filters_are_normalized_with_default_operator_and_unique_values():
    cleaned = rules.filters_clean(
        [{"key": " region ", "values": ["eu", "eu", "us"]}, {"key": "model", "values": ["gpt"], "operator": "CONTAINS"}]
    )
    assert cleaned == [
        {"key": "region", "operator": "in", "values": ["eu", "us"]},
        {"key": "model", "operator": "contains", "values": ["gpt"]},
    ]


def test_absent_filters_are_an_empty_list():
    assert rules.filters_clean(None) == []


@pytest.mark.parametrize(
    ("filters", "path"),
    [
        ("region=eu", "filters"),
        ([5], "filters[0]"),
        ([{"values": ["a"]}], "filters[0].key"),
        ([{"key": "a", "values": []}], "filters[0].values"),
        ([{"key": "a", "values": "eu"}], "filters[0].values"),
        ([{"key": "a", "values": ["eu", 200]}], "filters[0].values[1]"),
        ([{"key": "a", "values": ["x"], "operator": "equals"}], "filters[0].operator"),
        ([{"key": "a", "values": [""], "operator": "contains"}], "filters[0].values[0]"),
        ([{"key": "a", "values": ["x"]}, {"key": "a", "values": ["y"]}], "filters[1].key"),
    ],
)
def test_invalid_filters_name_their_path(filters, path):
    assert path in errors_of(rules.filters_clean, filters)


def test_filters_merge_adds_keys_and_values_and_keeps_omitted_keys():
    existing = [
        {"key": "region", "operator": "in", "values": ["eu"]},
        {"key": "tier", "operator": "in", "values": ["a"]},
    ]
    merged = rules.filters_merge(
        existing=existing, added=[{"key": "region", "values": ["eu", "us"]}, {"key": "model", "values": ["gpt"]}]
    )
    assert merged == [
        {"key": "region", "operator": "in", "values": ["eu", "us"]},
        {"key": "tier", "operator": "in", "values": ["a"]},
        {"key": "model", "operator": "in", "values": ["gpt"]},
    ]
    assert existing[0]["values"] == ["eu"]


def test_filters_merge_adds_the_values_sent_for_an_existing_key_and_keeps_the_others():
    existing = [{"key": "region", "operator": "in", "values": ["eu", "us"]}]
    merged = rules.filters_merge(existing=existing, added=[{"key": "region", "values": ["apac", "eu", "apac"]}])
    assert merged == [{"key": "region", "operator": "in", "values": ["eu", "us", "apac"]}]


def test_filters_merge_rejects_changing_the_operator_or_an_empty_values_list():
    existing = [{"key": "region", "operator": "in", "values": ["eu", "us"]}]
    changed = [{"key": "region", "values": ["eu", "us"], "operator": "not_in"}]
    assert "filters[0].operator" in errors_of(rules.filters_merge, existing=existing, added=changed)
    empty = [{"key": "region", "values": []}]
    assert errors_of(rules.filters_merge, existing=existing, added=empty) == {
        "filters[0].values": "must be a non-empty list of strings"
    }


def test_a_complete_filters_list_names_what_it_would_remove():
    """The admin box shows every filter: leaving something out of it is a removal, refused with the reason."""
    existing = [
        {"key": "region", "operator": "in", "values": ["eu", "us"]},
        {"key": "tier", "operator": "in", "values": ["a"]},
    ]
    added = [{"key": "region", "values": ["eu", "apac"]}]
    details = errors_of(rules.filters_merge, existing=existing, added=added, complete=True)
    assert details == {
        "filters[0].values": "cannot remove 'us' from filter 'region'; " + rules.ONLY_ADDED_TO,
        "filters": "cannot remove filter 'tier'; " + rules.ONLY_ADDED_TO,
    }
    whole = [{"key": "region", "values": ["eu", "us", "apac"]}, {"key": "tier", "values": ["a"]}]
    assert rules.filters_merge(existing=existing, added=whole, complete=True) == [
        {"key": "region", "operator": "in", "values": ["eu", "us", "apac"]},
        {"key": "tier", "operator": "in", "values": ["a"]},
    ]


@pytest.mark.parametrize(
    ("request_fields", "path", "message"),
    [
        (
            {"type": "MEDIAN"},
            "aggregation_type",
            "must be one of " + ", ".join(AggregationType.values) + " (got 'MEDIAN')",
        ),
        ({"type": ""}, "aggregation_type", "is required (one of " + ", ".join(AggregationType.values) + ")"),
        ({"type": "SUM"}, "property_name", "is required for SUM (the event property to aggregate) or an expression"),
        ({"type": "SUM", "field": "v", "multiplier": "2"}, "multiplier", "is only allowed for SUM_WITH_MULTIPLIER"),
        ({"type": "SUM_WITH_MULTIPLIER", "field": "v", "multiplier": "-1"}, "multiplier", "must be greater than 0"),
        ({"type": "COUNT", "bucket_size": "HOUR"}, "bucket_size", "is only allowed for SUM and MAX"),
        ({"type": "MAX", "field": "v", "group_by": "g"}, "group_by", "is only allowed for MAX with a bucket_size"),
        ({"type": "COUNT", "expression": "a * 2"}, "expression", "is only allowed for AVG, LATEST, MAX, MIN, SUM"),
    ],
)
def test_aggregation_of_an_ad_hoc_usage_request_names_its_flat_fields(request_fields, path, message):
    """The same rule and messages as a meter's aggregation, under the request's own field names."""
    details = errors_of(rules.aggregation_clean, request_fields, paths=rules.USAGE_REQUEST_PATHS)
    assert details == {path: message}


def test_aggregation_of_an_ad_hoc_usage_request_keeps_every_digit_of_the_multiplier():
    given = {"type": "sum_with_multiplier", "field": "v", "multiplier": Decimal("0.12345678901234567890123456789")}
    cleaned = rules.aggregation_clean(given, paths=rules.USAGE_REQUEST_PATHS)
    assert cleaned == {
        "type": "SUM_WITH_MULTIPLIER",
        "field": "v",
        "expression": "",
        "multiplier": "0.12345678901234567890123456789",
        "bucket_size": "",
        "group_by": "",
    }


# --- reset, units, alerts, metadata, value ---------------------------------------------------------------------


def test_reset_usage_defaults_to_billing_period_and_is_case_insensitive():
    assert rules.reset_usage_clean(None) == "BILLING_PERIOD"
    assert rules.reset_usage_clean("never") == "NEVER"
    assert "reset_usage" in errors_of(rules.reset_usage_clean, "MONTHLY")


def test_units_both_or_neither():
    assert rules.units_clean(singular=" credit ", plural="credits") == ("credit", "credits")
    assert rules.units_clean(singular="", plural=None) == ("", "")
    assert "unit_plural" in errors_of(rules.units_clean, singular="credit", plural="")
    assert "unit_singular" in errors_of(rules.units_clean, singular=None, plural="credits")


def test_alert_settings_are_normalized_with_string_thresholds():
    cleaned = rules.alert_settings_clean(
        {
            "alert_enabled": True,
            "info": {"threshold": 50, "condition": "ABOVE"},
            "warning": {"threshold": "80.0", "condition": "above"},
            "critical": {"threshold": "100", "condition": "above"},
        }
    )
    assert cleaned == {
        "alert_enabled": True,
        "info": {"threshold": "50", "condition": "above"},
        "warning": {"threshold": "80", "condition": "above"},
        "critical": {"threshold": "100", "condition": "above"},
    }
    assert rules.alert_settings_clean(None) == {}


def test_below_alerts_are_ordered_in_reverse():
    settings = {
        "alert_enabled": True,
        "warning": {"threshold": "20", "condition": "below"},
        "critical": {"threshold": "10", "condition": "below"},
    }
    assert rules.alert_settings_clean(settings)["critical"]["threshold"] == "10"
    settings["critical"]["threshold"] = "30"
    assert "alert_settings.warning.threshold" in errors_of(rules.alert_settings_clean, settings)


@pytest.mark.parametrize(
    ("settings", "path"),
    [
        ([], "alert_settings"),
        ({"alert_enabled": True}, "alert_settings.alert_enabled"),
        ({"alert_enabled": "yes", "critical": {"threshold": 1, "condition": "above"}}, "alert_settings.alert_enabled"),
        ({"critical": {"condition": "above"}}, "alert_settings.critical.threshold"),
        ({"critical": {"threshold": "lots", "condition": "above"}}, "alert_settings.critical.threshold"),
        ({"critical": {"threshold": 1}}, "alert_settings.critical.condition"),
        ({"critical": {"threshold": 1, "condition": "over"}}, "alert_settings.critical.condition"),
        ({"critical": 5}, "alert_settings.critical"),
        (
            {"critical": {"threshold": 9, "condition": "above"}, "warning": {"threshold": 5, "condition": "below"}},
            "alert_settings.warning.condition",
        ),
        (
            {"critical": {"threshold": 9, "condition": "above"}, "warning": {"threshold": 10, "condition": "above"}},
            "alert_settings.warning.threshold",
        ),
        (
            {"warning": {"threshold": 5, "condition": "above"}, "info": {"threshold": 6, "condition": "above"}},
            "alert_settings.info.threshold",
        ),
    ],
)
def test_invalid_alert_settings_name_their_path(settings, path):
    assert path in errors_of(rules.alert_settings_clean, settings)


def test_metadata_is_a_string_map_of_at_most_50_keys():
    assert rules.metadata_clean({"plan": "pro"}) == {"plan": "pro"}
    assert rules.metadata_clean(None) == {}
    assert "metadata" in errors_of(rules.metadata_clean, {f"k{i}": "v" for i in range(51)})
    assert "metadata.seats" in errors_of(rules.metadata_clean, {"seats": 5})
    assert "metadata" in errors_of(rules.metadata_clean, ["a"])


def test_value_only_for_static_and_config_features():
    assert rules.feature_value_clean("5 seats", type="static") == "5 seats"
    assert rules.feature_value_clean("", type="metered") == ""
    assert "value" in errors_of(rules.feature_value_clean, "on", type="boolean")


# --- whole objects --------------------------------------------------------------------------------------------


def test_meter_definition_collects_errors_of_every_part():
    details = errors_of(
        rules.meter_definition_clean,
        {"event_name": "", "aggregation": {"type": "SUM"}, "filters": [{"key": "a"}], "reset_usage": "x"},
    )
    assert set(details) == {"name", "event_name", "aggregation.field", "filters[0].values", "reset_usage"}


def test_meter_definition_requires_an_aggregation():
    assert "aggregation" in errors_of(rules.meter_definition_clean, {"name": "n", "event_name": "e"})


def test_metered_feature_needs_exactly_one_of_meter_id_and_meter():
    base = {"name": "API calls", "type": "metered"}
    assert "meter_id" in errors_of(rules.feature_definition_clean, base)
    both = {**base, "meter_id": "meter_1", "meter": {"event_name": "e", "aggregation": {"type": "COUNT"}}}
    assert "meter" in errors_of(rules.feature_definition_clean, both)
    inline = rules.feature_definition_clean({**base, "meter": {"event_name": "e", "aggregation": "count"}})
    assert inline["meter"]["name"] == "API calls"
    assert inline["meter"]["aggregation"]["type"] == "COUNT"


def test_inline_meter_errors_are_nested_under_meter():
    data = {"name": "T", "type": "metered", "meter": {"event_name": " ", "aggregation": {"type": "SUM"}}}
    assert set(errors_of(rules.feature_definition_clean, data)) == {"meter.event_name", "meter.aggregation.field"}


def test_other_feature_types_carry_no_meter():
    data = {"name": "SSO", "type": "boolean", "meter_id": "meter_1"}
    assert "meter_id" in errors_of(rules.feature_definition_clean, data)
    assert rules.feature_definition_clean({"name": "SSO", "type": "BOOLEAN"})["meter"] is None


def test_meter_changes_after_publishing_only_rename_and_add_filters():
    current = rules.meter_definition_clean(
        {"name": "m", "event_name": "e", "aggregation": {"type": "COUNT"}, "filters": [{"key": "r", "values": ["eu"]}]}
    )
    changed = rules.meter_changes_clean(
        current=current,
        status="published",
        data={
            "name": "m2",
            "event_name": "e",
            "aggregation": {"type": "count"},
            "filters": [{"key": "t", "values": ["a"]}],
        },
    )
    assert changed["name"] == "m2"
    assert [item["key"] for item in changed["filters"]] == ["r", "t"]
    details = errors_of(
        rules.meter_changes_clean,
        current=current,
        status="published",
        data={"event_name": "E", "aggregation": {"type": "SUM", "field": "x"}, "reset_usage": "NEVER"},
    )
    assert set(details) == {"event_name", "aggregation.type", "aggregation.field", "reset_usage"}


def test_draft_meters_may_change_anything():
    current = rules.meter_definition_clean({"name": "m", "event_name": "e", "aggregation": {"type": "COUNT"}})
    changed = rules.meter_changes_clean(
        current=current, status="draft", data={"aggregation": {"type": "SUM", "field": "x"}}
    )
    assert changed["aggregation"]["type"] == "SUM"


def test_fingerprint_ignores_filter_order_and_names_but_not_definitions():
    one = rules.meter_definition_clean(
        {
            "name": "a",
            "event_name": "e",
            "aggregation": {"type": "SUM", "field": "x"},
            "filters": [{"key": "r", "values": ["eu", "us"]}, {"key": "m", "values": ["g"]}],
        }
    )
    two = {
        **one,
        "name": "b",
        "filters": [
            {"key": "m", "values": ["g"], "operator": "in"},
            {"key": "r", "values": ["us", "eu"], "operator": "in"},
        ],
    }
    assert rules.meter_fingerprint(one) == rules.meter_fingerprint(two)
    other = {**one, "event_name": "E"}
    assert rules.meter_fingerprint(one) != rules.meter_fingerprint(other)


# --- display --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, "1 credit"),
        (Decimal("1.00"), "1 credit"),
        (0, "0 credits"),
        ("2.50", "2.5 credits"),
        (Decimal("1234567.125"), "1,234,567.125 credits"),
        (-1, "-1 credits"),
        (0.1, "0.1 credits"),
        (None, "—"),
    ],
)
def test_format_quantity(value, expected):
    assert format_quantity(value, unit_singular="credit", unit_plural="credits") == expected


def test_format_quantity_without_units_is_the_number():
    assert format_quantity(Decimal("1E+3"), unit_singular="", unit_plural="") == "1,000"


# --- names that differ only by case, separators or whitespace ------------------------------------------------


def test_similar_names_ignore_case_separators_and_whitespace():
    candidates = ["api.calls", "API_CALLS", "api calls", "api-calls", "api/calls", "api:calls", "api.call", "apicalls2"]
    assert rules.similar_names("Api.Calls", candidates) == [
        "API_CALLS",
        "api calls",
        "api-calls",
        "api.calls",
        "api/calls",
        "api:calls",
    ]
    assert rules.similar_names("api.calls", ["api.calls"]) == []
    assert rules.name_likeness_key(" LLM.Request_v2 ") == "llmrequestv2"
