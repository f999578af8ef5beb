"""REST endpoints of SPEC §10: plans, entitlements, subscriptions (Flexprice shapes), customer entitlements, the
single and batch checks, errors in the envelope, environment isolation, and statements per check."""

import json
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from entitlements import selectors
from metering.usage.rollups import read
from tests.entitlements.helpers import customer, grant, metered_feature, plain_feature
from tests.metering.usage.helpers import at, send, usage_statements

pytestmark = pytest.mark.django_db


def _envelope(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"code", "message", "http_status_code", "details"}
    assert (body["code"], body["http_status_code"]) == (code, status)
    return body["details"]


@pytest.fixture
def catalog(environment):
    return {
        "calls": metered_feature(environment),
        "sso": plain_feature(environment, type="boolean", lookup_key="sso"),
        "seats": plain_feature(environment, type="static", lookup_key="seats"),
        "limits": plain_feature(environment, type="config", lookup_key="limits"),
    }


def _setup_pro(api, catalog, *, limit=1000):
    plan = api.post("/v1/plans", {"name": "Pro Plan", "description": "for teams"}).json()
    ent = api.post(
        "/v1/entitlements",
        {
            "plan_id": plan["id"],
            "feature_id": catalog["calls"].public_id,
            "feature_type": "metered",
            "usage_limit": limit,
            "usage_reset_period": "MONTHLY",
        },
    )
    assert ent.status_code == 201, ent.content
    return plan, ent.json()


def test_plan_crud_in_flexprice_shape(api, environment):
    response = api.post("/v1/plans", {"name": "Pro Plan", "description": "for teams", "metadata": {"tier": "2"}})
    assert response.status_code == 201
    plan = response.json()
    assert plan["id"].startswith("plan_") and plan["lookup_key"] == "pro_plan"
    assert (plan["status"], plan["description"], plan["metadata"]) == ("published", "for teams", {"tier": "2"})
    assert plan["environment_id"] == environment.public_id and plan["created_at"].endswith("Z")

    assert api.put(f"/v1/plans/{plan['id']}", {"name": "Pro"}).json()["name"] == "Pro"
    assert api.get("/v1/plans/pro_plan").json()["id"] == plan["id"]
    listed = api.get("/v1/plans").json()
    assert [item["id"] for item in listed["items"]] == [plan["id"]] and listed["pagination"]["total"] == 1
    assert api.delete(f"/v1/plans/{plan['id']}").json()["status"] == "archived"
    _envelope(api.post("/v1/plans", {"name": "Other", "lookup_key": "pro_plan"}), 409, "already_exists")
    details = _envelope(api.post("/v1/plans", {"description": "no name"}), 400, "validation_error")
    assert "name" in details


def test_entitlement_crud_and_rules(api, catalog):
    plan, ent = _setup_pro(api, catalog)
    assert ent["id"].startswith("ent_")
    assert (ent["plan_id"], ent["feature_id"], ent["feature_type"]) == (
        plan["id"],
        catalog["calls"].public_id,
        "metered",
    )
    assert (ent["usage_limit"], ent["usage_reset_period"], ent["is_soft_limit"], ent["is_enabled"]) == (
        1000,
        "MONTHLY",
        False,
        True,
    )
    assert api.get(f"/v1/entitlements/{ent['id']}").json()["usage_limit"] == 1000
    updated = api.put(f"/v1/entitlements/{ent['id']}", {"usage_limit": 2000, "is_soft_limit": True}).json()
    assert (updated["usage_limit"], updated["is_soft_limit"], updated["usage_reset_period"]) == (2000, True, "MONTHLY")
    unlimited = api.put(f"/v1/entitlements/{ent['id']}", {"usage_limit": None}).json()
    assert unlimited["usage_limit"] is None
    listed = api.get(f"/v1/plans/{plan['id']}/entitlements").json()
    assert [item["id"] for item in listed["items"]] == [ent["id"]]

    again = {"plan_id": plan["id"], "feature_id": catalog["calls"].public_id, "feature_type": "metered"}
    _envelope(api.post("/v1/entitlements", again), 409, "already_exists")
    bad = [
        ({"plan_id": plan["id"], "feature_id": catalog["sso"].public_id, "usage_limit": 5}, "usage_limit"),
        ({"plan_id": plan["id"], "feature_id": catalog["seats"].public_id, "feature_type": "boolean"}, "feature_type"),
        ({"plan_id": plan["id"], "feature_id": catalog["limits"].public_id, "config_value": "x"}, "config_value"),
        ({"plan_id": plan["id"], "feature_id": "feat_nope"}, "feature_id"),
        ({"plan_id": "plan_nope", "feature_id": catalog["sso"].public_id}, "plan_id"),
    ]
    for body, path in bad:
        assert path in _envelope(api.post("/v1/entitlements", body), 400, "validation_error"), body
    negative = api.put(f"/v1/entitlements/{ent['id']}", {"usage_limit": -1})
    assert "usage_limit" in _envelope(negative, 400, "validation_error")
    period = api.put(f"/v1/entitlements/{ent['id']}", {"usage_reset_period": "HOURLY"})
    assert "usage_reset_period" in _envelope(period, 400, "validation_error")

    assert api.delete(f"/v1/entitlements/{ent['id']}").status_code == 200
    _envelope(api.get(f"/v1/entitlements/{ent['id']}"), 404, "not_found")


def test_subscription_create_stores_flexprice_fields_and_ignores_pricing(api, environment, catalog):
    plan, _ = _setup_pro(api, catalog)
    holder = customer(environment, external_id="acme")
    body = {
        "external_customer_id": "acme",
        "plan_id": plan["id"],
        "billing_period": "monthly",
        "currency": "USD",
        "billing_anchor": "2025-01-31T00:00:00Z",
        "start_date": "2025-01-15T00:00:00Z",
        "line_items": [{"price_id": "price_1"}],
        "coupons": ["SAVE10"],
    }
    response = api.post("/v1/subscriptions", body)
    assert response.status_code == 201, response.content
    sub = response.json()
    assert sub["id"].startswith("sub_") and sub["customer_id"] == holder.public_id
    assert (sub["billing_period"], sub["currency"], sub["billing_anchor"], sub["start_date"]) == (
        "MONTHLY",
        "usd",
        "2025-01-31T00:00:00Z",
        "2025-01-15T00:00:00Z",
    )
    assert sub["subscription_status"] == "active" and sub["end_date"] is None
    assert api.get(f"/v1/subscriptions/{sub['id']}").json()["plan_id"] == plan["id"]
    assert [item["id"] for item in api.get("/v1/subscriptions", {"external_customer_id": "acme"}).json()["items"]] == [
        sub["id"]
    ]
    ended = api.delete(f"/v1/subscriptions/{sub['id']}").json()
    assert ended["subscription_status"] == "cancelled" and ended["end_date"] is not None

    errors = _envelope(
        api.post("/v1/subscriptions", {"plan_id": plan["id"], "billing_period": "HOURLY"}), 400, "validation_error"
    )
    assert {"customer_id", "billing_period"} <= set(errors)
    api.delete(f"/v1/plans/{plan['id']}")
    archived = api.post("/v1/subscriptions", {"external_customer_id": "acme", "plan_id": plan["id"]})
    assert "plan_id" in _envelope(archived, 400, "validation_error")


def test_customer_entitlements_and_single_check(api, environment, catalog):
    plan, ent = _setup_pro(api, catalog, limit=3)
    api.post(
        "/v1/entitlements",
        {"plan_id": plan["id"], "feature_id": catalog["sso"].public_id, "feature_type": "boolean"},
    )
    holder = customer(environment, external_id="acme")
    assert api.post("/v1/subscriptions", {"customer_id": holder.public_id, "plan_id": plan["id"]}).status_code == 201

    for _ in range(2):
        response = api.post("/v1/events", {"event_name": "api.calls", "external_customer_id": "acme"})
        assert response.status_code == 202
    check = api.get(f"/v1/customers/{holder.public_id}/entitlements/api_calls").json()
    assert (check["has_access"], check["reason"], check["usage"], check["usage_limit"], check["balance"]) == (
        True,
        None,
        2,
        3,
        1,
    )
    assert check["feature_id"] == catalog["calls"].public_id and check["type"] == "metered"
    assert check["sources"][0]["entitlement_id"] == ent["id"] and check["as_of"].endswith("Z")
    assert check["period_start"] and check["next_reset_at"] == check["period_end"]

    # the event that reaches the limit counts in the very next check
    api.post("/v1/events", {"event_name": "api.calls", "external_customer_id": "acme"})
    by_id = api.get(f"/v1/customers/{holder.public_id}/entitlements/{catalog['calls'].public_id}").json()
    assert (by_id["has_access"], by_id["reason"], by_id["usage"], by_id["balance"]) == (
        False,
        "usage_limit_reached",
        3,
        0,
    )

    listing = api.get(f"/v1/customers/{holder.public_id}/entitlements").json()
    assert listing["customer_id"] == holder.public_id
    features = {item["feature"]["lookup_key"]: item for item in listing["features"]}
    assert set(features) == {"api_calls", "sso"}
    assert features["api_calls"]["entitlement"]["usage_limit"] == 3
    assert features["api_calls"]["sources"][0]["entity_id"] == plan["id"]
    assert features["sso"]["access"]["has_access"] is True
    external = api.get("/v1/customers/external/acme/entitlements").json()
    assert [item["feature"]["id"] for item in external["features"]] == [
        item["feature"]["id"] for item in listing["features"]
    ]

    missing = api.get(f"/v1/customers/{holder.public_id}/entitlements/nothing").json()
    assert (missing["has_access"], missing["reason"]) == (False, "feature_not_found")
    _envelope(api.get("/v1/customers/cust_nope/entitlements/api_calls"), 404, "not_found")


def test_batch_check_answers_in_order(api, environment, catalog):
    plan, _ = _setup_pro(api, catalog, limit=2)
    for external_id in ("a", "b"):
        holder = customer(environment, external_id=external_id)
        api.post("/v1/subscriptions", {"customer_id": holder.public_id, "plan_id": plan["id"]})
    api.post("/v1/events", {"event_name": "api.calls", "external_customer_id": "a"})
    for _ in range(2):
        api.post("/v1/events", {"event_name": "api.calls", "external_customer_id": "b"})

    pairs = [("a", "api_calls"), ("b", "api_calls"), ("a", "sso"), ("zed", "api_calls"), ("a", "nope")]
    response = api.post(
        "/v1/entitlements/check", {"checks": [{"external_customer_id": c, "feature": f} for c, f in pairs]}
    )

    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [(r["external_customer_id"], r["feature"]) for r in results] == pairs
    assert [(r["has_access"], r["reason"], r["usage"]) for r in results] == [
        (True, None, 1),
        (False, "usage_limit_reached", 2),
        (False, "feature_unavailable", None),
        (False, "feature_unavailable", None),
        (False, "feature_not_found", None),
    ]
    too_many = {"checks": [{"external_customer_id": "a", "feature": "api_calls"}] * 101}
    _envelope(api.post("/v1/entitlements/check", too_many), 400, "validation_error")
    _envelope(api.post("/v1/entitlements/check", {"checks": []}), 400, "validation_error")
    _envelope(api.post("/v1/entitlements/check", "not json"), 400, "validation_error")


def test_environments_are_isolated(api, other_api, environment, catalog):
    plan, ent = _setup_pro(api, catalog)
    holder = customer(environment, external_id="acme")
    sub = api.post("/v1/subscriptions", {"customer_id": holder.public_id, "plan_id": plan["id"]}).json()

    for path in (
        f"/v1/plans/{plan['id']}",
        f"/v1/plans/{plan['id']}/entitlements",
        f"/v1/entitlements/{ent['id']}",
        f"/v1/subscriptions/{sub['id']}",
        f"/v1/customers/{holder.public_id}/entitlements",
        f"/v1/customers/{holder.public_id}/entitlements/api_calls",
        "/v1/customers/external/acme/entitlements",
    ):
        _envelope(other_api.get(path), 404, "not_found")
    assert other_api.get("/v1/plans").json()["items"] == []
    foreign = other_api.post(
        "/v1/entitlements/check", {"checks": [{"external_customer_id": "acme", "feature": "api_calls"}]}
    )
    assert foreign.json()["results"][0]["reason"] == "feature_not_found"
    cross = other_api.post("/v1/subscriptions", {"customer_id": holder.public_id, "plan_id": plan["id"]})
    assert {"customer_id", "plan_id"} <= set(_envelope(cross, 400, "validation_error"))


def _statements(callable_, *, remembered: bool = False) -> int:
    """Statements of one request; the usage engine looks rollup coverage up afresh unless `remembered` (within a
    minute of the same lookup its one statement checks the remembered days itself)."""
    if not remembered:
        read._recent_coverage.clear()
    with CaptureQueriesContext(connection) as captured:
        callable_()
    return len(captured.captured_queries)


def test_statements_per_check_do_not_grow_with_plans_or_events(api, environment, catalog):
    holder = customer(environment, external_id="acme")
    grant(environment, holder, catalog["calls"], usage_limit=10)
    send(environment, event_name="api.calls", customer="acme", timestamp="2025-01-02T00:00")
    path = f"/v1/customers/{holder.public_id}/entitlements/api_calls"
    batch = {"checks": [{"external_customer_id": "acme", "feature": "api_calls"}]}
    api.get(path)  # warm-up: the first request of a key also records its use
    small = _statements(lambda: api.get(path)), _statements(lambda: api.post("/v1/entitlements/check", batch))
    listing_small = _statements(lambda: api.get(f"/v1/customers/{holder.public_id}/entitlements"))

    for _ in range(6):
        grant(environment, holder, catalog["calls"], usage_limit=10, usage_reset_period="DAILY")
        grant(environment, holder, catalog["sso"])
    for day in range(1, 28):
        send(environment, event_name="api.calls", customer="acme", timestamp=f"2025-02-{day:02d}T00:00")
    many = [{"external_customer_id": f"c{i}", "feature": "api_calls"} for i in range(40)] + batch["checks"] * 60
    for i in range(40):
        grant(environment, customer(environment, external_id=f"c{i}"), catalog["calls"], usage_reset_period="WEEKLY")

    large = _statements(lambda: api.get(path)), _statements(lambda: api.post("/v1/entitlements/check", batch))
    assert large == small
    assert _statements(lambda: api.post("/v1/entitlements/check", {"checks": many})) == small[1]
    assert _statements(lambda: api.get(f"/v1/customers/{holder.public_id}/entitlements")) == listing_small
    # the API key; the customer, the feature and its active grants in one; then the usage engine's statements
    # (with events in ClickHouse the engine's statement is not a Django one)
    assert small[0] == 2 + usage_statements()
    assert small[1] == 2 + usage_statements()
    # asked again within the minute: the usage statement alone, for one pair as for a hundred
    again = 2 + usage_statements(looked_up_lately=True)
    assert _statements(lambda: api.get(path), remembered=True) == again
    api.post("/v1/entitlements/check", {"checks": many})
    assert _statements(lambda: api.post("/v1/entitlements/check", {"checks": many}), remembered=True) == again


def test_check_response_is_exact_json(api, environment, catalog):
    holder = customer(environment, external_id="acme")
    grant(environment, holder, catalog["calls"], usage_limit="0.3", is_soft_limit=True)
    body = api.get(f"/v1/customers/{holder.public_id}/entitlements/api_calls").content.decode()
    data = json.loads(body)
    assert data["usage_limit"] == 0.3 and '"usage_limit":0.3' in body.replace(" ", "")


def test_a_batch_counts_each_customer_over_its_own_period_as_single_checks_do(environment, catalog):
    """Customers anchored on different days: the batch's one usage statement joins each to its own window."""
    now = at("2025-03-20T12:00")
    anchors = {"early": "2025-01-05T00:00", "late": "2025-01-25T06:30", "month_end": "2025-01-31T00:00"}
    holders = {}
    for external_id, anchor in anchors.items():
        holders[external_id] = customer(environment, external_id=external_id, anchor=anchor)
        grant(environment, holders[external_id], catalog["calls"], usage_limit=4, anchor=anchor, start=anchor)
        for moment in (
            "2025-02-26T07:00",
            "2025-02-28T12:00",
            "2025-03-04T00:00",
            "2025-03-06T00:00",
            "2025-03-20T11:00",
        ):
            send(environment, event_name="api.calls", customer=external_id, timestamp=moment)
    pairs = [(external_id, "api_calls") for external_id in [*anchors, "early"]]

    with CaptureQueriesContext(connection) as captured:
        batch = selectors.access_check_many(environment=environment, pairs=pairs, at=now)
    singles = [
        selectors.customer_feature_access(customer=holders[external_id], feature_ref="api_calls", at=now)
        for external_id, _ in pairs
    ]

    # early: Mar 5 – Apr 5; late: Feb 25 06:30 – Mar 25 06:30; month_end: Feb 28 – Mar 31 (Jan 31 clamped)
    assert [answer.access.usage for answer in batch] == [Decimal(2), Decimal(5), Decimal(4), Decimal(2)]
    assert [answer.access for answer in batch] == [answer.access for answer in singles]
    assert [answer.access.has_access for answer in batch] == [True, False, False, True]
    assert len(captured.captured_queries) == 1 + usage_statements()
