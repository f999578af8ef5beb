"""The one rule for what can be stored (flexmeter/limits.py): numbers, nesting and keys, on every way in.

Bodies are written as JSON text: Python's json cannot spell `1e999999`, and a 10,000-deep body must reach the
server as text.
"""

import json
from decimal import Decimal

import pytest

from flexmeter.limits import MAX_NESTING, json_value_problems, number_problem
from metering import exactjson
from metering.usage.numbers import numeric_value
from tests.catalog.factories import MeterFactory
from tests.metering.usage.helpers import stored

pytestmark = pytest.mark.django_db

OUT_OF_RANGE = [
    "1e999999",
    "-1e999999",
    "1e-999999",
    "1e131072",
    "1e-16384",
    "1e131071",
    "1e400",
    "1e38",
    "-1e38",
    "1" + "0" * 5000,
]
AT_THE_EDGE = [
    "9" * 38,
    "-" + "9" * 38,
    "0." + "1" * 38,
    "1e-38",
    "9.9e37",
    "1.50",
    "0.12345678901234567890123",
]


def event_text(value_text: str, event_id: str = "evt-1") -> str:
    return (
        f'{{"event_id": "{event_id}", "event_name": "api.calls", "external_customer_id": "acme", '
        f'"timestamp": "2026-01-05T10:00:00Z", "properties": {{"path": "/x", "v": {value_text}}}}}'
    )


def nested_text(depth: int) -> str:
    return '{"n": ' * (depth - 1) + "{}" + "}" * (depth - 1)


# The rule itself -------------------------------------------------------------------------------------------


def test_number_bounds_are_38_digits_each_side_of_the_point():
    assert number_problem(10**38 - 1) is None
    assert number_problem(-(10**38) + 1) is None
    assert number_problem(10**38) == (
        "is out of range: it has 39 digits before the decimal point "
        "(numbers must be less than 1e38 in magnitude with at most 38 digits after the decimal point)"
    )
    assert number_problem(Decimal("1e-38")) is None
    assert number_problem(Decimal("1.0e-38")).startswith("is out of range: it has 39 digits after the decimal point")
    assert number_problem(Decimal("1e131071")).startswith("is out of range: it has 131,072 digits before")
    assert number_problem(1e300).startswith("is out of range: it has 301 digits before")
    assert number_problem(2.5) is None
    assert number_problem(Decimal("Infinity")) == "must be a finite number"


def test_nesting_and_key_problems_name_the_path():
    ok = json.loads(nested_text(MAX_NESTING))
    assert json_value_problems(ok, path="properties") == {}
    too_deep = json.loads(nested_text(MAX_NESTING + 1))
    path = "properties" + ".n" * MAX_NESTING
    assert json_value_problems(too_deep, path="properties") == {
        path: "is nested too deeply (at most 32 levels of objects and arrays)"
    }
    assert json_value_problems({"list": [1, {"k" * 256: 2}, 1e39]}, path="properties") == {
        "properties.list[1]." + "k" * 40 + "…": "key must be at most 255 characters (got 256)",
        "properties.list[2]": (
            "is out of range: it has 40 digits before the decimal point "
            "(numbers must be less than 1e38 in magnitude with at most 38 digits after the decimal point)"
        ),
    }


def test_ten_thousand_levels_are_walked_without_recursion():
    deep: dict = {}
    for _ in range(10_000):
        deep = {"n": deep}
    assert list(json_value_problems(deep, path="properties")) == ["properties" + ".n" * MAX_NESTING]


# POST /v1/events, /v1/events/bulk, /v1/events/validate -----------------------------------------------------


@pytest.mark.parametrize("literal", OUT_OF_RANGE)
def test_out_of_range_number_is_400_naming_the_field_and_nothing_is_stored(api, literal):
    response = api.post("/v1/events", event_text(literal))
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "validation_error"
    assert list(body["details"]) == ["properties.v"]
    assert body["details"]["properties.v"].startswith("is out of range: it has ")
    assert not stored()


@pytest.mark.parametrize("literal", OUT_OF_RANGE)
def test_out_of_range_number_in_a_bulk_rejects_the_batch_naming_the_index(api, literal):
    events = ",".join(event_text("1", f"ok-{index}") for index in range(3)) + "," + event_text(literal, "bad")
    response = api.post("/v1/events/bulk", f'{{"events": [{events}]}}')
    assert response.status_code == 400
    assert list(response.json()["details"]) == ["events[3].properties.v"]
    assert not stored()


@pytest.mark.parametrize("literal", OUT_OF_RANGE)
def test_out_of_range_number_is_400_on_validate(api, environment, literal):
    MeterFactory(environment=environment, event_name="api.calls", aggregation_type="SUM", aggregation_field="v")
    response = api.post("/v1/events/validate", event_text(literal))
    assert response.status_code == 400
    assert list(response.json()["details"]) == ["properties.v"]


@pytest.mark.parametrize("literal", AT_THE_EDGE)
def test_numbers_inside_the_bounds_are_stored_and_listed_with_every_digit(api, literal):
    assert api.post("/v1/events", event_text(literal)).status_code == 202
    listed = exactjson.loads(api.get("/v1/events").content)
    assert numeric_value(listed["events"][0]["properties"]["v"]) == Decimal(literal)


def test_properties_nested_32_levels_are_stored_and_33_are_not(api):
    ok = event_text(nested_text(MAX_NESTING - 1))
    assert api.post("/v1/events", ok).status_code == 202
    response = api.post("/v1/events", event_text(nested_text(MAX_NESTING), "evt-2"))
    assert response.status_code == 400
    assert response.json()["details"] == {
        "properties.v" + ".n" * (MAX_NESTING - 1): "is nested too deeply (at most 32 levels of objects and arrays)"
    }
    assert [event.event_id for event in stored()] == ["evt-1"]


@pytest.mark.parametrize("path", ["/v1/events", "/v1/events/validate"])
def test_990_deep_properties_are_400(api, path):
    response = api.post(path, event_text(nested_text(990)))
    assert response.status_code == 400
    assert list(response.json()["details"]) == ["properties.v" + ".n" * (MAX_NESTING - 1)]
    assert not stored()


def test_990_deep_properties_in_a_bulk_are_400(api):
    response = api.post("/v1/events/bulk", f'{{"events": [{event_text("1")}, {event_text(nested_text(990), "x")}]}}')
    assert response.status_code == 400
    assert list(response.json()["details"]) == ["events[1].properties.v" + ".n" * (MAX_NESTING - 1)]
    assert not stored()


def test_a_key_longer_than_255_characters_is_400(api):
    body = json.dumps(
        {"event_name": "a", "external_customer_id": "c", "properties": {"k" * 256: 1, "fine": {"k" * 255: 1}}}
    )
    response = api.post("/v1/events", body)
    assert response.status_code == 400
    assert response.json()["details"] == {
        "properties." + "k" * 40 + "…": "key must be at most 255 characters (got 256)"
    }


def _body_operations(api) -> list[tuple[str, str]]:
    """Every operation of the served OpenAPI document that reads a request body, with path parameters filled,
    and the event endpoints that read their body themselves."""
    document = api.get("/v1/openapi.json").json()
    operations = [("post", "/v1/events"), ("post", "/v1/events/bulk"), ("post", "/v1/events/validate")]
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            if "requestBody" in operation and (method, path) not in operations:
                operations.append((method, path.replace("{", "").replace("}", "")))
    return operations


@pytest.mark.parametrize("depth", [990, 10_000])
def test_deeply_nested_bodies_are_400_with_the_envelope_on_every_endpoint_that_reads_a_body(api, depth):
    operations = _body_operations(api)
    assert ("post", "/v1/events/validate") in operations and ("post", "/v1/meters") in operations
    body = '{"events": ' + "[" * depth + "]" * depth + "}"
    answers = {}
    for method, path in operations:
        send = getattr(api.client, method)
        response = send(path, body, content_type="application/json", headers={"x-api-key": api.raw_key})
        answers[f"{method} {path}"] = (response.status_code, response["content-type"])
    assert {
        key: value for key, value in answers.items() if value[0] >= 500 or not value[1].startswith("application/json")
    } == {}
    assert answers["post /v1/events/validate"][0] == 400
    assert answers["post /v1/events"][0] == 400
