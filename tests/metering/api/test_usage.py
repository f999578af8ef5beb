"""Usage, validate, lookup and customer usage endpoints (SPEC §6.2, §6.5, §7): wire shapes and exact numbers."""

import datetime as dt
import json

import pytest

from tests.catalog.factories import FeatureFactory, MeterFactory
from tests.metering.factories import CustomerFactory
from tests.metering.usage.helpers import send, stored, usage_statements

pytestmark = pytest.mark.django_db

JAN = {"start_time": "2025-01-01T00:00:00Z", "end_time": "2025-02-01T00:00:00Z"}


def test_adhoc_usage_returns_exact_json_numbers(api, environment):
    for _ in range(10):
        send(environment, event_name="calls", timestamp="2025-01-02T10:00", properties='{"v": 0.1}')
    send(environment, event_name="calls", timestamp="2025-01-03T10:00", properties='{"v": 12345678901234567890.12}')

    response = api.post(
        "/v1/events/usage",
        {"event_name": "calls", "aggregation_type": "sum", "property_name": "v", "window_size": "DAY", **JAN},
    )

    assert response.status_code == 200
    assert '"value":12345678901234567891.12,' in response.content.decode()
    body = json.loads(response.content, parse_float=str)
    assert body["event_name"] == "calls" and body["type"] == "SUM"
    assert body["value"] == "12345678901234567891.12"
    assert body["results"] == [
        {"window_size": "2025-01-02T00:00:00Z", "value": 1},
        {"window_size": "2025-01-03T00:00:00Z", "value": "12345678901234567890.12"},
    ]


def test_adhoc_usage_with_filters_customer_multiplier_and_group_by(api, environment):
    for customer, region, value in [("a", "eu", 2), ("a", "us", 3), ("b", "eu", 5)]:
        send(
            environment,
            event_name="calls",
            customer=customer,
            timestamp="2025-01-02T10:00",
            properties={"v": value, "region": region},
        )
    body = {
        "event_name": "calls",
        "aggregation_type": "SUM_WITH_MULTIPLIER",
        "property_name": "v",
        "multiplier": "1.5",
        "filters": {"region": ["eu"]},
        **JAN,
    }

    assert api.post("/v1/events/usage", body).json()["value"] == 10.5
    assert api.post("/v1/events/usage", {**body, "external_customer_id": "a"}).json()["value"] == 3
    grouped = {
        "event_name": "calls",
        "aggregation_type": "MAX",
        "property_name": "v",
        "bucket_size": "DAY",
        "group_by": "region",
        **JAN,
    }
    assert api.post("/v1/events/usage", grouped).json()["value"] == 8


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"aggregation_type": "COUNT"}, "event_name"),
        ({"event_name": "x", "aggregation_type": "MEDIAN"}, "aggregation_type"),
        ({"event_name": "x", "aggregation_type": "SUM"}, "property_name"),
        ({"event_name": "x", "aggregation_type": "SUM", "property_name": "v", "multiplier": "2"}, "multiplier"),
        (
            {"event_name": "x", "aggregation_type": "SUM_WITH_MULTIPLIER", "property_name": "v", "multiplier": "-1"},
            "multiplier",
        ),
        ({"event_name": "x", "aggregation_type": "COUNT", "bucket_size": "HOUR"}, "bucket_size"),
        ({"event_name": "x", "aggregation_type": "MAX", "property_name": "v", "group_by": "g"}, "group_by"),
        ({"event_name": "x", "aggregation_type": "COUNT", "window_size": "YEAR"}, "window_size"),
        ({"event_name": "x", "aggregation_type": "COUNT", "timezone": "Mars/Base"}, "timezone"),
        (
            {
                "event_name": "x",
                "aggregation_type": "COUNT",
                "start_time": "2025-02-01T00:00:00Z",
                "end_time": "2025-01-01T00:00:00Z",
            },
            "end_time",
        ),
        ({"event_name": "x", "aggregation_type": "COUNT", "start_time": "yesterday"}, "start_time"),
        ({"event_name": "x", "aggregation_type": "COUNT", "filters": {"k": []}}, "filters.k"),
    ],
)
def test_adhoc_usage_rejects_bad_input_with_the_field_path(api, body, path):
    response = api.post("/v1/events/usage", body)

    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert path in response.json()["details"]


@pytest.mark.parametrize(
    ("body", "details"),
    [
        (
            {"event_name": " ", "aggregation_type": "SUM"},
            {
                "event_name": "is required",
                "property_name": "is required for SUM (the event property to aggregate) or an expression",
            },
        ),
        (
            {"event_name": "x", "aggregation_type": "SUM_WITH_MULTIPLIER", "property_name": "v", "multiplier": "0"},
            {"multiplier": "must be greater than 0"},
        ),
        (
            {"event_name": "x", "aggregation_type": "SUM_WITH_MULTIPLIER", "property_name": "v"},
            {"multiplier": "is required for SUM_WITH_MULTIPLIER (a decimal greater than 0)"},
        ),
        (
            {"event_name": "x", "aggregation_type": "COUNT", "bucket_size": "DAY"},
            {"bucket_size": "is only allowed for SUM and MAX"},
        ),
        (
            {"event_name": "x", "aggregation_type": "COUNT", "filters": {"region": ["eu", 7]}},
            None,  # pydantic rejects a non-string value before the rule runs
        ),
        (
            {"event_name": "x", "aggregation_type": "COUNT", "filters": {"region": ["v"] * 1_001}},
            {"filters.region": "must have at most 1,000 values (got 1,001)"},
        ),
        (
            {"event_name": "x", "aggregation_type": "COUNT", "filters": {"region": ["eu", "x" * 1_025]}},
            {"filters.region[1]": "must be at most 1,024 characters (got 1,025)"},
        ),
    ],
)
def test_adhoc_usage_validates_with_the_meter_rules_and_messages(api, body, details):
    """One aggregation rule (catalog.rules.aggregation_clean), reported under the request's own field names; the
    filter limits of meters (SPEC §2.1) bound an ad-hoc query too."""
    response = api.post("/v1/events/usage", body)

    assert response.status_code == 400
    if details is not None:
        assert response.json()["details"] == details


def test_adhoc_usage_keeps_every_digit_of_a_multiplier_sent_as_a_json_number(api, environment):
    send(environment, event_name="calls", timestamp="2025-01-02T10:00", properties={"v": 3})
    body = (
        '{"event_name": "calls", "aggregation_type": "SUM_WITH_MULTIPLIER", "property_name": "v", '
        '"multiplier": 1.0000000000000000000000000000001, '
        '"start_time": "2025-01-01T00:00:00Z", "end_time": "2025-02-01T00:00:00Z"}'
    )

    response = api.post("/v1/events/usage", body)

    assert response.status_code == 200
    assert '"value":3.0000000000000000000000000000003,' in response.content.decode()


def test_validate_rejects_a_deeply_nested_body_with_the_envelope(api):
    response = api.post("/v1/events/validate", '{"event_name": "a", "properties": ' + "[" * 10_000 + "]" * 10_000 + "}")

    assert response.status_code == 400
    assert response.json()["details"] == {"body": "is nested too deeply"}


def test_adhoc_usage_defaults_to_the_last_seven_days(api, environment):
    from django.utils import timezone

    now = timezone.now()
    for days in (1, 6, 8):
        send(environment, event_name="calls", timestamp=(now - timezone.timedelta(days=days)).isoformat())

    assert api.post("/v1/events/usage", {"event_name": "calls", "aggregation_type": "COUNT"}).json()["value"] == 2


def test_meter_usage_applies_the_meter_and_its_reset(api, environment, other_api):
    meter = MeterFactory(
        environment=environment,
        event_name="calls",
        aggregation_type="SUM",
        aggregation_field="v",
        filters=[{"key": "region", "operator": "in", "values": ["eu"]}],
        reset_usage="NEVER",
    )
    send(environment, event_name="calls", timestamp="2024-12-01T00:00", properties={"v": 1, "region": "eu"})
    send(environment, event_name="calls", timestamp="2025-01-02T00:00", properties={"v": 2, "region": "eu"})
    send(environment, event_name="calls", timestamp="2025-01-02T00:00", properties={"v": 4, "region": "us"})

    response = api.post("/v1/events/usage/meter", {"meter_id": meter.public_id, "window_size": "MONTH", **JAN})

    assert response.status_code == 200
    assert response.json() == {
        "event_name": "calls",
        "type": "SUM",
        "value": 3,
        "meter_id": meter.public_id,
        "results": [{"window_size": "2025-01-01T00:00:00Z", "value": 2}],
    }
    assert other_api.post("/v1/events/usage/meter", {"meter_id": meter.public_id}).status_code == 404


def test_lookup_returns_event_status_and_debug_tracker(api, environment, other_api):
    customer = CustomerFactory(environment=environment, external_id="acme")
    meter = MeterFactory(
        environment=environment, event_name="llm", aggregation_type="SUM", aggregation_expression="input + output"
    )
    feature = FeatureFactory(environment=environment, meter=meter)
    send(
        environment,
        event_name="llm",
        customer="acme",
        event_id="e1",
        timestamp="2025-01-02T00:00",
        properties='{"input": 0.1, "output": "0.2"}',
    )

    response = api.get("/v1/events/lookup", {"id": "e1"})

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "processed"
    assert body["event"]["id"] == "e1" and body["event"]["customer_id"] == customer.public_id
    tracker = body["debug_tracker"]
    assert tracker["customer_lookup"] == {
        "found": True,
        "external_customer_id": "acme",
        "customer_id": customer.public_id,
    }
    assert tracker["meters"][0]["matched"] is True
    assert '"quantity":0.3' in response.content.decode()
    assert tracker["features"][0]["feature_id"] == feature.public_id
    assert api.get("/v1/events/lookup", {"id": "nope"}).status_code == 404
    assert other_api.get("/v1/events/lookup", {"id": "e1"}).status_code == 404
    assert api.get("/v1/events/lookup").status_code == 400


def test_lookup_narrows_by_customer_and_time_window_when_given(api, environment):
    send(environment, event_name="llm", customer="acme", event_id="e1", timestamp="2025-01-02T00:00")

    def status(**params) -> int:
        return api.get("/v1/events/lookup", {"id": "e1", **params}).status_code

    assert status(external_customer_id="acme") == 200
    assert status(external_customer_id="globex") == 404
    assert status(start_time="2025-01-02T00:00:00Z", end_time="2025-01-02T00:00:01Z") == 200
    assert status(start_time="2025-01-02T00:00:01Z") == 404
    assert status(end_time="2025-01-02T00:00:00Z") == 404


def test_validate_explains_without_storing(api, environment):
    MeterFactory(environment=environment, event_name="api.calls", name="Calls")

    response = api.post(
        "/v1/events/validate", {"event_name": "API.calls", "external_customer_id": "x", "properties": {"n": 1}}
    )

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "unmatched"
    assert body["debug_tracker"]["near_misses"][0]["expected"] == "api.calls"
    assert stored() == []


def test_validate_rejects_invalid_events_and_bad_json(api):
    response = api.post("/v1/events/validate", {"event_name": "", "external_customer_id": "x"})
    assert response.status_code == 400 and "event_name" in response.json()["details"]
    assert api.post("/v1/events/validate", "{not json").status_code == 400


def test_customer_usage_lists_every_metered_feature_with_units(api, environment, django_assert_max_num_queries):
    from django.utils import timezone

    customer = CustomerFactory(
        environment=environment, external_id="acme", billing_anchor=timezone.now() - timezone.timedelta(days=3)
    )
    meter = MeterFactory(environment=environment, event_name="calls")
    FeatureFactory(environment=environment, meter=meter, name="Calls", unit_singular="call", unit_plural="calls")
    send(environment, event_name="calls", customer="acme", timestamp=timezone.now().isoformat())

    with django_assert_max_num_queries(5 + usage_statements()):
        response = api.get(f"/v1/customers/{customer.public_id}/usage")

    assert response.status_code == 200
    body = response.json()
    assert body["customer_id"] == customer.public_id
    assert body["period"]["start_time"].endswith("Z")
    (row,) = body["features"]
    assert (row["feature"]["name"], row["current_usage"], row["unit"]) == ("Calls", 1, "call")
    assert row["next_usage_reset_at"] == body["period"]["end_time"]
    assert api.get("/v1/customers/cust_nope/usage").status_code == 404


def test_usage_endpoints_need_an_api_key(anonymous_api):
    assert anonymous_api.post("/v1/events/usage", {}).status_code == 401
    assert anonymous_api.get("/v1/events/lookup", {"id": "x"}).status_code == 401


def test_usage_summary_by_id_or_lookup_key_and_for_chosen_features(api, environment, other_environment):
    from django.utils import timezone

    now = timezone.now()
    customer = CustomerFactory(environment=environment, external_id="acme", billing_anchor=now - dt.timedelta(days=3))
    CustomerFactory(environment=other_environment, external_id="acme")
    calls_meter = MeterFactory(environment=environment, event_name="calls")
    calls = FeatureFactory(environment=environment, name="Calls", lookup_key="calls", meter=calls_meter)
    tokens = FeatureFactory(
        environment=environment,
        name="Tokens",
        lookup_key="tokens",
        meter=MeterFactory(environment=environment, event_name="llm", aggregation_type="SUM", aggregation_field="n"),
    )
    for _ in range(3):
        send(environment, event_name="calls", customer="acme", timestamp=(now - dt.timedelta(hours=1)).isoformat())
    send(environment, event_name="llm", customer="acme", timestamp=now.isoformat(), properties='{"n": 0.125}')
    before_the_period = (now - dt.timedelta(days=4)).isoformat()
    send(environment, event_name="llm", customer="acme", timestamp=before_the_period, properties={"n": 1000})
    send(environment, event_name="calls", customer="other", timestamp=now.isoformat())

    body = api.get("/v1/customers/usage", {"customer_id": customer.public_id}).json()
    assert body["customer_id"] == customer.public_id
    assert body["period"]["period"] == "MONTHLY"
    assert [(row["feature"]["id"], row["current_usage"]) for row in body["features"]] == [
        (calls.public_id, "3"),
        (tokens.public_id, "0.125"),
    ]
    by_key = api.get("/v1/customers/usage", {"customer_lookup_key": "acme", "feature_ids": tokens.public_id}).json()
    assert [(row["feature"]["lookup_key"], row["current_usage"]) for row in by_key["features"]] == [("tokens", "0.125")]
    both = api.get(
        "/v1/customers/usage",
        {"customer_lookup_key": "acme", "feature_ids": calls.public_id, "feature_lookup_keys": "tokens"},
    ).json()
    assert len(both["features"]) == 2
    listed = api.get("/v1/customers/usage?customer_lookup_key=acme&feature_lookup_keys=calls,tokens").json()
    assert [row["current_usage"] for row in listed["features"]] == ["3", "0.125"]


@pytest.mark.parametrize(
    ("params", "status", "path"),
    [
        ({}, 400, "customer_id"),
        ({"customer_id": "cust_x", "customer_lookup_key": "acme"}, 400, "customer_id"),
        ({"customer_lookup_key": "nobody"}, 404, "external_id"),
        ({"customer_id": "cust_nope"}, 404, "id"),
        ({"customer_lookup_key": "acme", "feature_ids": "feat_nope"}, 400, "feature_ids"),
        ({"customer_lookup_key": "acme", "feature_lookup_keys": "nope"}, 400, "feature_lookup_keys"),
    ],
)
def test_usage_summary_rejects_unknown_customers_and_features(api, environment, params, status, path):
    CustomerFactory(environment=environment, external_id="acme")
    response = api.get("/v1/customers/usage", params)
    assert response.status_code == status
    assert path in response.json()["details"]


def _analytics(api, body: dict) -> list[dict]:
    response = api.post("/v1/events/analytics", {**JAN, **body})
    assert response.status_code == 200, response.json()
    return response.json()["items"]


@pytest.fixture
def tokens_feature(environment):
    meter = MeterFactory(environment=environment, event_name="llm", aggregation_type="SUM", aggregation_field="tokens")
    units = {"unit_singular": "token", "unit_plural": "tokens"}
    feature = FeatureFactory(environment=environment, name="Tokens", meter=meter, **units)
    for day, customer, properties in [
        ("2025-01-02T10:00", "acme", '{"tokens": 100, "model": "small", "region": "eu"}'),
        ("2025-01-02T11:00", "acme", '{"tokens": 0.5, "model": "large", "region": "eu"}'),
        ("2025-01-03T09:00", "acme", '{"tokens": 40, "model": "small", "region": "us"}'),
        ("2025-01-03T09:30", "acme", '{"tokens": 7, "region": "us"}'),
        ("2025-01-03T09:45", "acme", '{"tokens": 3, "model": null, "region": "us"}'),
        ("2025-01-04T00:00", "globex", '{"tokens": 1000, "model": "small", "region": "eu"}'),
        ("2024-12-31T23:59", "acme", '{"tokens": 5000, "model": "small", "region": "eu"}'),
    ]:
        send(environment, event_name="llm", customer=customer, timestamp=day, properties=properties)
    return feature


def test_analytics_total_and_points_per_window_match_meter_usage(api, tokens_feature):
    (item,) = _analytics(api, {"external_customer_id": "acme", "window_size": "DAY"})
    assert (item["feature_id"], item["name"], item["event_name"]) == (tokens_feature.public_id, "Tokens", "llm")
    assert (item["aggregation_type"], item["meter_id"]) == ("SUM", tokens_feature.meter.public_id)
    assert (item["total_usage"], item["unit"], item["unit_plural"], item["properties"]) == (
        "150.5",
        "token",
        "tokens",
        {},
    )
    assert item["points"] == [
        {"timestamp": "2025-01-02T00:00:00Z", "usage": "100.5"},
        {"timestamp": "2025-01-03T00:00:00Z", "usage": "50"},
    ]
    meter_usage = api.post(
        "/v1/events/usage/meter",
        {"meter_id": tokens_feature.meter.public_id, "external_customer_id": "acme", "window_size": "DAY", **JAN},
    ).json()
    assert meter_usage["value"] == 150.5
    assert [window["value"] for window in meter_usage["results"]] == [100.5, 50]
    (everyone,) = _analytics(api, {})
    assert (everyone["total_usage"], everyone["points"], everyone["window_size"]) == ("1150.5", [], None)


def test_analytics_splits_by_properties_with_one_group_for_events_without_the_property(api, tokens_feature):
    items = _analytics(api, {"external_customer_id": "acme", "group_by": ["properties.model"], "window_size": "DAY"})
    assert [(item["properties"], item["total_usage"]) for item in items] == [
        ({"model": "large"}, "0.5"),
        ({"model": "small"}, "140"),
        ({}, "10"),  # missing and null: one group of its own
    ]
    assert items[1]["points"] == [
        {"timestamp": "2025-01-02T00:00:00Z", "usage": "100"},
        {"timestamp": "2025-01-03T00:00:00Z", "usage": "40"},
    ]
    items = _analytics(api, {"group_by": ["feature_id", "properties.region", "properties.model"]})
    assert [(item["properties"], item["total_usage"]) for item in items] == [
        ({"region": "eu", "model": "large"}, "0.5"),
        ({"region": "eu", "model": "small"}, "1100"),
        ({"region": "us", "model": "small"}, "40"),
        ({"region": "us"}, "10"),
    ]


def test_analytics_property_filters_feature_ids_and_expand(api, environment, tokens_feature):
    other = FeatureFactory(
        environment=environment, name="Calls", meter=MeterFactory(environment=environment, event_name="llm")
    )
    items = _analytics(api, {"property_filters": {"region": ["eu"]}, "group_by": ["properties.model"]})
    assert [(item["name"], item["properties"], item["total_usage"]) for item in items] == [
        ("Calls", {"model": "large"}, "1"),
        ("Calls", {"model": "small"}, "2"),
        ("Tokens", {"model": "large"}, "0.5"),
        ("Tokens", {"model": "small"}, "1100"),
    ]
    (item,) = _analytics(api, {"feature_ids": [other.public_id], "expand": ["feature", "meter", "price"]})
    assert item["total_usage"] == "6"
    assert (item["feature"]["id"], item["meter"]["id"]) == (other.public_id, other.meter.public_id)
    assert "feature" not in _analytics(api, {"feature_ids": [other.public_id]})[0]


def test_analytics_honours_a_meter_that_never_resets(api, environment):
    meter = MeterFactory(
        environment=environment, event_name="seats", aggregation_type="SUM", aggregation_field="n", reset_usage="NEVER"
    )
    FeatureFactory(environment=environment, meter=meter)
    send(environment, event_name="seats", timestamp="2024-11-01T00:00", properties={"n": 3, "team": "a"})
    send(environment, event_name="seats", timestamp="2025-01-10T00:00", properties={"n": 2, "team": "b"})
    items = _analytics(api, {"group_by": ["properties.team"]})
    assert [(item["properties"], item["total_usage"]) for item in items] == [({"team": "a"}, "3"), ({"team": "b"}, "2")]


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"group_by": ["source"]}, "group_by[0]"),
        ({"group_by": ["properties."]}, "group_by[0]"),
        ({"sources": ["api"]}, "sources"),
        ({"property_filters": {"region": []}}, "property_filters"),
        ({"window_size": "FORTNIGHT"}, "window_size"),
        ({"feature_ids": ["feat_nope"]}, "feature_ids"),
        ({"start_time": "2025-02-01T00:00:00Z", "end_time": "2025-01-01T00:00:00Z"}, "end_time"),
    ],
)
def test_analytics_rejects_what_it_cannot_answer(api, tokens_feature, body, path):
    response = api.post("/v1/events/analytics", body)
    assert response.status_code == 400
    assert path in response.json()["details"]
