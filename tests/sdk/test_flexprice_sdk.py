"""The published Flexprice Python SDK, called unchanged against a live flexmeter server (SPEC §6, issue #17).

Every metering-scope method of the SDK's `events`, `features` and `customers` (19), plus the customer portal
session, is called once against pytest-django's live server (127.0.0.1), and each answer is checked for its
numbers and ids, not only for the absence of an exception. `test_the_walk_covers_every_metering_method` fails when
a newer SDK adds a method that the walk does not call yet.
"""

import datetime as dt
import inspect
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from tests.factories import ApiKeyFactory, EnvironmentFactory

flexprice = pytest.importorskip("flexprice")

pytestmark = pytest.mark.django_db(transaction=True)

WALKED = {
    "events": {
        "ingest_event",
        "ingest_events_bulk",
        "get_event",
        "list_raw_events",
        "get_usage_statistics",
        "get_usage_by_meter",
        "get_usage_analytics",
    },
    "features": {"create_feature", "query_feature", "update_feature", "clone_feature", "delete_feature"},
    "customers": {
        "create_customer",
        "get_customer",
        "get_customer_by_external_id",
        "update_customer",
        "query_customer",
        "get_customer_usage_summary",
        "delete_customer",
        "create_customer_portal_session",
    },
}
# Walked, with plans, entitlements and subscriptions, by the entitlements app's own SDK test.
WALKED_BY_ENTITLEMENTS_TEST = {"get_customer_entitlements", "get_customer_entitlements_by_external_id"}
ENTITLEMENTS_SDK_TEST = Path(__file__).resolve().parent.parent / "entitlements" / "test_flexprice_sdk.py"
# Billing scope, which flexmeter does not implement: subscription listings per customer, credit grants, payments.
NOT_METERING = {"get_subscriptions_for_customer", "get_customer_upcoming_grants", "list_customer_payment_methods"}


def _public_methods(group) -> set[str]:
    return {
        name
        for name, _ in inspect.getmembers(type(group), inspect.isfunction)
        if not name.startswith("_") and not name.endswith("_async") and name != "do_request"
    }


def _sdk_meter(meter: dict) -> dict:
    """The SDK's inline meter model requires reset_usage (flexmeter defaults it to BILLING_PERIOD)."""
    return {**meter, "reset_usage": "BILLING_PERIOD"}


@pytest.fixture
def sdk(live_server):
    environment = EnvironmentFactory(slug="production", name="Production")
    key = ApiKeyFactory(environment=environment)
    with flexprice.Flexprice(server_url=f"{live_server.url}/v1", api_key_auth=key.raw_key, timeout_ms=15_000) as client:
        yield client


def test_the_walk_covers_every_metering_method(sdk):
    for group, walked in WALKED.items():
        assert _public_methods(getattr(sdk, group)) - NOT_METERING - WALKED_BY_ENTITLEMENTS_TEST == walked
    elsewhere = ENTITLEMENTS_SDK_TEST.read_text()
    assert all(f"sdk.customers.{method}(" in elsewhere for method in WALKED_BY_ENTITLEMENTS_TEST)
    assert sum(len(walked) for walked in WALKED.values()) == 19 + 1  # plus the portal session


def test_every_metering_call_of_the_sdk_succeeds_with_the_right_answer(sdk, live_server):
    called: dict[str, set[str]] = {group: set() for group in WALKED}

    def call(group: str, method: str, **kwargs):
        called[group].add(method)
        return getattr(getattr(sdk, group), method)(**kwargs)

    # customers --------------------------------------------------------------------------------------------
    acme = call("customers", "create_customer", external_id="acme", name="Acme", email="ops@acme.test",
                metadata={"tier": "gold"})  # fmt: skip
    assert (acme.id.startswith("cust_"), acme.external_id, acme.email) == (True, "acme", "ops@acme.test")
    globex = call("customers", "create_customer", external_id="globex", name="Globex")
    assert call("customers", "get_customer", id=acme.id).name == "Acme"
    assert call("customers", "get_customer_by_external_id", external_id="globex").id == globex.id
    updated = call("customers", "update_customer", external_customer_id="acme", name="Acme Inc.")
    assert (updated.id, updated.name, updated.metadata) == (acme.id, "Acme Inc.", {"tier": "gold"})
    assert call("customers", "update_customer", id=globex.id, email="it@globex.test").email == "it@globex.test"
    found = call("customers", "query_customer", metadata={"tier": "gold"})
    assert ([c.id for c in found.items], found.pagination.total) == ([acme.id], 1)
    found = call("customers", "query_customer", external_ids=["acme", "globex"], limit=1, offset=1)
    assert ([c.external_id for c in found.items], found.pagination.total) == (["acme"], 2)

    # features ---------------------------------------------------------------------------------------------
    calls_meter = {"name": "API calls", "event_name": "api.calls", "aggregation": {"type": "COUNT"}}
    tokens_meter = {"name": "Tokens", "event_name": "llm", "aggregation": {"type": "SUM", "field": "tokens"}}
    units = {"unit_singular": "call", "unit_plural": "calls"}
    calls = call(
        "features", "create_feature", name="API calls", type_="metered", meter=_sdk_meter(calls_meter), **units
    )
    assert (calls.lookup_key, calls.id[:5], calls.meter_id[:6]) == ("api_calls", "feat_", "meter_")
    tokens = call("features", "create_feature", name="Tokens", type_="metered", meter=_sdk_meter(tokens_meter))
    listed = call("features", "query_feature", lookup_keys=["api_calls", "tokens"])
    assert sorted(feature.id for feature in listed.items) == sorted([calls.id, tokens.id])
    renamed = call("features", "update_feature", id=tokens.id, name="LLM tokens", metadata={"team": "ai"})
    assert (renamed.name, renamed.metadata, renamed.lookup_key) == ("LLM tokens", {"team": "ai"}, "tokens")
    clone = call("features", "clone_feature", id=calls.id, name="API calls (copy)", lookup_key="api_calls_copy")
    assert (clone.lookup_key, clone.meter_id, clone.unit_plural) == ("api_calls_copy", calls.meter_id, "calls")
    assert call("features", "delete_feature", id=clone.id) is not None
    assert [f.id for f in call("features", "query_feature", feature_ids=[clone.id]).items] == []

    # events -----------------------------------------------------------------------------------------------
    # A customer's first billing period starts when it is created: these events fall into it.
    earlier = timezone.now()
    now = earlier + dt.timedelta(minutes=1)
    accepted = call("events", "ingest_event", event_name="api.calls", external_customer_id="acme",
                    event_id="evt-1", timestamp=earlier.isoformat(), properties={"path": "/search"})  # fmt: skip
    assert accepted == {"message": "Event accepted for processing", "event_id": "evt-1", "duplicate": "false"}
    bulk = call("events", "ingest_events_bulk", events=[
        {"event_name": "api.calls", "external_customer_id": "acme", "event_id": "evt-2",
         "timestamp": earlier.isoformat(), "properties": {"path": "/items"}},
        {"event_name": "llm", "external_customer_id": "acme", "event_id": "evt-3",
         "timestamp": earlier.isoformat(), "properties": {"tokens": "0.25", "model": "small"}},
        {"event_name": "llm", "external_customer_id": "acme", "event_id": "evt-4",
         "timestamp": now.isoformat(), "properties": {"tokens": "100", "model": "large"}},
        {"event_name": "api.calls", "external_customer_id": "globex", "event_id": "evt-5",
         "timestamp": earlier.isoformat()},
    ])  # fmt: skip
    assert bulk == {"message": "Events accepted for processing", "accepted": "4", "duplicates": "0"}

    lookup = call("events", "get_event", id="evt-3", external_customer_id="acme")
    assert (lookup.event.id, lookup.event.external_customer_id, lookup.status) == ("evt-3", "acme", "processed")
    page = call("events", "list_raw_events", external_customer_id="acme", page_size=2)
    assert ([event.id for event in page.events], page.has_more) == (["evt-4", "evt-3"], True)

    window = {"start_time": earlier - dt.timedelta(days=1), "end_time": now + dt.timedelta(minutes=1)}
    stats = call("events", "get_usage_statistics", event_name="llm", aggregation_type="SUM", property_name="tokens",
                 external_customer_id="acme", **window)  # fmt: skip
    assert Decimal(str(stats.value)) == Decimal("100.25")
    by_meter = call("events", "get_usage_by_meter", meter_id=calls.meter_id, external_customer_id="acme", **window)
    assert by_meter.value == 2
    analytics = call("events", "get_usage_analytics", external_customer_id="acme", feature_ids=[tokens.id],
                     group_by=["properties.model"], window_size="HOUR", **window)  # fmt: skip
    assert [(item.properties, item.total_usage) for item in analytics.items] == [
        ({"model": "large"}, "100"),
        ({"model": "small"}, "0.25"),
    ]
    assert [point.usage for point in analytics.items[1].points] == ["0.25"]

    summary = call("customers", "get_customer_usage_summary", customer_lookup_key="acme",
                   feature_ids=[calls.id, tokens.id])  # fmt: skip
    assert summary.customer_id == acme.id
    assert {row.feature.lookup_key: row.current_usage for row in summary.features} == {
        "api_calls": "2",
        "tokens": "100.25",
    }

    portal = call("customers", "create_customer_portal_session", external_id="acme")
    assert portal.url == f"{live_server.url}/portal/{portal.token}/"
    assert dt.timedelta(minutes=59) < portal.expires_at - timezone.now() <= dt.timedelta(hours=1)

    assert call("customers", "delete_customer", id=globex.id) is None
    assert call("customers", "get_customer", id=globex.id).status == "deleted"

    assert called == WALKED
