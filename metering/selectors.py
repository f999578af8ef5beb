"""Reads of customers and events. The event stream is keyset-paginated so it stays fast on millions of rows."""

import base64
import binascii
import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.db import connection
from django.db.models import BooleanField, Q
from django.db.models.expressions import RawSQL

from flexmeter.errors import NotFound, ValidationFailed
from flexmeter.models import Environment
from flexmeter.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from metering.ingest.validation import text_problem
from metering.models import Customer, CustomerStatus, Event
from metering.usage.dialects import dialect_for
from metering.usage.dialects.base import Dialect, Params
from metering.usage.predicate import filter_sql
from metering.usage.spec import Filter

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_NAMED_PARAM = re.compile(r"%\((\w+)\)s")


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


def event_row_condition(build: Callable[[Dialect, Params], str]) -> RawSQL:
    """A boolean ORM expression for an `Event` queryset from SQL the engine writes about event row `e` (its filters,
    its per-meter predicate), so lists and the stream decide exactly as usage totals do.

    The engine's fragments address the event as `e`, so the row is looked up again by primary key under that
    alias; for a page of rows that is one index probe each.
    """
    dialect = dialect_for(connection)
    params = Params()
    predicate = build(dialect, params)
    table = Event._meta.db_table
    values: list = []

    def positional(match: re.Match) -> str:  # named `%(p0)s` → the positional `%s` RawSQL expects
        values.append(params.values[match.group(1)])
        return "%s"

    sql = f"EXISTS (SELECT 1 FROM {table} e WHERE e.id = {table}.id AND {predicate})"
    return RawSQL(_NAMED_PARAM.sub(positional, sql), values, output_field=BooleanField())


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
    if property_filters:
        filters = [Filter(key=key, operator="in", values=tuple(values)) for key, values in property_filters.items()]
        events = events.filter(
            event_row_condition(lambda d, p: " AND ".join(filter_sql(filter_, d, p) for filter_ in filters))
        )
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
