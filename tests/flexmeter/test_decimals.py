"""flexmeter.decimals: the exact text of instants and numbers that every API answer and export writes."""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from flexmeter.decimals import decimal_text, rfc3339

NEW_YORK = ZoneInfo("America/New_York")


@pytest.mark.parametrize("fold_first", [0, 1])
def test_rfc3339_tells_apart_the_two_readings_of_a_repeated_local_time(fold_first):
    # 01:30 happens twice in New York on 2025-11-02; both readings compare equal (same zone), and a text remembered
    # for one must not answer for the other, whichever is written first
    first = dt.datetime(2025, 11, 2, 1, 30, tzinfo=NEW_YORK, fold=fold_first)
    second = first.replace(fold=1 - fold_first)
    texts = {first.fold: rfc3339(first), second.fold: rfc3339(second)}
    assert texts == {0: "2025-11-02T05:30:00Z", 1: "2025-11-02T06:30:00Z"}


def test_rfc3339_writes_one_instant_the_same_from_any_zone():
    instant = dt.datetime(2026, 1, 31, 12, 0, 0, 250, tzinfo=dt.UTC)
    kolkata = instant.astimezone(ZoneInfo("Asia/Kolkata"))
    assert rfc3339(kolkata) == rfc3339(instant) == "2026-01-31T12:00:00.000250Z"
    assert rfc3339(instant.replace(microsecond=0)) == "2026-01-31T12:00:00Z"


@pytest.mark.parametrize(
    ("number", "text"),
    [
        ("0.000001", "0.000001"),
        ("0.0000001", "0.0000001"),  # str() writes 1E-7
        ("-0.0000010", "-0.000001"),
        ("120.0", "120"),
        ("-0.0", "0"),
        ("5.0E+1", "50"),
        ("407", "407"),
    ],
)
def test_decimal_text_is_plain_whatever_str_would_write(number, text):
    assert decimal_text(Decimal(number)) == text
