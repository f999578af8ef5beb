"""Writes for customers (SPEC §6.5). Events are written by `metering.ingest.writer`.

Deleting a customer is a soft delete (`status=deleted`): events name customers by `external_id` and are never
touched, usage history stays explainable, and the external id becomes free for a new customer (the uniqueness
constraint only covers active customers).
"""

import datetime as dt
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from flexmeter.errors import AlreadyExists, ValidationFailed
from flexmeter.models import Environment
from metering.ingest.validation import parse_timestamp, text_problem
from metering.models import BillingPeriod, Customer, CustomerStatus

MAX_TEXT_LENGTH = 255
MAX_METADATA_KEYS = 50
CUSTOMER_FIELDS = ("external_id", "name", "email", "metadata", "billing_anchor", "billing_period")


def _text(value: Any, *, required: bool) -> str:
    if value is None:
        if required:
            raise ValueError("is required")
        return ""
    if not isinstance(value, str):
        raise ValueError("must be a string")
    value = value.strip()
    if required and not value:
        raise ValueError("must not be blank")
    if len(value) > MAX_TEXT_LENGTH:
        raise ValueError(f"must be at most {MAX_TEXT_LENGTH} characters")
    if problem := text_problem(value):
        raise ValueError(problem)
    return value


def _email(value: Any) -> str:
    value = _text(value, required=False)
    if value:
        try:
            validate_email(value)
        except DjangoValidationError:
            raise ValueError("must be a valid email address") from None
    return value


def _metadata(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("must be an object mapping strings to strings")
    if len(value) > MAX_METADATA_KEYS:
        raise ValueError(f"must have at most {MAX_METADATA_KEYS} keys")
    bad = [key for key, item in value.items() if not isinstance(item, str)]
    if bad:
        raise ValueError(f"values must be strings (not for {', '.join(sorted(bad)[:5])})")
    for key, item in value.items():
        if problem := text_problem(key) or text_problem(item):
            raise ValueError(f"{key!r}: {problem}")
    return dict(value)


def _billing_anchor(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("must include a time zone")
        return value.astimezone(dt.UTC)
    return parse_timestamp(value)


def _billing_period(value: Any) -> str:
    if not isinstance(value, str) or value.strip().upper() not in BillingPeriod.values:
        raise ValueError(f"must be one of {', '.join(BillingPeriod.values)}")
    return value.strip().upper()


_CLEANERS = {
    "external_id": lambda value: _text(value, required=True),
    "name": lambda value: _text(value, required=True),
    "email": _email,
    "metadata": _metadata,
    "billing_anchor": _billing_anchor,
    "billing_period": _billing_period,
}


def customer_clean(data: dict[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """Validate customer fields; returns only the known fields that were given (all required ones unless partial).

    `billing_anchor` and `billing_period` may be null/absent: the model defaults apply (now, MONTHLY).
    Raises ValidationFailed naming each bad field.
    """
    errors: dict[str, str] = {}
    cleaned: dict[str, Any] = {}
    for name in CUSTOMER_FIELDS:
        if name not in data:
            if not partial and name in {"external_id", "name"}:
                errors[name] = "is required"
            continue
        value = data[name]
        if value is None and name in {"billing_anchor", "billing_period"}:
            continue
        try:
            cleaned[name] = _CLEANERS[name](value)
        except ValueError as exc:
            errors[name] = str(exc)
    if errors:
        raise ValidationFailed(details=errors)
    return cleaned


def _save(customer: Customer) -> Customer:
    try:
        with transaction.atomic():
            customer.save()
    except IntegrityError as exc:
        raise AlreadyExists(
            f"A customer with external_id {customer.external_id!r} already exists in this environment",
            details={"external_id": "already exists"},
        ) from exc
    return customer


def customer_create(*, environment: Environment, data: dict[str, Any]) -> Customer:
    """Create a customer; a duplicate active `external_id` in the environment is AlreadyExists (DB-enforced)."""
    customer = Customer(environment=environment, **customer_clean(data))
    return _save(customer)


def customer_update(*, customer: Customer, data: dict[str, Any]) -> Customer:
    """Change the given fields only (a partial update). Changing `external_id` is allowed while it stays unique."""
    for name, value in customer_clean(data, partial=True).items():
        setattr(customer, name, value)
    return _save(customer)


def customer_delete(*, customer: Customer) -> Customer:
    """Soft delete: the row stays (status `deleted`) and its events stay; the external id may be reused."""
    if customer.status != CustomerStatus.DELETED:
        customer.status = CustomerStatus.DELETED
        customer.save(update_fields=["status", "updated_at"])
    return customer
