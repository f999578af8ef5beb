"""REST endpoints for customers and events (SPEC §6.2, §6.5).

The two ingest endpoints read the body themselves instead of through pydantic: `event_clean` is the one
validator (shared with the import command), numbers must keep every digit (`metering.exactjson`), and bulk
requests of 1,000 events must not spend their time in model construction. Their request schemas are still
published in the OpenAPI document through `openapi_extra`. Event lists are written with the same exact JSON
encoder, so a property `0.12345678901234567890123` comes back with all its digits.
"""

from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import Query, Router, Status

from flexmeter.errors import ValidationFailed
from metering import views_ingest
from metering.http import json_response, request_json
from metering.ingest.validation import MAX_BULK_EVENTS, events_clean
from metering.ingest.writer import events_store
from metering.schemas import (
    BulkAcceptedOut,
    BulkEventsIn,
    CustomerIn,
    CustomerListOut,
    CustomerOut,
    CustomerUpdateIn,
    EventAcceptedOut,
    EventIn,
    EventsPageOut,
    EventsQueryIn,
    EventsQueryParams,
    customer_to_dict,
    event_to_dict,
    events_query_clean,
)
from metering.selectors import (
    customer_get,
    customer_get_active,
    customer_get_by_external_id,
    customer_list,
    events_page,
)
from metering.services import customer_create, customer_delete, customer_update

customers_router = Router(tags=["customers"])
events_router = Router(tags=["events"])

MAX_LIST_LIMIT = 100
DEFAULT_LIST_LIMIT = 50


# Customers ---------------------------------------------------------------------------------------------------


@customers_router.post("", response={201: CustomerOut}, summary="Create a customer (409 if the external id exists)")
def create_customer(request: HttpRequest, payload: CustomerIn):
    customer = customer_create(environment=request.environment, data=payload.model_dump(exclude_unset=True))
    return Status(201, customer_to_dict(customer, environment_id=request.environment.public_id))


@customers_router.get("", response=CustomerListOut, summary="List customers, newest first")
def list_customers(
    request: HttpRequest,
    external_id: str | None = None,
    status: str = "active",
    limit: int = Query(DEFAULT_LIST_LIMIT, ge=1, le=MAX_LIST_LIMIT),
    offset: int = Query(0, ge=0),
):
    if status not in {"active", "deleted", "all"}:
        raise ValidationFailed(details={"status": "must be one of active, deleted, all"})
    customers = customer_list(
        environment=request.environment, external_id=external_id, status=None if status == "all" else status
    )
    environment_id = request.environment.public_id
    return {
        "items": [customer_to_dict(c, environment_id=environment_id) for c in customers[offset : offset + limit]],
        "pagination": {"total": customers.count(), "limit": limit, "offset": offset},
    }


@customers_router.get("/external/{external_id}", response=CustomerOut, summary="The active customer with this id")
def get_customer_by_external_id(request: HttpRequest, external_id: str):
    customer = customer_get_by_external_id(environment=request.environment, external_id=external_id)
    return customer_to_dict(customer, environment_id=request.environment.public_id)


@customers_router.get("/{customer_id}", response=CustomerOut, summary="A customer (deleted ones too)")
def get_customer(request: HttpRequest, customer_id: str):
    customer = customer_get(environment=request.environment, customer_id=customer_id)
    return customer_to_dict(customer, environment_id=request.environment.public_id)


@customers_router.put("/{customer_id}", response=CustomerOut, summary="Change the given fields of a customer")
def update_customer(request: HttpRequest, customer_id: str, payload: CustomerUpdateIn):
    customer = customer_get_active(environment=request.environment, customer_id=customer_id)
    customer = customer_update(customer=customer, data=payload.model_dump(exclude_unset=True))
    return customer_to_dict(customer, environment_id=request.environment.public_id)


@customers_router.delete(
    "/{customer_id}", response=CustomerOut, summary="Delete a customer (soft: its events and usage history stay)"
)
def delete_customer(request: HttpRequest, customer_id: str):
    customer = customer_get_active(environment=request.environment, customer_id=customer_id)
    customer = customer_delete(customer=customer)
    return customer_to_dict(customer, environment_id=request.environment.public_id)


# Events ------------------------------------------------------------------------------------------------------


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
    # Served by `metering.views_ingest.ingest_event`, which flexmeter/urls.py routes ahead of this API; this
    # operation documents it and answers the same way if reached (the key is then checked twice).
    return views_ingest.ingest_event(request)


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
