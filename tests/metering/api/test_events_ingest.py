"""POST /v1/events and /v1/events/bulk: validation, idempotency, all-or-nothing, exact numbers (SPEC §2.3, §3)."""

import datetime as dt

import pytest
from django.utils import timezone

from tests.metering.usage.helpers import stored, stored_one

pytestmark = pytest.mark.django_db


def an_event(**overrides) -> dict:
    event = {
        "event_id": "evt-1",
        "event_name": "api.calls",
        "external_customer_id": "acme",
        "timestamp": "2026-01-05T10:00:00Z",
        "properties": {"path": "/search", "tokens": 12},
    }
    event.update(overrides)
    return {key: value for key, value in event.items() if value is not ...}


def test_single_event_is_accepted_with_string_values(api, environment):
    response = api.post("/v1/events", an_event())
    assert response.status_code == 202
    assert response.json() == {"message": "Event accepted for processing", "event_id": "evt-1", "duplicate": "false"}
    stored = stored_one(environment, "evt-1")
    assert stored.event_name == "api.calls"
    assert stored.external_customer_id == "acme"
    assert stored.timestamp == dt.datetime(2026, 1, 5, 10, tzinfo=dt.UTC)
    assert stored.properties == {"path": "/search", "tokens": 12}
    assert stored.source == ""


def test_same_id_twice_keeps_one_event_with_the_later_content(api, environment):
    api.post("/v1/events", an_event(properties={"tokens": 1}))
    response = api.post("/v1/events", an_event(properties={"tokens": 2}, event_name="api.calls.v2"))
    assert response.status_code == 202
    assert response.json()["duplicate"] == "true"
    stored = stored_one(environment)
    assert stored.properties == {"tokens": 2}
    assert stored.event_name == "api.calls.v2"


def test_event_id_is_assigned_when_absent(api, environment):
    response = api.post("/v1/events", an_event(event_id=...))
    assert response.status_code == 202
    event_id = response.json()["event_id"]
    assert event_id.startswith("event_")
    assert [event.event_id for event in stored(environment)] == [event_id]


def test_timestamp_defaults_to_server_time(api, environment):
    before = timezone.now()
    api.post("/v1/events", an_event(timestamp=...))
    stored = stored_one(environment)
    assert before <= stored.timestamp <= timezone.now()


def test_microseconds_are_kept_and_nanoseconds_truncated(api, environment):
    api.post("/v1/events", an_event(timestamp="2026-01-05T10:00:00.123456789+02:00"))
    stored = stored_one(environment)
    assert stored.timestamp == dt.datetime(2026, 1, 5, 8, 0, 0, 123456, tzinfo=dt.UTC)


def test_long_decimal_property_keeps_every_digit(api, environment):
    body = (
        '{"event_id": "x", "event_name": "n", "external_customer_id": "c", '
        '"properties": {"v": 0.12345678901234567890123, "big": 9e37, "i": 123456789012345678901234567890}}'
    )
    assert api.post("/v1/events", body).status_code == 202
    listed = api.get("/v1/events").content.decode()
    assert '"v":0.12345678901234567890123' in listed
    assert '"i":123456789012345678901234567890' in listed
    stored = stored_one(environment)
    from decimal import Decimal

    assert stored.properties["v"] == Decimal("0.12345678901234567890123")
    assert stored.properties["big"] == Decimal("9e37")


def test_bulk_counts_duplicates_and_keeps_last_repeat(api, environment):
    api.post("/v1/events", an_event(event_id="old"))
    events = [an_event(event_id=f"e{i}") for i in range(5)]
    events += [an_event(event_id="old", properties={"n": 1}), an_event(event_id="e1", properties={"n": 2})]
    response = api.post("/v1/events/bulk", {"events": events})
    assert response.status_code == 202
    assert response.json() == {"message": "Events accepted for processing", "accepted": "7", "duplicates": "2"}
    assert len(stored(environment)) == 6
    assert stored_one(event_id="e1").properties == {"n": 2}
    assert stored_one(event_id="old").properties == {"n": 1}


def test_large_bulk_uses_the_batch_path(api, environment):
    events = [an_event(event_id=f"e{i}", properties={"i": i, "f": 0.1}) for i in range(1000)]
    response = api.post("/v1/events/bulk", {"events": events})
    assert response.json()["accepted"] == "1000"
    assert response.json()["duplicates"] == "0"
    response = api.post("/v1/events/bulk", {"events": events[:600]})
    assert response.json()["duplicates"] == "600"
    assert len(stored(environment)) == 1000
    assert stored_one(event_id="e999").properties == {"i": 999, "f": 0.1}


def test_a_bulk_spanning_more_than_a_hundred_months_is_stored(api, environment):
    """More than 100 monthly partitions in one insert: ClickHouse refuses that by default (it was a 500 there)."""
    events = [
        an_event(event_id=f"m{i}", timestamp=f"{2010 + i // 12}-{i % 12 + 1:02d}-05T00:00:00Z") for i in range(150)
    ]
    response = api.post("/v1/events/bulk", {"events": events})
    assert response.status_code == 202
    assert response.json()["duplicates"] == "0"
    assert len(stored(environment)) == 150


def test_invalid_single_event_is_400_with_field_paths(api, environment):
    response = api.post("/v1/events", {"event_name": "", "external_customer_id": 5, "timestamp": "2026-01-05"})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "validation_error"
    assert body["http_status_code"] == 400
    assert body["details"] == {
        "event_name": "must not be blank",
        "external_customer_id": "must be a string, not a number",
        "timestamp": "must be RFC 3339 with a zone offset or Z, such as 2024-05-01T12:00:00Z",
    }
    assert "timestamp" in body["message"]
    assert stored() == []


def test_future_timestamp_beyond_24_hours_is_rejected(api):
    future = (timezone.now() + dt.timedelta(hours=25)).isoformat()
    response = api.post("/v1/events", an_event(timestamp=future))
    assert response.status_code == 400
    assert response.json()["details"]["timestamp"].startswith("is more than 24 hours in the future")
    near_future = (timezone.now() + dt.timedelta(hours=23)).isoformat()
    assert api.post("/v1/events", an_event(timestamp=near_future)).status_code == 202


def test_bulk_with_one_invalid_event_stores_nothing(api, environment):
    events = [an_event(event_id=f"e{i}") for i in range(5)]
    events[3]["timestamp"] = "not a time"
    del events[4]["event_name"]
    response = api.post("/v1/events/bulk", {"events": events})
    assert response.status_code == 400
    details = response.json()["details"]
    assert details["events[3].timestamp"].startswith("must be RFC 3339")
    assert details["events[4].event_name"] == "is required"
    assert response.json()["message"].startswith("2 of 5 events are invalid; nothing was stored.")
    assert stored() == []


@pytest.mark.parametrize(
    ("body", "path", "message"),
    [
        ({}, "events", "is required"),
        ({"events": []}, "events", "must contain at least 1 event"),
        ({"events": {"a": 1}}, "events", "must be an array of events, not an object"),
        ([an_event()], "body", 'must be a JSON object {"events": [...]}'),
        ({"events": [an_event(), 7]}, "events[1]", "an event must be a JSON object, not a number"),
    ],
)
def test_bulk_body_shape_errors(api, body, path, message):
    response = api.post("/v1/events/bulk", body)
    assert response.status_code == 400
    assert response.json()["details"] == {path: message}


def test_bulk_of_1001_events_is_rejected(api):
    response = api.post("/v1/events/bulk", {"events": [an_event(event_id=f"e{i}") for i in range(1001)]})
    assert response.status_code == 400
    assert response.json()["details"] == {"events": "must contain at most 1000 events per request (got 1001)"}
    assert stored() == []


def test_unknown_top_level_fields_are_ignored(api, environment):
    response = api.post("/v1/events/bulk", {"events": [an_event(extra="x")], "dry_run": True})
    assert response.status_code == 202
    assert len(stored(environment)) == 1


@pytest.mark.parametrize("path", ["/v1/events", "/v1/events/bulk"])
def test_malformed_json_is_400(api, path):
    response = api.post(path, '{"events": [')
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert response.json()["details"] == {"body": "is not valid JSON"}


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_json_number_constants_are_400(api, literal):
    body = '{"event_name": "n", "external_customer_id": "c", "properties": {"v": ' + literal + "}}"
    assert api.post("/v1/events", body).status_code == 400


def test_body_over_the_limit_is_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = api.post("/v1/events/bulk", {"events": [an_event(event_id=f"e{i}") for i in range(20)]})
    assert response.status_code == 413
    assert response.json()["http_status_code"] == 413
    assert stored() == []


def test_ingest_requires_an_api_key(anonymous_api):
    assert anonymous_api.post("/v1/events", an_event()).status_code == 401
    assert anonymous_api.post("/v1/events/bulk", {"events": [an_event()]}).status_code == 401
    assert stored() == []


def test_environments_are_isolated(api, other_api, environment, other_environment):
    api.post("/v1/events", an_event(source="prod"))
    response = other_api.post("/v1/events", an_event(source="sandbox"))
    assert response.json()["duplicate"] == "false"
    assert stored_one(environment).source == "prod"
    assert stored_one(other_environment).source == "sandbox"
    assert [e["source"] for e in other_api.get("/v1/events").json()["events"]] == ["sandbox"]


def test_openapi_documents_the_ingest_bodies(anonymous_api):
    paths = anonymous_api.get("/v1/openapi.json").json()["paths"]
    bulk = paths["/v1/events/bulk"]["post"]
    schema = bulk["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["events"]["maxItems"] == 1000
    assert "event_name" in schema["properties"]["events"]["items"]["properties"]
    assert "202" in bulk["responses"]
    single = paths["/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(single["required"]) == {"event_name", "external_customer_id"}


def test_oversized_and_overfull_properties_are_400_per_index(api):
    events = [
        an_event(event_id="big", properties={"blob": "x" * 40_000}),
        an_event(event_id="wide", properties={f"k{i}": i for i in range(101)}),
    ]
    response = api.post("/v1/events/bulk", {"events": events})
    assert response.status_code == 400
    assert response.json()["details"] == {
        "events[0].properties": "must be at most 32768 bytes as JSON (got 40011)",
        "events[1].properties": "must have at most 100 top-level keys (got 101)",
    }
    assert stored() == []


def test_nul_characters_are_400_not_a_database_error(api):
    response = api.post("/v1/events", '{"event_name": "a\\u0000", "external_customer_id": "c"}')
    assert response.status_code == 400
    assert response.json()["details"] == {"event_name": "must not contain NUL (\\u0000) characters"}
    response = api.post(
        "/v1/events", '{"event_name": "a", "external_customer_id": "c", "properties": {"k": "\\u0000"}}'
    )
    assert response.status_code == 400
    assert stored() == []


def test_extremely_nested_body_is_400(api):
    response = api.post("/v1/events", '{"event_name": "a", "properties": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert response.status_code == 400
    assert response.json()["details"] == {"body": "is nested too deeply"}
