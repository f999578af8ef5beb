"""Lists, lookup, export, import and deletion with events in ClickHouse (chdb), through the product's own paths.

Each of these read the Django database only before (flexmeter refused to start with a ClickHouse EVENTS_URL)."""

import csv
import io
import json
from decimal import Decimal

import pytest
from django.core.management import call_command

from flexmeter.errors import InvalidOperation
from metering.debugger.explain import event_debug_report
from metering.importing.batches import BatchMode, batch_mode
from metering.ingest.writer import events_delete, events_store
from metering.selectors import event_lookup, events_page
from tests.catalog.factories import MeterFactory
from tests.metering.factories import CustomerFactory
from tests.metering.usage.helpers import send, stored

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def events_in_clickhouse(ch_backend, settings):
    settings.EVENTS_URL = ch_backend.url
    return ch_backend


def parse(content: bytes) -> dict:
    return json.loads(content, parse_int=Decimal, parse_float=Decimal)


def test_event_list_pages_newest_first_with_property_filters(api, environment):
    CustomerFactory(environment=environment, external_id="acme")
    for minute in range(5):
        region = "eu" if minute % 2 == 0 else "us"
        send(
            environment,
            event_name="api",
            customer="acme",
            event_id=f"e{minute}",
            timestamp=f"2026-01-05T10:0{minute}",
            properties=f'{{"region": "{region}", "n": 0.10000000000000000001}}',
        )
    first = api.get("/v1/events", {"page_size": 2})
    assert first.status_code == 200
    body = parse(first.content)
    assert [event["id"] for event in body["events"]] == ["e4", "e3"]
    assert body["events"][0]["customer_id"] is not None
    assert body["events"][0]["properties"]["n"] == Decimal("0.10000000000000000001")
    second = parse(api.get("/v1/events", {"page_size": 2, "iter_last_key": body["iter_last_key"]}).content)
    assert [event["id"] for event in second["events"]] == ["e2", "e1"]
    filtered = api.post("/v1/events/query", {"property_filters": {"region": ["eu"]}})
    assert [event["id"] for event in parse(filtered.content)["events"]] == ["e4", "e2", "e0"]


def test_a_cursor_of_the_other_backend_is_a_400(api, environment):
    send(environment, event_name="api", timestamp="2026-01-05T10:00")
    django_cursor = "MTIzOjQ1"  # base64 of "123:45": (timestamp, row id) on the Django database
    response = api.get("/v1/events", {"iter_last_key": django_cursor})
    assert response.status_code == 400
    assert "iter_last_key" in response.json()["details"]


def test_a_redelivery_that_moves_the_event_is_listed_once_at_its_new_key(environment):
    send(environment, event_name="api", customer="a", event_id="x", timestamp="2026-01-05T10:00")
    send(environment, event_name="other", customer="b", event_id="x", timestamp="2026-01-07T10:00")
    page = events_page(environment=environment)
    assert [(e.event_id, e.event_name, e.external_customer_id) for e in page.events] == [("x", "other", "b")]
    found = event_lookup(environment=environment, event_id="x")
    assert (found.event_name, found.external_customer_id) == ("other", "b")


def test_lookup_explains_a_stored_event_with_its_quantity(api, environment):
    CustomerFactory(environment=environment, external_id="acme")
    MeterFactory(environment=environment, event_name="llm", aggregation_type="SUM", aggregation_expression="a + b")
    send(
        environment,
        event_name="llm",
        customer="acme",
        event_id="e1",
        timestamp="2026-01-05T10:00",
        properties={"a": "0.1", "b": 0.2},
    )
    response = api.get("/v1/events/lookup", {"id": "e1"})
    assert response.status_code == 200
    body = parse(response.content)
    assert body["status"] == "processed"
    assert body["debug_tracker"]["meters"][0]["quantity"] == Decimal("0.3")
    assert api.get("/v1/events/lookup", {"id": "e1", "external_customer_id": "globex"}).status_code == 404
    assert api.get("/v1/events/lookup", {"id": "nope"}).status_code == 404


def test_a_value_clickhouse_cannot_hold_exactly_fails_the_explanation_clearly(api, environment):
    MeterFactory(environment=environment, event_name="llm", aggregation_type="SUM", aggregation_field="v")
    send(
        environment,
        event_name="llm",
        event_id="e1",
        timestamp="2026-01-05T10:00",
        properties='{"v": 0.0000000000000000000001}',
    )  # 22 decimals: within the storage rule, beyond Decimal256(20)
    with pytest.raises(InvalidOperation, match="cannot be computed exactly on the ClickHouse"):
        event_debug_report(environment=environment, event=event_lookup(environment=environment, event_id="e1"))
    response = api.get("/v1/events/lookup", {"id": "e1"})
    assert response.status_code == 400
    assert "cannot be computed exactly" in response.json()["message"]


def test_export_writes_the_clickhouse_events_oldest_first_exactly(environment):
    send(
        environment,
        event_name="api",
        customer="acme",
        event_id="e2",
        timestamp="2026-01-06T10:00",
        properties='{"n": 1.50}',
    )
    send(
        environment,
        event_name="api",
        customer="acme",
        event_id="e1",
        timestamp="2026-01-05T10:00",
        properties='{"n": 0.10000000000000000001}',
    )
    out = io.StringIO()
    call_command("export_events", stdout=out, stderr=io.StringIO())
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(row["event_id"], row["properties"]) for row in rows] == [
        ("e1", '{"n":0.10000000000000000001}'),
        ("e2", '{"n":1.50}'),
    ]


def test_import_writes_into_clickhouse_and_counts_duplicates(environment, tmp_path):
    assert batch_mode(dry_run=False) is BatchMode.EVENTS  # never PostgreSQL's COPY into its own table
    send(environment, event_name="api", event_id="old", timestamp="2026-01-05T10:00")
    path = tmp_path / "events.jsonl"
    lines = [
        {"event_id": "old", "event_name": "api", "external_customer_id": "c", "timestamp": "2026-01-06T10:00:00Z"},
        {"event_id": "new", "event_name": "api", "external_customer_id": "c", "timestamp": "2026-01-06T11:00:00Z"},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = io.StringIO()
    call_command("import_events", str(path), environment="production", stdout=out, stderr=io.StringIO())
    assert sorted(event.event_id for event in stored(environment)) == ["new", "old"]
    assert "stored:             2 events (1 replaced stored events)" in out.getvalue()


def test_a_deleted_event_is_gone_and_its_id_is_new_again(environment):
    send(environment, event_name="api", event_id="x", timestamp="2026-01-05T10:00")
    send(environment, event_name="api", event_id="x", customer="other", timestamp="2026-01-06T10:00")
    assert events_delete(environment_slug=environment.slug, event_ids=["x", "never"]) == 1
    assert stored(environment) == []
    assert event_lookup(environment=environment, event_id="x") is None
    again = events_store(environment=environment, events=[_event("x")])
    assert (again.accepted, again.duplicates) == (1, 0)


def _event(event_id: str):
    from metering.ingest.validation import event_clean

    return event_clean(
        {"event_id": event_id, "event_name": "api", "external_customer_id": "c", "timestamp": "2026-01-05T10:00:00Z"}
    )
