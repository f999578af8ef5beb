"""The ClickHouse writer keeps SPEC §3 on chdb: last delivery wins per (environment, event_id) even when a
redelivery moves the event to another day, customer or name; concurrent duplicates never double count."""

import datetime as dt
import threading
import time
from decimal import Decimal

import pytest
from django.db import connections

import metering.ingest.clickhouse as writer_module
from flexmeter.models import Environment
from metering.clickhouse.config import clickhouse_client
from metering.ingest.clickhouse import clickhouse_events_delete, clickhouse_events_store
from metering.ingest.validation import EventInput
from metering.models import UsageMark
from tests.concurrency import run_concurrently

pytestmark = pytest.mark.django_db
ENV = 7
DAY = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def environment_of_the_events(db):
    """The environment the events name: the writer marks the pairs a redelivery or a deletion leaves in the Django
    database, for the alert evaluator."""
    return Environment.objects.create(pk=ENV, name="Seven", slug="seven")


def event(event_id, *, customer="cust-a", name="api.call", at=DAY, **properties):
    return EventInput(
        event_id=event_id,
        event_name=name,
        external_customer_id=customer,
        timestamp=at,
        source="test",
        properties=properties,
    )


def store(backend, *events, environment_id=ENV):
    return clickhouse_events_store(backend=backend, environment_id=environment_id, events=list(events))


def live(backend, environment_id=ENV):
    """The events a query sees: (event_id, customer, name, timestamp, properties JSON)."""
    result = clickhouse_client(backend).query(
        f"SELECT event_id, external_customer_id, event_name, timestamp, properties "
        f"FROM {backend.database}.events FINAL WHERE environment_id = %(env)s ORDER BY event_id",
        parameters={"env": environment_id},
    )
    return [(i, c, n, t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t, p) for i, c, n, t, p in result.result_rows]


def tokens_by_customer(backend):
    result = clickhouse_client(backend).query(
        f"SELECT external_customer_id, toString(sum(toDecimal256(numbers['tokens'], 20))) "
        f"FROM {backend.database}.events FINAL WHERE environment_id = %(env)s GROUP BY 1 ORDER BY 1",
        parameters={"env": ENV},
    )
    return {customer: Decimal(total) for customer, total in result.result_rows}


def test_new_events_are_stored_and_a_redelivery_of_the_same_payload_is_a_duplicate(ch_backend):
    first = store(ch_backend, event("e1", tokens=5), event("e2", tokens=7))
    assert (first.accepted, first.duplicates) == (2, 0)
    again = store(ch_backend, event("e1", tokens=5))
    assert (again.accepted, again.duplicates) == (1, 1)
    assert [row[0] for row in live(ch_backend)] == ["e1", "e2"]
    assert tokens_by_customer(ch_backend) == {"cust-a": Decimal(12)}


def test_a_redelivery_that_changes_properties_replaces_the_event(ch_backend):
    store(ch_backend, event("e1", tokens=5))
    store(ch_backend, event("e1", tokens=50))
    assert tokens_by_customer(ch_backend) == {"cust-a": Decimal(50)}


def test_redeliveries_that_move_the_event_to_another_day_customer_and_name_count_once(ch_backend):
    store(ch_backend, event("e1", tokens=5), event("keep", tokens=1))
    store(ch_backend, event("e1", tokens=6, at=DAY + dt.timedelta(days=40)))  # another month: another partition
    assert tokens_by_customer(ch_backend) == {"cust-a": Decimal(7)}
    UsageMark.objects.all().delete()
    store(ch_backend, event("e1", tokens=8, customer="cust-b"))
    assert tokens_by_customer(ch_backend) == {"cust-a": Decimal(1), "cust-b": Decimal(8)}
    # the writer marks the pair the event left (the pairs written are marked by events_store, which calls it)
    assert set(UsageMark.objects.values_list("external_customer_id", "event_name")) == {("cust-a", "api.call")}
    store(ch_backend, event("e1", tokens=9, customer="cust-b", name="api.renamed"))
    rows = live(ch_backend)
    assert [(i, c, n) for i, c, n, _, _ in rows] == [("e1", "cust-b", "api.renamed"), ("keep", "cust-a", "api.call")]
    # and back to where it started: the tombstone of the first key is outranked by the newer delivery
    store(ch_backend, event("e1", tokens=3))
    assert tokens_by_customer(ch_backend) == {"cust-a": Decimal(4)}
    assert len(live(ch_backend)) == 2


def test_every_row_of_an_event_keeps_its_first_delivery_version_across_moves_and_deletion(ch_backend):
    """The unmatched-events digest reads by `first_version`: each row of the id, tombstones included, carries the
    first delivery's version, so a window cannot keep a hidden row and drop the tombstone that hides it."""
    client = clickhouse_client(ch_backend)

    def versions(event_id):
        return client.query(
            f"SELECT groupUniqArray(first_version), max(version) FROM {ch_backend.database}.events "
            "WHERE event_id = %(id)s",
            parameters={"id": event_id},
        ).result_rows[0]

    store(ch_backend, event("e1", tokens=5))
    (first,), _ = versions("e1")
    store(ch_backend, event("e1", tokens=6, at=DAY + dt.timedelta(days=40)))
    store(ch_backend, event("e1", tokens=8, customer="cust-b", name="api.renamed"))
    firsts, newest = versions("e1")
    assert firsts == [first] and newest > first  # three keys, two tombstones: one first version
    clickhouse_events_delete(backend=ch_backend, environment_id=ENV, event_ids=["e1"])
    assert versions("e1")[0] == [first]
    store(ch_backend, event("e1", tokens=1))  # delivered again after deletion: a new event
    assert len(versions("e1")[0]) == 2
    assert [row[0] for row in live(ch_backend)] == ["e1"]


def test_the_answers_survive_background_merges(ch_backend):
    store(ch_backend, event("e1", tokens=5))
    store(ch_backend, event("e1", tokens=6, customer="cust-b"))
    store(ch_backend, event("e2", tokens=1))
    client = clickhouse_client(ch_backend)
    client.command(f"OPTIMIZE TABLE {ch_backend.database}.events FINAL")
    assert tokens_by_customer(ch_backend) == {"cust-a": Decimal(1), "cust-b": Decimal(6)}


def test_within_one_batch_a_repeated_id_keeps_the_last_occurrence(ch_backend):
    result = store(ch_backend, event("e1", tokens=1), event("e1", tokens=2, customer="cust-b"))
    assert (result.accepted, result.duplicates) == (1, 0)
    assert tokens_by_customer(ch_backend) == {"cust-b": Decimal(2)}


def test_environments_are_separate(ch_backend):
    store(ch_backend, event("e1", tokens=1))
    result = store(ch_backend, event("e1", tokens=2), environment_id=ENV + 1)
    assert result.duplicates == 0
    assert len(live(ch_backend)) == 1
    assert len(live(ch_backend, ENV + 1)) == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_of_one_id_to_different_customers_never_double_count(ch_backend):
    customers = [f"cust-{n}" for n in range(8)]
    results = run_concurrently(
        lambda worker: store(ch_backend, event("race", tokens=10 + worker, customer=customers[worker])), threads=8
    )
    assert sum(result.duplicates for result in results) == 7
    rows = live(ch_backend)
    assert len(rows) == 1
    assert sum(tokens_by_customer(ch_backend).values()) in {Decimal(10 + n) for n in range(8)}
    # the survivor is the last delivery written: the one with the highest version
    newest = clickhouse_client(ch_backend).query(
        f"SELECT external_customer_id FROM {ch_backend.database}.event_keys FINAL ORDER BY version DESC LIMIT 1"
    )
    assert rows[0][1] == newest.result_rows[0][0]


def test_numbers_are_stored_exactly_and_unrepresentable_ones_are_marked(ch_backend):
    store(
        ch_backend,
        event(
            "e1",
            tokens=Decimal("12345678901234567890123.5"),
            text=" 1e3 ",
            tiny=Decimal("1E-25"),
            long=Decimal("12345678901234567890.000000000000000000001"),
            flag=True,
            label="gpt",
            price=Decimal("1.50"),
        ),
    )
    row = (
        clickhouse_client(ch_backend)
        .query(f"SELECT numbers, texts, inexact FROM {ch_backend.database}.events FINAL")
        .result_rows[0]
    )
    numbers, texts, inexact = row
    assert numbers == {"tokens": "12345678901234567890123.5", "text": "1000", "price": "1.50"}
    assert texts == {
        "tokens": "12345678901234567890123.5",
        "text": " 1e3 ",
        "flag": "true",
        "label": "gpt",
        "price": "1.50",
        "tiny": "0.0000000000000000000000001",
        "long": "12345678901234567890.000000000000000000001",
    }
    assert inexact == ["tiny", "long"]
    assert tokens_by_customer(ch_backend) == {"cust-a": Decimal("12345678901234567890123.5")}


def test_ids_with_quotes_backslashes_and_control_characters_are_found_again(ch_backend):
    # the writer's lookup binds the ids as one string, split at NUL in ClickHouse (metering/ingest/clickhouse.py)
    ids = ["it's", "back\\slash", "tick`", "tab\tnew\nline", "pct%(x)s{y:String}", "ünï\r", "zero\\0text", "\x01"]
    assert store(ch_backend, *(event(event_id, tokens=1) for event_id in ids)).duplicates == 0
    moved = store(ch_backend, *(event(event_id, customer="cust-b", tokens=2) for event_id in ids))
    assert (moved.accepted, moved.duplicates) == (8, 8)
    assert sorted(row[0] for row in live(ch_backend)) == sorted(ids)
    assert tokens_by_customer(ch_backend) == {"cust-b": Decimal(16)}


def test_an_id_holding_nul_is_looked_up_one_by_one(ch_backend):
    # validation refuses NUL in ids (flexmeter/text.py); a caller that skipped it must not split one id into two
    ids = ["a\x00b", "a", "b"]
    assert store(ch_backend, *(event(event_id, tokens=1) for event_id in ids)).duplicates == 0
    moved = store(ch_backend, event("a\x00b", customer="cust-b", tokens=5))
    assert (moved.accepted, moved.duplicates) == (1, 1)
    assert tokens_by_customer(ch_backend) == {"cust-a": Decimal(2), "cust-b": Decimal(5)}


class HeldWriter:
    """Once armed, holds the next group write inside its id locks (at the lookup) until released; counts the inserts
    into `events`. Batches can then queue behind the held write."""

    def __init__(self, monkeypatch):
        self.armed, self.writing, self.release = False, threading.Event(), threading.Event()
        self.event_inserts = 0
        lookup, insert = writer_module._stored_keys, writer_module._insert

        def held_lookup(*args, **kwargs):
            if self.armed:
                self.armed = False
                self.writing.set()
                assert self.release.wait(10)
            return lookup(*args, **kwargs)

        def counted_insert(client, backend, table, *parts):
            self.event_inserts += table == "events"
            return insert(client, backend, table, *parts)

        monkeypatch.setattr(writer_module, "_stored_keys", held_lookup)
        monkeypatch.setattr(writer_module, "_insert", counted_insert)

    def held(self, work) -> "Background":
        """`work` started in a thread and held inside its write."""
        self.armed = True
        thread = Background(work)
        assert self.writing.wait(10)
        return thread


class Background(threading.Thread):
    """`work()` in a thread, started at once; `.result` or `.error` once joined."""

    def __init__(self, work):
        super().__init__(daemon=True)
        self.work, self.result, self.error = work, None, None
        self.start()

    def run(self):
        try:
            self.result = self.work()
        except BaseException as error:  # noqa: BLE001 - the test inspects it
            self.error = error
        finally:
            connections.close_all()


def queued(backend, work, count) -> Background:
    """`work` started in a thread, once the writer's queue holds `count` batches (its own included)."""
    thread = Background(work)
    commit = writer_module._group_commit(backend)
    deadline = time.monotonic() + 10
    while commit.waiting < count:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.001)
    return thread


def joined(*threads: Background) -> None:
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()


def keys_of(backend, event_id, environment_id=ENV):
    """(customer, version, first_version) of every key `event_id` was stored under, oldest first."""
    return (
        clickhouse_client(backend)
        .query(
            f"SELECT external_customer_id, version, first_version FROM {backend.database}.event_keys FINAL "
            "WHERE environment_id = %(env)s AND event_id = %(id)s ORDER BY version",
            parameters={"env": environment_id, "id": event_id},
        )
        .result_rows
    )


@pytest.mark.django_db(transaction=True)
def test_batches_queued_behind_a_write_go_to_clickhouse_in_one_insert_as_if_written_in_turn(ch_backend, monkeypatch):
    held = HeldWriter(monkeypatch)
    store(ch_backend, event("moved", tokens=1), event("other", tokens=2))
    assert held.event_inserts == 1
    first = held.held(lambda: store(ch_backend, event("first", tokens=4)))
    # queued in this order while the first write holds its locks
    to_b = queued(
        ch_backend,
        lambda: store(ch_backend, event("moved", tokens=8, customer="cust-b"), event("fresh", tokens=64)),
        1,
    )
    to_c = queued(
        ch_backend,
        lambda: store(
            ch_backend,
            event("moved", tokens=16, customer="cust-c"),
            event("fresh", tokens=128, customer="cust-c"),
            event("new", tokens=32),
        ),
        2,
    )
    elsewhere = queued(ch_backend, lambda: store(ch_backend, event("moved", tokens=256), environment_id=ENV + 1), 3)
    held.release.set()
    joined(first, to_b, to_c, elsewhere)
    assert [thread.error for thread in (first, to_b, to_c, elsewhere)] == [None] * 4
    assert held.event_inserts == 3  # the first write alone, then the three queued batches together
    results = [(thread.result.accepted, thread.result.duplicates) for thread in (first, to_b, to_c, elsewhere)]
    # "fresh" is new in the group and a duplicate of the batch before it; the other environment's id is its own
    assert results == [(1, 0), (2, 1), (3, 2), (1, 0)]
    # last delivery wins: the later batch's key; the keys the earlier batch of the group wrote are hidden
    assert [(i, c) for i, c, *_ in live(ch_backend)] == [
        ("first", "cust-a"),
        ("fresh", "cust-c"),
        ("moved", "cust-c"),
        ("new", "cust-a"),
        ("other", "cust-a"),
    ]
    assert tokens_by_customer(ch_backend) == {"cust-a": Decimal(38), "cust-c": Decimal(144)}
    assert [(i, c) for i, c, *_ in live(ch_backend, ENV + 1)] == [("moved", "cust-a")]
    # one version per batch, consecutive in arrival order; a redelivery keeps the id's first delivery's version
    (_, stored, _), (_, b, _), (_, c, _) = keys_of(ch_backend, "moved")
    assert (c - b, stored < b) == (1, True)
    assert keys_of(ch_backend, "moved", ENV + 1)[0][1] == c + 1
    assert keys_of(ch_backend, "fresh") == [("cust-a", b, b), ("cust-c", c, b)]
    # each caller marked the pairs its own batch hid
    assert set(UsageMark.objects.values_list("external_customer_id", "event_name")) == {
        ("cust-a", "api.call"),
        ("cust-b", "api.call"),
    }


@pytest.mark.django_db(transaction=True)
def test_a_group_clickhouse_refuses_fails_every_batch_in_it_and_acknowledges_none(ch_backend, monkeypatch):
    held = HeldWriter(monkeypatch)
    insert = writer_module._insert

    def refusing_insert(client, backend, table, *parts):
        if sum(part.num_rows for part in parts) > 1:
            raise RuntimeError("ClickHouse refused the insert")
        return insert(client, backend, table, *parts)

    monkeypatch.setattr(writer_module, "_insert", refusing_insert)
    first = held.held(lambda: store(ch_backend, event("first", tokens=4)))
    second = queued(ch_backend, lambda: store(ch_backend, event("second", tokens=8)), 1)
    third = queued(ch_backend, lambda: store(ch_backend, event("third", tokens=16)), 2)
    held.release.set()
    joined(first, second, third)
    assert (first.result.accepted, first.error) == (1, None)
    assert [(second.result, str(second.error)), (third.result, str(third.error))] == [
        (None, "ClickHouse refused the insert"),
        (None, "ClickHouse refused the insert"),
    ]
    assert [row[0] for row in live(ch_backend)] == ["first"]
    # the retries are written
    assert store(ch_backend, event("second", tokens=8)).duplicates == 0
    assert [row[0] for row in live(ch_backend)] == ["first", "second"]
