"""REST endpoints for customers (SPEC §6.5)."""

from django.http import HttpRequest
from ninja import Query, Router, Status

from flexmeter.errors import ValidationFailed
from flexmeter.pagination import DEFAULT_PAGE_SIZE, MAX_OFFSET, MAX_PAGE_SIZE
from metering.api.schemas import CustomerIn, CustomerListOut, CustomerOut, CustomerUpdateIn, customer_to_dict
from metering.selectors import (
    customer_get,
    customer_get_active,
    customer_get_by_external_id,
    customer_list,
)
from metering.services import customer_create, customer_delete, customer_update

customers_router = Router(tags=["customers"])


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
