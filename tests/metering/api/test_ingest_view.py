"""POST /v1/events served by its own view (metering/api/ingest_view.py): the same contract as every /v1 endpoint."""

import pytest
from django.db import connection

from flexmeter.services import api_key_revoke
from tests.metering.usage.helpers import on_clickhouse, stored, stored_one

pytestmark = pytest.mark.django_db

EVENT = {"event_id": "evt-1", "event_name": "api.calls", "external_customer_id": "acme"}


def test_a_revoked_key_is_refused_at_once(api, api_key):
    assert api.post("/v1/events", EVENT).status_code == 202
    api_key_revoke(api_key=api_key)
    response = api.post("/v1/events", {**EVENT, "event_id": "evt-2"})
    assert response.status_code == 401
    assert response.json() == {
        "code": "unauthorized",
        "message": "Missing, unknown or revoked API key",
        "http_status_code": 401,
        "details": {},
    }
    assert [event.event_id for event in stored()] == ["evt-1"]


@pytest.mark.parametrize("body", [EVENT, {"event_name": ""}, "{not json"])
def test_a_bad_key_is_401_whatever_the_body(anonymous_api, body):
    response = anonymous_api.post("/v1/events", body, headers={"x-api-key": "fm_not-a-real-key"})
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    assert anonymous_api.post("/v1/events", body).status_code == 401


def test_bearer_key_ingests(anonymous_api, api_key, environment):
    response = anonymous_api.post("/v1/events", EVENT, headers={"authorization": f"Bearer {api_key.raw_key}"})
    assert response.status_code == 202
    assert stored_one().environment_id == environment.pk


def test_wrong_content_type_is_400_before_anything_else(api):
    response = api.client.post(
        "/v1/events", "a=b", content_type="application/x-www-form-urlencoded", headers={"x-api-key": api.raw_key}
    )
    assert response.status_code == 400
    assert response.json()["details"] == {"Content-Type": "must be application/json"}


def test_other_methods_still_reach_the_api(api):
    assert api.post("/v1/events", EVENT).status_code == 202
    assert [event["id"] for event in api.get("/v1/events").json()["events"]] == ["evt-1"]
    response = api.put("/v1/events", EVENT)
    assert response.status_code == 405
    assert response.json()["code"] == "invalid_operation"
    assert api.delete("/v1/events/no-such-path").status_code == 404


def test_one_database_statement_per_event_on_postgresql(api, django_assert_num_queries):
    if connection.vendor != "postgresql" or on_clickhouse():
        pytest.skip("the single-statement path is PostgreSQL's, with events in PostgreSQL")
    # The first write with a key in a minute looks the key up before its body is read (api_key_precheck), and this
    # key's first use ever is recorded with it...
    with django_assert_num_queries(3):
        assert api.post("/v1/events", EVENT).status_code == 202
    # ...every later one is the single statement that checks the key and stores the event.
    with django_assert_num_queries(1):
        assert api.post("/v1/events", {**EVENT, "event_id": "second"}).status_code == 202


def test_a_crash_is_a_logged_500_in_the_envelope(api, monkeypatch, caplog):
    def broken(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr("metering.api.ingest_view.events_store_for_key", broken)
    response = api.post("/v1/events", EVENT)
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert any("database went away" in str(record.exc_info[1]) for record in caplog.records if record.exc_info)
