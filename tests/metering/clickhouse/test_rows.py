"""The writer's property columns take shortcuts for plain strings and integers (metering/clickhouse/rows.py); they
must give exactly what the definitions of metering/usage/numbers.py give, for every kind of value."""

from decimal import Decimal

import pytest

from metering.clickhouse.rows import DECIMAL_INTEGER_DIGITS, DECIMAL_SCALE, property_columns, representable
from metering.usage.numbers import EXACT, canonical_text, cel_input, number_text, numeric_value

VALUES = [
    0,
    1,
    -1,
    4095,
    10**38 - 1,
    10**38,
    -(10**38) + 1,
    -(10**38),
    10**56 - 1,
    10**56,
    -(10**56) + 1,
    -(10**56),
    10**70,
    True,
    False,
    None,
    "gpt",
    "",
    " ",
    "0",
    "-0.00",
    "1.50",
    " 1e3 ",
    "\t+3\n",
    ".5",
    "5.",
    "1E2",
    "1e-25",
    "0e-30",
    "1.000000000000000000000000",
    "12345678901234567890.000000000000000000001",
    "1" * 60,
    "1e400",
    "NaN",
    "Infinity",
    "0x10",
    "1_000",
    "１２",
    Decimal("1.50"),
    Decimal("-0.0"),
    Decimal("0E-30"),
    Decimal("1E-25"),
    Decimal("1.000000000000000000000000"),
    Decimal("12345678901234567890123.5"),
    Decimal("9.99E+55"),
    Decimal("1E+56"),
    Decimal("1.00000000000000000000000E+55"),
    Decimal("1E+37"),
    Decimal("1E+38"),
    Decimal("1E-38"),
    Decimal("1E-39"),
    # the edges of the shortcut for ordinary numbers: 20 decimals, 37 integer digits
    "0.00000000000000000001",
    "0.000000000000000000010",
    "0.000000000000000000001",
    "9" * 38,
    "-" + "9" * 38 + ".5",
    "9" * 37 + ".00000000000000000001",
    Decimal("1E-20"),
    Decimal("-1.0E-21"),
    Decimal("10E-21"),
    Decimal("9" * 38),
    Decimal("9" * 37 + ".5"),
    Decimal("1E+37"),
    Decimal("9.9E+37"),
    Decimal("0E+50"),
    Decimal("-0E-21"),
    Decimal("NaN"),
    Decimal("-Infinity"),
    0.1,
    1e-20,
    1e-21,
    9.5e37,
    1e38,
    float("nan"),
    float("-inf"),
    2.5,
    -0.0,
    1e16,
    1e-5,
    123456.789,
    {},
    {"a": 1},
    [],
    [1, "2"],
]


def by_the_definitions(value):
    """(texts, numbers, inexact, beyond_rule) of `{"v": value}` from numbers.py, number by number."""
    text = canonical_text(value)
    number = numeric_value(value)
    texts = {} if text is None else {"v": text}
    if number is None:
        return texts, {}, [], []
    beyond_rule = ["v"] if cel_input(value) is None else []
    reduced = number.normalize(EXACT)
    fits = number.is_zero() or (
        reduced.as_tuple().exponent >= -DECIMAL_SCALE and reduced.adjusted() < DECIMAL_INTEGER_DIGITS
    )
    if fits:
        return texts, {"v": number_text(number)}, [], beyond_rule
    return texts, {}, ["v"], beyond_rule


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_property_columns_agree_with_the_definitions_of_numbers(value):
    assert property_columns({"v": value}) == by_the_definitions(value)


def test_representable_agrees_with_the_normalized_number():
    for text in ("1E-20", "1E-21", "1.0E-20", "1.00000E-20", "10E-21", "9" * 56, "9" * 57, "1" + "0" * 25 + "E-25"):
        value = Decimal(text)
        reduced = value.normalize(EXACT)
        expected = reduced.as_tuple().exponent >= -DECIMAL_SCALE and reduced.adjusted() < DECIMAL_INTEGER_DIGITS
        assert representable(value) is expected, text
