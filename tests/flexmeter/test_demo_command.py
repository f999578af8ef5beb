"""manage.py demo: seeds an empty database once, resets the admin login and rotates the demo key (SPEC §9)."""

import io
from decimal import Decimal

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command

from catalog.models import Feature
from flexmeter.models import ApiKey
from flexmeter.services import api_key_authenticate
from metering.models import Customer
from tests.metering.factories import EventFactory
from tests.metering.usage.helpers import stored

pytestmark = pytest.mark.django_db


def run_demo(**options) -> dict[str, str]:
    out = io.StringIO()
    call_command("demo", no_serve=True, stdout=out, stderr=io.StringIO(), **options)
    lines = out.getvalue().splitlines()
    fields = {}
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[0] in {"username", "password"}:
            fields[parts[0]] = parts[1]
        if line.strip().startswith("API key"):
            fields["api_key"] = parts[2]
        if line.strip().startswith("log in at"):
            fields["login"] = parts[3]
    fields["output"] = out.getvalue()
    return fields


def test_demo_seeds_an_empty_database_and_prints_working_credentials():
    printed = run_demo(events=600)
    assert "Seeded environment production" in printed["output"]
    assert printed["login"] == "http://127.0.0.1:8000/login/"
    assert printed["username"] == "admin"
    user = authenticate(username="admin", password=printed["password"])
    assert user is not None and user.is_superuser
    api_key = api_key_authenticate(printed["api_key"])
    assert api_key is not None and api_key.environment.slug == "production"
    assert Feature.objects.count() == 13
    assert Customer.objects.count() >= 30
    assert len(stored()) > 500


def test_running_the_demo_twice_keeps_data_and_rotates_secrets():
    first = run_demo(events=600)
    events = len(stored())
    second = run_demo(events=600)
    assert "not reseeding" in second["output"]
    assert len(stored()) == events
    assert Feature.objects.count() == 13
    assert second["password"] != first["password"]
    assert authenticate(username="admin", password=first["password"]) is None
    assert authenticate(username="admin", password=second["password"]) is not None
    assert api_key_authenticate(first["api_key"]) is None
    assert api_key_authenticate(second["api_key"]) is not None
    assert "previous demo key was revoked" in second["output"]
    assert ApiKey.objects.active().count() == 1


def test_demo_never_seeds_a_database_that_holds_events(environment):
    EventFactory(environment=environment)
    printed = run_demo(events=600)
    assert "not reseeding" in printed["output"]
    assert len(stored()) == 1
    assert not Feature.objects.exists()


def test_demo_uses_the_given_address():
    printed = run_demo(events=0, addrport="127.0.0.1:9000")
    assert printed["login"] == "http://127.0.0.1:9000/login/"


def test_demo_rejects_negative_event_counts():
    with pytest.raises(CommandError):
        call_command("demo", no_serve=True, events=-1, stdout=io.StringIO())


def test_the_demo_has_plans_and_one_is_at_its_limit(environment):
    from entitlements.models import Plan, Subscription
    from entitlements.selectors import customer_entitlements
    from flexmeter.demo import demo_plans_seed
    from metering.demo_data import demo_seed

    # 20,000 events give Acme about 15 API calls in its current period whatever the day; at 4,000 some days
    # gave none, and a limit of 0 proves nothing.
    demo_seed(environment=environment, events=20_000)
    assert demo_plans_seed(environment=environment) == Customer.objects.for_environment(environment).count()
    assert set(Plan.objects.for_environment(environment).values_list("lookup_key", flat=True)) == {
        "starter", "growth", "enterprise",
    }  # fmt: skip
    acme = Customer.objects.get(environment=environment, external_id="acme-corp")
    assert Subscription.objects.get(customer=acme).plan.lookup_key == "starter"
    calls = next(
        item for item in customer_entitlements(customer=acme).features if item.feature.lookup_key == "api_calls"
    )
    assert calls.combined is not None and calls.access.usage and calls.access.usage > 0
    assert calls.access.usage >= Decimal(calls.combined.primary.entitlement.usage_limit)  # at its limit
    assert not calls.access.has_access and calls.access.reason == "usage_limit_reached"
