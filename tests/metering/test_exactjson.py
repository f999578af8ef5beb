"""metering.exactjson: numbers keep every digit through parse → store → write."""

import datetime as dt
from decimal import Decimal

import pytest

from metering import exactjson


@pytest.mark.parametrize(
    "text",
    [
        '{"v":0.12345678901234567890123}',
        '{"v":0.1,"w":2.5,"n":-3}',
        '{"v":1.50}',
        '{"v":123456789012345678901234567890}',
        '{"nested":{"list":[1,0.30000000000000004,"x",true,null]}}',
        '{"unicode":"é☃"}',
    ],
)
def test_round_trip_keeps_the_text(text):
    assert exactjson.dumps(exactjson.loads(text)) == text


def test_numbers_that_floats_cannot_spell_become_decimals():
    parsed = exactjson.loads('{"a": 0.1, "b": 1.50, "c": 1e400, "d": 0.12345678901234567890123}')
    assert parsed["a"] == 0.1 and isinstance(parsed["a"], float)
    assert parsed["b"] == Decimal("1.50")
    assert parsed["c"] == Decimal("1e400")
    assert parsed["d"] == Decimal("0.12345678901234567890123")
    assert exactjson.dumps(parsed) == '{"a":0.1,"b":1.50,"c":1E+400,"d":0.12345678901234567890123}'


@pytest.mark.parametrize("text", ['{"v": NaN}', '{"v": Infinity}', '{"v": -Infinity}', "{bad"])
def test_non_json_input_is_rejected(text):
    with pytest.raises(ValueError):
        exactjson.loads(text)


def test_non_finite_decimals_cannot_be_written():
    with pytest.raises(ValueError):
        exactjson.dumps({"v": Decimal("NaN")})
    with pytest.raises(ValueError):
        exactjson.dumps({"v": float("inf")})
    for value in (Decimal("NaN"), Decimal("-Infinity")):
        with pytest.raises(ValueError):
            exactjson.number_text(value)


@pytest.mark.parametrize(
    "value", [None, Decimal("0"), Decimal("-0"), Decimal("12.5"), Decimal("1E+400"), Decimal("-1E-21"), Decimal("7")]
)
def test_number_text_writes_a_decimal_as_dumps_does(value):
    assert exactjson.number_text(value) == exactjson.dumps(value)


def test_written_text_goes_into_the_answer_as_it_is():
    text = '[{"value":1.50}]'
    assert exactjson.dumps({"results": exactjson.Written(text), "v": Decimal("2")}) == f'{{"results":{text},"v":2}}'
    assert (
        exactjson.dumps({"at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "w": exactjson.Written("[]")}, default=str)
        == '{"at":"2026-01-01 00:00:00+00:00","w":[]}'
    )


def test_stored_text_is_always_decoded_to_something_a_reader_can_show():
    huge = "1" + "0" * 5000
    assert exactjson.loads_stored(f'{{"v": {huge}, "w": 2}}') == {"v": Decimal(huge), "w": 2}
    deep = exactjson.loads_stored('{"n": ' * 150 + "1" + "}" * 150)
    assert isinstance(deep, exactjson.UnreadableJSON)
    assert (deep, deep.reason) == ({}, "it is nested more than 100 levels deep")
    assert deep.text.startswith('{"n": {"n": ')
    very_deep = exactjson.loads_stored("[" * 100_000 + "]" * 100_000)
    assert very_deep.reason == "it is nested more than 100 levels deep"
    broken = exactjson.loads_stored("{not json")
    assert broken.reason.startswith("the stored text is not valid JSON")
    assert exactjson.dumps({"p": broken}) == '{"p":{}}'
    nested_ok = '{"n": ' * 99 + "1" + "}" * 99
    assert not isinstance(exactjson.loads_stored(nested_ok), exactjson.UnreadableJSON)


def test_integers_beyond_pythons_digit_limit_parse_as_decimals():
    assert exactjson.loads('{"v": 1' + "0" * 4400 + "}") == {"v": Decimal("1e4400")}
    with pytest.raises(ValueError):
        exactjson.loads('{"v": 1' + "0" * 4400)


def test_default_writes_the_values_json_has_no_type_for_with_or_without_decimals():
    moment = dt.datetime(2026, 1, 31, 12, tzinfo=dt.UTC)

    def default(value):
        if isinstance(value, dt.datetime):
            return value.isoformat()
        raise TypeError(type(value).__name__)

    body = {"at": moment, "items": [(moment, "x", 2)], "n": 1}
    assert exactjson.dumps(body, default=default) == (
        '{"at":"2026-01-31T12:00:00+00:00","items":[["2026-01-31T12:00:00+00:00","x",2]],"n":1}'
    )
    exact = {**body, "n": Decimal("1.50")}  # a Decimal takes the exact writer: it applies `default` the same way
    assert exactjson.dumps(exact, default=default) == (
        '{"at":"2026-01-31T12:00:00+00:00","items":[["2026-01-31T12:00:00+00:00","x",2]],"n":1.50}'
    )
    with pytest.raises(TypeError):
        exactjson.dumps({"at": moment})
    with pytest.raises(TypeError):
        exactjson.dumps({"v": Decimal("1.5"), "s": {1}}, default=default)
