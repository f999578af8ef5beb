"""Every request of issue #16's hostile corpus, replayed against the API: no answer under /v1 is a server error or
anything but JSON. Each case is a short sequence (a write, then the reads it used to break)."""

import json

import pytest

from tests.catalog.factories import FeatureFactory, MeterFactory
from tests.metering.factories import CustomerFactory

pytestmark = pytest.mark.django_db

NUL = "\x00"
EVENT = {"event_name": "api.calls", "external_customer_id": "acme"}


def event_with(properties_json: str, event_id: str = "hostile") -> str:
    return (
        f'{{"event_id": "{event_id}", "event_name": "api.calls", "external_customer_id": "acme", '
        f'"properties": {properties_json}}}'
    )


def _bulk(event_json: str) -> str:
    return f'{{"events": [{event_json}]}}'


def nested(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


READS_AFTER_HOSTILE_EVENT = [("get", "/v1/events", None), ("get", "/v1/events/lookup?id=hostile", None)]

# (id, [(method, path, body)]): body is a dict (sent as JSON), raw JSON text, or None.
CORPUS = {
    # 1. one accepted huge number broke every reader of the environment
    "huge-number-then-reads": [("post", "/v1/events", event_with('{"v": 1e131071}')), *READS_AFTER_HOSTILE_EVENT],
    # 2. a CEL constant beyond any number broke usage and lookup once an event matched
    "cel-overflow-meter": [
        ("post", "/v1/meters", {"name": "x", "event_name": "api.calls",
                                "aggregation": {"type": "SUM", "expression": "1e999999 * tokens"}}),
        ("post", "/v1/events", event_with('{"tokens": 2}')),
        ("post", "/v1/events/usage/meter", {"meter_id": "{meter}"}),
        ("get", "/v1/events/lookup?id=hostile", None),
    ],
    # 3. a write with a bogus key (the slow-body part needs a real server: tests of the server half)
    "bogus-key-write": [("post", "/v1/events", {**EVENT, "__key__": "bogus"})],
    # 4. out-of-range numbers on single, bulk and validate
    **{
        f"out-of-range-{number}-{path.rsplit('/', 1)[-1]}": [
            ("post", path, _bulk(event_with(f'{{"v": {number}}}')) if path.endswith("bulk")
             else event_with(f'{{"v": {number}}}')),
            *READS_AFTER_HOSTILE_EVENT,
        ]
        for number in ["1e999999", "-1e999999", "1e-999999", "1e131072", "1e-16384"]
        for path in ["/v1/events", "/v1/events/bulk", "/v1/events/validate"]
    },
    # 5. deep nesting
    "nested-990-properties-then-reads": [("post", "/v1/events", event_with(nested(990))), *READS_AFTER_HOSTILE_EVENT],
    "nested-990-validate": [("post", "/v1/events/validate", event_with(nested(990)))],
    "nested-10000-validate": [("post", "/v1/events/validate", nested(10_000))],
    "nested-10000-bulk": [("post", "/v1/events/bulk", nested(10_000))],
    "nested-10000-meters": [("post", "/v1/meters", nested(10_000))],
    # 6. ordinary bad input: NUL in query parameters and bodies, lone surrogates, offsets, dates, time zones
    **{
        f"nul-query-{path}-{parameter}": [("get", f"{path}?{parameter}=%00", None)]
        for path, parameter in [
            ("/v1/meters", "event_name"), ("/v1/meters", "meter_ids"), ("/v1/features", "feature_ids"),
            ("/v1/features", "lookup_key"), ("/v1/features", "lookup_keys"), ("/v1/features", "name_contains"),
            ("/v1/customers", "external_id"), ("/v1/events", "event_name"), ("/v1/events", "source"),
            ("/v1/events/lookup", "id"),
        ]
    },
    **{
        f"nul-path-{path}": [("get", path, None)]
        for path in ["/v1/meters/%00", "/v1/features/%00", "/v1/customers/%00", "/v1/customers/external/%00",
                     "/v1/customers/%00/usage"]
    },
    **{
        f"nul-body-{index}": [("post", path, body)]
        for index, (path, body) in enumerate([
            ("/v1/events/usage", {"event_name": NUL, "aggregation_type": "COUNT"}),
            ("/v1/events/usage", {"event_name": "e", "aggregation_type": NUL}),
            ("/v1/events/usage", {"event_name": "e", "aggregation_type": "SUM", "property_name": NUL}),
            ("/v1/events/usage", {"event_name": "e", "aggregation_type": "COUNT", "external_customer_id": NUL}),
            ("/v1/events/usage", {"event_name": "e", "aggregation_type": "COUNT", "timezone": NUL}),
            ("/v1/events/usage", {"event_name": "e", "aggregation_type": "COUNT", "filters": {NUL: ["a"]}}),
            ("/v1/events/usage", {"event_name": "e", "aggregation_type": "COUNT", "filters": {"a": [NUL]}}),
            ("/v1/events/usage/meter", {"meter_id": NUL}),
            ("/v1/events/usage/meter", {"meter_id": "{meter}", "external_customer_id": NUL}),
            ("/v1/meters", {"name": "x", "event_name": "e", "aggregation": {"type": "COUNT"},
                            "filters": [{"key": "k", "values": [NUL]}]}),
            ("/v1/features", {"name": "b", "type": "boolean", "description": NUL}),
            ("/v1/features", {"name": "b", "type": "boolean", "metadata": {"a": NUL}}),
            ("/v1/features/search", {"name_contains": NUL}),
            ("/v1/features/search", {"feature_ids": [NUL]}),
            ("/v1/customers", {"external_id": NUL, "name": "x"}),
            ("/v1/events/query", {"event_name": NUL}),
            ("/v1/events", {**EVENT, "properties": {"a": NUL}}),
        ])
    },
    **{
        f"lone-surrogate-{index}": [("post", path, body)]
        for index, (path, body) in enumerate([
            ("/v1/meters", {"name": "\ud800", "event_name": "e", "aggregation": {"type": "COUNT"}}),
            ("/v1/customers", {"external_id": "\ud800", "name": "n"}),
            ("/v1/events", {**EVENT, "properties": {"a": "\ud800"}}),
            ("/v1/events/bulk", {"events": [{**EVENT, "properties": {"a": "\ud800"}}]}),
            ("/v1/events/validate", {**EVENT, "external_customer_id": "\ud800"}),
            ("/v1/events/query", {"property_filters": {"a": ["\ud800"]}}),
        ])
    },
    **{
        f"offset-2^63-{path}": [("get", f"{path}?offset={2**63}", None)]
        for path in ["/v1/meters", "/v1/features", "/v1/customers"]
    },
    "offset-2^63-feature-search": [("post", "/v1/features/search", {"offset": 2**63})],
    **{
        f"usage-time-{index}": [("post", "/v1/events/usage", {"event_name": "e", "aggregation_type": "COUNT", **times})]
        for index, times in enumerate([
            {"start_time": "0001-01-01T00:00:00+01:00"},
            {"end_time": "0001-01-01T00:30:00+01:00"},
            {"end_time": "9999-12-31T23:00:00-02:00"},
            {"end_time": "0001-01-03T00:00:00Z"},
            {"billing_anchor": "0001-01-01T00:00:00+01:00"},
        ])
    },
    "timezone-10000": [("post", "/v1/events/usage", {"event_name": "e", "aggregation_type": "COUNT",
                                                    "timezone": "a" * 10_000})],
    "weighted-sum-over-huge-values": [
        ("post", "/v1/events", event_with('{"v": 1e131071}')),
        ("post", "/v1/events/usage", {"event_name": "api.calls", "aggregation_type": "WEIGHTED_SUM",
                                      "property_name": "v"}),
    ],
    # 8. a chunked body (the server half reads it; here it must at least never be a server error)
    "chunked-body": [("post", "/v1/events", {**EVENT, "__headers__": {"Transfer-Encoding": "chunked"}})],
    # 11. oversized meter filters
    "meter-filter-10000-values": [("post", "/v1/meters", {
        "name": "x", "event_name": "e", "aggregation": {"type": "COUNT"},
        "filters": [{"key": "k", "values": [f"v{i}" for i in range(10_000)]}]})],
    "meter-filter-1mb-value": [("post", "/v1/meters", {
        "name": "x", "event_name": "e", "aggregation": {"type": "COUNT"},
        "filters": [{"key": "k", "values": ["v" * 1_000_000]}]})],
    "meter-put-20000-values": [("put", "/v1/meters/{meter}", {
        "filters": [{"key": "region", "values": ["eu", *(f"v{i}" for i in range(20_000))]}]})],
}  # fmt: skip


@pytest.fixture
def ids(environment):
    meter = MeterFactory(
        environment=environment, event_name="api.calls", aggregation_type="SUM", aggregation_field="v",
        filters=[{"key": "region", "operator": "in", "values": ["eu"]}],
    )  # fmt: skip
    FeatureFactory(environment=environment, meter=meter)
    CustomerFactory(environment=environment, external_id="acme")
    return {"meter": meter.public_id}


def _send(api, method: str, path: str, body, ids: dict):
    path = path.replace("{meter}", ids["meter"])
    if method in ("get", "delete"):
        return getattr(api.client, method)(path, headers=api._headers(None))
    headers = {}
    if isinstance(body, dict):
        body = dict(body)
        if "__key__" in body:
            headers["x-api-key"] = body.pop("__key__")
        headers.update(body.pop("__headers__", {}))
        body = json.dumps(body).replace("{meter}", ids["meter"])
    return getattr(api.client, method)(path, body, content_type="application/json", headers=api._headers(headers))


@pytest.mark.parametrize(
    "requests",
    [pytest.param(requests, id=case_id) for case_id, requests in CORPUS.items()],
)
def test_no_hostile_request_gets_a_server_error_or_a_non_json_answer(api, ids, requests):
    for method, path, body in requests:
        response = _send(api, method, path, body, ids)

        assert response.status_code < 500, (method, path, response.status_code, response.content[:300])
        assert response["Content-Type"].startswith("application/json"), (method, path, response.content[:300])
        json.loads(response.content)
