"""Usage against a limit counts over the entitlement's current reset window (SPEC §10): the customer's billing period,
periods aligned to the subscription's billing anchor with month-end clamping, or everything since the subscription
started. Each case puts events just outside and just inside both edges of the expected window."""

import datetime as dt

import pytest

from entitlements.selectors import customer_feature_access
from tests.entitlements.helpers import customer, grant, metered_feature
from tests.metering.usage.helpers import at, send

pytestmark = pytest.mark.django_db

TICK = dt.timedelta(microseconds=1)

# (id, reset period, subscription start, billing anchor, check time, window start, window end or None)
CASES = [
    ("daily", "DAILY", "2025-01-31T06:00", None, "2025-03-15T12:00", "2025-03-15T06:00", "2025-03-16T06:00"),
    (
        "daily-before-anchor-time",
        "DAILY",
        "2025-01-31T06:00",
        None,
        "2025-03-15T05:00",
        "2025-03-14T06:00",
        "2025-03-15T06:00",
    ),
    ("weekly", "WEEKLY", "2025-01-31T00:00", None, "2025-03-15T12:00", "2025-03-14T00:00", "2025-03-21T00:00"),
    (
        "monthly-jan31-in-feb",
        "MONTHLY",
        "2025-01-31T00:00",
        None,
        "2025-02-15T12:00",
        "2025-01-31T00:00",
        "2025-02-28T00:00",
    ),
    (
        "monthly-jan31-clamped",
        "MONTHLY",
        "2025-01-31T00:00",
        None,
        "2025-03-15T12:00",
        "2025-02-28T00:00",
        "2025-03-31T00:00",
    ),
    (
        "monthly-jan31-back-to-31",
        "MONTHLY",
        "2025-01-31T00:00",
        None,
        "2025-04-02T00:00",
        "2025-03-31T00:00",
        "2025-04-30T00:00",
    ),
    (
        "monthly-jan31-leap",
        "MONTHLY",
        "2024-01-31T00:00",
        None,
        "2024-03-01T00:00",
        "2024-02-29T00:00",
        "2024-03-31T00:00",
    ),
    (
        "monthly-own-anchor",
        "MONTHLY",
        "2025-01-05T00:00",
        "2025-01-20T08:00",
        "2025-03-15T12:00",
        "2025-02-20T08:00",
        "2025-03-20T08:00",
    ),
    ("quarterly", "QUARTERLY", "2025-01-31T00:00", None, "2025-05-15T12:00", "2025-04-30T00:00", "2025-07-31T00:00"),
    (
        "half-yearly",
        "HALF_YEARLY",
        "2025-01-31T00:00",
        None,
        "2025-03-15T12:00",
        "2025-01-31T00:00",
        "2025-07-31T00:00",
    ),
    (
        "half-yearly-second-half",
        "HALF_YEARLY",
        "2024-08-31T00:00",
        None,
        "2025-03-15T12:00",
        "2025-02-28T00:00",
        "2025-08-31T00:00",
    ),
    ("annual-feb29", "ANNUAL", "2024-02-29T00:00", None, "2025-03-15T12:00", "2025-02-28T00:00", "2026-02-28T00:00"),
    # the customer is anchored on the 10th, monthly: the subscription's anchor does not matter
    (
        "billing-period",
        "BILLING_PERIOD",
        "2025-01-31T00:00",
        None,
        "2025-03-15T12:00",
        "2025-03-10T00:00",
        "2025-04-10T00:00",
    ),
    ("never", "NEVER", "2025-01-05T00:00", None, "2025-03-15T12:00", "2025-01-05T00:00", None),
]


@pytest.mark.parametrize(
    "period, start, anchor, now, window_start, window_end", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_usage_counts_over_the_reset_window(environment, period, start, anchor, now, window_start, window_end):
    feature = metered_feature(environment)
    holder = customer(environment, anchor="2025-01-10T00:00")
    grant(environment, holder, feature, start=start, anchor=anchor, usage_limit=100, usage_reset_period=period)
    first = at(window_start)
    inside = [first, at(now) - dt.timedelta(seconds=1)]
    outside = [first - TICK]
    if window_end is not None:
        inside.append(at(window_end) - TICK)
        outside.append(at(window_end))
    for moment in inside + outside:
        send(environment, event_name="api.calls", customer="cust-1", timestamp=moment.isoformat())

    access = customer_feature_access(customer=holder, feature_ref="api_calls", at=at(now)).access

    assert access.window.start == first
    assert access.window.next_reset_at == (at(window_end) if window_end else None)
    assert access.usage == len(inside)
    assert access.balance == 100 - len(inside)


def test_never_counts_events_stamped_ahead_of_the_check(environment):
    """Events may carry timestamps up to 24 hours ahead; a window that never resets still counts them."""
    feature = metered_feature(environment)
    holder = customer(environment)
    grant(environment, holder, feature, start="2025-01-05T00:00", usage_limit=2, usage_reset_period="NEVER")
    send(environment, event_name="api.calls", customer="cust-1", timestamp="2025-03-15T10:00")
    send(environment, event_name="api.calls", customer="cust-1", timestamp="2025-03-16T11:59")

    access = customer_feature_access(customer=holder, feature_ref="api_calls", at=at("2025-03-15T12:00")).access

    assert (access.usage, access.has_access, access.reason) == (2, False, "usage_limit_reached")


def test_combined_window_is_the_earliest_subscriptions(environment):
    """Two sources with different anchors: the combined view counts in the primary (earliest-started) window."""
    feature = metered_feature(environment)
    holder = customer(environment)
    grant(environment, holder, feature, start="2025-01-20T00:00", usage_limit=3, usage_reset_period="MONTHLY")
    grant(environment, holder, feature, start="2025-03-01T00:00", usage_limit=4, usage_reset_period="MONTHLY")
    for day in ("2025-02-19T23:00", "2025-02-20T01:00", "2025-03-02T00:00"):
        send(environment, event_name="api.calls", customer="cust-1", timestamp=day)

    access = customer_feature_access(customer=holder, feature_ref="api_calls", at=at("2025-03-15T12:00")).access

    assert (access.window.start, access.window.end) == (at("2025-02-20T00:00"), at("2025-03-20T00:00"))
    assert (access.usage, access.balance) == (2, 5)
