import pytest

from catalog.models import Feature, FeatureStatus, Meter, MeterStatus
from tests.catalog.factories import FeatureFactory, MeterFactory

pytestmark = pytest.mark.django_db

INLINE = {
    "name": "API Calls (v2)",
    "type": "METERED",
    "meter": {"event_name": "api.calls", "aggregation": {"type": "COUNT"}},
    "unit_singular": "API call",
    "unit_plural": "API calls",
    "alert_settings": {"alert_enabled": True, "critical": {"threshold": 1000, "condition": "above"}},
    "metadata": {"team": "platform"},
}


def test_create_metered_feature_with_inline_meter(api, environment):
    response = api.post("/v1/features", INLINE)
    assert response.status_code == 201
    body = response.json()
    assert body["id"].startswith("feat_")
    assert body["lookup_key"] == "api_calls_v2"
    assert body["type"] == "metered"
    assert body["meter_id"].startswith("meter_")
    assert "meter" not in body
    assert (body["unit_singular"], body["unit_plural"]) == ("API call", "API calls")
    assert body["alert_settings"] == {"alert_enabled": True, "critical": {"threshold": "1000", "condition": "above"}}
    assert body["metadata"] == {"team": "platform"}
    assert body["environment_id"] == environment.public_id
    assert body["status"] == "published"
    assert Meter.objects.get(public_id=body["meter_id"]).name == "API Calls (v2)"


def test_flexprice_inline_meter_spelling_is_accepted(api):
    response = api.post(
        "/v1/features",
        {"name": "API Calls", "type": "METERED", "meter": {"event_type": "api_call", "aggregation": "COUNT"}},
    )
    assert response.status_code == 201
    meter = api.get(f"/v1/meters/{response.json()['meter_id']}").json()
    assert (meter["event_name"], meter["aggregation"]["type"]) == ("api_call", "COUNT")


def test_create_feature_with_meter_id(api):
    meter = api.post("/v1/meters", {"name": "m", "event_name": "e", "aggregation": {"type": "COUNT"}}).json()
    response = api.post("/v1/features", {"name": "Calls", "type": "metered", "meter_id": meter["id"]})
    assert response.status_code == 201
    assert response.json()["meter_id"] == meter["id"]


def test_feature_with_meter_of_another_environment_is_400(api, other_environment):
    foreign = MeterFactory(environment=other_environment)
    response = api.post("/v1/features", {"name": "Calls", "type": "metered", "meter_id": foreign.public_id})
    assert response.status_code == 400
    assert "meter_id" in response.json()["details"]


def test_static_feature_carries_a_value(api):
    response = api.post("/v1/features", {"name": "Seats", "type": "static", "value": "5 seats"})
    assert response.status_code == 201
    assert (response.json()["value"], response.json()["meter_id"]) == ("5 seats", None)


def test_invalid_feature_is_400_with_nested_meter_paths(api):
    response = api.post(
        "/v1/features",
        {
            "name": "T",
            "type": "metered",
            "meter": {"event_name": "e", "aggregation": {"type": "SUM"}},
            "unit_singular": "token",
            "metadata": {"n": 1},
            "alert_settings": {"alert_enabled": True, "warning": {"threshold": "x", "condition": "above"}},
        },
    )
    assert response.status_code == 400
    assert set(response.json()["details"]) == {
        "meter.aggregation.field",
        "unit_plural",
        "metadata.n",
        "alert_settings.warning.threshold",
    }
    assert Meter.objects.count() == 0


def test_inline_meter_must_be_an_object(api):
    response = api.post("/v1/features", {"name": "Calls", "type": "metered", "meter": "api.calls"})
    assert response.json()["details"] == {"meter": "must be an object (a meter definition)"}


def test_lookup_key_clash_is_409(api):
    assert api.post("/v1/features", {"name": "SSO", "type": "boolean"}).status_code == 201
    response = api.post("/v1/features", {"name": "Single sign-on", "type": "boolean", "lookup_key": "sso"})
    assert response.status_code == 409
    assert response.json()["details"]["lookup_key"].startswith("already used")


def test_inline_meter_duplicating_a_published_meter_is_409(api):
    api.post("/v1/meters", {"name": "m", "event_name": "api.calls", "aggregation": {"type": "COUNT"}})
    response = api.post("/v1/features", INLINE)
    assert response.status_code == 409
    assert Feature.objects.count() == 0


def test_requires_an_api_key(anonymous_api):
    assert anonymous_api.post("/v1/features", INLINE).status_code == 401
    assert anonymous_api.get("/v1/features").status_code == 401


def test_get_with_expand_embeds_the_meter(api):
    feature = api.post("/v1/features", INLINE).json()
    plain = api.get(f"/v1/features/{feature['id']}").json()
    assert "meter" not in plain
    expanded = api.get(f"/v1/features/{feature['id']}", {"expand": "meters"}).json()
    assert expanded["meter"]["id"] == feature["meter_id"]
    assert expanded["meter"]["aggregation"]["type"] == "COUNT"


def test_list_filters_and_paginates(api, environment):
    calls = FeatureFactory(environment=environment, name="API calls", lookup_key="api_calls")
    FeatureFactory(environment=environment, name="Storage", lookup_key="storage")
    FeatureFactory(environment=environment, name="SSO", lookup_key="sso", type="boolean", meter=None)
    FeatureFactory(environment=environment, name="Gone", lookup_key="gone", status=FeatureStatus.DELETED)
    FeatureFactory(environment=environment, name="Wizard draft", lookup_key="", status=FeatureStatus.DRAFT)

    def total(params):
        return api.get("/v1/features", params).json()["pagination"]["total"]

    assert total({}) == 3
    assert total({"type": "METERED"}) == 2
    assert total({"name_contains": "api"}) == 1
    assert total({"lookup_key": "sso"}) == 1
    assert total({"status": "deleted"}) == 1
    assert total({"feature_ids": f"{calls.public_id},feat_unknown"}) == 1
    body = api.get("/v1/features", {"limit": 1, "offset": 1, "expand": "meters"}).json()
    assert body["pagination"] == {"total": 3, "limit": 1, "offset": 1}
    assert "meter" in body["items"][0]


def test_search_takes_the_filters_in_the_body(api, environment):
    calls = FeatureFactory(environment=environment, name="API calls", lookup_key="api_calls")
    FeatureFactory(environment=environment, name="Storage", lookup_key="storage")
    response = api.post("/v1/features/search", {"feature_ids": [calls.public_id], "expand": "meters"})
    assert response.status_code == 200
    assert [item["id"] for item in response.json()["items"]] == [calls.public_id]
    assert response.json()["items"][0]["meter"]["id"] == calls.meter.public_id
    assert api.post("/v1/features/search", {"name_contains": "stor"}).json()["pagination"]["total"] == 1
    assert api.post("/v1/features/search", {"type": "gizmo"}).status_code == 400


def test_list_with_expand_runs_a_constant_number_of_queries(api, environment, django_assert_max_num_queries):
    for _ in range(15):
        FeatureFactory(environment=environment)
    with django_assert_max_num_queries(4):
        assert len(api.get("/v1/features", {"expand": "meters"}).json()["items"]) == 15


def test_cross_environment_features_are_404_and_never_listed(api, other_environment):
    foreign = FeatureFactory(environment=other_environment)
    assert api.get(f"/v1/features/{foreign.public_id}").status_code == 404
    assert api.put(f"/v1/features/{foreign.public_id}", {"name": "mine"}).status_code == 404
    assert api.delete(f"/v1/features/{foreign.public_id}").status_code == 404
    assert api.get("/v1/features").json()["items"] == []
    assert api.post("/v1/features/search", {"feature_ids": [foreign.public_id]}).json()["items"] == []
    foreign.refresh_from_db()
    assert foreign.status == FeatureStatus.PUBLISHED


def test_put_updates_mutable_fields_and_adds_meter_filters(api):
    feature = api.post("/v1/features", INLINE).json()
    response = api.put(
        f"/v1/features/{feature['id']}",
        {
            "name": "API calls",
            "description": "REST",
            "metadata": {"tier": "pro"},
            "alert_settings": None,
            "filters": [{"key": "method", "values": ["GET"]}],
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["description"], body["metadata"]) == ("API calls", "REST", {"tier": "pro"})
    assert body["alert_settings"] == feature["alert_settings"]
    meter = api.get(f"/v1/meters/{feature['meter_id']}").json()
    assert meter["filters"] == [{"key": "method", "operator": "in", "values": ["GET"]}]


def test_put_rejects_immutable_changes_but_accepts_resent_values(api):
    feature = api.post("/v1/features", INLINE).json()
    resent = api.put(
        f"/v1/features/{feature['id']}",
        {"type": "metered", "lookup_key": feature["lookup_key"], "meter_id": feature["meter_id"]},
    )
    assert resent.status_code == 200
    response = api.put(f"/v1/features/{feature['id']}", {"type": "boolean", "lookup_key": "new_key"})
    assert response.status_code == 400
    assert set(response.json()["details"]) == {"type", "lookup_key"}


def test_delete_is_soft_and_archives_the_meter(api):
    feature = api.post("/v1/features", INLINE).json()
    response = api.delete(f"/v1/features/{feature['id']}")
    assert (response.status_code, response.json()["status"]) == (200, "deleted")
    assert api.get(f"/v1/features/{feature['id']}").json()["status"] == "deleted"
    assert api.get(f"/v1/meters/{feature['meter_id']}").json()["status"] == MeterStatus.ARCHIVED
    assert api.get("/v1/features").json()["items"] == []
    assert api.post("/v1/features", INLINE).status_code == 201


def test_rows_written_around_the_rules_still_serialize_with_string_types(api, environment):
    feature = FeatureFactory(
        environment=environment,
        alert_settings={"alert_enabled": True, "critical": {"threshold": 100, "condition": "above"}},
        metadata={"seats": 5},
    )
    body = api.get(f"/v1/features/{feature.public_id}").json()
    assert body["alert_settings"]["critical"]["threshold"] == "100"
    assert body["metadata"] == {"seats": "5"}


def test_put_feature_adds_values_to_an_existing_meter_filter(api):
    body = {**INLINE, "meter": {**INLINE["meter"], "filters": [{"key": "region", "values": ["eu", "us"]}]}}
    feature = api.post("/v1/features", body).json()
    response = api.put(f"/v1/features/{feature['id']}", {"filters": [{"key": "region", "values": ["apac"]}]})
    assert response.status_code == 200, response.content
    meter = api.get(f"/v1/meters/{feature['meter_id']}").json()
    assert meter["filters"] == [{"key": "region", "operator": "in", "values": ["eu", "us", "apac"]}]
    refused = api.put(f"/v1/features/{feature['id']}", {"filters": [{"key": "region", "values": ["x" * 1025]}]})
    assert refused.status_code == 400
    assert list(refused.json()["details"]) == ["filters[0].values[0]"]


def test_clone_copies_the_feature_under_a_new_name_and_shares_the_meter(api, environment):
    source = api.post("/v1/features", {**INLINE, "description": "Calls to the API"}).json()
    response = api.post(f"/v1/features/{source['id']}/clone", {"name": "API Calls (EU)", "metadata": {"team": "eu"}})
    assert response.status_code == 201
    clone = response.json()
    assert clone["id"] != source["id"] and clone["id"].startswith("feat_")
    assert (clone["name"], clone["lookup_key"], clone["type"]) == ("API Calls (EU)", "api_calls_eu", "metered")
    assert clone["meter_id"] == source["meter_id"]
    assert (clone["unit_singular"], clone["unit_plural"]) == ("API call", "API calls")
    assert clone["alert_settings"] == source["alert_settings"]
    assert (clone["description"], clone["metadata"]) == ("Calls to the API", {"team": "eu"})
    assert api.get(f"/v1/features/{source['id']}").json()["metadata"] == {"team": "platform"}
    # deleting the clone leaves the shared meter counting for the source
    api.delete(f"/v1/features/{clone['id']}")
    assert Meter.objects.get(public_id=source["meter_id"]).status == MeterStatus.PUBLISHED


def test_clone_with_own_lookup_key_and_description(api):
    source = api.post("/v1/features", {"name": "Seats", "type": "static", "value": "10"}).json()
    body = {"name": "Seats XL", "lookup_key": "seats_xl", "description": "Big plan"}
    clone = api.post(f"/v1/features/{source['id']}/clone", body).json()
    assert (clone["lookup_key"], clone["value"], clone["description"], clone["meter_id"]) == (
        "seats_xl",
        "10",
        "Big plan",
        None,
    )


@pytest.mark.parametrize(
    ("body", "status", "path"),
    [
        ({}, 400, "name"),
        ({"name": "Seats"}, 400, "name"),
        ({"name": "Seats 2", "lookup_key": "seats"}, 409, "lookup_key"),
    ],
)
def test_clone_needs_a_new_name_and_a_free_lookup_key(api, body, status, path):
    source = api.post("/v1/features", {"name": "Seats", "type": "boolean"}).json()
    response = api.post(f"/v1/features/{source['id']}/clone", body)
    assert response.status_code == status
    assert path in response.json()["details"]
    assert Feature.objects.count() == 1


def test_clone_of_a_deleted_or_foreign_feature_is_refused(api, other_environment):
    foreign = FeatureFactory(environment=other_environment)
    assert api.post(f"/v1/features/{foreign.public_id}/clone", {"name": "Mine"}).status_code == 404
    source = api.post("/v1/features", {"name": "Seats", "type": "boolean"}).json()
    api.delete(f"/v1/features/{source['id']}")
    response = api.post(f"/v1/features/{source['id']}/clone", {"name": "Seats again"})
    assert (response.status_code, response.json()["code"]) == (400, "invalid_operation")
