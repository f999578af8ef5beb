"""The overview (dashboard home), the usage index's totals, the feature page's usage summary, customer activity
and the customer edit page (issue #18)."""

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from catalog.models import FeatureStatus
from tests.catalog.factories import FeatureFactory, MeterFactory
from tests.metering.factories import CustomerFactory, EventFactory
from tests.metering.usage.helpers import send, usage_statements

pytestmark = pytest.mark.django_db
UTC = dt.UTC


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def text_of(html: str, testid: str) -> str:
    """The text of the element with this data-testid, tags stripped."""
    after = html.split(f'data-testid="{testid}"', 1)[1].split(">", 1)[1]
    depth, out = 0, []
    for piece in re.split(r"(<[^>]+>)", after):
        if piece.startswith("</"):
            if depth == 0:
                break
            depth -= 1
        elif piece.startswith("<") and not piece.endswith("/>"):
            depth += 1
        elif not piece.startswith("<"):
            out.append(piece)
    return " ".join("".join(out).split())


@pytest.fixture
def now():
    return timezone.now()


@pytest.fixture
def catalog(environment, now):
    """API calls (COUNT) and seats (SUM) with units; acme sent 3 calls today and one 3 days ago, globex 1 call
    today and 513.02887188321385902031 seats; 2 events today no meter counts (a misspelled name)."""
    calls = FeatureFactory(
        environment=environment, name="API calls", lookup_key="api_calls", unit_singular="call", unit_plural="calls",
        meter=MeterFactory(environment=environment, name="API calls", event_name="api.calls"),
    )  # fmt: skip
    seats = FeatureFactory(
        environment=environment, name="Seats", lookup_key="seats", unit_singular="seat", unit_plural="seats",
        meter=MeterFactory(environment=environment, name="Seats", event_name="seats", aggregation_type="SUM",
                           aggregation_field="n"),
    )  # fmt: skip
    CustomerFactory(environment=environment, external_id="acme-corp", name="Acme Corp")
    CustomerFactory(environment=environment, external_id="globex", name="Globex")
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    recent = max(today, now - dt.timedelta(hours=1))
    for _ in range(3):
        send(environment, event_name="api.calls", timestamp=iso(recent), customer="acme-corp")
    send(environment, event_name="api.calls", timestamp=iso(today - dt.timedelta(days=3)), customer="acme-corp")
    send(environment, event_name="api.calls", timestamp=iso(recent), customer="globex")
    send(environment, event_name="seats", timestamp=iso(recent), customer="globex",
         properties='{"n": 513.02887188321385902031}')  # fmt: skip
    for _ in range(2):
        send(environment, event_name="API.calls", timestamp=iso(recent), customer="acme-corp")
    return calls, seats


def test_the_home_page_is_the_overview_with_real_numbers(dashboard, catalog):
    html = dashboard.get(reverse("flexmeter:home")).content.decode()
    assert "<h1>Overview</h1>" in html
    assert text_of(html, "overview-today").startswith("Events today 7 ")  # 3 + 1 calls, 1 seats, 2 misspelled
    assert text_of(html, "overview-week").startswith("Events, last 7 days 8 ")  # and a call 3 days ago
    assert text_of(html, "overview-unmatched").startswith("Counted by no meter, last 24 hours 28.6% 2 of 7 events")
    # the reason, linking into the debugger filtered to it
    assert 'href="/events/?event_name=API.calls&amp;status=unmatched&amp;range=24h"' in html
    assert "did you mean <code>api.calls</code>?" in html
    # features by usage over the last 30 days, readable numbers, exact on hover
    assert text_of(html, "overview-feature-api_calls") == "5 calls"
    assert 'title="Exactly 513.02887188321385902031 seats"' in html and ">513.03 seats</span>" in html
    assert html.count('<svg class="sparkline"') == 3  # events per day, and one per feature with usage
    # most active customers: by the COUNT feature, most first
    customers = html.split('id="customers-title"', 1)[1]
    assert customers.index("Acme Corp") < customers.index("Globex") and "By API calls, last 30 days." in customers
    assert 'id="overview-alerts"' in html  # the slot the alerts issue fills; nothing invented meanwhile


def test_the_overview_of_an_empty_environment_says_so(dashboard, environment):
    html = dashboard.get(reverse("flexmeter:home")).content.decode()
    assert text_of(html, "overview-today").startswith("Events today 0 ")
    assert text_of(html, "overview-unmatched").startswith("Counted by no meter, last 24 hours — 0 of 0 events")
    assert "No metered features yet" in html and "Why events counted for nothing" not in html


def test_overview_queries_stay_constant(dashboard, catalog, environment, now, django_assert_max_num_queries):
    for index in range(5):
        FeatureFactory(environment=environment, name=f"Extra {index}", lookup_key=f"extra_{index}",
                       meter=MeterFactory(environment=environment, event_name=f"extra.{index}"))  # fmt: skip
    # session, user, environment, features, per-day counts, last 24 hours, unmatched names (meters), the usage
    # statement of every feature, the leading feature per customer, its customers, switcher; the alarm panel's level
    # counts, most severe states and limits reached
    with django_assert_max_num_queries(13 + 2 * usage_statements()):
        assert dashboard.get(reverse("flexmeter:home")).status_code == 200


def test_usage_index_shows_each_feature_total_with_a_sparkline(dashboard, catalog, django_assert_max_num_queries):
    with django_assert_max_num_queries(6 + usage_statements()):
        html = dashboard.get(reverse("metering:usage_index")).content.decode()
    assert text_of(html, "usage-total-api_calls") == "5 calls"
    assert text_of(html, "usage-total-seats") == "513.03 seats"
    assert "Totals over the last 30 days" in html
    assert html.count('<svg class="sparkline"') == 2


def test_feature_detail_shows_its_usage_and_a_sample_naming_a_real_customer(dashboard, catalog, environment):
    calls, _ = catalog
    html = dashboard.get(reverse("catalog:feature_detail", args=[calls.public_id])).content.decode()
    assert text_of(html, "feature-detail-total") == "5 calls"
    assert f'href="{reverse("metering:usage_feature", args=[calls.public_id])}"' in html
    assert "Send your first event" not in html and "<h2>Send an event</h2>" in html
    assert "customer_123" not in html
    assert "&quot;external_customer_id&quot;: &quot;globex&quot;" in html  # the last sender of api.calls


def test_feature_detail_without_events_asks_for_the_first_one(dashboard, environment):
    feature = FeatureFactory(environment=environment, meter=MeterFactory(environment=environment, event_name="x.y"))
    html = dashboard.get(reverse("catalog:feature_detail", args=[feature.public_id])).content.decode()
    assert "Send your first event" in html and "No customer exists yet" in html
    CustomerFactory(environment=environment, external_id="initech")
    html = dashboard.get(reverse("catalog:feature_detail", args=[feature.public_id])).content.decode()
    assert "&quot;external_customer_id&quot;: &quot;initech&quot;" in html and "No customer exists yet" not in html


def test_feature_detail_of_an_archived_feature_keeps_its_usage(dashboard, catalog):
    calls, _ = catalog
    calls.status = FeatureStatus.ARCHIVED
    calls.save()
    html = dashboard.get(reverse("catalog:feature_detail", args=[calls.public_id])).content.decode()
    assert text_of(html, "feature-detail-total") == "5 calls"


def test_customers_list_shows_events_and_last_seen(dashboard, environment, now):
    CustomerFactory(environment=environment, external_id="acme-corp", name="Acme Corp")
    CustomerFactory(environment=environment, external_id="quiet", name="Quiet")
    EventFactory(environment=environment, external_customer_id="acme-corp", timestamp=now - dt.timedelta(hours=2))
    EventFactory(environment=environment, external_customer_id="acme-corp", event_name="other",
                 timestamp=now - dt.timedelta(days=10))  # fmt: skip
    html = dashboard.get(reverse("metering:customer_list")).content.decode()
    rows = {row.split('data-testid="external-id-chip">', 1)[1].split("<", 1)[0]: row
            for row in html.split("<tr>")[2:]}  # fmt: skip
    assert text_of(rows["acme-corp"], "customer-events") == "1"  # the last 7 days only
    assert text_of(rows["acme-corp"], "customer-last-seen") == "2 hours ago"
    assert text_of(rows["quiet"], "customer-events") == "0"
    assert text_of(rows["quiet"], "customer-last-seen") == "Never"


def test_customer_detail_marks_each_recent_event_and_links_the_debugger(dashboard, environment, now):
    customer = CustomerFactory(environment=environment, external_id="acme-corp")
    MeterFactory(environment=environment, event_name="api.calls")
    EventFactory(environment=environment, external_customer_id="acme-corp", event_id="good-1")
    EventFactory(environment=environment, external_customer_id="acme-corp", event_name="API.calls", event_id="bad-1")
    html = dashboard.get(reverse("metering:customer_detail", args=[customer.public_id])).content.decode()
    rows = html.split('data-testid="recent-event"')[1:]
    assert len(rows) == 2
    by_id = {("bad-1" if "bad-1" in row else "good-1"): row for row in rows}
    assert '<span class="badge badge-status-processed">Counted</span>' in by_id["good-1"]
    assert '<a class="badge badge-status-unmatched" href="/events/detail/?id=bad-1">Counted by no meter</a>' in by_id[
        "bad-1"]  # fmt: skip
    assert text_of(html, "recent-problems") == "1 counted for nothing"
    assert f'href="{reverse("metering:customer_edit", args=[customer.public_id])}"' in html


def test_a_customer_is_edited_from_the_dashboard(dashboard, environment, other_environment):
    customer = CustomerFactory(environment=environment, external_id="acme", name="Acme", email="a@acme.test")
    CustomerFactory(environment=environment, external_id="globex")
    url = reverse("metering:customer_edit", args=[customer.public_id])
    assert 'value="a@acme.test"' in dashboard.get(url).content.decode()
    response = dashboard.post(url, {"external_id": "acme", "name": "Acme Corp", "email": "",
                                    "billing_period": "MONTHLY"})  # fmt: skip
    assert response.status_code == 302
    customer.refresh_from_db()
    assert (customer.name, customer.email) == ("Acme Corp", "")
    taken = dashboard.post(url, {"external_id": "globex", "name": "Acme", "billing_period": "MONTHLY"})
    assert taken.status_code == 422 and "Already exists" in taken.content.decode()
    bad = dashboard.post(url, {"external_id": "acme", "name": "Acme", "email": "nope", "billing_period": "MONTHLY"})
    assert bad.status_code == 422 and "Must be a valid email address" in bad.content.decode()
    foreign = CustomerFactory(environment=other_environment)
    assert dashboard.get(reverse("metering:customer_edit", args=[foreign.public_id])).status_code == 404


def test_hourly_bars_on_a_month_say_they_fell_back_to_daily(dashboard, catalog):
    calls, _ = catalog
    url = reverse("metering:usage_feature", args=[calls.public_id])
    html = dashboard.get(url, {"window": "30d", "size": "HOUR"}).content.decode()
    assert text_of(html, "size-fallback").startswith("Hourly bars would need more than 200 bars for this window")
    assert '<span class="disabled" aria-disabled="true"' in html and ">Hourly</span>" in html
    assert 'class="active" aria-current="true">Daily<' in html
    html = dashboard.get(url, {"window": "7d", "size": "HOUR"}).content.decode()
    assert 'data-testid="size-fallback"' not in html and 'class="active" aria-current="true">Hourly<' in html
