"""export_events and export_usage: CSV with filters, exact numbers, a round trip through import_events."""

import csv
import datetime as dt
import gzip
import io
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from catalog.services import feature_create
from flexmeter.models import Environment
from tests.metering.factories import CustomerFactory, EventFactory
from tests.metering.usage.helpers import stored

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 1, 10, 12, 0, tzinfo=dt.UTC)


def stored_fields(slug: str, fields: tuple[str, ...]) -> list[tuple]:
    """These fields of each stored event of the environment, by event id, read from the events backend under test."""
    events = sorted(stored(Environment.objects.get(slug=slug)), key=lambda event: event.event_id)
    return [tuple(getattr(event, field) for field in fields) for event in events]


def export(command: str, **options) -> list[dict[str, str]]:
    out = io.StringIO()
    call_command(command, stdout=out, stderr=io.StringIO(), **options)
    return list(csv.DictReader(io.StringIO(out.getvalue())))


def export_error(command: str, **options) -> str:
    with pytest.raises(CommandError) as excinfo:
        call_command(command, stdout=io.StringIO(), stderr=io.StringIO(), **options)
    return str(excinfo.value)


@pytest.fixture
def events(environment, other_environment):
    EventFactory(
        environment=environment,
        event_id="e1",
        event_name="api.calls",
        external_customer_id="acme",
        timestamp=T0,
        properties={"n": Decimal("0.10000000000000000001"), "tags": ["a"]},
        source="sdk",
    )
    EventFactory(
        environment=environment,
        event_id="e2",
        event_name="api.calls",
        external_customer_id="globex",
        timestamp=T0 + dt.timedelta(days=1),
    )
    EventFactory(
        environment=environment,
        event_id="e3",
        event_name="llm.request",
        external_customer_id="acme",
        timestamp=T0 + dt.timedelta(days=2),
    )
    EventFactory(
        environment=other_environment, event_id="x1", event_name="api.calls", external_customer_id="acme", timestamp=T0
    )


def test_export_events_writes_the_import_format_oldest_first(events):
    rows = export("export_events")
    assert [row["event_id"] for row in rows] == ["e1", "e2", "e3"]
    first = rows[0]
    assert first["timestamp"] == "2026-01-10T12:00:00Z"
    assert first["properties"] == '{"n":0.10000000000000000001,"tags":["a"]}'
    assert first["source"] == "sdk"
    assert first["ingested_at"].endswith("Z")


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"event_name": ["api.calls"]}, ["e1", "e2"]),
        ({"event_name": ["api.calls", "llm.request"]}, ["e1", "e2", "e3"]),
        ({"customer": "acme"}, ["e1", "e3"]),
        ({"start": "2026-01-11"}, ["e2", "e3"]),
        ({"end": "2026-01-11T12:00:00Z"}, ["e1"]),  # end is exclusive
        ({"start": "2026-01-10T12:00:00Z", "end": "2026-01-12T12:00:00Z", "customer": "globex"}, ["e2"]),
        ({"environment": "sandbox"}, ["x1"]),
    ],
)
def test_export_events_filters(events, options, expected):
    assert [row["event_id"] for row in export("export_events", **options)] == expected


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"start": "last tuesday"}, "start: must be RFC 3339"),
        ({"start": "2026-01-12", "end": "2026-01-11"}, "end: must be after start"),
        ({"environment": "nope"}, "unknown environment 'nope'"),
    ],
)
def test_export_events_rejects_bad_options(events, options, message):
    assert message in export_error("export_events", **options)


def test_export_then_import_round_trips_exactly(events, tmp_path, other_environment):
    path = tmp_path / "events.csv.gz"
    call_command("export_events", output=str(path), stdout=io.StringIO(), stderr=io.StringIO())
    with gzip.open(path, "rt") as handle:
        assert handle.readline().startswith("event_id,event_name")
    call_command(
        "import_events",
        str(path),
        environment="copy",
        create_environment=True,
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    fields = ("event_id", "event_name", "external_customer_id", "timestamp", "source", "properties")
    original, copied = (stored_fields(slug, fields) for slug in ("production", "copy"))
    assert len(original) == 3
    assert copied == original


@pytest.fixture
def catalog(environment):
    calls = feature_create(
        environment=environment,
        data={
            "name": "API Calls",
            "type": "metered",
            "unit_singular": "call",
            "unit_plural": "calls",
            "meter": {"event_name": "api.calls", "aggregation": {"type": "COUNT"}},
        },
    )
    credits = feature_create(
        environment=environment,
        data={
            "name": "Credits",
            "type": "metered",
            "meter": {"event_name": "model.usage", "aggregation": {"type": "SUM", "field": "credits"}},
        },
    )
    feature_create(environment=environment, data={"name": "SSO", "type": "boolean"})
    return calls, credits


def usage_events(environment):
    for index, (name, customer, credits) in enumerate(
        [
            ("api.calls", "acme", None),
            ("api.calls", "acme", None),
            ("api.calls", "ghost", None),
            ("model.usage", "acme", "0.1"),
            ("model.usage", "acme", "0.2"),
        ]
    ):
        EventFactory(
            environment=environment,
            event_id=f"u{index}",
            event_name=name,
            external_customer_id=customer,
            timestamp=T0 + dt.timedelta(hours=index),
            properties={"credits": credits} if credits else {},
        )


def test_export_usage_for_a_window_per_feature_and_customer(environment, catalog):
    acme = CustomerFactory(environment=environment, external_id="acme", name="Acme")
    usage_events(environment)
    rows = export("export_usage", start="2026-01-10", end="2026-01-11")
    table = {(row["feature_lookup_key"], row["external_customer_id"]): row for row in rows}
    assert set(table) == {("api_calls", "acme"), ("api_calls", "ghost"), ("credits", "acme")}
    assert table["api_calls", "acme"]["usage"] == "2"
    assert table["api_calls", "acme"]["unit"] == "calls"
    assert table["api_calls", "acme"]["customer_id"] == acme.public_id
    assert table["api_calls", "ghost"]["customer_id"] == ""  # events of an unknown customer still count
    assert table["credits", "acme"]["usage"] == "0.3"  # exact decimal
    assert table["credits", "acme"]["aggregation"] == "SUM"
    assert {row["period_start"] for row in rows} == {"2026-01-10T00:00:00Z"}


def test_export_usage_filters_by_feature_and_customer(environment, catalog):
    CustomerFactory(environment=environment, external_id="acme")
    usage_events(environment)
    rows = export("export_usage", start="2026-01-10", end="2026-01-11", feature=["credits"], customer="globex")
    assert [(row["feature_lookup_key"], row["external_customer_id"], row["usage"]) for row in rows] == [
        ("credits", "globex", "0")
    ]


def test_export_usage_current_period_of_each_customer(environment, catalog):
    anchor = dt.datetime(2025, 12, 5, tzinfo=dt.UTC)
    CustomerFactory(environment=environment, external_id="acme", billing_anchor=anchor)
    usage_events(environment)
    call_command("export_usage", stdout=io.StringIO())  # current period "now": runs without a window
    rows = export("export_usage", customer="acme")
    assert {row["feature_lookup_key"] for row in rows} == {"api_calls", "credits"}
    assert all(row["period_end"] > row["period_start"] for row in rows)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"start": "2026-01-10"}, "give both --start and --end"),
        ({"feature": ["nope"]}, "no published metered feature nope"),
        ({"customer": "nobody"}, "no active customer nobody"),
    ],
)
def test_export_usage_rejects_bad_options(environment, catalog, options, message):
    assert message in export_error("export_usage", **options)


@pytest.fixture
def hostile_events(environment):
    for index, (name, customer, source) in enumerate(
        [('=HYPERLINK("http://evil","x")', "@SUM(A1)", "+1+1"), ("-2+3", "'=x", "\t=1"), ("api.calls", "-5", "sdk")]
    ):
        EventFactory(
            environment=environment,
            event_id=f"h{index}",
            event_name=name,
            external_customer_id=customer,
            timestamp=T0 + dt.timedelta(hours=index),
            source=source,
            properties={"formula": "=1+1"},
        )


def test_export_events_escapes_formulas(hostile_events):
    rows = export("export_events")

    assert [(row["event_name"], row["external_customer_id"], row["source"]) for row in rows] == [
        ('\'=HYPERLINK("http://evil","x")', "'@SUM(A1)", "'+1+1"),
        ("'-2+3", "''=x", "'\t=1"),
        ("api.calls", "-5", "sdk"),
    ]
    assert rows[0]["properties"] == '{"formula":"=1+1"}'


def test_escaped_export_imports_back_unchanged(hostile_events, tmp_path):
    path = tmp_path / "events.csv"
    call_command("export_events", output=str(path), stdout=io.StringIO(), stderr=io.StringIO())
    call_command(
        "import_events",
        str(path),
        environment="copy",
        create_environment=True,
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )

    fields = ("event_id", "event_name", "external_customer_id", "source", "properties")
    original, copied = (stored_fields(slug, fields) for slug in ("production", "copy"))
    assert copied == original
    assert copied[1][2] == "'=x"


def test_export_usage_escapes_formulas_and_keeps_negative_numbers(environment):
    feature_create(
        environment=environment,
        data={
            "name": "=Credits",
            "type": "metered",
            "meter": {"event_name": "model.usage", "aggregation": {"type": "SUM", "field": "credits"}},
        },
    )
    CustomerFactory(environment=environment, external_id="@acme", name="+Acme")
    EventFactory(
        environment=environment,
        event_name="model.usage",
        external_customer_id="@acme",
        timestamp=T0,
        properties={"credits": -5},
    )

    [row] = export("export_usage", start="2026-01-01", end="2026-02-01")

    assert (row["feature_name"], row["external_customer_id"], row["customer_name"], row["usage"]) == (
        "'=Credits",
        "'@acme",
        "'+Acme",
        "-5",
    )
