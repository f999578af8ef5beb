"""API shapes for customers and events (SPEC §6.2, §6.5) and the one JSON form of an event and a customer.

`event_to_dict` and `customer_to_dict` are the only serializers: the REST API, the event lookup and the
dashboard all use them, so an event looks the same everywhere.
"""

import datetime as dt
from typing import Annotated, Any

from ninja import Field, Schema
from pydantic import WithJsonSchema

from flexmeter.decimals import rfc3339
from flexmeter.errors import ValidationFailed
from flexmeter.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from metering import exactjson
from metering.exactjson import UnreadableJSON
from metering.ingest.validation import MAX_BULK_EVENTS, parse_timestamp, text_problem
from metering.models import BillingPeriod, Customer, Event
from metering.selectors import CUSTOMER_SORT_FIELDS

Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]


def timestamp_out(value: dt.datetime | None) -> str | None:
    """RFC 3339 in UTC with a `Z`, microseconds when present."""
    return None if value is None else rfc3339(value)


# Events ------------------------------------------------------------------------------------------------------


class EventIn(Schema):
    """One usage event (SPEC §2.3). Unknown fields are ignored."""

    event_id: str | None = Field(None, max_length=255, description="Your id; the server assigns event_<ulid> if absent")
    event_name: str = Field(..., max_length=255)
    external_customer_id: str = Field(..., max_length=255)
    timestamp: Timestamp | None = Field(None, description="RFC 3339 with offset or Z; at most 24 h in the future")
    source: str | None = Field(None, max_length=255)
    properties: dict[str, Any] | None = Field(None, description="JSON object, at most 100 keys and 32 KiB")


class BulkEventsIn(Schema):
    events: list[EventIn] = Field(..., min_length=1, max_length=MAX_BULK_EVENTS)


class EventAcceptedOut(Schema):
    message: str
    event_id: str
    duplicate: str = Field(..., description='"true" when an event with this id already existed and was replaced')


class BulkAcceptedOut(Schema):
    message: str
    accepted: str = Field(..., description="Number of events in the request, as a string")
    duplicates: str = Field(..., description="How many replaced a stored event or repeated an earlier id, as a string")


class EventOut(Schema):
    id: str
    event_name: str
    external_customer_id: str
    customer_id: str | None
    timestamp: Timestamp
    ingested_at: Timestamp
    source: str
    properties: dict[str, Any]
    environment_id: str


class EventsPageOut(Schema):
    events: list[EventOut]
    has_more: bool
    iter_first_key: str | None
    iter_last_key: str | None = Field(None, description="Pass it back as iter_last_key for the next (older) page")


class EventsQueryIn(Schema):
    event_name: str | None = None
    external_customer_id: str | None = None
    event_id: str | None = None
    source: str | None = None
    start_time: Timestamp | None = Field(None, description="Inclusive")
    end_time: Timestamp | None = Field(None, description="Exclusive")
    property_filters: dict[str, list[str]] | None = Field(
        None, description="Property key → accepted values (canonical text: numbers as spelled, true/false)"
    )
    page_size: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    iter_last_key: str | None = None


class EventsQueryParams(EventsQueryIn):
    property_filters: str | None = Field(None, description='JSON object, e.g. {"region": ["eu", "us"]}')


def event_to_dict(event: Event, customer_id: str | None, *, environment_id: str | None = None) -> dict[str, Any]:
    """The JSON form of a stored event (SPEC §6.2). Pass `environment_id` to avoid loading the environment.

    Properties no reader can show (stored before the rule of flexmeter/limits.py) go out as `{}` with
    `properties_error` saying why, so the rest of the list still answers."""
    wire = {
        "id": event.event_id,
        "event_name": event.event_name,
        "external_customer_id": event.external_customer_id,
        "customer_id": customer_id,
        "timestamp": timestamp_out(event.timestamp),
        "ingested_at": timestamp_out(event.ingested_at),
        "source": event.source,
        "properties": event.properties,
        "environment_id": environment_id or event.environment.public_id,
    }
    if isinstance(event.properties, UnreadableJSON):
        wire["properties_error"] = f"The stored properties cannot be shown: {event.properties.reason}"
    return wire


def events_query_clean(data: dict[str, Any]) -> dict[str, Any]:
    """GET query / POST body filters → keyword arguments of `selectors.events_page`."""
    errors: dict[str, str] = {}
    kwargs: dict[str, Any] = {
        name: data.get(name) or None for name in ("event_name", "external_customer_id", "event_id", "source")
    }
    for name, value in kwargs.items():
        if value and (problem := text_problem(value)):
            errors[name] = problem
    for name in ("start_time", "end_time"):
        value = data.get(name)
        kwargs[name] = None
        if value:
            try:
                kwargs[name] = parse_timestamp(value)
            except ValueError as exc:
                errors[name] = str(exc)
    if kwargs["start_time"] and kwargs["end_time"] and kwargs["end_time"] < kwargs["start_time"]:
        errors["end_time"] = "must not be before start_time"
    try:
        kwargs["property_filters"] = property_filters_clean(data.get("property_filters"))
    except ValueError as exc:
        errors["property_filters"] = str(exc)
    if errors:
        raise ValidationFailed(details=errors)
    kwargs["page_size"] = data.get("page_size") or DEFAULT_PAGE_SIZE
    kwargs["cursor"] = data.get("iter_last_key") or None
    return kwargs


def property_filters_clean(value: Any) -> dict[str, list[str]] | None:
    """`{key: [values]}` (or its JSON text) checked; ValueError says what is wrong. Empty means no filter."""
    if value in (None, "", {}):
        return None
    if isinstance(value, str):
        try:
            value = exactjson.loads(value)
        except ValueError:
            raise ValueError('must be a JSON object such as {"region": ["eu"]}') from None
    if not isinstance(value, dict):
        raise ValueError('must be an object mapping property keys to lists of values, such as {"region": ["eu"]}')
    cleaned: dict[str, list[str]] = {}
    for key, values in value.items():
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list) or not values or not all(isinstance(item, str) for item in values):
            raise ValueError(f"{key}: values must be a non-empty list of strings")
        for text in (key, *values):
            if problem := text_problem(text):
                raise ValueError(f"{key!r}: {problem}")
        cleaned[key] = values
    return cleaned


# Customers ---------------------------------------------------------------------------------------------------


class CustomerIn(Schema):
    external_id: str = Field(..., max_length=255, description="The id your application knows; unique per environment")
    name: str = Field(..., max_length=255)
    email: str | None = None
    metadata: dict[str, str] | None = None
    billing_anchor: Timestamp | None = Field(None, description="Start of the first billing period (default: now)")
    billing_period: str | None = Field(None, description=f"One of {', '.join(BillingPeriod.values)} (default MONTHLY)")


class CustomerUpdateIn(Schema):
    external_id: str | None = Field(None, max_length=255)
    name: str | None = Field(None, max_length=255)
    email: str | None = None
    metadata: dict[str, str] | None = None
    billing_anchor: Timestamp | None = None
    billing_period: str | None = None


class CustomerOut(Schema):
    id: str
    external_id: str
    name: str
    email: str
    metadata: dict[str, str]
    billing_anchor: Timestamp
    billing_period: str
    status: str
    environment_id: str
    created_at: Timestamp
    updated_at: Timestamp


class SortIn(Schema):
    field: str = Field(..., description=f"One of {', '.join(CUSTOMER_SORT_FIELDS)}")
    direction: str = Field("asc", description="asc or desc")


class CustomerSearchIn(Schema):
    """Flexprice's customer filter. Every given filter narrows the result; `status` defaults to active."""

    customer_ids: list[str] | None = None
    external_id: str | None = None
    external_ids: list[str] | None = None
    email: str | None = None
    status: str | None = Field(None, description="active (Flexprice: published), deleted or all")
    metadata: dict[str, str] | None = Field(None, description="customers having every one of these pairs")
    start_time: dt.datetime | None = Field(None, description="created at or after (RFC 3339)")
    end_time: dt.datetime | None = Field(None, description="created before (RFC 3339)")
    order: str | None = Field(None, description="asc or desc by creation time (default desc)")
    sort: list[SortIn] | None = None
    filters: list[dict[str, Any]] | None = Field(None, description="not supported: must be absent or empty")
    expand: str | None = Field(None, description="accepted and ignored (customers have no expandable relations)")
    limit: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    offset: int = Field(0, ge=0)


class PaginationOut(Schema):
    total: int
    limit: int
    offset: int


class CustomerListOut(Schema):
    items: list[CustomerOut]
    pagination: PaginationOut


def customer_to_dict(customer: Customer, *, environment_id: str | None = None) -> dict[str, Any]:
    return {
        "id": customer.public_id,
        "external_id": customer.external_id,
        "name": customer.name,
        "email": customer.email,
        "metadata": customer.metadata,
        "billing_anchor": timestamp_out(customer.billing_anchor),
        "billing_period": customer.billing_period,
        "status": customer.status,
        "environment_id": environment_id or customer.environment.public_id,
        "created_at": timestamp_out(customer.created_at),
        "updated_at": timestamp_out(customer.updated_at),
    }
