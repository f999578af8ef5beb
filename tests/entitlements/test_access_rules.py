"""SPEC §10 access rules, table-driven with concrete numbers: feature types, soft and hard limits, unlimited,
several plans combined, disabled sources, subscriptions that ended or have not started, unknown features."""

from decimal import Decimal

import pytest

from catalog.models import FeatureType
from entitlements.selectors import customer_entitlements, customer_feature_access
from tests.entitlements.helpers import customer, grant, metered_feature, plain_feature
from tests.metering.usage.helpers import at, send

pytestmark = pytest.mark.django_db

NOW = "2025-03-15T12:00"  # customer anchored 2025-01-01 monthly: period [03-01, 04-01)
U = None  # unlimited


def _events(environment, count: int, *, timestamp: str = "2025-03-10T09:00") -> None:
    for _ in range(count):
        send(environment, event_name="api.calls", customer="cust-1", timestamp=timestamp)


# (id, sources [(settings, start, end)], events this period, has_access, reason, usage, limit, balance, overage, soft)
METERED_CASES = [
    ("under-limit", [({"usage_limit": 10}, None, None)], 3, True, None, 3, 10, 7, 0, False),
    ("at-limit-hard", [({"usage_limit": 3}, None, None)], 3, False, "usage_limit_reached", 3, 3, 0, 0, False),
    ("over-limit-hard", [({"usage_limit": 3}, None, None)], 5, False, "usage_limit_reached", 5, 3, 0, 2, False),
    ("over-limit-soft", [({"usage_limit": 3, "is_soft_limit": True}, None, None)], 5, True, None, 5, 3, 0, 2, True),
    ("zero-limit", [({"usage_limit": 0}, None, None)], 0, False, "usage_limit_reached", 0, 0, 0, 0, False),
    (
        "decimal-limit",
        [({"usage_limit": "2.5"}, None, None)],
        2,
        True,
        None,
        2,
        Decimal("2.5"),
        Decimal("0.5"),
        0,
        False,
    ),
    ("unlimited", [({}, None, None)], 5, True, None, 5, U, U, 0, False),
    (
        "two-plans-sum",
        [({"usage_limit": 3}, None, None), ({"usage_limit": 4}, None, None)],
        5,
        True,
        None,
        5,
        7,
        2,
        0,
        False,
    ),
    (
        "two-plans-sum-reached",
        [({"usage_limit": 3}, None, None), ({"usage_limit": 4}, None, None)],
        7,
        False,
        "usage_limit_reached",
        7,
        7,
        0,
        0,
        False,
    ),
    (
        "any-unlimited-wins",
        [({"usage_limit": 3}, None, None), ({"usage_limit": None}, None, None)],
        9,
        True,
        None,
        9,
        U,
        U,
        0,
        False,
    ),
    (
        "any-soft-makes-soft",
        [({"usage_limit": 2, "is_soft_limit": True}, None, None), ({"usage_limit": 2}, None, None)],
        5,
        True,
        None,
        5,
        4,
        0,
        1,
        True,
    ),
    (
        "disabled-source-counts-nothing",
        [({"usage_limit": 100, "is_enabled": False}, None, None), ({"usage_limit": 3}, None, None)],
        5,
        False,
        "usage_limit_reached",
        5,
        3,
        0,
        2,
        False,
    ),
    (
        "disabled-unlimited-counts-nothing",
        [({"usage_limit": None, "is_enabled": False}, None, None), ({"usage_limit": 3}, None, None)],
        2,
        True,
        None,
        2,
        3,
        1,
        0,
        False,
    ),
    (
        "ended-subscription-counts-nothing",
        [({"usage_limit": 100}, "2025-01-01T00:00", "2025-03-15T12:00"), ({"usage_limit": 3}, None, None)],
        5,
        False,
        "usage_limit_reached",
        5,
        3,
        0,
        2,
        False,
    ),
    (
        "future-subscription-counts-nothing",
        [({"usage_limit": 100}, "2025-03-15T12:00:01", None), ({"usage_limit": 3}, None, None)],
        5,
        False,
        "usage_limit_reached",
        5,
        3,
        0,
        2,
        False,
    ),
    (
        "starts-exactly-now-counts",
        [({"usage_limit": 100}, "2025-03-15T12:00", None)],
        5,
        True,
        None,
        5,
        100,
        95,
        0,
        False,
    ),
]


@pytest.mark.parametrize(
    "sources, events, has_access, reason, usage, limit, balance, overage, soft",
    [case[1:] for case in METERED_CASES],
    ids=[case[0] for case in METERED_CASES],
)
def test_metered_access(environment, sources, events, has_access, reason, usage, limit, balance, overage, soft):
    feature = metered_feature(environment)
    holder = customer(environment)
    for settings, start, end in sources:
        grant(
            environment,
            holder,
            feature,
            start=start or "2025-01-01T00:00",
            end=end,
            usage_reset_period="BILLING_PERIOD",
            **settings,
        )
    _events(environment, events)
    _events(environment, 4, timestamp="2025-02-27T09:00")  # previous period: never counts

    answer = customer_feature_access(customer=holder, feature_ref="api_calls", at=at(NOW))

    access = answer.access
    assert (access.has_access, access.reason) == (has_access, reason)
    assert access.usage == usage
    assert answer.combined.usage_limit == limit
    assert access.balance == balance
    assert access.overage == overage
    assert answer.combined.is_soft_limit is soft
    assert (access.window.start, access.window.end) == (at("2025-03-01T00:00"), at("2025-04-01T00:00"))


UNAVAILABLE_CASES = [
    ("no-subscription", []),
    ("only-disabled", [({"usage_limit": 5, "is_enabled": False}, None, None)]),
    ("ended", [({"usage_limit": 5}, "2025-01-01T00:00", "2025-03-01T00:00")]),
    ("ended-exactly-now", [({"usage_limit": 5}, "2025-01-01T00:00", NOW)]),
    ("not-started", [({"usage_limit": 5}, "2025-04-01T00:00", None)]),
]


@pytest.mark.parametrize("sources", [case[1] for case in UNAVAILABLE_CASES], ids=[c[0] for c in UNAVAILABLE_CASES])
def test_metered_feature_unavailable_without_an_active_enabled_source(environment, sources):
    feature = metered_feature(environment)
    holder = customer(environment)
    for settings, start, end in sources:
        grant(environment, holder, feature, start=start, end=end, **settings)
    _events(environment, 2)

    access = customer_feature_access(customer=holder, feature_ref=feature.public_id, at=at(NOW)).access

    assert (access.has_access, access.reason) == (False, "feature_unavailable")
    assert access.usage is None and access.balance is None


# (id, type, sources [(settings, enabled)], has_access, reason, static_values, config_values)
PLAIN_CASES = [
    ("boolean-on", "boolean", [{}], True, None, [], []),
    ("boolean-off", "boolean", [{"is_enabled": False}], False, "feature_unavailable", [], []),
    ("boolean-any-enabled", "boolean", [{"is_enabled": False}, {"is_enabled": True}], True, None, [], []),
    ("static", "static", [{"static_value": "5 seats"}], True, None, ["5 seats"], []),
    (
        "static-distinct-values",
        "static",
        [{"static_value": "gold"}, {"static_value": "silver"}, {"static_value": "gold"}],
        True,
        None,
        ["gold", "silver"],
        [],
    ),
    (
        "static-disabled-value-left-out",
        "static",
        [{"static_value": "gold", "is_enabled": False}, {"static_value": "silver"}],
        True,
        None,
        ["silver"],
        [],
    ),
    (
        "config-list",
        "config",
        [{"config_value": {"region": "eu"}}, {"config_value": {"region": "us", "max": 3}}],
        True,
        None,
        [],
        [{"region": "eu"}, {"region": "us", "max": 3}],
    ),
    (
        "config-disabled",
        "config",
        [{"config_value": {"a": 1}, "is_enabled": False}],
        False,
        "feature_unavailable",
        [],
        [],
    ),
]


@pytest.mark.parametrize(
    "kind, sources, has_access, reason, static_values, config_values",
    [case[1:] for case in PLAIN_CASES],
    ids=[case[0] for case in PLAIN_CASES],
)
def test_boolean_static_and_config_access(environment, kind, sources, has_access, reason, static_values, config_values):
    feature = plain_feature(environment, type=kind, lookup_key="thing")
    holder = customer(environment)
    for settings in sources:
        grant(environment, holder, feature, **settings)

    answer = customer_feature_access(customer=holder, feature_ref="thing", at=at(NOW))

    assert (answer.access.has_access, answer.access.reason) == (has_access, reason)
    assert answer.combined.static_values == static_values
    assert answer.combined.config_values == config_values
    assert answer.access.usage is None


def test_unknown_feature_is_feature_not_found(environment):
    holder = customer(environment)
    access = customer_feature_access(customer=holder, feature_ref="no_such_feature", at=at(NOW)).access
    assert (access.has_access, access.reason) == (False, "feature_not_found")


def test_deleted_feature_is_feature_not_found(environment):
    feature = plain_feature(environment, type=FeatureType.BOOLEAN, lookup_key="gone")
    holder = customer(environment)
    grant(environment, holder, feature)
    feature.status = "deleted"
    feature.save()
    access = customer_feature_access(customer=holder, feature_ref="gone", at=at(NOW)).access
    assert access.reason == "feature_not_found"


def test_customer_entitlements_lists_every_granted_feature_with_sources(environment):
    calls = metered_feature(environment)
    sso = plain_feature(environment, type=FeatureType.BOOLEAN, lookup_key="sso")
    holder = customer(environment)
    grant(environment, holder, calls, usage_limit=10, usage_reset_period="BILLING_PERIOD")
    grant(environment, holder, calls, usage_limit=5, usage_reset_period="BILLING_PERIOD")
    grant(environment, holder, sso)
    grant(environment, holder, sso, start="2025-01-01T00:00", end="2025-02-01T00:00")  # ended: not a source
    _events(environment, 12)

    result = customer_entitlements(customer=holder, at=at(NOW))

    by_key = {answer.feature.lookup_key: answer for answer in result.features}
    assert set(by_key) == {"api_calls", "sso"}
    assert by_key["api_calls"].combined.usage_limit == 15
    assert len(by_key["api_calls"].combined.sources) == 2
    assert (by_key["api_calls"].access.usage, by_key["api_calls"].access.balance) == (12, 3)
    assert len(by_key["sso"].combined.sources) == 1 and by_key["sso"].access.has_access
    assert len(result.subscriptions) == 3


def test_customer_entitlements_leave_out_deleted_features_but_keep_subscriptions(environment):
    gone = plain_feature(environment, type=FeatureType.BOOLEAN, lookup_key="gone")
    holder = customer(environment)
    grant(environment, holder, gone)
    gone.status = "deleted"
    gone.save()

    result = customer_entitlements(customer=holder, at=at(NOW))

    assert result.features == [] and len(result.subscriptions) == 1
