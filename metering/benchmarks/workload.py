"""Deterministic benchmark events, shared by the load process (as JSON bodies) and the COPY baseline (as rows).

Plain standard library on purpose: the load process imports it without Django.
"""

import datetime as dt
import json

EVENT_NAMES = ("api.calls", "llm.tokens", "storage.bytes", "search.queries", "emails.sent")
MODELS = ("small", "medium", "large")
REGIONS = ("eu-west", "us-east", "ap-south")
CUSTOMERS = 1000
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def bench_event(index: int, *, prefix: str = "bench") -> dict:
    """Event number `index`: ~230 bytes of JSON, realistic key mix, timestamps spread over January 2026."""
    timestamp = START + dt.timedelta(seconds=index * 7 % (31 * 86_400), microseconds=index % 1_000_000)
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


def bulk_body(batch: int, batch_size: int, *, prefix: str = "bench") -> bytes:
    start = batch * batch_size
    events = [bench_event(index, prefix=prefix) for index in range(start, start + batch_size)]
    return json.dumps({"events": events}, separators=(",", ":")).encode()


def single_body(index: int, *, prefix: str = "single") -> bytes:
    return json.dumps(bench_event(index, prefix=prefix), separators=(",", ":")).encode()
