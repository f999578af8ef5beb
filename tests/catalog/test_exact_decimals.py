"""Decimal settings and displayed quantities keep every digit (issue #11): no 28-digit rounding anywhere.

Python's default decimal context holds 28 significant digits; `Decimal.normalize()` and arithmetic round to it.
Each test uses a number with more digits than that, so it fails if any step of the path rounds.
"""

from decimal import Decimal

import pytest
from django.urls import reverse

from catalog import rules, services
from catalog.models import Feature, Meter
from flexmeter.decimals import decimal_text, format_quantity
from flexmeter.errors import ValidationFailed

pytestmark = pytest.mark.django_db

MULTIPLIER = "1.0000000000000000000000000000001"  # 32 significant digits
THRESHOLD_LOW = "123456789012345678901234567890.5"  # 31 significant digits
THRESHOLD_HIGH = "123456789012345678901234567890.75"  # 32 significant digits, only the last two differ


def meter_with_multiplier(multiplier) -> dict:
    return {
        "name": "Tokens scaled",
        "event_name": "llm.request",
        "aggregation": {"type": "SUM_WITH_MULTIPLIER", "field": "tokens", "multiplier": multiplier},
    }


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (Decimal(MULTIPLIER), MULTIPLIER),
        (Decimal("1.0000000000000000000000000000001000"), MULTIPLIER),
        (Decimal("12345678901234567890123456789012345E+5"), "1234567890123456789012345678901234500000"),
        (Decimal("-0.000"), "0"),
        (Decimal("1E+3"), "1000"),
        (Decimal("2.50"), "2.5"),
        (Decimal("-1E-30"), "-0.000000000000000000000000000001"),
    ],
)
def test_decimal_text_strips_trailing_zeros_without_rounding(number, text):
    assert decimal_text(number) == text


def test_decimal_text_groups_thousands_without_rounding():
    number = Decimal("1234567.8900000000000000000000000000001000")
    assert decimal_text(number, grouped=True) == "1,234,567.8900000000000000000000000000001"


def test_rules_keep_every_digit_of_a_multiplier():
    assert rules.aggregation_clean(meter_with_multiplier(MULTIPLIER)["aggregation"])["multiplier"] == MULTIPLIER
    as_number = meter_with_multiplier(Decimal(MULTIPLIER + "000"))["aggregation"]
    assert rules.aggregation_clean(as_number)["multiplier"] == MULTIPLIER


def test_a_decimal_longer_than_the_stored_text_is_refused_without_building_it():
    for huge in ("1e999999999", "1e-999999999", "1e65"):
        with pytest.raises(ValidationFailed) as raised:
            rules.aggregation_clean({"type": "SUM_WITH_MULTIPLIER", "field": "x", "multiplier": huge})
        assert raised.value.details == {
            "aggregation.multiplier": f"must have at most {rules.DECIMAL_MAX_LENGTH} digits"
        }, huge


def test_api_round_trip_of_a_multiplier_with_32_digits(api):
    created = api.post("/v1/meters", meter_with_multiplier(MULTIPLIER))
    assert created.status_code == 201, created.content
    assert created.json()["aggregation"]["multiplier"] == MULTIPLIER
    fetched = api.get(f"/v1/meters/{created.json()['id']}").json()
    assert fetched["aggregation"]["multiplier"] == MULTIPLIER
    assert Meter.objects.get(public_id=fetched["id"]).multiplier == MULTIPLIER


def test_api_keeps_every_digit_of_a_multiplier_sent_as_a_json_number(api):
    body = '{"name": "n", "event_name": "e", "aggregation": {"type": "SUM_WITH_MULTIPLIER", "field": "t", '
    body += f'"multiplier": {MULTIPLIER}}}}}'
    created = api.post("/v1/meters", body)
    assert created.status_code == 201, created.content
    assert created.json()["aggregation"]["multiplier"] == MULTIPLIER


def test_api_round_trip_of_alert_thresholds_with_31_and_32_digits(api):
    alerts = {
        "alert_enabled": True,
        "warning": {"threshold": THRESHOLD_LOW, "condition": "above"},
        "critical": {"threshold": THRESHOLD_HIGH + "00", "condition": "above"},
    }
    body = {"name": "Storage", "type": "metered", "meter": {"event_name": "s", "aggregation": {"type": "COUNT"}}}
    created = api.post("/v1/features", {**body, "alert_settings": alerts})
    assert created.status_code == 201, created.content
    expected = {
        "alert_enabled": True,
        "warning": {"threshold": THRESHOLD_LOW, "condition": "above"},
        "critical": {"threshold": THRESHOLD_HIGH, "condition": "above"},
    }
    assert created.json()["alert_settings"] == expected
    assert api.get(f"/v1/features/{created.json()['id']}").json()["alert_settings"] == expected


def test_threshold_order_is_decided_on_every_digit(api):
    """Rounded to 28 digits both thresholds would be equal and the wrong order would pass unnoticed."""
    alerts = {
        "alert_enabled": True,
        "warning": {"threshold": THRESHOLD_HIGH, "condition": "above"},
        "critical": {"threshold": THRESHOLD_LOW, "condition": "above"},
    }
    body = {"name": "Storage", "type": "metered", "meter": {"event_name": "s", "aggregation": {"type": "COUNT"}}}
    response = api.post("/v1/features", {**body, "alert_settings": alerts})
    assert response.status_code == 400
    message = response.json()["details"]["alert_settings.warning.threshold"]
    assert message == f"must not exceed the critical threshold ({THRESHOLD_LOW}) for condition above"


def test_wizard_keeps_every_digit_of_a_multiplier(dashboard, environment):
    dashboard.post(reverse("catalog:feature_wizard_start"), {"name": "Scaled", "type": "metered"})
    feature = Feature.objects.get(name="Scaled")
    step = reverse("catalog:feature_wizard_step", args=[feature.public_id, "aggregation"])
    dashboard.post(reverse("catalog:feature_wizard_step", args=[feature.public_id, "event"]), {"event_name": "e"})
    response = dashboard.post(step, {"type": "SUM_WITH_MULTIPLIER", "multiplier": MULTIPLIER + "0"})
    assert response.status_code == 302, response.content.decode()[:500]
    feature.meter.refresh_from_db()
    assert feature.meter.multiplier == MULTIPLIER
    review = dashboard.get(step).content.decode()
    assert f'value="{MULTIPLIER}"' in review


def test_admin_keeps_every_digit_of_a_multiplier(dashboard, environment):
    data = {
        "environment": environment.pk,
        "name": "Scaled",
        "event_name": "e",
        "aggregation_type": "SUM_WITH_MULTIPLIER",
        "aggregation_field": "tokens",
        "aggregation_expression": "",
        "multiplier": MULTIPLIER + "000",
        "bucket_size": "",
        "group_by": "",
        "reset_usage": "BILLING_PERIOD",
        "filters-rows": "0",
    }
    response = dashboard.post(reverse("admin:catalog_meter_add"), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Meter.objects.get(name="Scaled").multiplier == MULTIPLIER


def test_feature_detail_shows_thresholds_and_units_with_every_digit(dashboard, environment):
    feature = services.feature_create(
        environment=environment,
        data={
            "name": "Storage",
            "type": "metered",
            "meter": meter_with_multiplier(MULTIPLIER),
            "unit_singular": "GB",
            "unit_plural": "GB",
            "alert_settings": {"alert_enabled": True, "critical": {"threshold": THRESHOLD_HIGH, "condition": "above"}},
        },
    )
    page = dashboard.get(reverse("catalog:feature_detail", args=[feature.public_id])).content.decode()
    assert "123,456,789,012,345,678,901,234,567,890.75 GB" in page
    assert MULTIPLIER in page


def test_format_quantity_keeps_every_digit_of_a_quotient():
    quotient = Decimal("19.50604838709677419354838709677419")
    assert format_quantity(quotient, unit_singular="GB", unit_plural="GB") == f"{quotient} GB"
    assert format_quantity(Decimal("-" + MULTIPLIER)) == "-" + MULTIPLIER


def test_usage_page_shows_an_average_with_all_its_digits(dashboard, environment):
    """AVG keeps 20 decimal places (SPEC: exact quotients); with 11 integer digits that is 31 significant digits."""
    from tests.metering.factories import CustomerFactory, EventFactory

    feature = services.feature_create(
        environment=environment,
        data={
            "name": "Latency",
            "type": "metered",
            "meter": {"event_name": "req", "aggregation": {"type": "AVG", "field": "v"}},
        },
    )
    customer = CustomerFactory(environment=environment)
    for value in (12345678901, 12345678902, 12345678902):
        EventFactory(
            environment=environment,
            event_name="req",
            external_customer_id=customer.external_id,
            properties={"v": value},
        )
    page = dashboard.get(reverse("metering:usage_feature", args=[feature.public_id])).content.decode()
    assert "12,345,678,901.66666666666666666667" in page


def test_admin_keeps_every_digit_of_thresholds(dashboard, environment):
    from tests.catalog.factories import MeterFactory

    data = {
        "environment": environment.pk,
        "name": "Storage",
        "type": "metered",
        "lookup_key": "",
        "description": "",
        "meter": MeterFactory(environment=environment).pk,
        "value": "",
        "unit_singular": "",
        "unit_plural": "",
        "alert_enabled": "on",
        "alert_condition": "above",
        "info_threshold": "",
        "warning_threshold": THRESHOLD_LOW,
        "critical_threshold": THRESHOLD_HIGH,
        "metadata-rows": "0",
    }
    response = dashboard.post(reverse("admin:catalog_feature_add"), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert Feature.objects.get(name="Storage").alert_settings == {
        "alert_enabled": True,
        "warning": {"threshold": THRESHOLD_LOW, "condition": "above"},
        "critical": {"threshold": THRESHOLD_HIGH, "condition": "above"},
    }
    refused = dashboard.post(
        reverse("admin:catalog_feature_add"), {**data, "name": "Other", "warning_threshold": "1" + THRESHOLD_LOW}
    )
    assert refused.status_code == 200
    assert refused.context["adminform"].form.errors["warning_threshold"] == [
        f"must not exceed the critical threshold ({THRESHOLD_HIGH}) for condition above"
    ]


def test_feature_edit_page_keeps_every_digit_of_thresholds(dashboard, environment):
    feature = services.feature_create(
        environment=environment,
        data={"name": "Storage", "type": "metered", "meter": {"event_name": "s", "aggregation": {"type": "COUNT"}}},
    )
    form = {
        "name": "Storage",
        "description": "",
        "unit_singular": "",
        "unit_plural": "",
        "alert_enabled": "on",
        "alert_condition": "above",
        "info_threshold": "",
        "warning_threshold": THRESHOLD_LOW + "000",
        "critical_threshold": THRESHOLD_HIGH,
    }
    response = dashboard.post(reverse("catalog:feature_edit", args=[feature.public_id]), form)
    assert response.status_code == 302, response.content.decode()[:2000]
    feature.refresh_from_db()
    assert feature.alert_settings["warning"]["threshold"] == THRESHOLD_LOW
    assert feature.alert_settings["critical"]["threshold"] == THRESHOLD_HIGH
    page = dashboard.get(reverse("catalog:feature_edit", args=[feature.public_id])).content.decode()
    assert f'value="{THRESHOLD_HIGH}"' in page
