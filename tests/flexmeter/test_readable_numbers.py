"""The one rounding rule for numbers read on pages (flexmeter.decimals.readable_decimal), and the `quantity` tag."""

from decimal import Decimal

import pytest
from django.template import Context, Template

from flexmeter.decimals import format_quantity, quantity_is_rounded, readable_decimal


@pytest.mark.parametrize(
    ("exact", "readable"),
    [
        ("513.02887188321385902031", "513.03"),  # the Seats headline of issue #18
        ("12345.6", "12346"),  # whole numbers from 10,000 up
        ("9999.995", "10000.00"),
        ("2.5", "2.5"),  # no more digits than the rule keeps: unchanged
        ("1.005", "1.01"),  # half up
        ("0.0012345", "0.00123"),  # three significant digits below 1
        ("-0.5555", "-0.556"),
        ("0", "0"),
        ("1234567.125", "1234567"),
    ],
)
def test_readable_decimal_keeps_digits_by_magnitude(exact, readable):
    assert readable_decimal(Decimal(exact)) == Decimal(readable)


def test_format_quantity_reads_rounded_only_when_asked():
    seats = {"unit_singular": "seat", "unit_plural": "seats"}
    value = Decimal("513.02887188321385902031")
    assert format_quantity(value, **seats) == "513.02887188321385902031 seats"  # CSV and API stay exact
    assert format_quantity(value, readable=True, **seats) == "513.03 seats"
    assert format_quantity(Decimal("0.999999"), readable=True, **seats) == "1 seats"  # unit follows the exact value
    assert format_quantity(Decimal(1), readable=True, **seats) == "1 seat"
    assert quantity_is_rounded(value) and not quantity_is_rounded(Decimal("2.5")) and not quantity_is_rounded(None)


def test_quantity_tag_puts_the_exact_value_one_hover_away():
    template = Template("{% load catalog_ui %}{% quantity value feature %}")

    class Feature:
        unit_singular, unit_plural = "seat", "seats"

    html = template.render(Context({"value": Decimal("513.02887188321385902031"), "feature": Feature()}))
    assert html == (
        '<span class="qty-rounded" title="Exactly 513.02887188321385902031 seats" '
        'data-exact="513.02887188321385902031 seats">513.03 seats</span>'
    )
    assert template.render(Context({"value": Decimal("2.5"), "feature": Feature()})) == "2.5 seats"
