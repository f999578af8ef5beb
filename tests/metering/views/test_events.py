"""Event debugger pages: stream (filters, keyset, polling), one event explained, test an event, unmatched names."""

import json

import pytest
from django.urls import reverse

from tests.catalog.factories import FeatureFactory, MeterFactory
from tests.metering.factories import CustomerFactory
from tests.metering.usage.helpers import send, stored

pytestmark = pytest.mark.django_db

STREAM = reverse("metering:event_stream")
DETAIL = reverse("metering:event_detail")
TEST = reverse("metering:event_test")
UNMATCHED = reverse("metering:event_unmatched")
HTMX = {"HX-Request": "true"}


@pytest.fixture
def world(environment):
    meter = MeterFactory(environment=environment, name="API calls", event_name="api.calls")
    FeatureFactory(environment=environment, name="API calls", lookup_key="api_calls", meter=meter)
    MeterFactory(
        environment=environment, name="Credits", event_name="model.usage", aggregation_type="SUM",
        aggregation_field="credits",
    )  # fmt: skip
    CustomerFactory(environment=environment, external_id="acme")
    send(environment, event_name="api.calls", timestamp="2025-01-02T00:00", customer="acme", event_id="ok-1")
    send(environment, event_name="api.calls", timestamp="2025-01-02T00:01", customer="ghost", event_id="nf-1")
    send(environment, event_name="API.calls", timestamp="2025-01-02T00:02", customer="acme", event_id="um-1")
    send(environment, event_name="model.usage", timestamp="2025-01-02T00:03", customer="acme", event_id="um-2",
         properties={"Credits": 5})  # fmt: skip
    return environment


def row_ids(html: str) -> list[str]:
    return [part.split('"', 1)[0] for part in html.split('data-event-id="')[1:]]


def test_stream_lists_newest_first_with_statuses(dashboard, world):
    response = dashboard.get(STREAM)
    assert response.status_code == 200
    html = response.content.decode()
    assert row_ids(html) == ["um-2", "um-1", "nf-1", "ok-1"]
    assert 'data-status="processed"' in html and 'data-status="customer_not_found"' in html
    assert "Credits=5" in html  # property preview


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "unmatched"}, ["um-2", "um-1"]),
        ({"status": "processed"}, ["ok-1"]),
        ({"status": "customer_not_found"}, ["nf-1"]),
        ({"event_name": "api.calls"}, ["um-1", "nf-1", "ok-1"]),  # any case: API.calls is the one hunted
        ({"event_name": "API"}, ["um-1", "nf-1", "ok-1"]),  # a prefix
        ({"event_name": "model"}, ["um-2"]),
        ({"external_customer_id": "ghost"}, ["nf-1"]),
        ({"start": "2025-01-02T00:02", "end": "2025-01-02T00:03"}, ["um-1"]),
    ],
)
def test_stream_filters(dashboard, world, params, expected):
    assert row_ids(dashboard.get(STREAM, params).content.decode()) == expected


def test_stream_rejects_bad_filters_with_a_message(dashboard, world):
    response = dashboard.get(STREAM, {"status": "nope"})
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    response = dashboard.get(STREAM, {"start": "2025-01-03T00:00", "end": "2025-01-02T00:00"})
    assert response.status_code == 400
    response = dashboard.get(STREAM, {"cursor": "not-a-cursor"})
    assert response.status_code == 400


def test_stream_htmx_filter_renders_only_the_table(dashboard, world):
    response = dashboard.get(STREAM, {"status": "unmatched"}, headers=HTMX)
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="event-stream">')
    assert "<aside" not in html


def test_stream_polls_only_for_newer_rows(dashboard, world, environment):
    first = dashboard.get(STREAM, headers=HTMX).content.decode()
    poll_url = first.split('id="stream-poller"', 1)[1].split('hx-get="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert "newer_than=" in poll_url
    assert dashboard.get(STREAM + poll_url, headers=HTMX).status_code == 204
    send(environment, event_name="api.calls", timestamp="2025-01-02T00:09", customer="acme", event_id="new-1")
    response = dashboard.get(STREAM + poll_url, headers=HTMX)
    html = response.content.decode()
    assert row_ids(html) == ["new-1"]
    assert 'class="row-new"' in html and 'hx-swap-oob="true"' in html


def test_stream_pages_older_rows_with_a_cursor(dashboard, environment):
    for minute in range(55):
        send(environment, event_name="x", timestamp=f"2025-01-02T01:{minute:02d}", event_id=f"e{minute:02d}")
    html = dashboard.get(STREAM).content.decode()
    assert len(row_ids(html)) == 50
    more = html.split('id="stream-more"', 1)[1].split('href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    older = dashboard.get(STREAM + more, headers=HTMX).content.decode()
    assert row_ids(older) == ["e04", "e03", "e02", "e01", "e00"]
    assert "That is the oldest event" in older
    plain = dashboard.get(STREAM + more).content.decode()  # the same link works without JavaScript
    assert row_ids(plain) == ["e04", "e03", "e02", "e01", "e00"]


def test_stream_query_count_does_not_grow_with_rows(dashboard, world, environment, django_assert_max_num_queries):
    for minute in range(30):
        send(environment, event_name="api.calls", timestamp=f"2025-01-03T00:{minute:02d}", customer="acme")
    # session, user, environment, environment switcher, meters, the page with statuses
    with django_assert_max_num_queries(6):
        assert dashboard.get(STREAM).status_code == 200


def test_empty_stream_explains_how_to_send(dashboard, environment):
    html = dashboard.get(STREAM).content.decode()
    assert "Waiting for the first event" in html
    assert 'hx-target="#event-stream"' in html  # polls for the first event


def test_other_environments_events_are_invisible(dashboard, environment, other_environment):
    send(other_environment, event_name="x", timestamp="2025-01-02T00:00", event_id="theirs")
    assert row_ids(dashboard.get(STREAM).content.decode()) == []
    assert dashboard.get(DETAIL, {"id": "theirs"}).status_code == 404


def test_detail_explains_a_processed_event(dashboard, world):
    response = dashboard.get(DETAIL, {"id": "ok-1"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "Counted by 1 meter" in html
    assert "Matched — adds" in html
    assert "api_calls" in html  # feature fed
    assert "&quot;event_name&quot;: &quot;api.calls&quot;" in html  # raw JSON


def test_detail_shows_near_misses(dashboard, world):
    html = dashboard.get(DETAIL, {"id": "um-1"}).content.decode()
    assert "Did you mean <code>api.calls</code>?" in html
    html = dashboard.get(DETAIL, {"id": "um-2"}).content.decode()
    assert "Property <code>Credits</code> differs from field <code>credits</code> only by case" in html
    assert "Not counted: this meter reads the number in “credits”, and this event has no “credits” property." in html


def test_detail_shows_a_failing_filter_expected_vs_actual(dashboard, environment):
    MeterFactory(environment=environment, event_name="llm", filters=[{"key": "region", "values": ["eu"]}])
    send(environment, event_name="llm", timestamp="2025-01-02T00:00", event_id="f", properties={"region": "us"})
    html = dashboard.get(DETAIL, {"id": "f"}).content.decode()
    assert "Expected</dt><dd><code>eu</code>" in html
    assert "Actual</dt><dd><code>us</code>" in html


def test_detail_of_unknown_event_is_404(dashboard, environment):
    assert dashboard.get(DETAIL, {"id": "missing"}).status_code == 404
    assert dashboard.get(DETAIL).status_code == 404


def test_detail_query_count(dashboard, world, django_assert_max_num_queries):
    with django_assert_max_num_queries(9):
        assert dashboard.get(DETAIL, {"id": "ok-1"}).status_code == 200


def test_test_an_event_reports_without_storing(dashboard, world):
    before = len(stored())
    body = {"event_name": "api.calls", "external_customer_id": "acme", "event_id": "dry"}
    response = dashboard.post(TEST, {"event_json": json.dumps(body), "action": "check"}, headers=HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="test-result"')
    assert 'data-status="processed"' in html
    assert len(stored()) == before


def test_test_an_event_shows_validation_and_json_errors(dashboard, world):
    response = dashboard.post(TEST, {"event_json": '{"event_name": "x"', "action": "check"})
    assert response.status_code == 422
    assert "This event would be rejected" in response.content.decode()
    assert "line 1" in response.content.decode()
    response = dashboard.post(TEST, {"event_json": json.dumps({"event_name": "x"}), "action": "check"})
    assert response.status_code == 422
    assert "external_customer_id" in response.content.decode()


def test_test_an_event_prefills_from_a_stored_event(dashboard, world):
    html = dashboard.get(TEST, {"from": "um-2"}).content.decode()
    assert "&quot;event_id&quot;: &quot;um-2&quot;" in html
    assert "&quot;Credits&quot;: 5" in html


def test_send_stores_the_event_and_opens_it(dashboard, world):
    body = {"event_name": "api.calls", "external_customer_id": "acme", "event_id": "sent-1"}
    response = dashboard.post(TEST, {"event_json": json.dumps(body), "action": "send"})
    assert response.status_code == 302
    assert response["Location"] == f"{DETAIL}?id=sent-1"
    assert [event.event_id for event in stored()].count("sent-1") == 1
    response = dashboard.post(TEST, {"event_json": json.dumps(body), "action": "send"}, headers=HTMX)
    assert response["HX-Redirect"] == f"{DETAIL}?id=sent-1"
    assert [event.event_id for event in stored()].count("sent-1") == 1  # the second send replaced the first


def test_unmatched_names_page(dashboard, world):
    html = dashboard.get(UNMATCHED).content.decode()
    assert "API.calls" in html and "model.usage" in html
    assert "Did you mean</strong> <code>api.calls</code>?" in html  # API.calls
    assert "Passed the filters but had no usable value (1 meter reads this name)" in html  # model.usage
    assert "api.calls</span>" not in html.split("<tbody>", 1)[1]


def test_unmatched_empty_state(dashboard, environment):
    assert "Every event is metered" in dashboard.get(UNMATCHED).content.decode()


def test_pages_require_login(client, environment):
    for url in (STREAM, DETAIL, TEST, UNMATCHED):
        assert client.get(url).status_code == 302


@pytest.fixture
def filtered_world(environment):
    """A gpt-4 meter: a gpt-3.5 event is left out on purpose, one without tokens is broken."""
    MeterFactory(
        environment=environment, name="GPT-4 tokens", event_name="llm.tokens", aggregation_type="SUM",
        aggregation_field="tokens", filters=[{"key": "model", "operator": "in", "values": ["gpt-4", "gpt-4o"]}],
    )  # fmt: skip
    CustomerFactory(environment=environment, external_id="acme")
    send(environment, event_name="llm.tokens", timestamp="2025-01-02T00:00", customer="acme", event_id="ok",
         properties={"model": "gpt-4", "tokens": 10})  # fmt: skip
    send(environment, event_name="llm.tokens", timestamp="2025-01-02T00:01", customer="acme", event_id="filtered",
         properties={"model": "gpt-3.5", "tokens": 10})  # fmt: skip
    send(environment, event_name="llm.tokens", timestamp="2025-01-02T00:02", customer="acme", event_id="broken",
         properties={"model": "gpt-4"})  # fmt: skip
    send(environment, event_name="LLM.tokens", timestamp="2025-01-02T00:03", customer="acme", event_id="shouting",
         properties={"model": "gpt-4", "tokens": 1})  # fmt: skip
    send(environment, event_name="llm_tokens", timestamp="2025-01-02T00:04", customer="acme", event_id="underscore")
    return environment


def test_filtered_out_is_its_own_status_in_the_stream(dashboard, filtered_world):
    html = dashboard.get(STREAM).content.decode()
    statuses = {part.split('"', 1)[0]: part for part in html.split('data-event-id="')[1:]}
    assert 'data-status="filtered_out"' in statuses["filtered"] and ">Filtered out<" in statuses["filtered"]
    assert 'data-status="unmatched"' in statuses["broken"] and ">Unmatched<" in statuses["broken"]
    assert 'data-status="unmatched"' in statuses["shouting"]
    assert row_ids(dashboard.get(STREAM, {"status": "filtered_out"}).content.decode()) == ["filtered"]
    assert row_ids(dashboard.get(STREAM, {"status": "unmatched"}).content.decode()) == [
        "underscore", "shouting", "broken",
    ]  # fmt: skip


def test_detail_of_a_filtered_out_event_says_it_is_on_purpose(dashboard, filtered_world):
    html = dashboard.get(DETAIL, {"id": "filtered"}).content.decode()
    assert 'data-shown-status="filtered_out"' in html and 'data-status="unmatched"' in html
    assert "Filtered out on purpose." in html
    assert (
        "Filtered out: this meter counts only events whose “model” is “gpt-4” or “gpt-4o”, and this event’s “model” "
        "is “gpt-3.5”." in html
    )
    assert "[&#x27;" not in html and "['" not in html
    html = dashboard.get(DETAIL, {"id": "broken"}).content.decode()
    assert 'data-shown-status="unmatched"' in html and "Filtered out on purpose." not in html


def test_name_filter_points_out_other_spellings(dashboard, filtered_world):
    html = dashboard.get(STREAM, {"event_name": "llm.tokens"}).content.decode()
    assert row_ids(html) == ["shouting", "broken", "filtered", "ok"]
    hints = html.split('data-testid="name-hints"', 1)[1].split("</div>\n  </div>", 1)[0]
    assert "also showing <code>LLM.tokens</code>" in hints
    assert "Near names not shown:" in hints and ">llm_tokens</a>" in hints
    assert "event_name=llm_tokens" in hints


def test_unmatched_page_groups_by_cause(dashboard, filtered_world):
    html = dashboard.get(UNMATCHED).content.decode()
    causes = [part.split('"', 1)[0] for part in html.split('data-cause="')[1:]]
    assert causes == ["no_value", "no_meter", "filtered_out"]
    filtered = html.split('data-cause="filtered_out"', 1)[1]
    assert "Filtered out on purpose" in filtered and "llm.tokens" in filtered
    assert "status=filtered_out" in filtered
    broken = html.split('data-cause="no_value"', 1)[1].split('data-cause="no_meter"', 1)[0]
    assert "llm.tokens" in broken and "Broken: no usable value" in broken
    no_meter = html.split('data-cause="no_meter"', 1)[1].split('data-cause="filtered_out"', 1)[0]
    assert "LLM.tokens" in no_meter and "llm_tokens" in no_meter and "Did you mean" in no_meter
