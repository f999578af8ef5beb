"""Building blocks for alert tests: features with alert settings, customers with a known period, events through the
real ingestion path (which writes the usage marks) and one evaluation at a chosen moment."""

from __future__ import annotations

from catalog.models import FeatureType
from tests.catalog.factories import FeatureFactory, MeterFactory
from tests.metering.factories import CustomerFactory
from tests.metering.usage.helpers import at, send

# Customers are anchored on the 1st: the period of NOW is [2026-03-01, 2026-04-01).
NOW = "2026-03-20T12:00"
ANCHOR = "2026-01-01T00:00"


def alerting_feature(
    environment,
    *,
    event_name: str = "api.calls",
    lookup_key: str = "api_calls",
    condition: str = "above",
    info: str | None = None,
    warning: str | None = None,
    critical: str | None = None,
    **meter,
):
    levels = {name: value for name, value in (("info", info), ("warning", warning), ("critical", critical)) if value}
    settings = {
        "alert_enabled": True,
        **{name: {"threshold": value, "condition": condition} for name, value in levels.items()},
    }
    meter_obj = MeterFactory(environment=environment, event_name=event_name, **meter)
    return FeatureFactory(
        environment=environment, type=FeatureType.METERED, meter=meter_obj, lookup_key=lookup_key,
        alert_settings=settings,
    )  # fmt: skip


def customer(environment, external_id: str = "cust-1", *, anchor: str = ANCHOR, period: str = "MONTHLY"):
    return CustomerFactory(
        environment=environment, external_id=external_id, billing_anchor=at(anchor), billing_period=period
    )


def calls(environment, count: int, *, customer: str = "cust-1", timestamp: str = "2026-03-10T00:00", name="api.calls"):
    for _ in range(count):
        send(environment, event_name=name, timestamp=timestamp, customer=customer)


def evaluate(now: str = NOW):
    from alerts.services import alerts_evaluate

    return alerts_evaluate(now=at(now))
