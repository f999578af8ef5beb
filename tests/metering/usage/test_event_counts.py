"""Per-day event counts (the overview's "events received"): on PostgreSQL sealed days come from counts kept beside the
usage rollups, and whatever happens after a refresh the answer is exactly what counting raw events gives."""

import datetime as dt
from collections import Counter

import pytest
from django.db import connection

from metering.clickhouse.config import events_backend
from metering.ingest.writer import events_delete
from metering.models import Event
from metering.selectors import event_counts_by_day
from metering.usage.rollups.refresh import rollups_refresh
from tests.catalog.factories import MeterFactory
from tests.metering.usage.helpers import at, send

pytestmark = pytest.mark.django_db(transaction=True)  # counts see committed writes only
postgres = connection.vendor == "postgresql"

# (start, end, since): whole days; a window that starts and ends inside days; `since` inside the window
WINDOWS = [
    ("2025-01-01T00:00", "2025-02-01T00:00", "2025-01-31T00:00"),
    ("2025-01-03T06:30", "2025-01-20T18:00", "2025-01-12T13:00"),
    ("2025-01-10T00:00", "2025-01-17T00:00", "2025-01-16T08:00"),
]


class Events:
    """What was sent, by event id (a redelivery replaces, a deletion removes): the events the backend holds, in
    either events backend."""

    def __init__(self, environment):
        self.environment = environment
        self.timestamps: dict[str, dt.datetime] = {}

    def send(self, *, event_name: str, timestamp: str, event_id: str | None = None) -> str:
        event_id = send(self.environment, event_name=event_name, timestamp=timestamp, event_id=event_id)
        self.timestamps[event_id] = at(timestamp)
        return event_id

    def delete(self, event_id: str) -> None:
        assert events_delete(environment_slug=self.environment.slug, event_ids=[event_id]) == 1
        del self.timestamps[event_id]

    def at(self, timestamp: str) -> str:
        return next(event_id for event_id, moment in self.timestamps.items() if moment == at(timestamp))

    def counts(self, start, end, since) -> tuple[dict[dt.date, int], int]:
        """Counted in Python: what the answer must be."""
        stamps = [moment for moment in self.timestamps.values() if start <= moment < end]
        return dict(Counter(moment.date() for moment in stamps)), sum(1 for moment in stamps if moment >= since)


def seed(environment) -> Events:
    """Events of a metered name, an unmetered one and a misspelling over January 2025, several a day."""
    MeterFactory(environment=environment, event_name="api.calls")
    events = Events(environment)
    for day in range(2, 29):
        for hour in (0, 7, 12, 23):
            for name in ("api.calls", "api_calls", "other")[: 1 + (day + hour) % 3]:
                events.send(event_name=name, timestamp=f"2025-01-{day:02d}T{hour:02d}:{day % 60:02d}")
    return events


def assert_same_as_raw(events: Events):
    if not events_backend().is_clickhouse:
        stored = Event.objects.filter(environment=events.environment).values_list("event_id", "timestamp")
        assert dict(stored) == events.timestamps
    for start, end, since in WINDOWS:
        window = {"start": at(start), "end": at(end), "since": at(since)}
        got, want = event_counts_by_day(environment=events.environment, **window), events.counts(**window)
        assert got == want, (
            window,
            {d: (got[0].get(d), want[0].get(d)) for d in set(got[0]) | set(want[0]) if got[0].get(d) != want[0].get(d)},
        )


def count_rows(environment) -> dict[dt.date, int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT day, events FROM metering_event_count_day WHERE environment_id = %s", [environment.pk])
        return dict(cursor.fetchall())


def test_counts_are_exact_before_and_after_late_events_redeliveries_and_deletions(environment, other_environment):
    events = seed(environment)
    send(other_environment, event_name="api.calls", timestamp="2025-01-05T10:00")  # another environment's event
    assert_same_as_raw(events)
    report = rollups_refresh()
    if postgres:
        # every sealed day from the first event on, with or without events (none after the 28th)
        counted = count_rows(environment)
        days = sorted(counted)
        assert days[0] == dt.date(2025, 1, 2) and days == [days[0] + dt.timedelta(days=n) for n in range(len(days))]
        assert report.counted_days == len(days) + len(count_rows(other_environment))
        january, _ = events.counts(at("2025-01-01T00:00"), at("2025-02-01T00:00"), at("2025-02-01T00:00"))
        assert {day: count for day, count in counted.items() if count} == january
    assert_same_as_raw(events)

    # a late event of a name no meter reads, a redelivery that moves an event to another day, a deleted event
    events.send(event_name="typo.name", timestamp="2025-01-10T11:00")
    events.send(event_name="api.calls", event_id=events.at("2025-01-12T07:12"), timestamp="2025-01-20T06:00")
    events.delete(events.at("2025-01-14T12:14"))
    assert_same_as_raw(events)  # at once: the changed days are counted from raw events

    report = rollups_refresh()
    if postgres:
        assert report.counted_days == 4  # the 10th, 12th, 14th and 20th, and only those
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM metering_rollup_mark")
            assert cursor.fetchone()[0] == 0  # seen by the usage rollups and the counts: pruned
    assert_same_as_raw(events)
    assert rollups_refresh().counted_days == 0


@pytest.mark.skipif(not postgres, reason="counts are kept on PostgreSQL only")
def test_sealed_days_are_read_from_the_counts_and_a_marked_day_is_not(environment):
    seed(environment)
    rollups_refresh()
    window = {"start": at("2025-01-10T00:00"), "end": at("2025-01-17T00:00"), "since": at("2025-01-20T00:00")}
    exact, _ = event_counts_by_day(environment=environment, **window)
    last_day = {**window, "since": at("2025-01-16T08:00")}  # `since` inside a counted day
    exact_last_day = event_counts_by_day(environment=environment, **last_day)
    afternoon = {**window, "since": at("2025-01-16T13:00")}
    exact_afternoon = event_counts_by_day(environment=environment, **afternoon)
    with connection.cursor() as cursor:  # a count that disagrees with the events shows where the answer comes from
        cursor.execute(
            "UPDATE metering_event_count_day SET events = events + 1000 WHERE environment_id = %s", [environment.pk]
        )
    shifted, _ = event_counts_by_day(environment=environment, **window)
    assert shifted == {day: count + 1000 for day, count in exact.items()}
    # the day that holds `since` is counted too, and only the shorter side of `since` is read raw: from `since` on
    # in the afternoon; in the morning its events before `since`, taken from its count
    per_day, recent = event_counts_by_day(environment=environment, **afternoon)
    assert per_day == shifted and recent == exact_afternoon[1] > 0
    per_day, recent = event_counts_by_day(environment=environment, **last_day)
    assert per_day == shifted and recent == exact_last_day[1] + 1000 and exact_last_day[1] > 0

    send(environment, event_name="api.calls", timestamp="2025-01-12T09:00")  # leaves a mark on the 12th
    after, _ = event_counts_by_day(environment=environment, **window)
    assert after[dt.date(2025, 1, 12)] == exact[dt.date(2025, 1, 12)] + 1  # raw again, the rest still counted
    assert after[dt.date(2025, 1, 11)] == exact[dt.date(2025, 1, 11)] + 1000


@pytest.mark.skipif(not postgres, reason="counts are kept on PostgreSQL only")
def test_recent_days_are_not_counted_and_days_without_events_are(environment):
    now = dt.datetime.now(dt.UTC)
    events = Events(environment)
    for days_ago in (0, 1, 5):
        events.send(event_name="x", timestamp=(now - dt.timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M"))
    rollups_refresh()
    days = count_rows(environment)
    sealed_before = (now - dt.timedelta(hours=1)).date()  # today never; yesterday from an hour past midnight
    assert max(days) == sealed_before - dt.timedelta(days=1)
    sealed = [moment for moment in events.timestamps.values() if moment.date() < sealed_before]
    assert sum(days.values()) == len(sealed) and list(days.values()).count(0) == len(days) - len(sealed)
    start = now - dt.timedelta(days=6)
    window = {"start": start, "end": now + dt.timedelta(minutes=1), "since": now - dt.timedelta(hours=24)}
    assert event_counts_by_day(environment=environment, **window) == events.counts(**window)


@pytest.mark.skipif(not postgres, reason="counts are kept on PostgreSQL only")
def test_the_worker_job_and_the_command_refresh_the_counts(environment, capsys):
    from django.core.management import call_command

    from worker.tasks import refresh_rollups

    events = Events(environment)
    events.send(event_name="x", timestamp="2025-01-02T10:00")
    result = refresh_rollups.call()
    assert result["counted_days"] > 0 and count_rows(environment)[dt.date(2025, 1, 2)] == 1
    events.send(event_name="x", timestamp="2025-01-02T11:00")
    call_command("refresh_rollups")
    assert "1 days of event counts" in capsys.readouterr().out
    assert count_rows(environment)[dt.date(2025, 1, 2)] == 2
