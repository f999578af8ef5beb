"""Ordinary bad input is a 400 with the error envelope, never a 500 (issue #16): NUL characters and lone surrogates
anywhere in a request, offsets beyond any list, usage times at the ends of the calendar, absurd time zones."""

import json

import pytest
from django.db import connection

from flexmeter.pagination import MAX_OFFSET
from flexmeter.text import json_body_text_problems, json_text_problems
from metering import exactjson
from tests.catalog.factories import FeatureFactory, MeterFactory
from tests.metering.factories import CustomerFactory, EventFactory

pytestmark = pytest.mark.django_db

NUL = "\x00"
LONE_SURROGATE = "\ud800"


def assert_validation_error(response, *fields: str) -> dict:
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] == "validation_error" and body["http_status_code"] == 400
    for field in fields:
        assert field in body["details"], body
    return body


@pytest.fixture
def catalog(environment):
    meter = MeterFactory(environment=environment, event_name="api.calls", aggregation_type="COUNT")
    feature = FeatureFactory(environment=environment, meter=meter)
    customer = CustomerFactory(environment=environment, external_id="acme")
    return {"meter": meter.public_id, "feature": feature.public_id, "customer": customer.public_id}


# --- NUL in query parameters and paths ----------------------------------------------------------------------------

NUL_QUERIES = [
    ("/v1/meters", "event_name"),
    ("/v1/meters", "meter_ids"),
    ("/v1/meters", "status"),
    ("/v1/features", "feature_ids"),
    ("/v1/features", "lookup_key"),
    ("/v1/features", "lookup_keys"),
    ("/v1/features", "name_contains"),
    ("/v1/features", "type"),
    ("/v1/features", "expand"),
    ("/v1/customers", "external_id"),
    ("/v1/customers", "status"),
    ("/v1/events", "event_name"),
    ("/v1/events", "external_customer_id"),
    ("/v1/events", "iter_last_key"),
    ("/v1/events/lookup", "id"),
]


@pytest.mark.parametrize(("path", "parameter"), NUL_QUERIES)
def test_nul_in_a_query_parameter_is_a_400_naming_it(api, catalog, path, parameter):
    response = api.get(path, {parameter: f"a{NUL}b"})

    body = assert_validation_error(response, parameter)
    assert body["details"][parameter] == "must not contain NUL (\\u0000) characters"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/v1/meters/meter_{NUL}"),
        ("put", "/v1/meters/meter_{NUL}"),
        ("delete", "/v1/meters/meter_{NUL}"),
        ("get", "/v1/features/feat_{NUL}"),
        ("delete", "/v1/features/feat_{NUL}"),
        ("get", "/v1/customers/cust_{NUL}"),
        ("get", "/v1/customers/external/acme{NUL}"),
        ("get", "/v1/customers/cust_{NUL}/usage"),
    ],
)
def test_nul_in_a_path_is_a_404_as_for_any_unknown_id(api, catalog, method, path):
    response = getattr(api, method)(path.replace("{NUL}", "%00"))

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_nul_in_a_query_parameter_name_is_a_400(api):
    assert_validation_error(api.get("/v1/meters", {f"event{NUL}name": "x"}), "query")


@pytest.mark.parametrize("path", ["/events/?customer=%00", "/events/detail/?id=%00", "/usage/?feature=%00"])
def test_nul_in_a_dashboard_query_is_a_400_page(dashboard, path):
    response = dashboard.get(path)

    assert response.status_code == 400
    assert b"NUL" in response.content


def test_nul_in_a_dashboard_path_is_a_404_page(dashboard):
    assert dashboard.get("/customers/%00/").status_code == 404


# --- NUL and lone surrogates in JSON bodies ----------------------------------------------------------------------

BODY_CASES = [
    (
        "/v1/meters",
        {
            "name": "m",
            "event_name": "e",
            "aggregation": {"type": "COUNT"},
            "filters": [{"key": "region", "values": ["eu", NUL]}],
        },
        "filters[0].values[1]",
    ),
    ("/v1/meters", {"name": LONE_SURROGATE, "event_name": "e", "aggregation": {"type": "COUNT"}}, "name"),
    ("/v1/features", {"name": "b", "type": "boolean", "description": NUL}, "description"),
    ("/v1/features", {"name": "b", "type": "boolean", "metadata": {"plan": NUL}}, "metadata.plan"),
    ("/v1/features/search", {"name_contains": NUL}, "name_contains"),
    ("/v1/features/search", {"feature_ids": ["feat_1", LONE_SURROGATE]}, "feature_ids[1]"),
    ("/v1/customers", {"external_id": LONE_SURROGATE, "name": "x"}, "external_id"),
    ("/v1/customers", {"external_id": "x", "name": "n", "metadata": {"tier": LONE_SURROGATE}}, "metadata.tier"),
    (
        "/v1/events/usage",
        {"event_name": "e", "aggregation_type": "COUNT", "external_customer_id": NUL},
        "external_customer_id",
    ),
    ("/v1/events/usage", {"event_name": "e", "aggregation_type": "COUNT", "filters": {"a": [NUL]}}, "filters.a[0]"),
    (
        "/v1/events/usage",
        {"event_name": "e", "aggregation_type": "MAX", "property_name": "v", "bucket_size": "HOUR", "group_by": NUL},
        "group_by",
    ),
    ("/v1/events/usage/meter", {"meter_id": NUL}, "meter_id"),
    ("/v1/events/query", {"property_filters": {"a": [LONE_SURROGATE]}}, "property_filters.a[0]"),
    (
        "/v1/events",
        {"event_name": "e", "external_customer_id": "c", "properties": {"a": LONE_SURROGATE}},
        "properties.a",
    ),
    (
        "/v1/events/bulk",
        {
            "events": [
                {"event_name": "e", "external_customer_id": "c"},
                {"event_name": "e", "external_customer_id": NUL},
            ]
        },
        "events[1].external_customer_id",
    ),
    ("/v1/events/validate", {"event_name": LONE_SURROGATE, "external_customer_id": "c"}, "event_name"),
]


@pytest.mark.parametrize(("path", "body", "field"), BODY_CASES)
def test_nul_or_lone_surrogate_in_a_json_body_is_a_400_naming_its_path(api, catalog, path, body, field):
    response = api.post(path, json.dumps(body))

    assert_validation_error(response, field)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/meters/{meter}", {"name": NUL}, "name"),
        ("/v1/features/{feature}", {"name": LONE_SURROGATE}, "name"),
        ("/v1/customers/{customer}", {"email": LONE_SURROGATE}, "email"),
    ],
)
def test_nul_or_lone_surrogate_in_an_update_is_a_400(api, catalog, path, body, field):
    assert_validation_error(api.put(path.format(**catalog), body), field)


def test_a_key_with_nul_is_reported_under_its_object(api):
    body = {"external_id": "x", "name": "n", "metadata": {f"a{NUL}": "b"}}

    body = assert_validation_error(api.post("/v1/customers", json.dumps(body)), "metadata")
    assert body["details"]["metadata"] == "a key must not contain NUL (\\u0000) characters"


def test_escaped_backslashes_and_surrogate_pairs_are_ordinary_text(api):
    # `\\u0000` is a backslash followed by "u0000", and `\ud83d\ude00` a valid pair (😀): both are storable.
    response = api.post("/v1/customers", '{"external_id": "x", "name": "\\\\u0000 \\ud83d\\ude00"}')

    assert response.status_code == 201, response.content
    assert response.json()["name"] == "\\u0000 😀"


def test_the_body_check_walks_any_depth_and_reports_paths():
    deep = json.dumps({"a": [[[{"b": NUL}]]] * 2})

    assert json_body_text_problems(deep.encode()) == {
        "a[0][0][0].b": "must not contain NUL (\\u0000) characters",
        "a[1][0][0].b": "must not contain NUL (\\u0000) characters",
    }
    assert json_body_text_problems(b'{"a": "plain", "n": 1e999999}') == {}
    assert json_body_text_problems(b'{"a": "\\u0000" broken') == {}
    assert json_text_problems(["x" * 5, NUL * 2] * 20) == {
        f"[{index}]": "must not contain NUL (\\u0000) characters" for index in range(1, 20, 2)
    }


# --- offsets -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [2**63, MAX_OFFSET + 1])
@pytest.mark.parametrize("path", ["/v1/meters", "/v1/features", "/v1/customers"])
def test_offsets_beyond_the_limit_are_a_400(api, catalog, path, offset):
    assert_validation_error(api.get(path, {"offset": offset}), "offset")


def test_offset_beyond_the_limit_in_a_feature_search_is_a_400(api):
    assert_validation_error(api.post("/v1/features/search", {"offset": 2**63}), "offset")


@pytest.mark.parametrize("path", ["/v1/meters", "/v1/features", "/v1/customers"])
def test_the_largest_offset_gives_an_empty_page(api, catalog, path):
    response = api.get(path, {"offset": MAX_OFFSET})

    assert response.status_code == 200
    assert response.json()["items"] == []
    assert response.json()["pagination"] == {"total": 1, "limit": 50, "offset": MAX_OFFSET}


# --- usage times and time zones ----------------------------------------------------------------------------------

USAGE = {"event_name": "api.calls", "aggregation_type": "COUNT"}


@pytest.mark.parametrize(
    ("times", "field"),
    [
        ({"start_time": "0001-01-01T00:00:00+01:00"}, "start_time"),
        ({"end_time": "0001-01-01T00:30:00+01:00"}, "end_time"),
        ({"end_time": "9999-12-31T23:00:00-02:00"}, "end_time"),
        ({"end_time": "0001-01-03T00:00:00Z"}, "end_time"),
        ({"start_time": "0001-12-31T23:59:59Z", "end_time": "0002-02-01T00:00:00Z"}, "start_time"),
        ({"start_time": "9998-12-01T00:00:00Z", "end_time": "9999-01-01T00:00:00.000001Z"}, "end_time"),
        ({"billing_anchor": "0001-01-01T00:00:00+01:00"}, "billing_anchor"),
    ],
)
def test_usage_times_outside_the_supported_years_are_a_400(api, times, field):
    body = assert_validation_error(api.post("/v1/events/usage", {**USAGE, **times}), field)
    assert "0002-01-01T00:00:00Z and 9999-01-01T00:00:00Z" in body["details"][field]


def test_usage_times_outside_the_supported_years_are_a_400_for_a_meter_too(api, catalog):
    response = api.post("/v1/events/usage/meter", {"meter_id": catalog["meter"], "end_time": "0001-01-03T00:00:00Z"})

    assert_validation_error(response, "end_time")


@pytest.mark.parametrize("window_size", ["MONTH", "WEEK", "HOUR"])
def test_usage_at_the_edges_of_the_supported_years_is_computed(api, environment, window_size):
    EventFactory(environment=environment, event_name="api.calls", timestamp="0002-01-01T00:00:00Z")
    EventFactory(environment=environment, event_name="api.calls", timestamp="9998-12-31T23:59:59Z")
    for start, end in [
        ("0002-01-01T00:00:00Z", "0002-01-02T00:00:00Z"),
        ("9998-12-31T00:00:00Z", "9999-01-01T00:00:00Z"),
    ]:
        body = {
            **USAGE,
            "start_time": start,
            "end_time": end,
            "window_size": window_size,
            "timezone": "Pacific/Kiritimati",
        }

        response = api.post("/v1/events/usage", body)

        assert response.status_code == 200, response.content
        assert response.json()["value"] == 1


@pytest.mark.parametrize("timezone", ["a" * 10_000, "Europe/" + "x" * 60, f"Europe/Paris{NUL}"])
def test_an_absurd_timezone_is_a_400(api, catalog, timezone):
    assert_validation_error(api.post("/v1/events/usage", {**USAGE, "timezone": timezone}), "timezone")
    response = api.post("/v1/events/usage/meter", {"meter_id": catalog["meter"], "timezone": timezone})
    assert_validation_error(response, "timezone")


def test_an_absurd_timezone_is_not_echoed_in_full(api):
    response = api.post("/v1/events/usage", {**USAGE, "timezone": "a" * 10_000})

    assert len(response.content) < 1_000


# --- numbers too large to aggregate ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_weighted_sum_over_a_huge_stored_value_is_a_400_not_a_500(api, environment):
    # Stored directly: the limits on property numbers reject such values at ingest, but rows stored before them
    # may hold one. value × microseconds of the window exceeds PostgreSQL numeric's 131,072 digits.
    EventFactory(
        environment=environment,
        event_name="level",
        timestamp="2026-01-10T00:00:00Z",
        properties=exactjson.loads('{"v": 1e131071}'),
    )
    body = {
        "event_name": "level",
        "aggregation_type": "WEIGHTED_SUM",
        "property_name": "v",
        "start_time": "2026-01-01T00:00:00Z",
        "end_time": "2026-02-01T00:00:00Z",
    }

    response = api.post("/v1/events/usage", body)

    if connection.vendor == "sqlite":
        # SQLite computes with decimal text, which has no such range: the exact level, 1e131071 × 22/31.
        assert response.status_code == 200, response.content
        assert response.content.startswith(b'{"event_name":"level","type":"WEIGHTED_SUM","value":7096774193548387096')
    else:
        assert response.status_code == 400, response.content
        assert response.json()["code"] == "invalid_operation"
        assert response.json()["details"] == {"usage": "a value of this window is too large to aggregate"}
