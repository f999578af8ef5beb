"""GET /v1/events and POST /v1/events/query: filters, keyset pagination, event shape (SPEC §6.2)."""

import datetime as dt
import json

import pytest
from django.utils import timezone

from metering.models import CustomerStatus
from metering.selectors import events_page
from tests.metering.factories import CustomerFactory, EventFactory
from tests.metering.usage.helpers import on_clickhouse

pytestmark = pytest.mark.django_db

BASE = dt.datetime(2026, 2, 1, 12, 0, tzinfo=dt.UTC)


def make_events(environment, count, **kwargs):
    return [
        EventFactory(environment=environment, event_id=f"e{i:03}", timestamp=BASE + dt.timedelta(minutes=i), **kwargs)
        for i in range(count)
    ]


def test_event_shape_and_customer_resolution(api, environment):
    customer = CustomerFactory(environment=environment, external_id="acme")
    CustomerFactory(environment=environment, external_id="gone", status=CustomerStatus.DELETED)
    EventFactory(
        environment=environment,
        event_id="a",
        external_customer_id="acme",
        timestamp=BASE.replace(microsecond=123456),
        source="svc",
        properties={"tokens": 5},
    )
    EventFactory(environment=environment, event_id="b", external_customer_id="gone", timestamp=BASE)
    body = api.get("/v1/events").json()
    first, second = body["events"]
    assert first == {
        "id": "a",
        "event_name": "api.calls",
        "external_customer_id": "acme",
        "customer_id": customer.public_id,
        "timestamp": "2026-02-01T12:00:00.123456Z",
        "ingested_at": first["ingested_at"],
        "source": "svc",
        "properties": {"tokens": 5},
        "environment_id": environment.public_id,
    }
    assert first["ingested_at"].endswith("Z")
    assert second["customer_id"] is None
    assert body["has_more"] is False


def test_list_is_newest_first_with_constant_queries(api, environment, django_assert_num_queries):
    make_events(environment, 30, external_customer_id="acme")
    CustomerFactory(environment=environment, external_id="acme")
    api.get("/v1/events")  # the key's first use records last_used_at; later calls within a minute do not
    # auth key lookup, events page (a ClickHouse statement when events live there), customer ids
    with django_assert_num_queries(2 if on_clickhouse() else 3):
        body = api.get("/v1/events", {"page_size": 20}).json()
    assert [event["id"] for event in body["events"]] == [f"e{i:03}" for i in range(29, 9, -1)]
    assert body["has_more"] is True


def test_pagination_has_no_gaps_or_repeats_while_events_arrive(api, environment):
    make_events(environment, 25)
    seen: list[str] = []
    cursor = None
    arrivals = 0
    while True:
        params = {"page_size": 7} | ({"iter_last_key": cursor} if cursor else {})
        body = api.get("/v1/events", params).json()
        seen += [event["id"] for event in body["events"]]
        # new events keep arriving between pages, newer than everything listed so far
        EventFactory(environment=environment, event_id=f"new-{arrivals}", timestamp=timezone.now())
        arrivals += 1
        if not body["has_more"]:
            break
        cursor = body["iter_last_key"]
    assert seen == [f"e{i:03}" for i in range(24, -1, -1)]


def test_ties_on_timestamp_are_broken_by_insertion_order(environment):
    for i in range(5):
        EventFactory(environment=environment, event_id=f"t{i}", timestamp=BASE)
    page = events_page(environment=environment, page_size=2)
    ids = [event.event_id for event in page.events]
    while page.has_more:
        page = events_page(environment=environment, page_size=2, cursor=page.last_key)
        ids += [event.event_id for event in page.events]
    assert ids == ["t4", "t3", "t2", "t1", "t0"]


def test_filters(api, environment):
    EventFactory(
        environment=environment,
        event_id="a",
        event_name="api.calls",
        external_customer_id="x",
        source="s1",
        timestamp=BASE,
        properties={"region": "eu", "code": 200, "ok": True},
    )
    EventFactory(
        environment=environment,
        event_id="b",
        event_name="api.calls",
        external_customer_id="y",
        source="s2",
        timestamp=BASE + dt.timedelta(hours=1),
        properties={"region": "us", "code": 500},
    )
    EventFactory(
        environment=environment,
        event_id="c",
        event_name="llm.tokens",
        external_customer_id="x",
        timestamp=BASE + dt.timedelta(hours=2),
        properties={"region": "eu", "code": "200"},
    )

    def ids(**params):
        response = api.post("/v1/events/query", params)
        assert response.status_code == 200, response.json()
        return [event["id"] for event in response.json()["events"]]

    assert ids(event_name="api.calls") == ["b", "a"]
    assert ids(external_customer_id="x") == ["c", "a"]
    assert ids(event_id="b") == ["b"]
    assert ids(source="s1") == ["a"]
    assert ids(start_time="2026-02-01T13:00:00Z") == ["c", "b"]
    assert ids(end_time="2026-02-01T13:00:00Z") == ["a"]
    assert ids(start_time="2026-02-01T12:00:00Z", end_time="2026-02-01T14:00:00Z") == ["b", "a"]
    assert ids(property_filters={"region": ["eu"]}) == ["c", "a"]
    assert ids(property_filters={"code": ["200"]}) == ["c", "a"]  # number 200 and string "200" share a text
    assert ids(property_filters={"code": ["500", "404"], "region": ["us"]}) == ["b"]
    assert ids(property_filters={"ok": ["true"]}) == ["a"]
    assert ids(property_filters={"missing": ["x"]}) == []
    get = api.get("/v1/events", {"event_name": "api.calls", "property_filters": '{"region": ["us"]}'}).json()
    assert [event["id"] for event in get["events"]] == ["b"]


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"page_size": 0}, "page_size"),
        ({"page_size": 101}, "page_size"),
        ({"iter_last_key": "garbage!"}, "iter_last_key"),
        ({"start_time": "yesterday"}, "start_time"),
        ({"start_time": "2026-02-02T00:00:00Z", "end_time": "2026-02-01T00:00:00Z"}, "end_time"),
        ({"property_filters": "{not json"}, "property_filters"),
        ({"property_filters": '{"region": [1]}'}, "property_filters"),
    ],
)
def test_invalid_list_parameters_are_400(api, params, path):
    response = api.get("/v1/events", params)
    assert response.status_code == 400
    assert path in response.json()["details"]


def test_query_body_errors_are_400(api):
    response = api.post("/v1/events/query", {"page_size": "many"})
    assert response.status_code == 400
    assert "page_size" in response.json()["details"]


def test_events_of_other_environments_are_invisible(api, environment, other_environment):
    make_events(other_environment, 3)
    assert api.get("/v1/events").json() == {
        "events": [],
        "has_more": False,
        "iter_first_key": None,
        "iter_last_key": None,
    }


def test_cursor_uses_the_keyset_index_on_postgresql(environment):
    from django.db import connection

    if connection.vendor != "postgresql" or on_clickhouse():
        pytest.skip("plan check of PostgreSQL's events table (ClickHouse pages by its sort key)")
    make_events(environment, 3)
    page = events_page(environment=environment, page_size=1)
    from metering.models import Event
    from metering.selectors import event_cursor_decode

    timestamp, pk = event_cursor_decode(page.last_key)
    query = Event.objects.filter(environment=environment, timestamp__lte=timestamp).order_by("-timestamp", "-id")[:2]
    with connection.cursor() as cursor:
        # With three rows the planner may prefer a bitmap scan plus a sort however good the index is; with those
        # off it still has to sort unless an index already gives the keyset order, which is what is checked.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        sql, params = query.query.sql_with_params()
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "event_stream" in plan
    assert "Sort" not in plan.split("\n")[1]


@pytest.mark.parametrize(
    "params",
    [
        {"event_name": "a\u0000"},
        {"property_filters": '{"k\\u0000": ["v"]}'},
        {"property_filters": '{"k": ["\\u0000"]}'},
    ],
)
def test_filters_the_database_cannot_hold_are_400(api, params):
    response = api.get("/v1/events", params)
    assert response.status_code == 400


def test_cursor_with_an_absurd_timestamp_is_400(api):
    import base64

    cursor = base64.urlsafe_b64encode(b"99999999999999999999999:1").decode()
    response = api.get("/v1/events", {"iter_last_key": cursor})
    assert response.status_code == 400
    assert "iter_last_key" in response.json()["details"]


def send_with_value(api, event_id: str, value_text: str) -> None:
    """Send an event whose property `v` is spelled exactly as given (Python's json would respell `1.50`)."""
    properties = f'{{"v": {value_text}}}'
    body = f'{{"event_id": "{event_id}", "event_name": "n", "external_customer_id": "c", "properties": {properties}}}'
    assert api.post("/v1/events", body).status_code == 202


def test_property_filters_compare_the_engines_canonical_text(api, environment):
    """SPEC §3 (issue #11): the list filters as meters do, on both databases: numbers in their JSON spelling with
    every digit and their scale, booleans as true/false, no text at all for null, objects and arrays."""
    values = {
        "scaled": "1.50",
        "text-1.5": '"1.5"',
        "exponent": "1e3",
        "long": "12345678901234567890123",
        "null": "null",
        "text-null": '"null"',
        "object": '{"k": 1}',
        "array": "[1]",
        "true": "true",
        "text-true": '"true"',
    }
    for event_id, value in values.items():
        send_with_value(api, event_id, value)

    def ids(*wanted: str) -> set[str]:
        for response in (
            api.post("/v1/events/query", {"property_filters": {"v": list(wanted)}}),
            api.get("/v1/events", {"property_filters": json.dumps({"v": list(wanted)})}),
        ):
            assert response.status_code == 200, response.json()
        return {event["id"] for event in response.json()["events"]}

    assert ids("1.5") == {"text-1.5"}
    assert ids("1.50") == {"scaled"}
    assert ids("1000") == {"exponent"}
    assert ids("1000.0") == set()
    assert ids("12345678901234567890123") == {"long"}
    assert ids("12345678901234600000000") == set()
    assert ids("null") == {"text-null"}
    assert ids("true") == {"true", "text-true"}
    assert ids('{"k": 1}', '{"k":1}', "[1]") == set()


def test_property_filters_agree_with_a_meters_filter(api, environment):
    for index, value in enumerate(["1.50", '"1.5"', "1e3", "true", '{"k": 1}']):
        send_with_value(api, f"e{index}", value)
    for wanted in (["1.5"], ["1.50"], ["1000"], ["true"], ['{"k": 1}']):
        listed = api.post("/v1/events/query", {"property_filters": {"v": wanted}}).json()["events"]
        usage = api.post(
            "/v1/events/usage",
            {
                "event_name": "n",
                "aggregation_type": "COUNT",
                "filters": {"v": wanted},
                "start_time": "2000-01-01T00:00:00Z",
            },
        )
        assert usage.status_code == 200, usage.json()
        assert usage.json()["value"] == len(listed), wanted
