"""Usage pages: per feature over a calendar window, per customer for a billing period, CSV exports, charts."""

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from catalog.models import FeatureType, ResetUsage
from metering.usage.dashboard import billing_periods, bucket_starts, calendar_window, chart_size_for
from metering.usage.spec import UsageWindow
from metering.views.charts import bar_chart, nice_ceiling
from tests.catalog.factories import FeatureFactory, MeterFactory
from tests.metering.factories import CustomerFactory
from tests.metering.usage.helpers import send, usage_statements

pytestmark = pytest.mark.django_db
UTC = dt.UTC


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


@pytest.fixture
def now():
    return timezone.now()


@pytest.fixture
def credits(environment, now):
    """A SUM feature with units; acme used 2.5 + 0.1 credits this month, globex 1, an unknown sender 7."""
    meter = MeterFactory(
        environment=environment, name="Credits", event_name="model.usage", aggregation_type="SUM",
        aggregation_field="credits",
    )  # fmt: skip
    feature = FeatureFactory(
        environment=environment, name="Model credits", lookup_key="credits", meter=meter, unit_singular="credit",
        unit_plural="credits",
    )  # fmt: skip
    CustomerFactory(environment=environment, external_id="acme", name="Acme Corp")
    CustomerFactory(environment=environment, external_id="globex", name="Globex")
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    for customer, value in (("acme", "2.5"), ("acme", "0.1"), ("globex", 1), ("stranger", 7)):
        send(environment, event_name="model.usage", timestamp=iso(month_start + dt.timedelta(minutes=5)),
             customer=customer, properties={"credits": value})  # fmt: skip
    send(environment, event_name="model.usage", timestamp=iso(month_start - dt.timedelta(days=2)),
         customer="acme", properties={"credits": 100})  # last month  # fmt: skip
    return feature


def test_feature_page_total_table_and_chart(dashboard, credits):
    response = dashboard.get(reverse("metering:usage_feature", args=[credits.public_id]), {"window": "this_month"})
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-testid="feature-total">10.6 credits<' in html
    assert html.index("stranger") < html.index("Acme Corp") < html.index("Globex")  # usage, high to low
    assert "2.6 credits" in html and "1 credit<" in html
    assert "Not a customer yet" in html
    assert '<svg class="chart"' in html and '<rect class="bar"' in html


def test_feature_page_total_equals_the_api(dashboard, api, credits, now):
    start, end = calendar_window("this_month", now=now)
    body = api.post("/v1/events/usage/meter", {"meter_id": credits.meter.public_id, "start_time": start.isoformat(),
                                               "end_time": end.isoformat()}).json()  # fmt: skip
    url = reverse("metering:usage_feature", args=[credits.public_id])
    html = dashboard.get(url, {"window": "this_month"}).content.decode()
    assert Decimal(str(body["value"])) == Decimal("10.6")
    assert f'data-testid="feature-total">{body["value"]} credits<' in html


def test_feature_page_last_month_window(dashboard, credits):
    html = dashboard.get(reverse("metering:usage_feature", args=[credits.public_id]), {"window": "last_month"})
    assert 'data-testid="feature-total">100 credits<' in html.content.decode()


def test_feature_table_filter_sort_and_htmx(dashboard, credits):
    url = reverse("metering:usage_feature", args=[credits.public_id])
    html = dashboard.get(url, {"q": "glob"}).content.decode().split('id="customer-usage"', 1)[1]
    assert "Globex" in html and "Acme Corp" not in html
    html = dashboard.get(url, {"sort": "customer"}, headers={"HX-Request": "true"}).content.decode()
    assert html.lstrip().startswith('<div id="customer-usage">')
    assert html.index("acme") < html.index("globex") < html.index("stranger")
    assert "No customer matches" in dashboard.get(url, {"q": "zzz"}).content.decode()


def test_feature_page_garbage_parameters_fall_back(dashboard, credits):
    url = reverse("metering:usage_feature", args=[credits.public_id])
    response = dashboard.get(url, {"window": "forever", "size": "YEAR", "sort": "x", "page": "abc"})
    assert response.status_code == 200
    total = response.content.decode().split('data-testid="feature-total">', 1)[1].split("<", 1)[0]
    default = dashboard.get(url).content.decode().split('data-testid="feature-total">', 1)[1].split("<", 1)[0]
    assert total == default and total.endswith(" credits")


def test_feature_page_defaults_to_the_last_30_days(dashboard, credits, now):
    """A calendar month on its 2nd day is one bar and 29 empty days: the default is 30 whole days ending today."""
    html = dashboard.get(reverse("metering:usage_feature", args=[credits.public_id])).content.decode()
    assert 'class="active" aria-current="true">Last 30 days<' in html
    start, end = calendar_window("30d", now=now)
    assert f"{start:%b} {start.day} – " in html
    assert html.count('<tr><th scope="row">') == 30  # one row per day in the chart's data table
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    expected = Decimal("10.6") + (100 if start <= month_start - dt.timedelta(days=2) else 0)
    assert f'data-testid="feature-total">{expected} credits<' in html


def test_feature_csv_has_exact_values(dashboard, credits):
    response = dashboard.get(reverse("metering:usage_feature_csv", args=[credits.public_id]), {"window": "this_month"})
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(row["external_customer_id"], row["value"]) for row in rows] == [
        ("stranger", "7"), ("acme", "2.6"), ("globex", "1"),
    ]  # fmt: skip
    assert rows[1]["customer_name"] == "Acme Corp" and rows[0]["customer_id"] == ""


def test_feature_page_query_count(dashboard, credits, django_assert_max_num_queries):
    # session, user, env, feature, usage (statement and rollup lookup), customers, switcher; alerts panel: levels
    # counted, the most severe states, the timeline
    with django_assert_max_num_queries(6 + usage_statements() + 3):
        assert dashboard.get(reverse("metering:usage_feature", args=[credits.public_id])).status_code == 200


def test_non_metered_or_foreign_feature_is_404(dashboard, environment, other_environment):
    boolean = FeatureFactory(environment=environment, type=FeatureType.BOOLEAN, meter=None)
    foreign = FeatureFactory(environment=other_environment)
    assert dashboard.get(reverse("metering:usage_feature", args=[boolean.public_id])).status_code == 404
    assert dashboard.get(reverse("metering:usage_feature", args=[foreign.public_id])).status_code == 404


def test_customer_page_matches_customer_usage_api(dashboard, api, credits, environment):
    customer = credits.environment.customers.get(external_id="acme")
    api_body = api.get(f"/v1/customers/{customer.public_id}/usage").json()
    [row] = api_body["features"]
    response = dashboard.get(reverse("metering:usage_customer", args=[customer.public_id]))
    html = response.content.decode()
    assert response.status_code == 200
    assert f'data-testid="usage-credits">{row["current_usage"]} credits<' in html
    assert "Resets" in html and "(current)" in html
    assert '<svg class="chart"' in html


def test_customer_page_previous_period_and_never_reset(dashboard, environment, now):
    meter = MeterFactory(environment=environment, event_name="seat", reset_usage=ResetUsage.NEVER)
    FeatureFactory(environment=environment, name="Seats", lookup_key="seats", meter=meter)
    anchor = (now - dt.timedelta(days=70)).replace(microsecond=0)
    customer = CustomerFactory(environment=environment, external_id="acme", billing_anchor=anchor)
    send(environment, event_name="seat", timestamp=iso(anchor + dt.timedelta(days=1)), customer="acme")
    send(environment, event_name="seat", timestamp=iso(now - dt.timedelta(minutes=1)), customer="acme")
    url = reverse("metering:usage_customer", args=[customer.public_id])
    current = dashboard.get(url).content.decode()
    assert 'data-testid="usage-seats">2<' in current and "Never — cumulative" in current
    first = dashboard.get(url, {"period": "2"}).content.decode()
    assert 'data-testid="usage-seats">1<' in first
    assert dashboard.get(url, {"period": "nonsense"}).status_code == 200


def test_customer_csv(dashboard, credits):
    customer = credits.environment.customers.get(external_id="acme")
    response = dashboard.get(reverse("metering:usage_customer_csv", args=[customer.public_id]))
    [row] = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert (row["lookup_key"], row["value"], row["display"], row["reset"]) == (
        "credits", "2.6", "2.6 credits", "BILLING_PERIOD",
    )  # fmt: skip


def test_customer_page_query_count(dashboard, credits, django_assert_max_num_queries):
    customer = credits.environment.customers.get(external_id="acme")
    # session, user, env, customer, features, usage, chart (each a statement and a rollup lookup), switcher; alerts
    # panel: states of the period, timeline, limits reached
    with django_assert_max_num_queries(6 + 2 * usage_statements() + 3):
        assert dashboard.get(reverse("metering:usage_customer", args=[customer.public_id])).status_code == 200


def test_usage_index_lists_features_and_finds_customers(dashboard, credits):
    url = reverse("metering:usage_index")
    assert "Model credits" in dashboard.get(url).content.decode()
    customer = credits.environment.customers.get(external_id="acme")
    response = dashboard.get(url, {"customer": "acme"})
    assert response.status_code == 302
    assert response["Location"] == reverse("metering:usage_customer", args=[customer.public_id])
    response = dashboard.get(url, {"customer": "nobody"})
    assert response.status_code == 404 and "No active customer" in response.content.decode()


def test_calendar_windows():
    now = dt.datetime(2025, 3, 15, 12, 30, tzinfo=UTC)
    assert calendar_window("this_month", now=now) == (
        dt.datetime(2025, 3, 1, tzinfo=UTC),
        dt.datetime(2025, 4, 1, tzinfo=UTC),
    )
    assert calendar_window("last_month", now=now) == (
        dt.datetime(2025, 2, 1, tzinfo=UTC),
        dt.datetime(2025, 3, 1, tzinfo=UTC),
    )
    assert calendar_window("7d", now=now) == (dt.datetime(2025, 3, 9, tzinfo=UTC), dt.datetime(2025, 3, 16, tzinfo=UTC))
    start, end = calendar_window("90d", now=now)
    assert chart_size_for("HOUR", start=start, end=end) == "DAY"
    week_start, week_end = calendar_window("7d", now=now)
    assert chart_size_for("HOUR", start=week_start, end=week_end) == "HOUR"  # 168 bars
    assert len(bucket_starts(start=start, end=end, size="DAY")) == 90
    assert bucket_starts(start=start, end=end, size="WEEK")[0].weekday() == 0


def test_billing_periods_stop_at_the_anchor(environment):
    customer = CustomerFactory(environment=environment, billing_anchor=dt.datetime(2025, 1, 31, tzinfo=UTC))
    periods = billing_periods(customer=customer, now=dt.datetime(2025, 4, 10, tzinfo=UTC))
    assert [start.date().isoformat() for start, _ in periods] == ["2025-03-31", "2025-02-28", "2025-01-31"]


def test_chart_scales_and_labels():
    assert nice_ceiling(Decimal("7.3")) == 10 and nice_ceiling(Decimal(180)) == 200 and nice_ceiling(Decimal(0)) == 1
    day = dt.datetime(2025, 3, 1, tzinfo=UTC)
    svg = bar_chart([UsageWindow(day, Decimal("1.5")), UsageWindow(day + dt.timedelta(days=1), None)], size="DAY",
                    unit_singular="credit", unit_plural="credits")  # fmt: skip
    assert svg.count('<rect class="bar"') == 1
    assert "1.5 credits</title>" in svg
    assert bar_chart([], size="DAY") == ""


def test_a_meter_stored_before_the_storage_rule_shows_its_message_instead_of_a_500(dashboard, environment, now):
    # Stored directly: `1e99 * v` breaks the CEL bounds that meter creation now enforces.
    meter = MeterFactory(
        environment=environment, event_name="x", aggregation_type="SUM", aggregation_expression="1e99 * v"
    )
    feature = FeatureFactory(environment=environment, name="Old", lookup_key="old", meter=meter)
    send(environment, event_name="x", timestamp=iso(now), customer="acme", properties={"v": 1})
    response = dashboard.get(reverse("metering:usage_feature", args=[feature.public_id]))
    assert response.status_code == 400
    html = response.content.decode()
    assert f"Meter {meter.public_id} cannot be computed: its expression no longer compiles" in html
    assert "Archive it and create a new one." in html


def test_dashboard_csv_escapes_formulas_and_keeps_negative_numbers(dashboard, environment, now):
    meter = MeterFactory(
        environment=environment, event_name="model.usage", aggregation_type="SUM", aggregation_field="credits"
    )
    feature = FeatureFactory(environment=environment, name="=Credits", lookup_key="credits", meter=meter)
    customer = CustomerFactory(environment=environment, external_id="@acme", name='=HYPERLINK("http://evil")')
    send(environment, event_name="model.usage", timestamp=iso(now - dt.timedelta(minutes=5)), customer="@acme",
         properties={"credits": -5})  # fmt: skip

    response = dashboard.get(reverse("metering:usage_feature_csv", args=[feature.public_id]))
    [row] = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert (row["external_customer_id"], row["customer_name"], row["value"]) == (
        "'@acme", "'=HYPERLINK(\"http://evil\")", "-5",
    )  # fmt: skip

    response = dashboard.get(reverse("metering:usage_customer_csv", args=[customer.public_id]))
    [row] = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert (row["feature"], row["value"]) == ("'=Credits", "-5")
