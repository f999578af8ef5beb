"""seed_demo: the catalog examples, customers with varied anchors, patterned events and broken ones (SPEC §9)."""

import datetime as dt
import io
from collections import Counter

import pytest
from django.core.management import CommandError, call_command

from catalog.models import Feature, FeatureType, Meter
from metering.demo_data import demo_events, demo_seed
from metering.models import Customer, Event
from metering.usage.selectors import customer_current_usage

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 18, 15, 30, tzinfo=dt.UTC)  # a Wednesday


def test_demo_events_are_deterministic_for_a_seed_and_now():
    _, first, _ = demo_events(now=NOW, total=3000)
    _, again, _ = demo_events(now=NOW, total=3000)
    _, other, _ = demo_events(now=NOW, total=3000, seed=7)
    assert first == again
    assert [event["event_id"] for event in first] != [event["event_id"] for event in other]


def test_demo_events_follow_daily_and_weekly_rhythms_within_the_window():
    _, events, _ = demo_events(now=NOW, total=30_000)
    assert 28_500 <= len(events) <= 31_500
    moments = [dt.datetime.fromisoformat(event["timestamp"]) for event in events]
    assert min(moments) >= NOW - dt.timedelta(days=61)
    assert max(moments) < NOW
    activity = [m for m, e in zip(moments, events, strict=True) if e["event_name"] == "api.calls"]
    by_weekday = Counter(moment.weekday() for moment in activity)
    assert min(by_weekday[day] for day in range(5)) > 2 * max(by_weekday[5], by_weekday[6])
    by_hour = Counter(moment.hour for moment in activity)
    assert by_hour[15] > 4 * by_hour[3]
    by_customer = Counter(event["external_customer_id"] for event in events)
    heaviest, lightest = by_customer.most_common()[0][1], by_customer.most_common()[-1][1]
    assert heaviest > 5 * lightest


def test_demo_seed_creates_the_catalog_examples(environment):
    report = demo_seed(environment=environment, now=NOW, events=2000)
    assert report.features == 13
    meters = {meter.name: meter for meter in Meter.objects.for_environment(environment).published()}
    assert (meters["API Calls"].event_name, meters["API Calls"].aggregation_type) == ("api.calls", "COUNT")
    assert (meters["Credits Consumed"].aggregation_type, meters["Credits Consumed"].aggregation_field) == (
        "SUM",
        "credits",
    )
    assert (meters["Storage"].aggregation_field, meters["Storage"].reset_usage) == ("gb", "NEVER")
    assert meters["Peak Concurrent Users"].aggregation_type == "MAX"
    assert meters["Seats"].aggregation_type == "WEIGHTED_SUM"
    assert meters["Unique Active Users"].aggregation_type == "COUNT_UNIQUE"
    assert meters["LLM Tokens"].aggregation_expression == "input_tokens + output_tokens"
    assert meters["API Requests (EMEA)"].filters == [{"key": "region", "operator": "in", "values": ["EMEA"]}]
    types = Counter(Feature.objects.for_environment(environment).values_list("type", flat=True))
    assert types == {FeatureType.METERED: 10, FeatureType.BOOLEAN: 1, FeatureType.STATIC: 1, FeatureType.CONFIG: 1}


def test_demo_seed_customers_have_varied_anchors_and_cadences(environment):
    demo_seed(environment=environment, now=NOW, events=500)
    customers = list(Customer.objects.for_environment(environment))
    assert 30 <= len(customers) <= 50
    assert len({customer.billing_anchor.day for customer in customers}) >= 10
    assert any(customer.billing_anchor.day == 31 for customer in customers)
    assert {customer.billing_period for customer in customers} >= {"MONTHLY", "WEEKLY", "QUARTERLY", "ANNUAL"}


def test_demo_seed_stores_broken_events_for_the_debugger(environment):
    report = demo_seed(environment=environment, now=NOW, events=1000)
    assert report.broken == 8
    recent = Event.objects.for_environment(environment).filter(timestamp__gte=NOW - dt.timedelta(hours=1))
    names = Counter(recent.values_list("event_name", flat=True))
    assert names["API.calls"] == 1  # wrong case
    model_usage = [event.properties for event in recent.filter(event_name="model.usage")]
    assert {"model": "gpt-4o"} in model_usage  # missing field
    assert any(properties.get("credits") == "twelve" for properties in model_usage)  # not numeric
    known = set(Customer.objects.values_list("external_id", flat=True))
    assert "newco-trial" in set(recent.values_list("external_customer_id", flat=True)) - known


def test_demo_seed_is_safe_to_run_again(environment):
    first = demo_seed(environment=environment, now=NOW, events=1500)
    second = demo_seed(environment=environment, now=NOW, events=1500)
    assert (second.features, second.customers) == (0, 0)
    assert second.replaced == second.events == first.events
    assert Event.objects.for_environment(environment).count() == first.events
    assert Feature.objects.for_environment(environment).count() == 13


def test_demo_data_gives_believable_usage(environment):
    demo_seed(environment=environment, now=NOW, events=5000)
    heaviest = Counter(Event.objects.values_list("external_customer_id", flat=True)).most_common(1)[0][0]
    customer = Customer.objects.get(external_id=heaviest)
    usage = {item.feature.name: item.value for item in customer_current_usage(customer=customer, at=NOW).features}
    assert usage["API Calls"] > 0
    assert usage["Seats"] > 0
    assert usage["Unique Active Users"] <= usage["API Calls"]


def test_seed_demo_command_reports_and_validates_options(environment):
    out = io.StringIO()
    call_command("seed_demo", events=800, days=7, stdout=out, stderr=io.StringIO())
    assert "Seeded environment production" in out.getvalue()
    assert Event.objects.for_environment(environment).exists()
    with pytest.raises(CommandError):
        call_command("seed_demo", days=0, stdout=io.StringIO())


@pytest.mark.parametrize(
    "now",
    [
        dt.datetime(2026, 12, 2, 12, 35, tzinfo=dt.UTC),  # issue #18: Acme's period began minutes before the seed
        dt.datetime(2026, 3, 1, 0, 5, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 18, 15, 30, tzinfo=dt.UTC),
        dt.datetime(2027, 1, 31, 23, 55, tzinfo=dt.UTC),
    ],
)
def test_every_demo_customer_has_a_week_of_its_current_period_behind_it(now):
    import random

    from metering.demo_data import DEMO_SEED, demo_customers
    from metering.usage.periods import billing_period_at

    for customer in demo_customers(random.Random(DEMO_SEED), now=now):
        anchor, period = customer.data["billing_anchor"], customer.data["billing_period"]
        start, _ = billing_period_at(anchor=anchor, period=period, at=now)
        wanted = dt.timedelta(days=3, hours=12) if period == "WEEKLY" else dt.timedelta(days=7)
        assert now - start >= wanted, (customer.external_id, start)
        assert (anchor.hour, anchor.minute) == (0, 0)


def test_acme_shows_usage_in_its_current_period(environment):
    now = dt.datetime(2026, 12, 2, 12, 35, tzinfo=dt.UTC)
    demo_seed(environment=environment, now=now, events=4000)
    acme = Customer.objects.get(environment=environment, external_id="acme-corp")
    usage = {item.feature.name: item.value for item in customer_current_usage(customer=acme, at=now).features}
    assert usage["API Calls"] > 0 and usage["Seats"] > 0
