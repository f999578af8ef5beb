"""The outbox: other apps hand events to `publish` inside their own transaction, so an event is recorded for
delivery exactly when the change that caused it commits (an alert's log row and its webhook messages commit or roll
back together). The worker delivers what is here (`webhooks.delivery`)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.utils import timezone

from flexmeter.ids import new_public_id
from flexmeter.models import Environment
from webhooks.models import EventType, MessageStatus, WebhookEndpoint, WebhookMessage


def publish(environment: Environment, event_type: str, payloads: Sequence[dict]) -> int:
    """Queue one message per (payload × enabled endpoint of `environment` subscribed to `event_type`); return how
    many. Runs in the caller's transaction with two statements whatever the number of payloads: one reads the
    endpoints, one inserts every message (the rows travel as a single JSON parameter, so neither SQLite's limit on
    parameters nor a batch size splits the insert). Payload values that JSON lacks (Decimal, datetime) are written
    as Django's JSON encoder writes them: decimals as exact strings, datetimes in ISO 8601."""
    _known(event_type)
    if not payloads:
        return 0
    endpoint_ids = subscribers([environment.pk]).get((environment.pk, event_type), [])
    return publish_to(environment.pk, event_type, endpoint_ids, payloads)


def subscribers(environment_ids: Iterable[int]) -> dict[tuple[int, str], list[int]]:
    """{(environment, event type): the enabled endpoints subscribed to it}, in one statement. A publisher with many
    events (an alert pass crossing thousands of thresholds) builds payloads only for what some endpoint receives."""
    found: dict[tuple[int, str], list[int]] = defaultdict(list)
    rows = (
        WebhookEndpoint.objects.filter(environment_id__in=list(environment_ids), enabled=True)
        .order_by("pk")
        .values_list("pk", "environment_id", "event_types")
    )
    for endpoint_id, environment_id, event_types in rows:
        for event_type in event_types or []:
            found[(environment_id, event_type)].append(endpoint_id)
    return dict(found)


def publish_to(environment_id: int, event_type: str, endpoint_ids: Sequence[int], payloads: Sequence[dict]) -> int:
    """`publish` to endpoints already read with `subscribers`: one statement, in the caller's transaction."""
    _known(event_type)
    if not payloads or not endpoint_ids:
        return 0
    rows = [
        {"id": new_public_id("msg"), "endpoint": endpoint_id, "payload": payload}
        for payload in payloads
        for endpoint_id in endpoint_ids
    ]
    _insert_messages(environment_id=environment_id, event_type=event_type, rows=rows)
    return len(rows)


def _known(event_type: str) -> None:
    if event_type not in EventType.values:
        raise ValueError(f"unknown webhook event type {event_type!r}")


def _insert_messages(*, environment_id: int, event_type: str, rows: list[dict]) -> None:
    table = connection.ops.quote_name(WebhookMessage._meta.db_table)
    now = timezone.now()
    columns = (
        "environment_id, endpoint_id, public_id, event_type, payload, status, attempts, next_attempt_at, "
        "claim_token, created_at"
    )
    document = json.dumps(rows, cls=DjangoJSONEncoder)
    if connection.vendor == "postgresql":
        source = (
            "SELECT %s, (r ->> 'endpoint')::bigint, r ->> 'id', %s, r -> 'payload', %s, 0, %s, '', %s "
            "FROM jsonb_array_elements(%s::jsonb) AS r"
        )
    elif connection.vendor == "sqlite":
        source = (
            "SELECT %s, json_extract(r.value, '$.endpoint'), json_extract(r.value, '$.id'), %s, "
            "json(json_extract(r.value, '$.payload')), %s, 0, %s, '', %s FROM json_each(%s) AS r"
        )
    else:  # pragma: no cover - flexmeter runs on SQLite and PostgreSQL
        raise NotImplementedError(connection.vendor)
    params: list = [
        environment_id,
        event_type,
        MessageStatus.PENDING,
        connection.ops.adapt_datetimefield_value(now),
        connection.ops.adapt_datetimefield_value(now),
        document,
    ]
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} ({columns}) {source}", params)
