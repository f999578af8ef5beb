"""POST /v1/events and /v1/events/bulk: validation, idempotency, all-or-nothing, exact numbers (SPEC §2.3, §3)."""

import datetime as dt

import pytest
from django.utils import timezone

from metering.models import Event

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
    stored = Event.objects.get(environment=environment, event_id="evt-1")
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
    stored = Event.objects.get(environment=environment)
    assert stored.properties == {"tokens": 2}
    assert stored.event_name == "api.calls.v2"


def test_event_id_is_assigned_when_absent(api, environment):
    response = api.post("/v1/events", an_event(event_id=...))
    assert response.status_code == 202
    event_id = response.json()["event_id"]
    assert event_id.startswith("event_")
    assert Event.objects.filter(environment=environment, event_id=event_id).exists()


def test_timestamp_defaults_to_server_time(api, environment):
    before = timezone.now()
    api.post("/v1/events", an_event(timestamp=...))
    stored = Event.objects.get(environment=environment)
    assert before <= stored.timestamp <= timezone.now()


def test_microseconds_are_kept_and_nanoseconds_truncated(api, environment):
    api.post("/v1/events", an_event(timestamp="2026-01-05T10:00:00.123456789+02:00"))
    stored = Event.objects.get(environment=environment)
    assert stored.timestamp == dt.datetime(2026, 1, 5, 8, 0, 0, 123456, tzinfo=dt.UTC)


def test_long_decimal_property_keeps_every_digit(api, environment):
    body = (
        '{"event_id": "x", "event_name": "n", "external_customer_id": "c", '
        '"properties": {"v": 0.12345678901234567890123, "big": 1e400, "i": 123456789012345678901234567890}}'
    )
    assert api.post("/v1/events", body).status_code == 202
    listed = api.get("/v1/events").content.decode()
    assert '"v":0.12345678901234567890123' in listed
    assert '"i":123456789012345678901234567890' in listed
    stored = Event.objects.get(environment=environment)
    from decimal import Decimal

    assert stored.properties["v"] == Decimal("0.12345678901234567890123")
    assert stored.properties["big"] == Decimal("1e400")


def test_bulk_counts_duplicates_and_keeps_last_repeat(api, environment):
    api.post("/v1/events", an_event(event_id="old"))
    events = [an_event(event_id=f"e{i}") for i in range(5)]
    events += [an_event(event_id="old", properties={"n": 1}), an_event(event_id="e1", properties={"n": 2})]
    response = api.post("/v1/events/bulk", {"events": events})
    assert response.status_code == 202
    assert response.json() == {"message": "Events accepted for processing", "accepted": "7", "duplicates": "2"}
    assert Event.objects.filter(environment=environment).count() == 6
    assert Event.objects.get(event_id="e1").properties == {"n": 2}
    assert Event.objects.get(event_id="old").properties == {"n": 1}


def test_large_bulk_uses_the_batch_path(api, environment):
    events = [an_event(event_id=f"e{i}", properties={"i": i, "f": 0.1}) for i in range(1000)]
    response = api.post("/v1/events/bulk", {"events": events})
    assert response.json()["accepted"] == "1000"
    assert response.json()["duplicates"] == "0"
    response = api.post("/v1/events/bulk", {"events": events[:600]})
    assert response.json()["duplicates"] == "600"
    assert Event.objects.filter(environment=environment).count() == 1000
    assert Event.objects.get(event_id="e999").properties == {"i": 999, "f": 0.1}
