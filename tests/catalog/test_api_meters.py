import re

import pytest

from catalog.models import Meter, MeterStatus
from tests.catalog.factories import MeterFactory

pytestmark = pytest.mark.django_db

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")

TOKENS = {
    "name": "Tokens",
    "event_name": "llm.request",
    "aggregation": {"type": "sum_with_multiplier", "field": "tokens", "multiplier": 0.5},
    "filters": [{"key": "model", "values": ["gpt-4"]}],
}


def test_create_meter_returns_201_in_the_flexprice_shape(api, environment):
    response = api.post("/v1/meters", TOKENS)
    assert response.status_code == 201
    body = response.json()
    assert body["id"].startswith("meter_")
    assert body["environment_id"] == environment.public_id
    assert isinstance(body["tenant_id"], str)
    assert body["event_name"] == "llm.request"
    assert body["aggregation"] == {
        "type": "SUM_WITH_MULTIPLIER",
        "field": "tokens",
        "expression": None,
        "multiplier": "0.5",
        "bucket_size": None,
        "group_by": None,
    }
    assert body["filters"] == [{"key": "model", "operator": "in", "values": ["gpt-4"]}]
    assert body["reset_usage"] == "BILLING_PERIOD"
    assert body["status"] == "published"
    assert RFC3339_UTC.match(body["created_at"])
    assert RFC3339_UTC.match(body["updated_at"])


def test_multiplier_travels_as_a_string(api):
    body = api.post("/v1/meters", {**TOKENS, "aggregation": {**TOKENS["aggregation"], "multiplier": "1.50"}}).json()
    assert body["aggregation"]["multiplier"] == "1.5"
    fetched = api.get(f"/v1/meters/{body['id']}").json()
    assert isinstance(fetched["aggregation"]["multiplier"], str)


def test_invalid_meter_is_400_naming_every_field(api):
    response = api.post(
        "/v1/meters",
        {"event_name": "", "aggregation": {"type": "SUM", "multiplier": "2"}, "filters": [{"key": "a", "values": [1]}]},
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "validation_error"
    assert set(body["details"]) == {
        "name",
        "event_name",
        "aggregation.field",
        "aggregation.multiplier",
        "filters[0].values[0]",
    }


def test_wrong_json_types_are_400_with_paths(api):
    response = api.post(
        "/v1/meters", {"name": "x", "event_name": "e", "aggregation": {"type": ["COUNT"]}, "filters": {}}
    )
    assert response.status_code == 400
    assert {"aggregation.type", "filters"} <= set(response.json()["details"])


def test_empty_body_is_400_not_500(api):
    response = api.client.post("/v1/meters", content_type="application/json", headers={"x-api-key": api.raw_key})
    assert response.status_code == 400
    assert "event_name" in response.json()["details"]


@pytest.mark.parametrize("body", ['"x"', "[]", "123", "null"])
def test_a_body_that_is_not_an_object_is_400(api, body):
    response = api.post("/v1/meters", body)
    assert response.status_code == 400
    assert response.json()["details"] == {"body": "must be a JSON object"}


def test_put_with_a_non_object_body_changes_nothing(api):
    meter = api.post("/v1/meters", TOKENS).json()
    response = api.client.put(
        f"/v1/meters/{meter['id']}", "[1]", content_type="application/json", headers={"x-api-key": api.raw_key}
    )
    assert response.status_code == 400
    assert response.json()["details"] == {"body": "must be a JSON object"}


def test_duplicate_published_meter_is_409(api):
    first = api.post("/v1/meters", TOKENS).json()
    response = api.post("/v1/meters", {**TOKENS, "name": "Again"})
    assert response.status_code == 409
    assert response.json()["code"] == "already_exists"
    assert first["id"] in response.json()["message"]


def test_requires_an_api_key(anonymous_api):
    assert anonymous_api.post("/v1/meters", TOKENS).status_code == 401
    assert anonymous_api.get("/v1/meters").status_code == 401


def test_list_paginates_and_filters(api, environment):
    for index in range(3):
        MeterFactory(environment=environment, event_name="a" if index else "b")
    MeterFactory(environment=environment, event_name="a", status=MeterStatus.ARCHIVED)
    MeterFactory(environment=environment, status=MeterStatus.DRAFT)
    body = api.get("/v1/meters", {"limit": 2}).json()
    assert body["pagination"] == {"total": 4, "limit": 2, "offset": 0}
    assert len(body["items"]) == 2
    assert api.get("/v1/meters", {"limit": 2, "offset": 2}).json()["pagination"]["offset"] == 2
    assert api.get("/v1/meters", {"event_name": "a"}).json()["pagination"]["total"] == 3
    assert api.get("/v1/meters", {"status": "archived"}).json()["pagination"]["total"] == 1
    assert api.get("/v1/meters", {"status": "DRAFT"}).json()["pagination"]["total"] == 1


def test_list_rejects_bad_parameters(api):
    assert "limit" in api.get("/v1/meters", {"limit": 101}).json()["details"]
    assert "status" in api.get("/v1/meters", {"status": "live"}).json()["details"]


def test_list_runs_a_constant_number_of_queries(api, environment, django_assert_max_num_queries):
    for _ in range(20):
        MeterFactory(environment=environment)
    with django_assert_max_num_queries(4):
        assert len(api.get("/v1/meters").json()["items"]) == 20


def test_cross_environment_access_is_404_and_never_listed(api, other_api, other_environment):
    foreign = MeterFactory(environment=other_environment)
    assert api.get(f"/v1/meters/{foreign.public_id}").status_code == 404
    assert api.put(f"/v1/meters/{foreign.public_id}", {"name": "mine"}).status_code == 404
    assert api.delete(f"/v1/meters/{foreign.public_id}").status_code == 404
    assert api.post(f"/v1/meters/{foreign.public_id}/disable").status_code == 404
    assert api.get("/v1/meters").json()["items"] == []
    foreign.refresh_from_db()
    assert (foreign.name, foreign.status) != ("mine", MeterStatus.ARCHIVED)
    assert other_api.get(f"/v1/meters/{foreign.public_id}").status_code == 200


def test_unknown_meter_is_404_envelope(api):
    response = api.get("/v1/meters/meter_nope")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_put_renames_and_merges_filters_additively(api):
    meter = api.post("/v1/meters", TOKENS).json()
    response = api.put(
        f"/v1/meters/{meter['id']}", {"name": "Renamed", "filters": [{"key": "region", "values": ["eu"]}]}
    )
    assert response.status_code == 200
    assert response.json()["name"] == "Renamed"
    assert [item["key"] for item in response.json()["filters"]] == ["model", "region"]
    response = api.put(f"/v1/meters/{meter['id']}", {"filters": [{"key": "model", "values": ["gpt-4", "gpt-5"]}]})
    assert response.json()["filters"][0]["values"] == ["gpt-4", "gpt-5"]


def test_put_adds_the_values_sent_for_an_existing_key_and_removes_nothing(api):
    """Flexprice merges: values left out are kept, values sent are added, duplicates are ignored (SPEC §6.3)."""
    meter = api.post("/v1/meters", {**TOKENS, "filters": [{"key": "model", "values": ["gpt-4", "gpt-4o"]}]}).json()
    response = api.put(f"/v1/meters/{meter['id']}", {"filters": [{"key": "model", "values": ["gpt-5", "gpt-4o"]}]})
    assert response.status_code == 200, response.content
    assert response.json()["filters"] == [{"key": "model", "operator": "in", "values": ["gpt-4", "gpt-4o", "gpt-5"]}]
    response = api.put(f"/v1/meters/{meter['id']}", {"filters": [{"key": "region", "values": ["eu"]}]})
    assert response.json()["filters"] == [
        {"key": "model", "operator": "in", "values": ["gpt-4", "gpt-4o", "gpt-5"]},
        {"key": "region", "operator": "in", "values": ["eu"]},
    ]
    stored = api.get(f"/v1/meters/{meter['id']}").json()["filters"]
    assert stored == response.json()["filters"]


@pytest.mark.parametrize(
    ("sent", "path"),
    [
        ({"key": "model", "values": []}, "filters[0].values"),
        ({"key": "model", "values": ["gpt-5"], "operator": "not_in"}, "filters[0].operator"),
    ],
)
def test_put_refuses_an_empty_values_list_or_a_changed_operator(api, sent, path):
    meter = api.post("/v1/meters", TOKENS).json()
    response = api.put(f"/v1/meters/{meter['id']}", {"filters": [sent]})
    assert response.status_code == 400
    assert list(response.json()["details"]) == [path]
    assert api.get(f"/v1/meters/{meter['id']}").json()["filters"] == [
        {"key": "model", "operator": "in", "values": ["gpt-4"]}
    ]


def test_filters_are_bounded_in_values_and_value_length(api):
    many = {**TOKENS, "filters": [{"key": "model", "values": [f"m{n}" for n in range(1001)]}]}
    response = api.post("/v1/meters", many)
    assert response.status_code == 400
    assert response.json()["details"] == {"filters[0].values": "must have at most 1,000 values (got 1,001)"}
    long = {**TOKENS, "filters": [{"key": "model", "values": ["ok", "x" * 1025]}]}
    response = api.post("/v1/meters", long)
    assert response.status_code == 400
    assert response.json()["details"] == {"filters[0].values[1]": "must be at most 1,024 characters (got 1,025)"}
    at_the_bounds = {**TOKENS, "filters": [{"key": "model", "values": [f"{n:04}" + "x" * 1020 for n in range(1000)]}]}
    assert api.post("/v1/meters", at_the_bounds).status_code == 201


def test_a_merge_may_not_grow_a_filter_past_the_bound(api):
    meter = api.post("/v1/meters", {**TOKENS, "filters": [{"key": "model", "values": [str(n) for n in range(990)]}]})
    meter_id = meter.json()["id"]
    response = api.put(
        f"/v1/meters/{meter_id}", {"filters": [{"key": "model", "values": [f"new{n}" for n in range(11)]}]}
    )
    assert response.status_code == 400
    assert response.json()["details"] == {"filters[0].values": "filter 'model' would hold 1,001 values; at most 1,000"}
    response = api.put(
        f"/v1/meters/{meter_id}", {"filters": [{"key": "model", "values": [f"new{n}" for n in range(10)]}]}
    )
    assert response.status_code == 200
    assert len(response.json()["filters"][0]["values"]) == 1000


def test_put_cannot_change_immutable_fields_but_may_resend_them(api):
    meter = api.post("/v1/meters", TOKENS).json()
    same = api.put(f"/v1/meters/{meter['id']}", {**TOKENS, "name": "Same definition"})
    assert same.status_code == 200
    response = api.put(
        f"/v1/meters/{meter['id']}",
        {"event_name": "llm.other", "aggregation": {"type": "COUNT"}, "reset_usage": "NEVER"},
    )
    assert response.status_code == 400
    assert {"event_name", "aggregation.type", "reset_usage"} <= set(response.json()["details"])
    assert api.get(f"/v1/meters/{meter['id']}").json()["event_name"] == "llm.request"


def test_disable_and_delete_archive_the_meter(api):
    one = api.post("/v1/meters", TOKENS).json()
    two = api.post("/v1/meters", {**TOKENS, "aggregation": {"type": "COUNT"}}).json()
    disabled = api.post(f"/v1/meters/{one['id']}/disable")
    deleted = api.delete(f"/v1/meters/{two['id']}")
    assert (disabled.status_code, disabled.json()["status"]) == (200, "archived")
    assert (deleted.status_code, deleted.json()["status"]) == (200, "archived")
    assert Meter.objects.filter(status=MeterStatus.ARCHIVED).count() == 2
    assert api.post("/v1/meters", TOKENS).status_code == 201


def test_expression_meter_round_trips(api):
    response = api.post(
        "/v1/meters",
        {"name": "Tokens", "event_name": "llm", "aggregation": {"type": "SUM", "expression": "input + output"}},
    )
    assert response.status_code == 201
    assert response.json()["aggregation"]["expression"] == "input + output"
    bad = api.post(
        "/v1/meters", {"name": "T", "event_name": "llm", "aggregation": {"type": "SUM", "expression": "1 +"}}
    )
    assert "aggregation.expression" in bad.json()["details"]


def test_openapi_documents_meter_schemas(anonymous_api):
    document = anonymous_api.get("/v1/openapi.json").json()
    post = document["paths"]["/v1/meters"]["post"]
    assert "201" in post["responses"]
    assert "409" in post["responses"]
    schemas = document["components"]["schemas"]
    assert schemas["AggregationOut"]["properties"]["multiplier"]["anyOf"][0]["type"] == "string"


def test_expression_with_an_out_of_range_constant_is_400_at_creation(api):
    response = api.post(
        "/v1/meters",
        {"name": "T", "event_name": "llm", "aggregation": {"type": "SUM", "expression": "1e999999 * tokens"}},
    )
    assert response.status_code == 400
    assert response.json()["details"]["aggregation.expression"].startswith(
        "Number 1E+999999 is out of range: constants follow the rule for stored numbers"
    )
