"""Preparing the demo (`manage.py demo`): seed an empty database, an admin login and a fresh API key.

Safe to run again: a database that holds anything is never reseeded, the admin password is reset (it is only
ever printed, never stored in clear), and the previous demo API key is revoked when a new one is issued, so
exactly one demo key is live.
"""

import secrets
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction

from catalog.models import Feature, Meter
from entitlements.selectors import customer_entitlements
from entitlements.services import entitlement_create, entitlement_update, plan_create, subscription_create
from flexmeter.models import ApiKey, Environment
from flexmeter.services import api_key_create, api_key_revoke, environment_get_or_create
from metering.demo_data import DEMO_EVENTS, DemoSeedReport, demo_seed
from metering.models import Customer
from metering.progress import ProgressBar
from metering.selectors import any_event_stored

DEMO_USERNAME = "admin"
DEMO_KEY_NAME = "Demo key (manage.py demo)"


@dataclass(frozen=True)
class DemoSetup:
    environment: Environment
    username: str
    password: str
    api_key: str
    revoked_keys: int
    seed: DemoSeedReport | None


def database_is_empty() -> bool:
    """No catalog, customers or events in any environment (environments and users alone do not count)."""
    return not (any_event_stored() or Meter.objects.exists() or Feature.objects.exists() or Customer.objects.exists())


def demo_admin_reset(*, username: str = DEMO_USERNAME) -> str:
    """Create or update the superuser `username` with a new random password, which is returned."""
    password = secrets.token_urlsafe(12)
    user, _ = get_user_model().objects.get_or_create(username=username)
    user.is_staff = user.is_superuser = user.is_active = True
    user.set_password(password)
    user.save()
    return password


@transaction.atomic
def demo_api_key_rotate(*, environment: Environment) -> tuple[str, int]:
    """Revoke earlier demo keys of the environment and create a new one: `(raw_key, revoked_count)`."""
    earlier = list(ApiKey.objects.for_environment(environment).active().filter(name=DEMO_KEY_NAME))
    for api_key in earlier:
        api_key_revoke(api_key=api_key)
    _, raw_key = api_key_create(environment=environment, name=DEMO_KEY_NAME)
    return raw_key, len(earlier)


# (name, lookup key, description, {feature lookup key: entitlement settings}); Starter's API Calls limit is set by
# `demo_plans_seed` to what Acme has used so far, so the demo shows a plan at its limit.
DEMO_PLANS = (
    ("Starter", "starter", "For small teams: capped API calls and credits.",
     {"api_calls": {"usage_limit": "1"}, "model_credits": {"usage_limit": "500", "is_soft_limit": True},
      "sso": {"is_enabled": False}, "max_projects": {"config_value": {"limit": 5}}}),
    ("Growth", "growth", "Higher limits, single sign-on and business-hours support.",
     {"api_calls": {"usage_limit": "20000"}, "model_credits": {"usage_limit": "5000", "is_soft_limit": True},
      "sso": {}, "support_tier": {"static_value": "Business hours, 4h response"},
      "max_projects": {"config_value": {"limit": 25}}}),
    ("Enterprise", "enterprise", "Unlimited usage, single sign-on and priority support.",
     {"api_calls": {}, "model_credits": {}, "sso": {}, "support_tier": {"static_value": "24/7, 1h response"},
      "max_projects": {"config_value": {"limit": 250}}}),
)  # fmt: skip
LIMITED_CUSTOMER = "acme-corp"


def _round_down(value: Decimal) -> Decimal:
    """`value` rounded down to two significant digits (1,234 → 1,200): a limit the usage has reached."""
    if value < 10:
        return max(Decimal(1), value.to_integral_value(rounding="ROUND_FLOOR"))
    step = Decimal(10) ** (value.adjusted() - 1)
    return (value / step).to_integral_value(rounding="ROUND_FLOOR") * step


@transaction.atomic
def demo_plans_seed(*, environment: Environment) -> int:
    """The demo's plans with entitlements on the catalog examples, every demo customer subscribed to the plan its
    metadata names (Acme to Starter), and Starter's API Calls limit set to Acme's usage so far, rounded down, so
    Acme sits at its limit. Returns the number of subscriptions."""
    features = {feature.lookup_key: feature for feature in Feature.objects.for_environment(environment).visible()}
    plans = {}
    for name, lookup_key, description, entitlements in DEMO_PLANS:
        plan = plan_create(environment=environment, data={"name": name, "lookup_key": lookup_key,
                                                          "description": description})  # fmt: skip
        plans[lookup_key] = plan
        for feature_key, settings in entitlements.items():
            if feature_key in features:
                entitlement_create(environment=environment, data={"plan_id": plan.public_id,
                                   "feature_id": features[feature_key].public_id, **settings})  # fmt: skip
    subscriptions = 0
    for customer in Customer.objects.for_environment(environment).active():
        wanted = "starter" if customer.external_id == LIMITED_CUSTOMER else customer.metadata.get("plan", "starter")
        subscription_create(environment=environment, data={
            "customer_id": customer.public_id, "plan_id": plans.get(wanted, plans["starter"]).public_id,
            "start_date": customer.billing_anchor, "billing_anchor": customer.billing_anchor,
            "billing_period": customer.billing_period,
        })  # fmt: skip
        subscriptions += 1
    limited = Customer.objects.for_environment(environment).active().filter(external_id=LIMITED_CUSTOMER).first()
    calls = features.get("api_calls")
    if limited is not None and calls is not None:
        access = next(item for item in customer_entitlements(customer=limited).features if item.feature == calls)
        usage = access.access.usage or Decimal(0)
        entitlement = plans["starter"].entitlements.get(feature=calls)
        entitlement_update(entitlement=entitlement, data={"usage_limit": format(_round_down(usage), "f")})
    return subscriptions


def demo_prepare(*, events: int = DEMO_EVENTS, progress: ProgressBar | None = None) -> DemoSetup:
    """Seed the production environment when the database is empty, then reset the admin login and the demo key."""
    environment = environment_get_or_create(slug="production", name="Production")
    seed = demo_seed(environment=environment, events=events, progress=progress) if database_is_empty() else None
    if seed is not None:
        demo_plans_seed(environment=environment)
    password = demo_admin_reset()
    raw_key, revoked = demo_api_key_rotate(environment=environment)
    return DemoSetup(
        environment=environment,
        username=DEMO_USERNAME,
        password=password,
        api_key=raw_key,
        revoked_keys=revoked,
        seed=seed,
    )
