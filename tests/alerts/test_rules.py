"""The level rule of SPEC §11 with concrete numbers (no database)."""

from decimal import Decimal

import pytest

from alerts.rules import alert_level, threshold_crossed

ABOVE = {
    "alert_enabled": True,
    "info": {"threshold": "50", "condition": "above"},
    "warning": {"threshold": "80", "condition": "above"},
    "critical": {"threshold": "100", "condition": "above"},
}
BELOW = {
    "alert_enabled": True,
    "info": {"threshold": "100", "condition": "below"},
    "warning": {"threshold": "20", "condition": "below"},
    "critical": {"threshold": "5", "condition": "below"},
}


@pytest.mark.parametrize(
    ("usage", "level"),
    [("0", "ok"), ("50", "ok"), ("50.000001", "info"), ("80", "info"), ("81", "warning"), ("100", "warning"),
     ("100.5", "critical"), ("1000000", "critical")],
)  # fmt: skip
def test_above_is_the_highest_threshold_the_usage_exceeds(usage, level):
    assert alert_level(ABOVE, Decimal(usage)) == level


@pytest.mark.parametrize(
    ("usage", "level"),
    [("150", "ok"), ("100", "ok"), ("99.9", "info"), ("20", "info"), ("19", "warning"), ("5", "warning"),
     ("4.99", "critical"), ("0", "critical"), ("-3", "critical")],
)  # fmt: skip
def test_below_is_the_lowest_threshold_the_usage_has_fallen_under(usage, level):
    assert alert_level(BELOW, Decimal(usage)) == level


def test_no_usage_counts_as_zero():
    assert alert_level(ABOVE, None) == "ok"
    assert alert_level(BELOW, None) == "critical"


def test_only_the_configured_levels_count():
    only_critical = {"alert_enabled": True, "critical": {"threshold": "10", "condition": "above"}}
    assert alert_level(only_critical, Decimal("9")) == "ok"
    assert alert_level(only_critical, Decimal("11")) == "critical"


def test_disabled_or_absent_settings_are_always_ok():
    assert alert_level({**ABOVE, "alert_enabled": False}, Decimal("500")) == "ok"
    assert alert_level({}, Decimal("500")) == "ok"


def test_the_threshold_crossed_is_that_of_the_more_severe_level():
    assert threshold_crossed(ABOVE, "ok", "critical") == Decimal("100")
    assert threshold_crossed(ABOVE, "info", "warning") == Decimal("80")
    assert threshold_crossed(ABOVE, "critical", "info") == Decimal("100")
    assert threshold_crossed(ABOVE, "warning", "ok") == Decimal("80")
