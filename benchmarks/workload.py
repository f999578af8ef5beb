"""Deterministic benchmark events, shared by the load process (as JSON bodies) and the baselines (as rows).

Plain standard library on purpose: the load process imports it without Django.

By default events are spread over January 2026, like a backfill. `start` and `spread_seconds` place them
elsewhere: the single-event phase sends *live* events (the last hour), as a metered application does, and those
take a different path in the database (the rollup trigger leaves change marks only for days at least two days old).
"""

import datetime as dt
import json

EVENT_NAMES = ("api.calls", "llm.tokens", "storage.bytes", "search.queries", "emails.sent")
MODELS = ("small", "medium", "large")
REGIONS = ("eu-west", "us-east", "ap-south")
CUSTOMERS = 1000
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SPREAD_SECONDS = 31 * 86_400


def bench_event(
    index: int, *, prefix: str = "bench", start: dt.datetime = START, spread_seconds: int = SPREAD_SECONDS
) -> dict:
    """Event number `index`: ~230 bytes of JSON, realistic key mix, timestamps spread from `start` on."""
    timestamp = start + dt.timedelta(seconds=index * 7 % spread_seconds, microseconds=index % 1_000_000)
    return {
        "event_id": f"{prefix}-{index}",
        "event_name": EVENT_NAMES[index % len(EVENT_NAMES)],
        "external_customer_id": f"customer-{index * 7919 % CUSTOMERS}",
        "timestamp": timestamp.isoformat().replace("+00:00", "Z"),
        "source": "bench",
        "properties": {
            "tokens": index % 4096,
            "cost": f"{index % 1000 / 100:.2f}",
            "model": MODELS[index % len(MODELS)],
            "region": REGIONS[index % len(REGIONS)],
            "latency_ms": round(index % 997 * 0.37, 2),
        },
    }


def live_start(now: dt.datetime | None = None) -> dt.datetime:
    """The start of the live window: one hour ago, to the second (events then fall within the last hour)."""
    now = now or dt.datetime.now(dt.UTC)
    return (now - dt.timedelta(hours=1)).replace(microsecond=0)


LIVE_SPREAD_SECONDS = 3600


def bulk_body(
    batch: int,
    batch_size: int,
    *,
    prefix: str = "bench",
    start: dt.datetime = START,
    spread_seconds: int = SPREAD_SECONDS,
) -> bytes:
    first = batch * batch_size
    events = [
        bench_event(index, prefix=prefix, start=start, spread_seconds=spread_seconds)
        for index in range(first, first + batch_size)
    ]
    return json.dumps({"events": events}, separators=(",", ":")).encode()


def single_body(
    index: int, *, prefix: str = "single", start: dt.datetime = START, spread_seconds: int = SPREAD_SECONDS
) -> bytes:
    event = bench_event(index, prefix=prefix, start=start, spread_seconds=spread_seconds)
    return json.dumps(event, separators=(",", ":")).encode()
