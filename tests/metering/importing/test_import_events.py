"""import_events: JSON Lines, CSV, gzip and stdin sources; dry run; rejects; idempotent re-runs (SPEC §9)."""

import datetime as dt
import functools
import gzip
import io
import json
import signal
import sys
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from catalog.models import MeterStatus
from flexmeter.models import Environment
from metering.importing import batches
from metering.importing.sources import Rejected, source_open
from metering.management.commands import import_events as import_events_command
from metering.progress import ProgressBar
from tests.catalog.factories import MeterFactory
from tests.metering.factories import CustomerFactory, EventFactory
from tests.metering.usage.helpers import stored, stored_one

pytestmark = pytest.mark.django_db


def event(index: int, **overrides) -> dict:
    data = {
        "event_id": f"imp-{index}",
        "event_name": "api.calls",
        "external_customer_id": "acme",
        "timestamp": f"2026-01-01T00:00:{index % 60:02d}Z",
        "source": "backfill",
        "properties": {"tokens": index},
    }
    data.update(overrides)
    return data


def jsonl(*events) -> str:
    return "".join((item if isinstance(item, str) else json.dumps(item)) + "\n" for item in events)


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


def run(*args, **options) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_events", *args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def run_failing(*args, **options) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command("import_events", *args, stdout=out, stderr=err, **options)
    return out.getvalue(), str(excinfo.value)


# JSON Lines --------------------------------------------------------------------------------------------------


def test_jsonl_import_stores_every_event_exactly(tmp_path, environment):
    path = write(
        tmp_path,
        "events.jsonl",
        jsonl(event(1)) + '{"event_id":"imp-2","event_name":"api.calls","external_customer_id":"acme",'
        '"timestamp":"2026-01-01T00:00:02Z","properties":{"credits":0.12345678901234567890123}}\n',
    )
    out, _ = run(path)
    assert "2 records" in out
    assert "stored:             2 events (0 replaced stored events)" in out
    second = stored_one(environment, "imp-2")
    assert second.properties["credits"] == Decimal("0.12345678901234567890123")
    first = stored_one(environment, "imp-1")
    assert first.timestamp == dt.datetime(2026, 1, 1, 0, 0, 1, tzinfo=dt.UTC)
    assert first.source == "backfill"
    assert first.properties == {"tokens": 1}


def test_text_that_copy_would_misread_is_stored_exactly(tmp_path, environment):
    tricky = "tab\there, new\nline, return\r, back\\slash \\N \\t, ünïcode ✓"
    path = write(
        tmp_path,
        "events.jsonl",
        jsonl(
            event(1, event_id=f"id {tricky}", event_name=f"name {tricky}", source=tricky, properties={tricky: tricky}),
            event(2, external_customer_id=tricky, properties={"note": "\\"}),
            event(3, source="\\N"),
        )
        + '{"event_id":"imp-4","event_name":"api.calls","external_customer_id":"acme","properties":{"n":1.50}}\n',
    )
    run(path)
    first = stored_one(environment, f"id {tricky}")
    assert (first.event_name, first.source, first.properties) == (f"name {tricky}", tricky, {tricky: tricky})
    second = stored_one(environment, "imp-2")
    assert second.external_customer_id == tricky
    assert second.properties == {"note": "\\"}
    assert str(stored_one(environment, "imp-4").properties["n"]) == "1.50"
    assert stored_one(environment, "imp-3").source == "\\N"


def test_ingested_at_is_the_time_of_the_write(tmp_path, environment):
    path = write(tmp_path, "events.jsonl", jsonl(*[event(index) for index in range(120)]))
    before = dt.datetime.now(dt.UTC)
    run(path, batch_size=50)
    after = dt.datetime.now(dt.UTC)
    stamps = {event.ingested_at for event in stored(environment)}
    assert len(stamps) == 3  # one per batch
    assert all(before <= stamp <= after for stamp in stamps)


def test_jsonl_invalid_lines_are_reported_with_line_numbers_and_do_not_stop_the_import(tmp_path, environment):
    text = jsonl(
        event(1),
        "",
        event(2, timestamp="yesterday"),
        "not json",
        event(3, external_customer_id=None),
        [1, 2],
        event(4),
    )
    path = write(tmp_path, "events.jsonl", text)
    out, error = run_failing(path)
    assert error == "4 of 6 records were invalid and not imported"
    assert len(stored(environment)) == 2
    assert "line 3: timestamp: must be RFC 3339" in out
    assert "line 4: is not valid JSON (Expecting value at column 1)" in out
    assert "line 5: external_customer_id: is required" in out
    assert "line 6: an event must be a JSON object, not an array" in out


def test_rejects_file_holds_each_invalid_record_with_its_reasons(tmp_path, environment):
    path = write(tmp_path, "events.jsonl", jsonl(event(1), event(2, event_name=""), "{broken"))
    rejects = tmp_path / "rejects.jsonl"
    out, _ = run_failing(path, rejects=str(rejects))
    entries = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert entries == [
        {"line": 2, "errors": {"event_name": "must not be blank"}, "event": event(2, event_name="")},
        {"line": 3, "errors": {"": entries[1]["errors"][""]}, "text": "{broken"},
    ]
    assert entries[1]["errors"][""].startswith("is not valid JSON")
    assert f"invalid:            2 records (written to {rejects})" in out
    assert len(stored(environment)) == 1


def test_invalid_utf8_line_is_rejected_not_fatal(tmp_path, environment):
    path = tmp_path / "events.jsonl"
    path.write_bytes(json.dumps(event(1)).encode() + b"\n" + b'{"event_name": "\xff"}\n')
    out, _ = run_failing(str(path))
    assert "line 2: is not valid UTF-8" in out
    assert len(stored(environment)) == 1


def test_gzip_jsonl_is_detected_from_the_data(tmp_path, environment):
    path = tmp_path / "events.data"
    path.write_bytes(gzip.compress(jsonl(event(1), event(2)).encode()))
    run(str(path), format="jsonl")
    assert len(stored(environment)) == 2


def test_truncated_gzip_fails_clearly_after_keeping_whole_batches(tmp_path, environment):
    data = gzip.compress(jsonl(*[event(index) for index in range(3000)]).encode())
    path = tmp_path / "events.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    _, error = run_failing(str(path), batch_size=100)
    assert "reading stopped after" in error
    assert "re-running the import is safe" in error
    kept = len(stored(environment))
    assert kept > 0 and kept % 100 == 0


def test_stdin_is_read_when_the_path_is_a_dash(monkeypatch, environment):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(jsonl(event(1), event(2)).encode())))
    out, _ = run("-")
    assert "Imported <stdin>" in out
    assert len(stored(environment)) == 2


def test_gzip_csv_on_stdin_is_detected(monkeypatch, environment):
    data = gzip.compress(b"event_name,external_customer_id,event_id\napi.calls,acme,s1\n")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    run("-")
    assert stored_one(environment).event_id == "s1"


# CSV ---------------------------------------------------------------------------------------------------------


def test_csv_with_a_properties_json_column(tmp_path, environment):
    text = (
        "event_id,event_name,external_customer_id,timestamp,source,properties\n"
        'c1,llm.request,acme,2026-01-01T00:00:00Z,csv,"{""input_tokens"": 100, ""model"": ""gpt""}"\n'
        "c2,llm.request,acme,2026-01-01T00:00:01Z,,\n"
    )
    run(write(tmp_path, "events.csv", text))
    first, second = sorted(stored(environment), key=lambda event: event.event_id)
    assert first.properties == {"input_tokens": 100, "model": "gpt"}
    assert first.source == "csv"
    assert second.properties == {}
    assert second.source == ""


def test_csv_with_property_columns_keeps_strings_and_omits_empty_cells(tmp_path, environment):
    text = "event_name,external_customer_id,event_id,properties.tokens,properties.region\nllm,acme,p1,12.50,\n"
    run(write(tmp_path, "events.csv", text))
    assert stored_one(environment).properties == {"tokens": "12.50"}


def test_csv_line_numbers_count_physical_lines_and_reasons_are_reported(tmp_path, environment):
    text = (
        "event_id,event_name,external_customer_id,timestamp,properties\n"  # line 1
        'm1,api.calls,"acme\nmultiline",2026-01-01T00:00:00Z,\n'  # lines 2-3
        "m2,api.calls,,2026-01-01T00:00:00Z,\n"  # line 4: no customer
        "m3,api.calls,acme\n"  # line 5: too few fields
        'm4,api.calls,acme,2026-01-01T00:00:00Z,"{nope"\n'  # line 6: bad properties JSON
        "m5,api.calls,acme,2026-01-01T00:00:00Z,\n"  # line 7
    )
    out, _ = run_failing(write(tmp_path, "events.csv", text))
    assert "line 4: external_customer_id: is required" in out
    assert "line 5: has 3 fields but the header has 5" in out
    assert "line 6: properties: is not valid JSON" in out
    assert {event.event_id for event in stored(environment)} == {"m1", "m5"}


def test_csv_unknown_columns_are_ignored_and_named(tmp_path, environment):
    text = "event_name,external_customer_id,ingested_at\napi.calls,acme,2020-01-01T00:00:00Z\n"
    out, _ = run(write(tmp_path, "events.csv.gz", text))
    assert "ignored columns:    ingested_at" in out
    assert len(stored(environment)) == 1


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("event_id,event_name\n", "lacks external_customer_id"),
        ("event_name,external_customer_id,properties,properties.a\n", "not both"),
        ("event_name,external_customer_id,event_name\n", "repeats event_name"),
    ],
)
def test_csv_header_problems_fail_before_importing(tmp_path, environment, header, message):
    _, error = run_failing(write(tmp_path, "events.csv", header + "a,b,c,d\n"))
    assert message in error
    assert stored() == []


def test_format_is_sniffed_when_the_name_says_nothing(tmp_path, environment):
    run(write(tmp_path, "events.txt", "event_name,external_customer_id\napi.calls,acme\n"))
    run(write(tmp_path, "more.txt", jsonl(event(1))))
    assert len(stored(environment)) == 2


# Dry run -----------------------------------------------------------------------------------------------------


def test_dry_run_validates_and_reports_without_writing(tmp_path, environment):
    MeterFactory(environment=environment, event_name="api.calls")
    MeterFactory(environment=environment, event_name="old.calls", status=MeterStatus.ARCHIVED)
    CustomerFactory(environment=environment, external_id="acme")
    EventFactory(environment=environment, event_id="imp-1")
    text = jsonl(
        event(1),
        event(2),
        event(3, event_name="API.calls"),
        event(4, event_name="old.calls", external_customer_id="ghost"),
        event(5, timestamp="2026-13-01T00:00:00Z"),
    )
    out, _ = run_failing(write(tmp_path, "events.jsonl", text), dry_run=True)
    assert out.startswith("Dry run of ") and "events.jsonl for environment production: 5 records in" in out
    assert out.splitlines()[0].endswith("Nothing was written.")
    assert "would store:        4 events (1 would replace stored events)" in out
    assert "invalid:            1" in out
    assert "line 5: timestamp:" in out
    assert "no published meter: 2 events (matched by event name" in out
    assert "unknown customer:   1 event (would be stored all the same)" in out
    assert [event.event_id for event in stored()] == ["imp-1"]


def test_dry_run_of_a_clean_file_succeeds(tmp_path, environment):
    out, _ = run(write(tmp_path, "events.jsonl", jsonl(event(1))), dry_run=True)
    assert "would store:        1 event (0 would replace stored events)" in out
    assert stored() == []


# Idempotency and interruption --------------------------------------------------------------------------------


def test_reimport_counts_duplicates_and_never_double_counts(tmp_path, environment):
    path = write(tmp_path, "events.jsonl", jsonl(*[event(index) for index in range(250)]))
    run(path, batch_size=100)
    out, _ = run(path, batch_size=100)
    assert "stored:             250 events (250 replaced stored events)" in out
    assert len(stored(environment)) == 250


def test_redelivery_in_a_later_batch_replaces_the_event(tmp_path, environment):
    path = write(tmp_path, "events.jsonl", jsonl(event(1), event(2), event(1, properties={"tokens": 99})))
    out, _ = run(path, batch_size=2)
    assert "stored:             3 events (1 replaced stored events)" in out
    assert stored_one(event_id="imp-1").properties == {"tokens": 99}


def test_batches_alternating_between_stored_and_new_ids_count_exactly(tmp_path, environment):
    run(write(tmp_path, "first.jsonl", jsonl(*[event(index) for index in range(10)])))
    ids = [*range(5, 10), *range(10, 15), *range(0, 5), *range(15, 20)]  # stored, new, stored, new
    path = write(tmp_path, "second.jsonl", jsonl(*[event(index, properties={"tokens": -index}) for index in ids]))
    out, _ = run(path, batch_size=5)
    assert "stored:             20 events (10 replaced stored events)" in out
    assert len(stored(environment)) == 20
    assert stored_one(event_id="imp-7").properties == {"tokens": -7}


def test_a_backfill_spanning_more_than_a_hundred_months_in_one_batch_is_stored(tmp_path, environment):
    """Ten years of history in one batch: on ClickHouse the rows fall into 120 monthly partitions of one insert,
    past ClickHouse's default limit of 100 per insert (which failed the import there)."""
    months = [event(index, timestamp=f"{2015 + index // 12}-{index % 12 + 1:02d}-01T00:00:00Z") for index in range(120)]
    path = write(tmp_path, "history.jsonl", jsonl(*months))
    out, _ = run(path)
    assert "stored:             120 events (0 replaced stored events)" in out
    moved = [event(index, timestamp="2026-01-01T00:00:00Z") for index in range(120)]  # every one moves month
    out, _ = run(write(tmp_path, "moved.jsonl", jsonl(*moved)))
    assert "stored:             120 events (120 replaced stored events)" in out
    assert {event.timestamp for event in stored(environment)} == {dt.datetime(2026, 1, 1, tzinfo=dt.UTC)}
    assert len(stored(environment)) == 120


def test_repeated_id_within_a_batch_keeps_the_last_and_says_so(tmp_path, environment):
    path = write(tmp_path, "events.jsonl", jsonl(event(1), event(1, properties={"tokens": 7})))
    out, _ = run(path)
    assert "repeated event_id:  1" in out
    assert stored_one(event_id="imp-1").properties == {"tokens": 7}


def test_records_without_event_id_get_stable_ids_so_reimport_does_not_double_count(tmp_path, environment):
    same = {"event_name": "api.calls", "external_customer_id": "acme", "timestamp": "2026-01-01T00:00:00Z"}
    path = write(tmp_path, "events.jsonl", jsonl(same, same, {**same, "external_customer_id": "globex"}))
    run(path)
    first_ids = {event.event_id for event in stored()}
    run(path)
    assert {event.event_id for event in stored()} == first_ids
    assert len(first_ids) == 3  # two identical lines are two events
    assert all(event_id.startswith("event_") for event_id in first_ids)


def test_interrupted_import_keeps_committed_batches_and_a_rerun_completes_it(tmp_path, environment, monkeypatch):
    path = write(tmp_path, "events.jsonl", jsonl(*[event(index) for index in range(30)]))
    real_store = batches.BatchWriter.store
    calls = {"n": 0}

    def failing_store(self, batch):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_store(self, batch)

    monkeypatch.setattr(batches.BatchWriter, "store", failing_store)
    _, error = run_failing(path, batch_size=10)
    assert error == (
        "interrupted after 20 records; 10 events were stored in committed batches, and re-running the import is safe"
    )
    assert len(stored(environment)) == 10
    monkeypatch.setattr(batches.BatchWriter, "store", real_store)
    out, _ = run(path, batch_size=10)
    assert "stored:             30 events (10 replaced stored events)" in out
    assert len(stored(environment)) == 30


def test_ctrl_c_while_a_batch_is_written_lets_it_finish_and_counts_it(tmp_path, environment, monkeypatch):
    path = write(tmp_path, "events.jsonl", jsonl(*[event(index) for index in range(30)]))
    real_store = batches.BatchWriter.store
    calls = {"n": 0}

    def store_then_ctrl_c(self, batch):
        calls["n"] += 1
        result = real_store(self, batch)
        if calls["n"] == 2:
            signal.raise_signal(signal.SIGINT)  # pressed just as the batch committed
        return result

    monkeypatch.setattr(batches.BatchWriter, "store", store_then_ctrl_c)
    _, error = run_failing(path, batch_size=10)
    assert error.startswith("interrupted after 20 records; 20 events were stored in committed batches")
    assert len(stored(environment)) == 20
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# Options and failures ----------------------------------------------------------------------------------------


def test_unknown_environment_is_an_error_unless_created(tmp_path, environment):
    path = write(tmp_path, "events.jsonl", jsonl(event(1)))
    _, error = run_failing(path, environment="staging")
    assert "unknown environment 'staging'" in error
    run(path, environment="staging", create_environment=True)
    staging = Environment.objects.get(slug="staging")
    assert len(stored(staging)) == 1
    assert stored(environment) == []


def test_missing_file_is_a_command_error(tmp_path, environment):
    _, error = run_failing(str(tmp_path / "nope.jsonl"))
    assert "cannot open" in error and "nope.jsonl" in error


@pytest.mark.parametrize("batch_size", [0, 100_001])
def test_batch_size_out_of_range_is_rejected(tmp_path, environment, batch_size):
    _, error = run_failing(write(tmp_path, "events.jsonl", jsonl(event(1))), batch_size=batch_size)
    assert "--batch-size must be between 1 and 100,000" in error


def test_verbosity_zero_prints_nothing(tmp_path, environment):
    out, err = run(write(tmp_path, "events.jsonl", jsonl(event(1))), verbosity=0)
    assert out == "" and err == ""
    assert len(stored()) == 1


def test_progress_bar_shows_rate_and_eta():
    stream = io.StringIO()
    ticks = iter([0.0, 10.0, 20.0])
    bar = ProgressBar(stream, total=1000, interval=0, clock=lambda: next(ticks))
    bar.update(items=50_000, done=250)
    assert stream.getvalue().strip() == "[######------------------]  25%  50,000 events  5,000/s  ETA 0:30"
    bar.finish()
    assert stream.getvalue().splitlines()[-1].endswith("in 0:20")


def test_progress_bar_without_total_shows_count_and_rate():
    stream = io.StringIO()
    ticks = iter([0.0, 4.0])
    ProgressBar(stream, interval=0, clock=lambda: next(ticks)).update(items=1000)
    assert stream.getvalue().strip() == "1,000 events  250/s  0:04 elapsed"


def test_progress_is_drawn_on_stderr_unless_verbosity_is_zero(tmp_path, environment, monkeypatch):
    monkeypatch.setattr(import_events_command, "ProgressBar", functools.partial(ProgressBar, interval=0))
    path = write(tmp_path, "events.jsonl", jsonl(*[event(index) for index in range(30)]))
    out, err = run(path, batch_size=10)
    assert err.splitlines()[0].startswith("[#######---")  # 10 of 30 lines: a third of the bytes
    assert "10 events" in err and "/s  ETA" in err
    assert "30 events" in err.splitlines()[-1]
    assert "Imported" in out
    _, err = run(path, batch_size=10, verbosity=0)
    assert err == ""


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_is_not_drawn_in_the_error_style():
    """Commands draw the bar on stderr, whose OutputWrapper styles every write as an error (red on a terminal);
    the bar is progress, not an error, and is written unstyled."""
    from django.core.management.base import OutputWrapper

    terminal = _Terminal()
    stderr = OutputWrapper(terminal)
    stderr.style_func = lambda text: f"<error>{text}</error>"  # what a colour terminal gets: ERROR
    ticks = iter([0.0, 10.0, 20.0])
    bar = ProgressBar(stderr, total=1000, interval=0, clock=lambda: next(ticks))
    bar.update(items=500, done=500)
    bar.finish()
    drawn = terminal.getvalue()
    assert "<error>" not in drawn
    assert "[############------------]  50%  500 events" in drawn and drawn.endswith("in 0:20\n")


def test_dry_run_and_real_run_print_the_same_summary(tmp_path, environment):
    MeterFactory(environment=environment, event_name="api.calls")
    CustomerFactory(environment=environment, external_id="acme")
    path = write(tmp_path, "events.jsonl", jsonl(event(1), event(2, external_customer_id="ghost"),
                                                 event(3, event_name="other"), "not json"))  # fmt: skip
    dry, _ = run_failing(path, dry_run=True)
    real, _ = run_failing(path)

    def labels(out: str) -> list[str]:
        return [line.split(":")[0].replace("would store", "stored") for line in out.splitlines()[1:]]

    assert labels(dry) == labels(real)
    assert dry.splitlines()[1:5] == [
        "  would store:        3 events (0 would replace stored events)",
        "  invalid:            1 record",
        "  no published meter: 1 event (matched by event name; would be stored all the same)",
        "  unknown customer:   1 event (would be stored all the same)",
    ]
    assert real.splitlines()[1:5] == [
        "  stored:             3 events (0 replaced stored events)",
        "  invalid:            1 record",
        "  no published meter: 1 event (matched by event name; stored all the same)",
        "  unknown customer:   1 event (stored all the same)",
    ]
    assert dry.splitlines()[0].startswith(f"Dry run of {path} for environment production: 4 records in ")
    assert real.splitlines()[0].startswith(f"Imported {path} into environment production: 4 records in ")


def test_source_open_reports_rejected_records_in_order(tmp_path):
    source = source_open(write(tmp_path, "events.jsonl", jsonl(event(1), "x")))
    try:
        items = list(source.records())
    finally:
        source.close()
    assert items[0] == (1, event(1))
    assert isinstance(items[1], Rejected) and items[1].line == 2


def test_a_json_array_file_is_refused_with_a_hint(tmp_path, environment):
    _, error = run_failing(write(tmp_path, "events.json", json.dumps([event(1), event(2)], indent=2)))
    assert "looks like one JSON array" in error and "jq -c" in error
    assert stored() == []


# The rule for what can be stored -----------------------------------------------------------------------------


def _with_number(index: int, literal: str) -> str:
    return json.dumps(event(index, properties={"v": 0})).replace('"v": 0', f'"v": {literal}')


@pytest.mark.parametrize("literal", ["1e999999", "-1e999999", "1e-999999", "1e131072", "1e-16384", "1e131071"])
def test_out_of_range_numbers_go_to_the_rejects_file_and_the_import_goes_on(tmp_path, environment, literal):
    path = write(tmp_path, "events.jsonl", jsonl(event(1), _with_number(2, literal), event(3)))
    rejects = tmp_path / "rejects.jsonl"
    out, error = run_failing(path, rejects=str(rejects))
    assert error == "1 of 3 records were invalid and not imported"
    assert sorted(event.event_id for event in stored()) == ["imp-1", "imp-3"]
    [entry] = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert entry["line"] == 2
    assert list(entry["errors"]) == ["properties.v"]
    assert entry["errors"]["properties.v"].startswith("is out of range: it has ")
    assert "line 2: properties.v: is out of range" in out


def test_rerunning_an_import_with_an_out_of_range_line_imports_the_rest_every_time(tmp_path, environment):
    path = write(tmp_path, "events.jsonl", jsonl(_with_number(1, "1e131071"), *[event(i) for i in range(2, 6)]))
    for _ in range(2):
        run_failing(path)
        assert len(stored(environment)) == 4


def test_dry_run_applies_the_same_rule(tmp_path, environment):
    path = write(tmp_path, "events.jsonl", jsonl(event(1), _with_number(2, "1e999999"), _with_number(3, "1e-16384")))
    out, error = run_failing(path, dry_run=True)
    assert "would store:        1 event (0 would replace stored events)" in out
    assert "invalid:            2" in out
    assert "line 2: properties.v: is out of range" in out
    assert stored() == []


def test_csv_properties_column_follows_the_same_rule(tmp_path, environment):
    text = (
        "event_id,event_name,external_customer_id,timestamp,properties\n"
        'a,api.calls,acme,2026-01-01T00:00:00Z,"{""v"": 1e131071}"\n'
        'b,api.calls,acme,2026-01-01T00:00:00Z,"{""v"": 12}"\n'
    )
    out, error = run_failing(write(tmp_path, "events.csv", text))
    assert error == "1 of 2 records were invalid and not imported"
    assert [event.event_id for event in stored()] == ["b"]
