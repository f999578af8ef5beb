"""Helpers for usage tests: events go through the real ingestion path (exact JSON, last delivery wins)."""

import datetime as dt

from django.db import connection

from metering import exactjson
from metering.clickhouse.config import events_backend
from metering.ingest.validation import event_clean
from metering.ingest.writer import events_store

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    """'2025-08-16T00:00' (UTC) → aware datetime."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC) if "+" not in text else dt.datetime.fromisoformat(text)


_counter = iter(range(10**9))


def send(environment, **event) -> str:
    """Ingest one event (the arguments of `cleaned`); returns its id."""
    cleaned_event = cleaned(**event)
    events_store(environment=environment, events=[cleaned_event])
    return cleaned_event.event_id


def cleaned(
    *,
    event_name: str,
    timestamp: str,
    customer: str = "cust-1",
    event_id: str | None = None,
    properties: dict | str | None = None,
    source: str = "",
):
    """The validated event `send` ingests; `properties` may be JSON text to control exactly how numbers are spelled."""
    if isinstance(properties, str):
        properties = exactjson.loads(properties)
    raw = {
        "event_id": event_id or f"evt-{next(_counter)}",
        "event_name": event_name,
        "external_customer_id": customer,
        "timestamp": at(timestamp).isoformat(),
        "properties": properties or {},
        **({"source": source} if source else {}),
    }
    return event_clean(raw, now=at("2100-01-01T00:00"))


def send_in_order(environment, events: list) -> None:
    """Ingest `cleaned` events as if each were sent alone, in this order, in a few batches instead of one call each
    (a seed of hundreds of events took 1.3 s per test on PostgreSQL, one commit each, and 5 s on chdb).

    Only the order among events at one instant can decide an answer (LATEST's order key is the timestamp, then the
    delivery); events of a batch share their delivery time. So the n-th event at an instant goes in the n-th batch:
    every tie, within a customer or across customers, is still broken by separate, later deliveries in this order,
    exactly as one call per event breaks it."""
    batches: list[list] = []
    seen: dict = {}
    for event in events:
        nth = seen[event.timestamp] = seen.get(event.timestamp, -1) + 1
        if nth == len(batches):
            batches.append([])
        batches[nth].append(event)
    for batch in batches:
        events_store(environment=environment, events=batch)


def on_clickhouse() -> bool:
    """Whether this run keeps events in ClickHouse (FLEXMETER_TEST_EVENTS=chdb)."""
    return events_backend().is_clickhouse


def usage_statements(*, looked_up_lately: bool = False) -> int:
    """Django database statements of one engine call: on PostgreSQL the lookup of valid daily rollups, then the
    usage statement (one statement whatever the number of queries, customers or windows), or the usage statement
    alone when the same lookup ran within the last minute (`looked_up_lately`); none when events live in ClickHouse
    (tests/metering/clickhouse counts the one ClickHouse statement there)."""
    if on_clickhouse():
        return 0
    return 2 if connection.vendor == "postgresql" and not looked_up_lately else 1


def stored_events(environment) -> list:
    """Every stored event of the environment, oldest first, read from the events backend under test."""
    from flexmeter.pagination import MAX_PAGE_SIZE
    from metering.selectors import events_page

    return list(reversed(events_page(environment=environment, page_size=MAX_PAGE_SIZE).events))


def delete_event(environment, event) -> None:
    """Delete one stored event in the events backend under test (the path of `check_events --delete`)."""
    from metering.ingest.writer import events_delete

    assert events_delete(environment_slug=environment.slug, event_ids=[event.event_id]) == 1


def stored(environment=None) -> list:
    """The stored events (of one environment, or of all), oldest first, read from the events backend under test."""
    from metering.models import Event

    if not on_clickhouse():
        events = Event.objects.all() if environment is None else Event.objects.filter(environment=environment)
        return list(events.order_by("timestamp", "id"))
    from flexmeter.models import Environment
    from metering.clickhouse import reads

    found = []
    for env in [environment] if environment is not None else Environment.objects.order_by("id"):
        found += reads.events_oldest_first(
            events_backend(),
            environment_id=env.pk,
            conditions=lambda d, p, env=env: reads.column_conditions(d, p, environment_id=env.pk),
        )
    return found


def stored_one(environment=None, event_id: str | None = None):
    """The one stored event (with this id), like `Event.objects.get`."""
    (event,) = [event for event in stored(environment) if event_id is None or event.event_id == event_id]
    return event
