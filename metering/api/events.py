"""REST endpoints for events (SPEC §6.2).

The two ingest endpoints read the body themselves instead of through pydantic: `event_clean` is the one
validator (shared with the import command), numbers must keep every digit (`metering.exactjson`), and bulk
requests of 1,000 events must not spend their time in model construction. Their request schemas are still
published in the OpenAPI document through `openapi_extra`. Event lists are written with the same exact JSON
encoder, so a property `0.12345678901234567890123` comes back with all its digits.
"""

from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import Query, Router

from flexmeter.errors import ValidationFailed
from metering.api import ingest_view
from metering.api.http import json_response, request_json
from metering.api.schemas import (
    BulkAcceptedOut,
    BulkEventsIn,
    EventAcceptedOut,
    EventIn,
    EventsPageOut,
    EventsQueryIn,
    EventsQueryParams,
    event_to_dict,
    events_query_clean,
)
from metering.ingest.validation import MAX_BULK_EVENTS, events_clean
from metering.ingest.writer import events_store
from metering.selectors import (
    events_page,
)

events_router = Router(tags=["events"])


def _request_body_schema(schema: dict) -> dict:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


_EVENT_SCHEMA = EventIn.model_json_schema()
_BULK_SCHEMA = {
    "title": BulkEventsIn.__name__,
    "type": "object",
    "required": ["events"],
    "properties": {"events": {"type": "array", "minItems": 1, "maxItems": MAX_BULK_EVENTS, "items": _EVENT_SCHEMA}},
}


@events_router.post(
    "",
    response={202: EventAcceptedOut},
    summary="Ingest one event (202 once committed; a known event_id replaces the stored event)",
    openapi_extra=_request_body_schema(_EVENT_SCHEMA),
)
def ingest_event(request: HttpRequest):
    # Served by `metering.api.ingest_view.ingest_event`, which flexmeter/urls.py routes ahead of this API; this
    # operation documents it and answers the same way if reached (the key is then checked twice).
    return ingest_view.ingest_event(request)


@events_router.post(
    "/bulk",
    response={202: BulkAcceptedOut},
    summary="Ingest 1..1000 events at once, all or nothing",
    description=(
        "Every event is validated first; if any is invalid the answer is 400 with details per index "
        "(`events[3].timestamp`) and nothing is stored. `accepted` counts the events of the request, "
        "`duplicates` those that replaced a stored event or repeated an earlier id of the same request "
        "(the last occurrence wins)."
    ),
    openapi_extra=_request_body_schema(_BULK_SCHEMA),
)
def ingest_events_bulk(request: HttpRequest):
    body = request_json(request)
    if not isinstance(body, dict):
        raise ValidationFailed(details={"body": 'must be a JSON object {"events": [...]}'})
    if "events" not in body:
        raise ValidationFailed(details={"events": "is required"})
    raw_events = body["events"]
    events = events_clean(raw_events, max_events=MAX_BULK_EVENTS)
    result = events_store(environment=request.environment, events=events)
    repeated_in_request = len(raw_events) - len(events)
    return json_response(
        {
            "message": "Events accepted for processing",
            "accepted": str(len(raw_events)),
            "duplicates": str(result.duplicates + repeated_in_request),
        },
        status=202,
    )


def _events_page_response(request: HttpRequest, filters: dict[str, Any]) -> HttpResponse:
    page = events_page(environment=request.environment, **events_query_clean(filters))
    environment_id = request.environment.public_id
    return json_response(
        {
            "events": [
                event_to_dict(event, page.customer_id_for(event), environment_id=environment_id)
                for event in page.events
            ],
            "has_more": page.has_more,
            "iter_first_key": page.first_key,
            "iter_last_key": page.last_key,
        }
    )


@events_router.get("", response=EventsPageOut, summary="List events, newest first (keyset pagination)")
def list_events(request: HttpRequest, filters: Query[EventsQueryParams]):
    return _events_page_response(request, filters.model_dump())


@events_router.post("/query", response=EventsPageOut, summary="List events with filters in the body")
def query_events(request: HttpRequest, filters: EventsQueryIn):
    return _events_page_response(request, filters.model_dump())
