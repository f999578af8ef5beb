"""The alert panels on the usage pages and the customer page: level badges, threshold marks, the timeline."""

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.alerts.helpers import alerting_feature, calls, customer
from tests.metering.usage.helpers import at

pytestmark = pytest.mark.django_db


@pytest.fixture
def alarm(environment):
    """Customer `acme` in alarm (critical) this period on API calls; `beta` at info."""
    from alerts.services import alerts_evaluate

    feature = alerting_feature(environment, info="1", warning="3", critical="5")
    now = timezone.now()
    anchor = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    customer(environment, "acme", anchor=anchor.strftime("%Y-%m-%dT%H:%M"))
    customer(environment, "beta", anchor=anchor.strftime("%Y-%m-%dT%H:%M"))
    stamp = anchor.strftime("%Y-%m-%dT%H:%M")
    calls(environment, 6, customer="acme", timestamp=stamp)
    calls(environment, 2, customer="beta", timestamp=stamp)
    alerts_evaluate(now=now)
    return feature


def _levels(html: str) -> list[str]:
    return re.findall(r'data-alert-level="(\w+)"', html)


def test_the_feature_page_counts_levels_and_lists_customers_in_alarm(dashboard, alarm):
    html = dashboard.get(reverse("metering:usage_feature", args=[alarm.public_id])).content.decode()
    panel = html[html.index('id="feature-alerts"') :]
    assert re.search(r'data-testid="alert-count-critical">.*?<strong>1</strong> customer<', panel, re.S)
    assert re.search(r'data-testid="alert-count-info">.*?<strong>1</strong> customer<', panel, re.S)
    assert 'data-testid="alarming-acme"' in panel and 'data-testid="alarming-beta"' in panel
    assert panel.index("alarming-acme") < panel.index("alarming-beta")  # most severe first
    timeline = panel[panel.index('data-testid="alert-timeline"') :]
    assert sorted(zip(_levels(timeline)[::2], _levels(timeline)[1::2], strict=True)) == [
        ("ok", "critical"),
        ("ok", "info"),
    ]
    assert "above <strong" not in timeline and "above 5" in timeline


def test_the_customer_usage_page_draws_thresholds_on_a_usage_bar(dashboard, environment, alarm):
    acme = environment.customers.get(external_id="acme")
    html = dashboard.get(reverse("metering:usage_customer", args=[acme.public_id])).content.decode()
    panel = html[html.index('id="customer-alerts"') :]
    row = panel[panel.index('data-testid="alert-api_calls"') :]
    assert _levels(row)[0] == "critical"
    marks = re.findall(r'threshold-mark mark-(\w+)" style="left:([\d.]+)%"', row)
    # scale = 1.15 × max(5, usage 6) = 6.9: marks at 5/6.9, 3/6.9, 1/6.9 of the bar; usage fills 6/6.9
    assert marks == [("critical", "72.5"), ("warning", "43.5"), ("info", "14.5")]
    assert 'class="fill" style="width:87.0%"' in row
    assert '<strong class="qty">6</strong> this period' in row


def test_the_customer_page_shows_levels_and_the_timeline(dashboard, environment, alarm):
    beta = environment.customers.get(external_id="beta")
    html = dashboard.get(reverse("metering:customer_detail", args=[beta.public_id])).content.decode()
    panel = html[html.index('id="customer-alerts"') :]
    assert _levels(panel[panel.index('data-testid="alert-api_calls"') :])[0] == "info"
    assert 'usage <strong class="qty">2</strong>, above 1' in panel


def test_a_feature_without_alerts_says_how_to_turn_them_on(dashboard, environment):
    from tests.catalog.factories import FeatureFactory

    feature = FeatureFactory(environment=environment)
    html = dashboard.get(reverse("metering:usage_feature", args=[feature.public_id])).content.decode()
    assert "Alerts are off for this feature" in html
    assert at("2026-01-01T00:00")  # the helper module is shared with the evaluation tests


def test_the_overview_lists_what_is_in_alarm_most_severe_first(dashboard, alarm):
    html = dashboard.get(reverse("flexmeter:home")).content.decode()
    panel = html[html.index('id="overview-alarms"') :]
    assert re.search(r'data-testid="overview-alarm-count-critical">.*?<strong>1</strong> customer<', panel, re.S)
    assert re.search(r'data-testid="overview-alarm-count-warning">.*?<strong>0</strong> customers<', panel, re.S)
    assert re.search(r'data-testid="overview-alarm-count-info">.*?<strong>1</strong> customer<', panel, re.S)
    assert panel.index('overview-alarm-acme"') < panel.index('overview-alarm-beta"')
    acme = panel[panel.index('overview-alarm-acme"') : panel.index("</tr>", panel.index('overview-alarm-acme"'))]
    assert _levels(acme) == ["critical"] and ">6<" in acme.replace(" ", "")


def test_the_overview_says_when_nothing_is_in_alarm(dashboard, environment):
    html = dashboard.get(reverse("flexmeter:home")).content.decode()
    assert "Nothing is in alarm" in html
