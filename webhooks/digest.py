"""The `events.unmatched` digest (SPEC §11): per environment with an endpoint subscribed to it, the events stored
since the last digest that count for nothing — no published meter matched them, or they matched but name a customer
that does not exist — counted by reason and event name, with a few example ids and a link to the debugger.

Which events those are is the debugger's decision: the meter match is the predicate module's SQL through
`metering.debugger.stream` (`matched_expression` on the Django database, `clickhouse_unmatched_window` with events in
ClickHouse), never a rule of its own here. The worker runs this once per
`WEBHOOKS_UNMATCHED_DIGEST_EVERY`, so each endpoint gets at most one digest per interval, and none when nothing
went unmatched."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.db.models import Case, CharField, Count, Max, OuterRef, Subquery, Value, When
from django.urls import reverse
from django.utils import timezone

from flexmeter.models import Environment
from metering.clickhouse.config import events_backend
from metering.debugger.explain import STATUS_CUSTOMER_NOT_FOUND, STATUS_UNMATCHED
from metering.debugger.stream import (
    UnmatchedWindow,
    clickhouse_unmatched_window,
    matched_expression,
    published_specs,
)
from metering.models import Customer, CustomerStatus, Event
from webhooks.models import EventType, UnmatchedDigestCursor, WebhookEndpoint
from webhooks.outbox import publish

EXAMPLES_PER_REASON = 5
NAMES_LISTED = 20
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
REASON_TEXT = {
    STATUS_UNMATCHED: "no published meter matched",
    STATUS_CUSTOMER_NOT_FOUND: "matched a meter, but the customer does not exist",
}


def _environments_subscribed() -> list[Environment]:
    environment_ids = {
        endpoint.environment_id
        for endpoint in WebhookEndpoint.objects.filter(enabled=True).only("environment_id", "event_types")
        if EventType.EVENTS_UNMATCHED in (endpoint.event_types or [])
    }
    return list(Environment.objects.filter(pk__in=environment_ids).order_by("pk"))


def _debugger_url(status: str) -> str:
    return f"{settings.FLEXMETER_BASE_URL.rstrip('/')}{reverse('metering:event_stream')}?status={status}"


def _django_window(*, environment: Environment, after_id: int, up_to_id: int) -> UnmatchedWindow:
    """The unmatched events with `after_id < id <= up_to_id`, with events in the Django database."""
    customers = Customer.objects.filter(
        environment_id=OuterRef("environment_id"),
        external_id=OuterRef("external_customer_id"),
        status=CustomerStatus.ACTIVE,
    ).values("public_id")[:1]
    events = (
        Event.objects.filter(environment=environment, id__gt=after_id, id__lte=up_to_id)
        .annotate(matched=matched_expression(published_specs(environment)), customer_public_id=Subquery(customers))
        .annotate(
            reason=Case(
                When(matched=False, then=Value(STATUS_UNMATCHED)),
                When(customer_public_id__isnull=True, then=Value(STATUS_CUSTOMER_NOT_FOUND)),
                default=Value(""),
                output_field=CharField(),
            )
        )
        .exclude(reason="")
    )
    groups = [
        (group["reason"], group["event_name"], group["count"])
        for group in events.values("reason", "event_name")
        .annotate(count=Count("id"))
        .order_by("-count", "event_name", "reason")
    ]
    examples = []
    for reason in {reason for reason, _, _ in groups}:
        examples += [
            (reason, event_id, name)
            for event_id, name in events.filter(reason=reason)
            .order_by("-id")
            .values_list("event_id", "event_name")[:EXAMPLES_PER_REASON]
        ]
    return UnmatchedWindow(groups=groups, examples=examples)


def digest_payload(*, environment: Environment, window: UnmatchedWindow) -> dict | None:
    """The digest of a window's unmatched events, or None when all of them counted."""
    if not window.groups:
        return None
    by_reason = {reason: 0 for reason in REASON_TEXT}
    for reason, _, count in window.groups:
        by_reason[reason] += count
    examples = [
        {"event_id": event_id, "event_name": name, "reason": reason}
        for wanted in REASON_TEXT
        for reason, event_id, name in window.examples
        if reason == wanted
    ]
    return {
        "environment_id": environment.public_id,
        "total": sum(by_reason.values()),
        "by_reason": [
            {"reason": reason, "description": text, "count": by_reason[reason], "debugger_url": _debugger_url(reason)}
            for reason, text in REASON_TEXT.items()
        ],
        "event_names": [
            {"event_name": name, "reason": reason, "count": count}
            for reason, name, count in window.groups[:NAMES_LISTED]
        ],
        "more_event_names": max(0, len(window.groups) - NAMES_LISTED),
        "examples": examples,
        "debugger_url": _debugger_url(STATUS_UNMATCHED),
    }


def _nanoseconds(moment: dt.datetime) -> int:
    return (moment - _EPOCH) // dt.timedelta(microseconds=1) * 1000


def unmatched_digests_publish(*, now: dt.datetime | None = None) -> int:
    """Queue one digest per environment with subscribed endpoints and unreported unmatched events; return how many
    environments got one. The cursor moves in the transaction that queues the digest, so an event is reported once.

    Both stores read only events written `WEBHOOKS_UNMATCHED_DIGEST_LAG` before `now`: a write is stamped before it
    lands, and a window that moved past a stamp whose write was still in flight would never read it. On the Django
    database the window ends at the largest row id among those events (PostgreSQL hands out ids before commit, so a
    slow transaction's lower id can appear after a higher one; the lag covers any transaction shorter than it). With
    events in ClickHouse (no row ids) it ends at the version stamped that long ago, and an event belongs to the
    window of its first delivery (docs/clickhouse.md: why the lag, and why a redelivery is not reported again)."""
    backend = events_backend()
    now = now or timezone.now()
    settled = now - dt.timedelta(seconds=settings.WEBHOOKS_UNMATCHED_DIGEST_LAG)
    sent = 0
    for environment in _environments_subscribed():
        with transaction.atomic():
            cursor, _ = UnmatchedDigestCursor.objects.select_for_update().get_or_create(environment=environment)
            if backend.is_clickhouse:
                up_to = _nanoseconds(settled)
                if up_to <= cursor.last_first_version:
                    continue
                window = clickhouse_unmatched_window(
                    backend,
                    environment=environment,
                    after_version=cursor.last_first_version,
                    up_to_version=up_to,
                    examples_per_reason=EXAMPLES_PER_REASON,
                )
                cursor.last_first_version = up_to
            else:
                up_to_id = Event.objects.filter(
                    environment=environment, id__gt=cursor.last_event_id, ingested_at__lte=settled
                ).aggregate(last=Max("id"))["last"]
                if up_to_id is None:
                    continue
                window = _django_window(environment=environment, after_id=cursor.last_event_id, up_to_id=up_to_id)
                cursor.last_event_id = up_to_id
            payload = digest_payload(environment=environment, window=window)
            if payload is not None:
                publish(environment, EventType.EVENTS_UNMATCHED, [payload])
                cursor.last_sent_at = timezone.now()
                sent += 1
            cursor.save(update_fields=["last_event_id", "last_first_version", "last_sent_at"])
    return sent
