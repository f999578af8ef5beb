"""Delivering the outbox (SPEC §11): claim due messages, sign them per Standard Webhooks, POST them, log every
attempt and schedule the next one.

Claims are leases. A claim pushes the messages' `next_attempt_at` to the end of the lease in a short transaction
(`SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite's IMMEDIATE transactions serialize claims), and the
deliveries run outside any transaction. A worker killed mid-delivery therefore leaves its messages `pending`, due
again when the lease runs out, and another run sends them with the same `webhook-id`: delivery is at least once,
and a receiver that de-duplicates on `webhook-id` sees each event exactly once.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from standardwebhooks import Webhook

from webhooks import transport
from webhooks.models import MessageStatus, WebhookAttempt, WebhookEndpoint, WebhookMessage

RETRY_SCHEDULE: tuple[float, ...] = (0, 5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
"""Delay in seconds before each attempt: the first immediately, the last (eighth) 10 h after the seventh."""

DISABLE_AFTER = dt.timedelta(days=5)
USER_AGENT = "flexmeter-webhooks/1"

Post = Callable[..., transport.Answer]


def retry_schedule() -> tuple[float, ...]:
    return tuple(getattr(settings, "WEBHOOKS_RETRY_SCHEDULE", None) or RETRY_SCHEDULE)


def disable_after() -> dt.timedelta:
    seconds = getattr(settings, "WEBHOOKS_DISABLE_AFTER", None)
    return dt.timedelta(seconds=seconds) if seconds else DISABLE_AFTER


def message_body(message: WebhookMessage) -> str:
    """The exact text sent and signed; the same on every attempt of the message."""
    return json.dumps(message.envelope(), separators=(",", ":"), ensure_ascii=False)


def signed_headers(*, message: WebhookMessage, secret: str, body: str, at: dt.datetime) -> dict[str, str]:
    """The Standard Webhooks headers for one attempt, signed by the `standardwebhooks` package."""
    signature = Webhook(secret).sign(msg_id=message.public_id, timestamp=at.astimezone(dt.UTC), data=body)
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": message.public_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }


def messages_claim(*, limit: int, lease_seconds: float) -> tuple[str, list[WebhookMessage]]:
    """Lease up to `limit` due messages of enabled endpoints to this caller; return the claim token and them.

    Endpoints take turns: each one's oldest due message first, then each one's second, and so on. Oldest first
    overall let one endpoint's backlog fill every batch, and a slow one (each POST waiting out the timeout) then held
    back every other endpoint's messages until its backlog was retried into the future."""
    token = secrets.token_hex(16)
    now = timezone.now()
    # Candidates are ranked without locks, a few per message wanted: those a concurrent run claims meanwhile are
    # skipped, and this run takes the next ones in turn.
    candidates = _in_turns(now, limit * 4)
    if not candidates:
        return token, []
    with transaction.atomic():
        free = set(
            WebhookMessage.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(id__in=candidates, status=MessageStatus.PENDING, next_attempt_at__lte=now)
            .values_list("id", flat=True)
        )
        ids = [pk for pk in candidates if pk in free][:limit]
        if not ids:
            return token, []
        WebhookMessage.objects.filter(id__in=ids).update(
            claim_token=token, next_attempt_at=now + dt.timedelta(seconds=lease_seconds)
        )
    return token, list(WebhookMessage.objects.filter(claim_token=token, id__in=ids).select_related("endpoint"))


def _in_turns(now: dt.datetime, count: int) -> list[int]:
    """The ids of up to `count` due messages of enabled endpoints: each endpoint's oldest, then each one's second...
    Each enabled endpoint's `count` oldest are read by index (`webhookmsg_endpoint_due`), one short query per
    endpoint (an installation has a handful), never a whole backlog: ranking every due message in one window took
    38 ms a claim with 50,000 due on PostgreSQL."""
    oldest: list[tuple[int, dt.datetime | None, int]] = []  # (turn, due at: set on every pending message, id)
    for endpoint_id in WebhookEndpoint.objects.filter(enabled=True).values_list("id", flat=True):
        due = WebhookMessage.objects.filter(
            endpoint_id=endpoint_id, status=MessageStatus.PENDING, next_attempt_at__lte=now
        )
        rows = due.order_by("next_attempt_at", "id").values_list("next_attempt_at", "id")[:count]
        oldest.extend((turn, at, pk) for turn, (at, pk) in enumerate(rows))
    return [pk for _, _, pk in sorted(oldest)[:count]]


def attempt_record(*, message: WebhookMessage, token: str, answer: transport.Answer, at: dt.datetime) -> None:
    """Log one attempt and move the message on: delivered, due again per the schedule, or failed once the schedule
    is used up. Any success clears the endpoint's run of failures; a failure that extends a run older than
    `DISABLE_AFTER` disables the endpoint."""
    now = timezone.now()
    endpoint = message.endpoint
    with transaction.atomic():
        WebhookAttempt.objects.create(
            message=message,
            endpoint=endpoint,
            attempted_at=at,
            status_code=answer.status_code,
            response_excerpt=answer.excerpt,
            duration_ms=answer.duration_ms,
            error=answer.error,
            succeeded=answer.succeeded,
        )
        if answer.succeeded:
            # Delivered is delivered, even when the lease ran out and another worker holds the message now.
            WebhookMessage.objects.filter(pk=message.pk, status=MessageStatus.PENDING).update(
                status=MessageStatus.DELIVERED,
                attempts=F("attempts") + 1,
                last_attempt_at=at,
                delivered_at=now,
                next_attempt_at=None,
                claim_token="",
            )
            WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=False).update(failing_since=None)
            return
        attempts = message.attempts + 1
        schedule = retry_schedule()
        changes: dict = {"attempts": attempts, "last_attempt_at": at, "claim_token": ""}
        if attempts < len(schedule):
            changes["next_attempt_at"] = now + dt.timedelta(seconds=schedule[attempts])
        else:
            changes.update(status=MessageStatus.FAILED, next_attempt_at=None)
        WebhookMessage.objects.filter(pk=message.pk, claim_token=token, status=MessageStatus.PENDING).update(**changes)
        WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(failing_since=at)
        WebhookEndpoint.objects.filter(pk=endpoint.pk, enabled=True, failing_since__lte=now - disable_after()).update(
            enabled=False,
            disabled_at=now,
            disabled_reason=f"every delivery failed for {_duration(disable_after())}",
        )


def _duration(span: dt.timedelta) -> str:
    seconds = int(span.total_seconds())
    if seconds % 86400 == 0:
        return f"{seconds // 86400} days"
    return f"{seconds} seconds"


@dataclass
class DeliveryReport:
    attempted: int = 0
    delivered: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"attempted": self.attempted, "delivered": self.delivered, "failed": self.failed}


def deliveries_run(
    *,
    budget_seconds: float,
    concurrency: int | None = None,
    timeout: float | None = None,
    lease_seconds: float | None = None,
    post: Post | None = None,
) -> DeliveryReport:
    """Deliver due messages, `concurrency` at a time, until none is due or `budget_seconds` have passed. The POSTs run
    in threads; the database is touched only from the calling thread."""
    concurrency = concurrency or settings.WEBHOOKS_CONCURRENCY
    timeout = timeout or settings.WEBHOOKS_TIMEOUT
    lease_seconds = lease_seconds or settings.WEBHOOKS_CLAIM_LEASE
    post = post or transport.post
    report = DeliveryReport()
    deadline = time.monotonic() + budget_seconds
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="webhook-post") as pool:
        while time.monotonic() < deadline:
            token, messages = messages_claim(limit=concurrency, lease_seconds=lease_seconds)
            if not messages:
                break
            _deliver_batch(pool, messages, token=token, timeout=timeout, post=post, report=report)
    return report


def _deliver_batch(
    pool: ThreadPoolExecutor,
    messages: Sequence[WebhookMessage],
    *,
    token: str,
    timeout: float,
    post: Post,
    report: DeliveryReport,
) -> None:
    futures = {}
    for message in messages:
        at = timezone.now()
        body = message_body(message)
        headers = signed_headers(message=message, secret=message.endpoint.secret, body=body, at=at)
        future = pool.submit(post, message.endpoint.url, body=body.encode(), headers=headers, timeout=timeout)
        futures[future] = (message, at)
    for future in as_completed(futures):
        message, at = futures[future]
        answer = future.result()
        attempt_record(message=message, token=token, answer=answer, at=at)
        report.attempted += 1
        if answer.succeeded:
            report.delivered += 1
        else:
            report.failed += 1
