"""events_store_for_key: authenticate an API key and store events for its environment, in one statement on
PostgreSQL (the single-event fast path of POST /v1/events)."""

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from flexmeter.models import ApiKey
from flexmeter.services import api_key_revoke
from metering.ingest.validation import EventInput
from metering.ingest.writer import events_store_for_key
from tests.concurrency import run_concurrently
from tests.factories import ApiKeyFactory, EnvironmentFactory
from tests.metering.usage.helpers import on_clickhouse, stored, stored_one

pytestmark = pytest.mark.django_db


def an_input(event_id: str = "e1", **overrides) -> EventInput:
    values = {
        "event_id": event_id,
        "event_name": "api.calls",
        "external_customer_id": "acme",
        "timestamp": dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC),
        "source": "",
        "properties": {"tokens": 3},
    }
    values.update(overrides)
    return EventInput(**values)


def test_stores_in_the_keys_environment_and_counts_duplicates(api_key, environment, other_environment):
    first = events_store_for_key(raw_key=api_key.raw_key, events=[an_input(properties={"v": 1})])
    assert (first.accepted, first.duplicates) == (1, 0)
    again = events_store_for_key(raw_key=api_key.raw_key, events=[an_input(properties={"v": 2})])
    assert (again.accepted, again.duplicates) == (1, 1)
    stored = stored_one()
    assert stored.environment_id == environment.pk
    assert stored.properties == {"v": 2}


def test_small_batches_keep_the_last_of_repeated_ids(api_key):
    result = events_store_for_key(
        raw_key=api_key.raw_key, events=[an_input("a", source="1"), an_input("b"), an_input("a", source="2")]
    )
    assert (result.accepted, result.duplicates) == (2, 0)
    assert stored_one(event_id="a").source == "2"


@pytest.mark.parametrize("raw_key", ["", "fm_not-a-real-key"])
def test_missing_or_unknown_key_stores_nothing(api_key, raw_key):
    assert events_store_for_key(raw_key=raw_key, events=[an_input()]) is None
    assert not stored()


def test_a_revoked_key_stores_nothing_from_the_moment_it_is_revoked(api_key):
    assert events_store_for_key(raw_key=api_key.raw_key, events=[an_input("before")]) is not None
    api_key_revoke(api_key=api_key)
    assert events_store_for_key(raw_key=api_key.raw_key, events=[an_input("after")]) is None
    assert [event.event_id for event in stored()] == ["before"]


def test_large_batches_take_the_batch_path_for_the_same_answer(api_key, environment):
    result = events_store_for_key(raw_key=api_key.raw_key, events=[an_input(f"e{i}") for i in range(120)])
    assert (result.accepted, result.duplicates) == (120, 0)
    assert len(stored(environment)) == 120
    assert events_store_for_key(raw_key="fm_unknown", events=[an_input(f"x{i}") for i in range(120)]) is None


def test_key_use_is_recorded_at_most_once_a_minute(api_key):
    events_store_for_key(raw_key=api_key.raw_key, events=[an_input("1")])
    api_key.refresh_from_db()
    first_use = api_key.last_used_at
    assert first_use is not None
    events_store_for_key(raw_key=api_key.raw_key, events=[an_input("2")])
    api_key.refresh_from_db()
    assert api_key.last_used_at == first_use

    long_ago = timezone.now() - dt.timedelta(minutes=5)
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=long_ago)
    events_store_for_key(raw_key=api_key.raw_key, events=[an_input("3")])
    api_key.refresh_from_db()
    assert api_key.last_used_at > long_ago


def test_one_statement_on_postgresql(api_key, django_assert_num_queries):
    if connection.vendor != "postgresql" or on_clickhouse():
        pytest.skip("the single-statement path is PostgreSQL's, with the events in PostgreSQL")
    with django_assert_num_queries(1):
        events_store_for_key(raw_key=api_key.raw_key, events=[an_input("first-use")])
    with django_assert_num_queries(1):
        events_store_for_key(raw_key=api_key.raw_key, events=[an_input("second-use")])


@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_of_one_event_end_with_one_row_and_no_error():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers; this race only exists on PostgreSQL")
    api_key = ApiKeyFactory(environment=EnvironmentFactory(slug="race"))
    threads_count = 6
    results = run_concurrently(
        lambda worker: events_store_for_key(raw_key=api_key.raw_key, events=[an_input(source=f"w{worker}")]),
        threads=threads_count,
    )
    assert len(stored()) == 1
    assert sum(result.inserted for result in results) == 1
    assert sum(result.duplicates for result in results) == threads_count - 1
