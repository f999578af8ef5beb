"""The outbox: other apps hand events to `publish` inside their own transaction, so an event is recorded for
delivery exactly when the change that caused it commits (an alert's log row and its webhook messages commit or roll
back together). The worker delivers what is here (`webhooks.delivery`)."""

from __future__ import annotations

import json
from collections.abc import Sequence

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
    if event_type not in EventType.values:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    if not payloads:
        return 0
    endpoint_ids = [
        endpoint.pk
        for endpoint in WebhookEndpoint.objects.filter(environment=environment, enabled=True).only("event_types")
        if event_type in (endpoint.event_types or [])
    ]
    if not endpoint_ids:
        return 0
    rows = [
        {"id": new_public_id("msg"), "endpoint": endpoint_id, "payload": payload}
        for payload in payloads
        for endpoint_id in endpoint_ids
    ]
    _insert_messages(environment=environment, event_type=event_type, rows=rows)
    return len(rows)


def _insert_messages(*, environment: Environment, event_type: str, rows: list[dict]) -> None:
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
        environment.pk,
        event_type,
        MessageStatus.PENDING,
        connection.ops.adapt_datetimefield_value(now),
        connection.ops.adapt_datetimefield_value(now),
        document,
    ]
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} ({columns}) {source}", params)
