"""REST endpoints for customers (SPEC §6.5), with Flexprice's query-addressed update and search."""

import datetime as dt

from django.http import HttpRequest
from ninja import Query, Router, Status

from flexmeter.errors import ValidationFailed
from flexmeter.pagination import DEFAULT_PAGE_SIZE, MAX_OFFSET, MAX_PAGE_SIZE
from metering.api.schemas import (
    CustomerIn,
    CustomerListOut,
    CustomerOut,
    CustomerSearchIn,
    CustomerUpdateIn,
    customer_to_dict,
)
from metering.models import Customer, CustomerStatus
from metering.selectors import (
    CUSTOMER_SORT_FIELDS,
    customer_get,
    customer_get_active,
    customer_get_by_external_id,
    customer_list,
)
from metering.services import customer_create, customer_delete, customer_update

customers_router = Router(tags=["customers"])

MAX_LIST_LIMIT = 100
DEFAULT_LIST_LIMIT = 50
# Flexprice calls a live customer `published`; both words mean the same here.
STATUS_FILTERS = {
    "active": CustomerStatus.ACTIVE,
    "published": CustomerStatus.ACTIVE,
    "deleted": CustomerStatus.DELETED,
    "all": None,
}


def _status_filter(value: str | None) -> str | None:
    key = (value or "active").strip().lower()
    if key not in STATUS_FILTERS:
        raise ValidationFailed(details={"status": f"must be one of {', '.join(STATUS_FILTERS)}"})
    return STATUS_FILTERS[key]


def _page(request: HttpRequest, customers, *, limit: int, offset: int) -> dict:
    environment_id = request.environment.public_id
    return {
        "items": [customer_to_dict(c, environment_id=environment_id) for c in customers[offset : offset + limit]],
        "pagination": {"total": customers.count(), "limit": limit, "offset": offset},
    }


@customers_router.post("", response={201: CustomerOut}, summary="Create a customer (409 if the external id exists)")
def create_customer(request: HttpRequest, payload: CustomerIn):
    customer = customer_create(environment=request.environment, data=payload.model_dump(exclude_unset=True))
    return Status(201, customer_to_dict(customer, environment_id=request.environment.public_id))


@customers_router.get("", response=CustomerListOut, summary="List customers, newest first")
def list_customers(
    request: HttpRequest,
    external_id: str | None = None,
    status: str = "active",
    limit: int = Query(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
):
    customers = customer_list(environment=request.environment, external_id=external_id, status=_status_filter(status))
    return _page(request, customers, limit=limit, offset=offset)


@customers_router.put(
    "",
    response=CustomerOut,
    summary="Change the given fields of the customer named by ?id= or ?external_customer_id= (Flexprice's form)",
)
def update_customer_by_query(
    request: HttpRequest,
    payload: CustomerUpdateIn,
    id: str | None = None,
    external_customer_id: str | None = Query(None, description="the customer's current external id"),
    external_id: str | None = Query(None, description="same as external_customer_id"),
):
    customer = _customer_from_query(request, customer_id=id, external_id=external_customer_id or external_id)
    customer = customer_update(customer=customer, data=payload.model_dump(exclude_unset=True))
    return customer_to_dict(customer, environment_id=request.environment.public_id)


def _customer_from_query(request: HttpRequest, *, customer_id: str | None, external_id: str | None) -> Customer:
    if bool(customer_id) == bool(external_id):
        raise ValidationFailed(
            "Name the customer by exactly one of the query parameters id and external_customer_id",
            details={"id": "give id or external_customer_id, not both or neither"},
        )
    if customer_id:
        return customer_get_active(environment=request.environment, customer_id=customer_id)
    return customer_get_by_external_id(environment=request.environment, external_id=external_id or "")


@customers_router.post("/search", response=CustomerListOut, summary="Search customers (Flexprice's filter body)")
def search_customers(request: HttpRequest, payload: CustomerSearchIn):
    errors: dict[str, str] = {}
    if payload.filters:
        errors["filters"] = "generic filter conditions are not supported; use the named filters"
    for name in ("start_time", "end_time"):
        value = getattr(payload, name)
        if value is not None and value.tzinfo is None:
            errors[name] = "must carry a time zone offset"
    order = (payload.order or "desc").strip().lower()
    if order not in ("asc", "desc"):
        errors["order"] = "must be asc or desc"
    sort = [("created_at", order)]
    for index, item in enumerate(payload.sort or []):
        direction = item.direction.strip().lower()
        if item.field not in CUSTOMER_SORT_FIELDS:
            errors[f"sort[{index}].field"] = f"must be one of {', '.join(CUSTOMER_SORT_FIELDS)}"
        elif direction not in ("asc", "desc"):
            errors[f"sort[{index}].direction"] = "must be asc or desc"
        else:
            sort.insert(len(sort) - 1, (item.field, direction))
    if errors:
        raise ValidationFailed(details=errors)
    customers = customer_list(
        environment=request.environment,
        status=_status_filter(payload.status),
        external_id=payload.external_id,
        external_ids=payload.external_ids or (),
        customer_ids=payload.customer_ids or (),
        email=payload.email,
        metadata=payload.metadata,
        created_from=payload.start_time.astimezone(dt.UTC) if payload.start_time else None,
        created_before=payload.end_time.astimezone(dt.UTC) if payload.end_time else None,
        sort=sort,
    )
    return _page(request, customers, limit=payload.limit, offset=payload.offset)


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
    "/{customer_id}",
    response={204: None},
    summary="Delete a customer (soft: its events and usage history stay); 204 No Content as in Flexprice",
)
def delete_customer(request: HttpRequest, customer_id: str):
    customer = customer_get_active(environment=request.environment, customer_id=customer_id)
    customer_delete(customer=customer)
    return Status(204, None)
