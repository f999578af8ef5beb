"""Reads of customers and events. The event stream is keyset-paginated so it stays fast on millions of rows."""

import base64
import binascii
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Q, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from flexmeter.errors import NotFound, ValidationFailed
from flexmeter.models import Environment
from flexmeter.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from metering.ingest.validation import text_problem
from metering.models import Customer, CustomerStatus, Event

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


# Customers ---------------------------------------------------------------------------------------------------


def customer_get(*, environment: Environment, customer_id: str) -> Customer:
    """A customer of this environment by public id (deleted ones included, so references stay resolvable)."""
    customer = None
    if not text_problem(customer_id):
        customer = Customer.objects.for_environment(environment).filter(public_id=customer_id).first()
    if customer is None:
        raise NotFound(f"Customer {customer_id} not found", details={"id": "no such customer in this environment"})
    return customer


def customer_get_active(*, environment: Environment, customer_id: str) -> Customer:
    customer = customer_get(environment=environment, customer_id=customer_id)
    if customer.status != CustomerStatus.ACTIVE:
        raise NotFound(f"Customer {customer_id} was deleted", details={"id": "customer was deleted"})
    return customer


def customer_get_by_external_id(*, environment: Environment, external_id: str) -> Customer:
    """The active customer with this external id (only one can exist)."""
    customer = None
    if not text_problem(external_id):
        customer = Customer.objects.for_environment(environment).active().filter(external_id=external_id).first()
    if customer is None:
        raise NotFound(
            f"No customer with external_id {external_id!r}", details={"external_id": "no such active customer"}
        )
    return customer


def customer_list(
    *, environment: Environment, external_id: str | None = None, status: str | None = CustomerStatus.ACTIVE
):
    """Customers of the environment, newest first; `status=None` includes deleted ones."""
    customers = Customer.objects.for_environment(environment)
    if status:
        customers = customers.filter(status=status)
    if external_id:
        customers = customers.filter(external_id=external_id)
    return customers.order_by("-created_at", "-id")


def customer_ids_by_external_id(*, environment: Environment, external_ids: Iterable[str]) -> dict[str, str]:
    """Map external ids to the public ids of their active customers, in one query (unknown ids are absent)."""
    wanted = set(external_ids)
    if not wanted:
        return {}
    rows = (
        Customer.objects.for_environment(environment)
        .active()
        .filter(external_id__in=wanted)
        .values_list("external_id", "public_id")
    )
    return dict(rows)


# Events ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventsPage:
    """One page of the event stream, newest first. `last_key` is the cursor for the next (older) page."""

    events: list[Event]
    customer_ids: dict[str, str]
    has_more: bool
    first_key: str | None
    last_key: str | None

    def customer_id_for(self, event: Event) -> str | None:
        return self.customer_ids.get(event.external_customer_id)


def event_cursor_encode(event: Event) -> str:
    delta = event.timestamp - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return base64.urlsafe_b64encode(f"{micros}:{event.pk}".encode()).decode().rstrip("=")


def event_cursor_decode(cursor: str, *, field_name: str = "iter_last_key") -> tuple[dt.datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        micros, pk = raw.split(":")
        return _EPOCH + dt.timedelta(microseconds=int(micros)), int(pk)
    except (ValueError, UnicodeDecodeError, binascii.Error, OverflowError):
        raise ValidationFailed(
            details={field_name: "is not a cursor returned by this API (pass iter_last_key from a previous page)"}
        ) from None


def events_page(
    *,
    environment: Environment,
    event_name: str | None = None,
    external_customer_id: str | None = None,
    event_id: str | None = None,
    source: str | None = None,
    start_time: dt.datetime | None = None,
    end_time: dt.datetime | None = None,
    property_filters: dict[str, list[str]] | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> EventsPage:
    """Events newest first (timestamp, then insertion order), filtered, one keyset page at a time.

    The cursor is the (timestamp, id) of the last event of the previous page, so pages never repeat or skip
    events while new ones arrive, and no page costs more than `page_size + 1` index entries plus the filtered
    ones. `start_time` is inclusive, `end_time` exclusive. Customer ids are resolved in one extra query.
    """
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValidationFailed(details={"page_size": f"must be between 1 and {MAX_PAGE_SIZE}"})
    events = Event.objects.for_environment(environment).between(start_time, end_time)
    if event_name:
        events = events.filter(event_name=event_name)
    if external_customer_id:
        events = events.filter(external_customer_id=external_customer_id)
    if event_id:
        events = events.filter(event_id=event_id)
    if source:
        events = events.filter(source=source)
    for index, (key, values) in enumerate((property_filters or {}).items()):
        # Canonical text (SPEC §3): strings as they are, numbers in their JSON spelling, true/false.
        alias = f"property_filter_{index}"
        text = Cast(KeyTextTransform(key, "properties"), output_field=TextField())
        events = events.alias(**{alias: text}).filter(**{f"{alias}__in": list(values)})
    if cursor:
        timestamp, pk = event_cursor_decode(cursor)
        # The redundant `timestamp <= t` bounds the index range scan; the OR only breaks ties within t.
        events = events.filter(Q(timestamp__lte=timestamp) & (Q(timestamp__lt=timestamp) | Q(pk__lt=pk)))
    rows = list(events.order_by("-timestamp", "-id")[: page_size + 1])
    has_more = len(rows) > page_size
    rows = rows[:page_size]
    return EventsPage(
        events=rows,
        customer_ids=customer_ids_by_external_id(
            environment=environment, external_ids={event.external_customer_id for event in rows}
        ),
        has_more=has_more,
        first_key=event_cursor_encode(rows[0]) if rows else None,
        last_key=event_cursor_encode(rows[-1]) if rows else None,
    )
