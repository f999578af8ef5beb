"""metering.usage.numbers.divide: the one quotient rule of AVG, WEIGHTED_SUM and CEL `/` (20 places, half away
from zero), pinned digit by digit so Python (SQLite, rollups) and PostgreSQL's SQL stay the same rule."""

from decimal import Decimal

import pytest

from metering.usage.numbers import divide, normalize


@pytest.mark.parametrize(
    ("numerator", "denominator", "quotient"),
    [
        ("1", "3", "0.33333333333333333333"),
        ("2", "3", "0.66666666666666666667"),
        ("-2", "3", "-0.66666666666666666667"),
        ("2", "-3", "-0.66666666666666666667"),
        ("-2", "-3", "0.66666666666666666667"),
        ("10", "4", "2.5"),
        ("600", "3", "200"),
        ("-7", "0.5", "-14"),
        # the 21st digit is exactly 5: away from zero on both sides
        ("0.000000000000000000005", "1", "1E-20"),
        ("-0.000000000000000000005", "1", "-1E-20"),
        ("0.0000000000000000000049", "1", "0"),
        ("-0.0000000000000000000049", "1", "0"),
        ("123456.789", "0.037", "3336669.97297297297297297297"),
        ("1E+30", "7", "142857142857142857142857142857.14285714285714285714"),
        ("0", "-3", "0"),
    ],
)
def test_quotients_round_half_away_from_zero_at_twenty_places(numerator, denominator, quotient):
    """The value of PostgreSQL's `round(…, 20)`, spelled without its trailing zeros (the engine writes a number
    without them anyway): exactly these digits and this exponent."""
    result = divide(Decimal(numerator), Decimal(denominator))
    assert str(result) == quotient
    # canonical already: the engine writes AVG's and WEIGHTED_SUM's quotients without normalizing them again
    assert normalize(result).as_tuple() == result.as_tuple()


def test_an_integer_denominator_gives_the_decimal_one_s_quotient():
    # WEIGHTED_SUM divides by a window's length in microseconds
    assert str(divide(Decimal("3600000001"), 3_600_000_000)) == "1.00000000027777777778"
    assert str(divide(Decimal("-5"), 2)) == "-2.5"
    assert str(divide(Decimal("-2"), -3)) == "0.66666666666666666667"
    assert str(divide(Decimal("7.5"), -2)) == "-3.75"
    assert str(divide(Decimal("1E+30"), 7)) == "142857142857142857142857142857.14285714285714285714"
    assert str(divide(Decimal("600"), 3)) == "200"
    assert divide(Decimal(5), 0) is None


def test_dividing_by_zero_has_no_quotient():
    assert divide(Decimal(5), Decimal("0.00")) is None


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        ("3.00", "3"),
        ("1E+3", "1000"),
        ("-0", "0"),
        ("-0.000", "0"),
        ("0.50", "0.5"),
        ("12.5", "12.5"),
        ("407", "407"),
        ("2.50000000000000000000", "2.5"),
        ("0.33333333333333333333", "0.33333333333333333333"),
        ("1.0000000000000000000000000000001000", "1.0000000000000000000000000000001"),
    ],
)
def test_normalize_spells_every_number_one_way(value, canonical):
    assert str(normalize(Decimal(value))) == canonical
    assert normalize(None) is None
