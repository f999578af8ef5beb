"""event_clean / events_clean / events_store: every validation rule of SPEC §2.3 and the storage rules of §3."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection

from flexmeter.errors import ValidationFailed
from metering.ingest.validation import EventInput, event_clean, events_clean
from metering.ingest.writer import events_store
from metering.models import Event
from tests.concurrency import run_concurrently
from tests.factories import EnvironmentFactory
from tests.metering.usage.helpers import stored, stored_one

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def raw(**overrides) -> dict:
    event = {"event_id": "e1", "event_name": "api.calls", "external_customer_id": "acme"}
    event.update(overrides)
    return event


def clean_error(event, **kwargs) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as excinfo:
        event_clean(event, now=NOW, **kwargs)
    return excinfo.value.details


def test_minimal_event_gets_defaults():
    event = event_clean({"event_name": "api.calls", "external_customer_id": "acme"}, now=NOW)
    assert event.event_id.startswith("event_") and len(event.event_id) == len("event_") + 26
    assert event.timestamp == NOW
    assert event.source == ""
    assert event.properties == {}
    assert event.properties_json == "{}"


def test_empty_event_id_and_null_fields_count_as_absent():
    event = event_clean(raw(event_id="", timestamp=None, source=None, properties=None), now=NOW)
    assert event.event_id.startswith("event_")
    assert event.timestamp == NOW


def test_unknown_top_level_fields_are_ignored():
    event = event_clean(raw(customer_id="x", whatever={"a": 1}), now=NOW)
    assert event.event_id == "e1"


@pytest.mark.parametrize("field", ["event_name", "external_customer_id"])
def test_required_text_fields(field):
    assert clean_error({k: v for k, v in raw().items() if k != field}) == {field: "is required"}
    assert clean_error(raw(**{field: "   "})) == {field: "must not be blank"}
    assert clean_error(raw(**{field: 42})) == {field: "must be a string, not a number"}
    assert clean_error(raw(**{field: "x" * 256})) == {field: "must be at most 255 characters (got 256)"}
    assert event_clean(raw(**{field: "x" * 255}), now=NOW)


def test_event_id_and_source_rules():
    assert clean_error(raw(event_id=7)) == {"event_id": "must be a string, not a number"}
    assert clean_error(raw(event_id=" ")) == {"event_id": "must not be blank"}
    assert clean_error(raw(event_id="e" * 256)) == {"event_id": "must be at most 255 characters (got 256)"}
    assert clean_error(raw(source=["a"])) == {"source": "must be a string, not an array"}
    assert clean_error(raw(source="s" * 256)) == {"source": "must be at most 255 characters (got 256)"}
    assert event_clean(raw(source="billing-svc"), now=NOW).source == "billing-svc"


def test_non_object_event():
    assert clean_error(["not", "an", "object"]) == {"": "an event must be a JSON object, not an array"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-03-01T10:00:00Z", dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC)),
        ("2026-03-01t10:00:00z", dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC)),
        ("2026-03-01T10:00:00.5+01:00", dt.datetime(2026, 3, 1, 9, 0, 0, 500000, tzinfo=dt.UTC)),
        ("2026-03-01 10:00:00.123456789-05:30", dt.datetime(2026, 3, 1, 15, 30, 0, 123456, tzinfo=dt.UTC)),
        ("1999-12-31T23:59:59Z", dt.datetime(1999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)),
    ],
)
def test_valid_timestamps_become_utc(value, expected):
    assert event_clean(raw(timestamp=value), now=NOW).timestamp == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-03-01T10:00:00", "must be RFC 3339 with a zone offset or Z"),
        ("2026-03-01", "must be RFC 3339 with a zone offset or Z"),
        ("yesterday", "must be RFC 3339 with a zone offset or Z"),
        ("2026-02-30T10:00:00Z", "is not a valid date and time"),
        (1700000000, "must be an RFC 3339 string"),
    ],
)
def test_invalid_timestamps(value, message):
    assert clean_error(raw(timestamp=value))["timestamp"].startswith(message)


def test_timestamp_may_be_up_to_24_hours_ahead_but_not_more():
    ahead = NOW + dt.timedelta(hours=24)
    assert event_clean(raw(timestamp=ahead.isoformat()), now=NOW).timestamp == ahead
    too_far = NOW + dt.timedelta(hours=24, seconds=1)
    assert clean_error(raw(timestamp=too_far.isoformat()))["timestamp"].startswith(
        "is more than 24 hours in the future"
    )


def test_properties_rules():
    assert clean_error(raw(properties=[1])) == {"properties": "must be a JSON object, not an array"}
    assert clean_error(raw(properties="x")) == {"properties": "must be a JSON object, not a string"}
    assert event_clean(raw(properties={f"k{i}": i for i in range(100)}), now=NOW)
    assert clean_error(raw(properties={f"k{i}": i for i in range(101)})) == {
        "properties": "must have at most 100 top-level keys (got 101)"
    }
    fits = {"blob": "x" * (32 * 1024 - len('{"blob":""}'))}
    assert len(event_clean(raw(properties=fits), now=NOW).properties_json) == 32 * 1024
    too_big = {"blob": "x" * (32 * 1024 - len('{"blob":""}') + 1)}
    assert clean_error(raw(properties=too_big))["properties"] == "must be at most 32768 bytes as JSON (got 32769)"
    multibyte = {"blob": "é" * (16 * 1024)}  # 2 bytes each in UTF-8
    assert "bytes as JSON" in clean_error(raw(properties=multibyte))["properties"]


def test_all_errors_of_one_event_are_reported_together():
    details = clean_error({"event_name": "", "timestamp": "nope", "properties": 3})
    assert set(details) == {"event_name", "external_customer_id", "timestamp", "properties"}


def test_events_clean_reports_paths_per_index_and_keeps_nothing():
    batch = [raw(event_id="a"), raw(event_id="b", timestamp="bad"), raw(event_id="c"), "oops"]
    with pytest.raises(ValidationFailed) as excinfo:
        events_clean(batch, now=NOW)
    assert set(excinfo.value.details) == {"events[1].timestamp", "events[3]"}
    assert excinfo.value.message.startswith("2 of 4 events are invalid; nothing was stored.")


def test_events_clean_rejects_non_lists_empty_and_too_many():
    with pytest.raises(ValidationFailed) as excinfo:
        events_clean({"a": 1}, now=NOW)
    assert excinfo.value.details == {"events": "must be an array of events, not an object"}
    with pytest.raises(ValidationFailed) as excinfo:
        events_clean([], now=NOW)
    assert excinfo.value.details == {"events": "must contain at least 1 event"}
    with pytest.raises(ValidationFailed) as excinfo:
        events_clean([raw(event_id=str(i)) for i in range(3)], now=NOW, max_events=2)
    assert excinfo.value.details == {"events": "must contain at most 2 events per request (got 3)"}


def test_events_clean_keeps_the_last_of_repeated_ids():
    events = events_clean([raw(event_id="a", source="1"), raw(event_id="b"), raw(event_id="a", source="2")], now=NOW)
    assert [(event.event_id, event.source) for event in events] == [("b", ""), ("a", "2")]


def test_numbers_keep_their_exact_spelling_when_parsed_from_text():
    from metering import exactjson

    event = event_clean(
        exactjson.loads(
            '{"event_name": "n", "external_customer_id": "c", '
            '"properties": {"v": 0.12345678901234567890123, "w": 0.1, "x": 1.50}}'
        ),
        now=NOW,
    )
    assert event.properties == {"v": Decimal("0.12345678901234567890123"), "w": 0.1, "x": Decimal("1.50")}
    assert event.properties_json == '{"v":0.12345678901234567890123,"w":0.1,"x":1.50}'


def stored_event(environment, event_id="e1") -> Event:
    return stored_one(environment, event_id)


def an_input(event_id="e1", **overrides) -> EventInput:
    return event_clean(raw(event_id=event_id, **overrides), now=NOW)


def test_events_store_inserts_then_replaces(environment):
    result = events_store(environment=environment, events=[an_input("a"), an_input("b")])
    assert (result.accepted, result.duplicates, result.inserted) == (2, 0, 2)
    first_ingested_at = stored_event(environment, "a").ingested_at
    result = events_store(environment=environment, events=[an_input("a", properties={"n": 2}), an_input("c")])
    assert (result.accepted, result.duplicates) == (2, 1)
    replaced = stored_event(environment, "a")
    assert replaced.properties == {"n": 2}
    assert replaced.ingested_at >= first_ingested_at
    assert len(stored(environment)) == 3


def test_events_store_dedupes_repeated_ids_itself(environment):
    result = events_store(environment=environment, events=[an_input("a", source="1"), an_input("a", source="2")])
    assert (result.accepted, result.duplicates) == (1, 0)
    assert stored_event(environment, "a").source == "2"


@pytest.mark.parametrize("size", [3, 1200])
def test_events_store_small_and_large_batches_agree(environment, size):
    events = [an_input(f"e{i}", properties={"i": i, "v": Decimal("0.12345678901234567890123")}) for i in range(size)]
    assert events_store(environment=environment, events=events).duplicates == 0
    assert events_store(environment=environment, events=events).duplicates == size
    assert len(stored(environment)) == size
    assert stored_event(environment, f"e{size - 1}").properties == {
        "i": size - 1,
        "v": Decimal("0.12345678901234567890123"),
    }


def test_long_decimals_survive_the_database_with_every_digit(environment):
    from metering import exactjson

    # the largest magnitude the rule for what can be stored admits (flexmeter/limits.py)
    parsed = exactjson.loads('{"v": 0.12345678901234567890123, "big": 1e37, "neg": -7.000}')
    events_store(environment=environment, events=[an_input("d", properties=parsed)])
    properties = stored_one(event_id="d").properties
    assert properties["v"] == Decimal("0.12345678901234567890123")
    assert str(properties["v"]) == "0.12345678901234567890123"
    assert properties["big"] == Decimal("1e37")
    assert properties["neg"] == Decimal("-7.000")


def test_same_event_id_in_two_environments_are_two_events(environment):
    other = EnvironmentFactory(slug="other")
    assert events_store(environment=environment, events=[an_input("shared")]).duplicates == 0
    assert events_store(environment=other, events=[an_input("shared", source="other")]).duplicates == 0
    assert stored_event(environment, "shared").source == ""
    assert stored_event(other, "shared").source == "other"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("size", [1, 200])
def test_concurrent_duplicate_deliveries_end_with_one_row_and_no_error(size):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers; this race only exists on PostgreSQL")
    environment = EnvironmentFactory(slug="race")
    threads_count = 6
    batches = [
        [an_input(f"race-{i}", source=f"worker-{worker}") for i in range(size)] for worker in range(threads_count)
    ]
    results = run_concurrently(
        lambda worker: events_store(environment=environment, events=batches[worker]), threads=threads_count
    )
    assert len(stored(environment)) == size
    assert sum(result.inserted for result in results) == size
    assert sum(result.duplicates for result in results) == size * (threads_count - 1)
    sources = {event.source for event in stored(environment)}
    assert len(sources) == 1


def test_large_batch_mixing_new_and_stored_ids_counts_exactly(environment):
    events_store(environment=environment, events=[an_input(f"e{i}", source="first") for i in range(0, 200, 2)])
    result = events_store(environment=environment, events=[an_input(f"e{i}", source="second") for i in range(200)])
    assert (result.accepted, result.duplicates, result.inserted) == (200, 100, 100)
    assert len(stored(environment)) == 200
    assert {event.source for event in stored(environment)} == {"second"}


def test_a_rejected_batch_copy_leaves_the_surrounding_transaction_usable(environment):
    from django.db import transaction

    events_store(environment=environment, events=[an_input("taken")])
    with transaction.atomic():
        result = events_store(
            environment=environment, events=[an_input(f"b{i}") for i in range(99)] + [an_input("taken")]
        )
        assert result.duplicates == 1
        assert len(stored(environment)) == 100


def test_event_input_built_by_hand_derives_its_json(environment):
    event = EventInput(
        event_id="hand",
        event_name="n",
        external_customer_id="c",
        timestamp=NOW,
        source="",
        properties={"v": Decimal("1.50")},
    )
    assert event.properties_json == '{"v":1.50}'
    events_store(environment=environment, events=[event])
    assert stored_event(environment, "hand").properties == {"v": Decimal("1.50")}


@pytest.mark.parametrize("field", ["event_name", "external_customer_id", "event_id", "source"])
def test_text_the_database_cannot_store_is_rejected(field):
    assert clean_error(raw(**{field: "a\x00b"})) == {field: "must not contain NUL (\\u0000) characters"}
    assert clean_error(raw(**{field: "a\ud800b"})) == {field: "must be valid Unicode (it contains a lone surrogate)"}


def test_properties_the_database_cannot_store_are_rejected():
    assert clean_error(raw(properties={"k": "a\x00"})) == {"properties": "must not contain NUL (\\u0000) characters"}
    assert clean_error(raw(properties={"k\ud800": 1}))["properties"].startswith("must be valid Unicode")
    literal = event_clean(raw(properties={"k": "\\u0000 is how JSON writes NUL"}), now=NOW)
    assert literal.properties == {"k": "\\u0000 is how JSON writes NUL"}


def test_escaped_backslash_before_u0000_is_stored(environment):
    events_store(environment=environment, events=[an_input("bs", properties={"k": "C:\\u0000dir"})])
    assert stored_event(environment, "bs").properties == {"k": "C:\\u0000dir"}


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00"])
def test_timestamps_that_overflow_in_utc_are_rejected(value):
    assert clean_error(raw(timestamp=value))["timestamp"].startswith("is outside the supported years")


def test_extremely_nested_properties_are_rejected():
    nested: dict = {}
    for _ in range(5000):
        nested = {"n": nested}
    assert clean_error(raw(properties=nested)) == {
        "properties" + ".n" * 32: "is nested too deeply (at most 32 levels of objects and arrays)"
    }
