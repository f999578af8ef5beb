"""The published Flexprice Python SDK, unchanged, against a live flexmeter (SPEC §10 endpoints in Flexprice shapes).

The server binds 127.0.0.1 (pytest-django's live server) and stops with the test.
"""

import datetime as dt

import pytest

from tests.entitlements.helpers import customer, metered_feature, plain_feature
from tests.factories import ApiKeyFactory, EnvironmentFactory
from tests.metering.usage.helpers import send

flexprice = pytest.importorskip("flexprice")

pytestmark = pytest.mark.django_db(transaction=True)


def test_sdk_plans_entitlements_subscriptions_and_customer_entitlements(live_server):
    environment = EnvironmentFactory(slug="production", name="Production")
    key = ApiKeyFactory(environment=environment)
    calls = metered_feature(environment)
    sso = plain_feature(environment, type="boolean", lookup_key="sso")
    seats = plain_feature(environment, type="static", lookup_key="seats")
    holder = customer(environment, external_id="acme")
    now = dt.datetime.now(dt.UTC)
    for minutes in (1, 2, 3):
        send(
            environment,
            event_name="api.calls",
            customer="acme",
            timestamp=(now - dt.timedelta(minutes=minutes)).isoformat(),
        )

    with flexprice.Flexprice(server_url=f"{live_server.url}/v1", api_key_auth=key.raw_key) as sdk:
        plan = sdk.plans.create_plan(name="Pro", lookup_key="pro", description="for teams")
        assert plan.id.startswith("plan_") and (plan.name, plan.lookup_key, plan.status) == ("Pro", "pro", "published")

        limit = sdk.entitlements.create_entitlement(
            plan_id=plan.id,
            feature_id=calls.public_id,
            feature_type="metered",
            usage_limit=1000,
            usage_reset_period="MONTHLY",
            is_soft_limit=False,
        )
        assert (limit.feature_id, limit.plan_id, limit.usage_limit, limit.usage_reset_period) == (
            calls.public_id,
            plan.id,
            1000,
            "MONTHLY",
        )
        flag = sdk.entitlements.create_entitlement(plan_id=plan.id, feature_id=sso.public_id, feature_type="boolean")
        static = sdk.entitlements.create_entitlement(
            plan_id=plan.id, feature_id=seats.public_id, feature_type="static", static_value="5"
        )

        fetched = sdk.entitlements.get_entitlement(id=limit.id)
        assert (fetched.id, fetched.usage_limit, fetched.feature.lookup_key) == (limit.id, 1000, "api_calls")
        updated = sdk.entitlements.update_entitlement(id=limit.id, usage_limit=2, is_soft_limit=False)
        assert updated.usage_limit == 2

        listed = sdk.entitlements.get_plan_entitlements(id=plan.id)
        assert sorted(item.id for item in listed.items) == sorted([limit.id, flag.id, static.id])
        assert listed.pagination.total == 3

        deleted = sdk.entitlements.delete_entitlement(id=flag.id)
        assert flag.id in deleted.message
        assert len(sdk.entitlements.get_plan_entitlements(id=plan.id).items) == 2

        subscription = sdk.subscriptions.create_subscription(
            plan_id=plan.id,
            external_customer_id="acme",
            billing_period="MONTHLY",
            currency="usd",
            billing_anchor=now - dt.timedelta(days=1),
            start_date=now - dt.timedelta(days=1),
        )
        assert subscription.id.startswith("sub_")
        assert (subscription.customer_id, subscription.plan_id, subscription.currency) == (
            holder.public_id,
            plan.id,
            "usd",
        )
        assert subscription.billing_period == "MONTHLY" and subscription.subscription_status == "active"

        for response in (
            sdk.customers.get_customer_entitlements(id=holder.public_id),
            sdk.customers.get_customer_entitlements_by_external_id(external_id="acme"),
        ):
            assert response.customer_id == holder.public_id
            features = {item.feature.lookup_key: item for item in response.features}
            assert set(features) == {"api_calls", "seats"}
            assert features["api_calls"].entitlement.usage_limit == 2
            assert features["api_calls"].entitlement.is_enabled is True
            assert features["api_calls"].sources[0].entitlement_id == limit.id
            assert features["api_calls"].sources[0].subscription_id == subscription.id
            assert features["seats"].entitlement.static_values == ["5"]
            assert [item.id for item in response.subscriptions] == [subscription.id]

        with pytest.raises(flexprice.models.errors.ErrorResponse):
            sdk.entitlements.create_entitlement(plan_id=plan.id, feature_id="feat_nope", feature_type="boolean")
