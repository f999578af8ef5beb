"""CEL quantities computed in SQL (SPEC §5.6): same digits on PostgreSQL and SQLite, errors exclude the event."""

from decimal import Decimal

import pytest

from flexmeter.errors import InvalidOperation
from metering.usage.selectors import meter_usage
from tests.catalog.factories import MeterFactory
from tests.metering.usage.helpers import at, on_clickhouse, send

pytestmark = pytest.mark.django_db

START, END = at("2025-01-01T00:00"), at("2025-02-01T00:00")


FLOAT_ONLY_ON_CLICKHOUSE = ("sqrt(", "log(", "pow(")


def refused_on_clickhouse(expression: str) -> bool:
    """ClickHouse has sqrt/log/pow only as binary floats: such meters are refused there, never rounded."""
    return on_clickhouse() and any(name in expression for name in FLOAT_ONLY_ON_CLICKHOUSE)


def quantity(environment, expression, properties, aggregation_type="SUM"):
    """The expression's value for one event (None when the event is excluded)."""
    meter = MeterFactory(
        environment=environment,
        event_name="cel",
        aggregation_type=aggregation_type,
        aggregation_expression=expression,
    )
    send(environment, event_name="cel", timestamp="2025-01-02T00:00", properties=properties)
    return meter_usage(meter=meter, start=START, end=END).value


@pytest.mark.parametrize(
    ("expression", "properties", "expected"),
    [
        # the examples of SPEC §5.6
        ("input_tokens + output_tokens", {"input_tokens": 100, "output_tokens": 50}, "150"),
        ("ceil(duration_ms / 1000)", {"duration_ms": 4200}, "5"),
        ("duration <= 10 ? 0 : ceil(duration / 15) * 15", {"duration": 18}, "30"),
        ("duration <= 10 ? 0 : ceil(duration / 15) * 15", {"duration": 10}, "0"),
        # missing properties are 0, numeric strings are numbers
        ("a + b", {"a": 2}, "2"),
        ("a * b", {"a": " 2.5 ", "b": "4"}, "10"),
        ("a - b", '{"a": 0.3, "b": 0.1}', "0.2"),
        ("a * 0.1", '{"a": 12345678901234567890}', "1234567890123456789"),
        # exact division to 20 places, half away from zero
        ("a / 3", {"a": 1}, "0.33333333333333333333"),
        ("a / 3", {"a": 2}, "0.66666666666666666667"),
        ("-a / 3", {"a": 2}, "-0.66666666666666666667"),
        ("a / 8", {"a": 1}, "0.125"),
        # around 10^34, where ClickHouse's fast decimal division gives way to divideDecimal (both must be exact)
        ("a / 3", {"a": "9" * 33 + "8.5"}, "3333333333333333333333333333333332.83333333333333333333"),
        ("a / 3", '{"a": 10000000000000000000000000000000000.5}', "3333333333333333333333333333333333.5"),
        ("a / 7", {"a": -(10**34 - 1)}, "-1428571428571428571428571428571428.42857142857142857143"),
        ("a / 7", {"a": 10**37}, "1428571428571428571428571428571428571.42857142857142857143"),
        ("a / b", {"a": 1, "b": "0.00000000000000000007"}, "14285714285714285714.28571428571428571429"),
        # functions
        ("round(a)", {"a": 2.5}, "3"),
        ("round(a)", {"a": -2.5}, "-3"),
        ("round(a)", {"a": 2.4999}, "2"),
        ("floor(a) + ceil(a)", {"a": -1.5}, "-3"),
        ("abs(a)", {"a": -7}, "7"),
        ("min(a, b)", {"a": 3, "b": -1}, "-1"),
        ("max(a, b)", {"a": 3, "b": -1}, "3"),
        ("sqrt(a)", {"a": 2}, "1.4142135623730950488"),
        ("sqrt(a)", {"a": 144}, "12"),
        ("log(a)", {"a": 10}, "2.30258509299404568402"),
        ("log(a)", {"a": 1}, "0"),
        ("pow(a, 10)", {"a": 2}, "1024"),
        ("pow(a, 0.5)", {"a": 2}, "1.4142135623730950488"),
        ("pow(a, -1)", {"a": 4}, "0.25"),
        ("pow(a, 3)", {"a": -2}, "-8"),
        ("pow(a, 0)", {"a": 0}, "1"),
        # logic
        ("a > 1 && b > 1 ? 1 : 2", {"a": 2, "b": 2}, "1"),
        ("a > 1 || b > 1 ? 1 : 2", {"a": 0, "b": 0}, "2"),
        ("!(a == 1) ? a : 0", {"a": 1}, "0"),
        ("a != 1 ? a : 0", {"a": "1.0"}, "0"),
        ("false && a / 0 > 1 ? 1 : 2", {"a": 1}, "2"),
        ("true || a / 0 > 1 ? 1 : 2", {"a": 1}, "1"),
        ("-a", {"a": -3}, "3"),
    ],
)
def test_expression_values(environment, expression, properties, expected):
    if refused_on_clickhouse(expression):
        with pytest.raises(InvalidOperation, match=r"has no exact form on ClickHouse"):
            quantity(environment, expression, properties)
        return
    assert quantity(environment, expression, properties) == Decimal(expected)


@pytest.mark.parametrize(
    ("expression", "bad_properties", "good_value"),
    [
        ("a / b", {"a": 1, "b": 0}, "2"),
        ("a / (b - 1)", {"a": 1, "b": "1"}, "4"),
        ("sqrt(a)", {"a": -1}, "2"),
        ("log(a)", {"a": 0}, "1.38629436111989061883"),
        ("log(a)", {"a": -5}, "1.38629436111989061883"),
        ("pow(a, -1)", {"a": 0}, "0.25"),
        ("pow(a, 0.5)", {"a": -8}, "2"),
        ("pow(a, 1000)", {"a": 10}, str(4**1000)),
        ("a + 1", {"a": "abc"}, "5"),
        ("a + 1", {"a": True}, "5"),
        ("a + 1", {"a": None}, "5"),
        ("a + 1", {"a": {"x": 1}}, "5"),
        ("a + 1", {"a": "NaN"}, "5"),
        ("a > 1 ? 1 : 2", {"a": "Infinity"}, "1"),
        ("min(a, b)", {"a": 1, "b": "x"}, "2"),
        ("true && b / 0 > 1 ? 1 : 2", {"a": 1}, "0"),
    ],
)
def test_errors_exclude_the_event_instead_of_failing_the_query(environment, expression, bad_properties, good_value):
    meter = MeterFactory(
        environment=environment, event_name="cel", aggregation_type="SUM", aggregation_expression=expression
    )
    send(environment, event_name="cel", timestamp="2025-01-02T00:00", properties=bad_properties)
    send(environment, event_name="cel", timestamp="2025-01-02T00:00", properties={"a": 4, "b": 2})

    if refused_on_clickhouse(expression):
        with pytest.raises(InvalidOperation, match=r"has no exact form on ClickHouse"):
            meter_usage(meter=meter, start=START, end=END)
        return
    assert meter_usage(meter=meter, start=START, end=END).value == Decimal(good_value)


@pytest.mark.parametrize(
    ("aggregation_type", "expected"),
    [("SUM", "6"), ("AVG", "3"), ("MIN", "2"), ("MAX", "4"), ("LATEST", "4")],
)
def test_expressions_work_with_every_allowed_aggregation(environment, aggregation_type, expected):
    meter = MeterFactory(
        environment=environment, event_name="cel", aggregation_type=aggregation_type, aggregation_expression="a * 2"
    )
    send(environment, event_name="cel", timestamp="2025-01-02T00:00", properties={"a": 1})
    send(environment, event_name="cel", timestamp="2025-01-03T00:00", properties={"a": "2"})
    send(environment, event_name="cel", timestamp="2025-01-04T00:00", properties={"a": "zero"})

    assert meter_usage(meter=meter, start=START, end=END).value == Decimal(expected)


# Inputs beyond the rule for stored numbers (flexmeter/limits.py): numeric strings, rows stored before the rule.
# Each is an error for its event, so no event's arithmetic can overflow a database and fail the whole query.
PRODUCT_OF_17 = " * ".join(["a"] * 17)


@pytest.mark.parametrize(
    ("expression", "bad_properties", "good_value"),
    [
        ("a * 2", {"a": "1e999"}, "8"),
        ("a * 2", {"a": "1e38"}, "8"),
        ("a * 2", {"a": "1e-39"}, "8"),
        ("a * 2", {"a": "0." + "0" * 38 + "1"}, "8"),
        # 17 factors of 999 decimal places each: 16,983 places, beyond PostgreSQL numeric's 16,383
        (PRODUCT_OF_17, {"a": "1e-999"}, str(4**17)),
        (PRODUCT_OF_17, {"a": "9e999"}, str(4**17)),
    ],
)
def test_inputs_beyond_the_rule_exclude_the_event_instead_of_failing_the_query(
    environment, expression, bad_properties, good_value
):
    meter = MeterFactory(
        environment=environment, event_name="cel", aggregation_type="SUM", aggregation_expression=expression
    )
    send(environment, event_name="cel", timestamp="2025-01-02T00:00", properties=bad_properties)
    send(environment, event_name="cel", timestamp="2025-01-02T00:00", properties={"a": 4, "b": 2})

    assert meter_usage(meter=meter, start=START, end=END).value == Decimal(good_value)


def test_a_row_stored_before_the_rule_is_excluded_from_expressions(environment):
    from django.db import connection

    from metering.models import Event

    meter = MeterFactory(
        environment=environment, event_name="cel", aggregation_type="SUM", aggregation_expression="a * a"
    )
    send(environment, event_name="cel", timestamp="2025-01-02T00:00", properties={"a": 3})
    cast = "CAST(%s AS jsonb)" if connection.vendor == "postgresql" else "%s"
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Event._meta.db_table} (environment_id, event_id, event_name, external_customer_id, "
            f"timestamp, ingested_at, source, properties) VALUES (%s, 'old', 'cel', 'cust-1', %s, %s, '', {cast})",
            [environment.pk, at("2025-01-03T00:00"), at("2025-01-03T00:00"), '{"a": 1e131071}'],
        )
    assert meter_usage(meter=meter, start=START, end=END).value == Decimal(9)


def test_a_numeric_string_too_long_for_postgresql_numeric_is_not_a_number(environment):
    # 16,999 places: beyond the 16,383 PostgreSQL's numeric holds; the cast would fail the whole query
    meter = MeterFactory(environment=environment, event_name="sum", aggregation_type="SUM", aggregation_field="v")
    send(environment, event_name="sum", timestamp="2025-01-02T00:00", properties={"v": "0." + "1" * 16_999})
    send(environment, event_name="sum", timestamp="2025-01-02T00:00", properties={"v": "0." + "1" * 14_000})
    send(environment, event_name="sum", timestamp="2025-01-02T00:00", properties={"v": 2})
    if on_clickhouse():  # 14,000 places: beyond Decimal256(20), so ClickHouse refuses instead of rounding
        with pytest.raises(InvalidOperation, match="cannot be computed exactly on the ClickHouse"):
            meter_usage(meter=meter, start=START, end=END)
        return
    assert meter_usage(meter=meter, start=START, end=END).value == Decimal("2." + "1" * 14_000)
