"""Usage of one meter for many customers, each over its own window, in one statement (`usage_for_customer_windows`)."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from flexmeter.errors import ValidationFailed
from metering.usage.rollups import read
from metering.usage.rollups.refresh import rollups_refresh
from metering.usage.selectors import meter_usage, usage_for_customer_windows
from tests.catalog.factories import MeterFactory
from tests.metering.usage.helpers import at, on_clickhouse, send, usage_statements
from tests.metering.usage.test_rollups import METERS, meter, seed

# each customer its own billing period: edges inside days and quarter hours, whole months, a customer without events
WINDOWS = {
    "a": (at("2025-01-03T09:30"), at("2025-01-27T04:00")),
    "b": (at("2025-01-01T00:00"), at("2025-02-01T00:00")),
    "heavy": (at("2025-01-10T00:07"), at("2025-03-09T06:20")),
    "nobody": (at("2025-01-01T00:00"), at("2025-02-01T00:00")),
}


def singles(usage_meter, windows) -> dict:
    return {
        customer: meter_usage(meter=usage_meter, customer_external_id=customer, start=start, end=end).value
        for customer, (start, end) in windows.items()
    }


@pytest.mark.django_db
def test_each_customer_is_counted_over_its_own_window(environment):
    count = MeterFactory(environment=environment, event_name="calls", aggregation_type="COUNT", aggregation_field="")
    total = MeterFactory(environment=environment, event_name="calls", aggregation_type="SUM", aggregation_field="n")
    for customer, day, n in [("a", 1, 1), ("a", 5, 2), ("a", 20, 4), ("b", 1, 10), ("b", 5, 20), ("b", 20, 40)]:
        send(
            environment,
            event_name="calls",
            timestamp=f"2025-01-{day:02d}T12:00",
            customer=customer,
            properties={"n": n},
        )
    windows = {
        "a": (at("2025-01-05T00:00"), at("2025-02-05T00:00")),  # the 5th and the 20th
        "b": (at("2025-01-01T12:00"), at("2025-01-05T12:00")),  # the 1st (start inclusive), not the 5th (end excluded)
        "c": (at("2025-01-01T00:00"), at("2025-02-01T00:00")),  # no events
    }

    assert usage_for_customer_windows(meter=count, windows=windows) == {
        "a": Decimal(2),
        "b": Decimal(1),
        "c": Decimal(0),
    }
    assert usage_for_customer_windows(meter=total, windows=windows) == {
        "a": Decimal(6),
        "b": Decimal(10),
        "c": Decimal(0),
    }
    assert usage_for_customer_windows(meter=total, windows={}) == {}


@pytest.mark.django_db
@pytest.mark.parametrize("name", list(METERS))
def test_every_aggregation_equals_the_single_customer_query(environment, name):
    usage_meter = meter(environment, name)
    seed(environment)

    assert usage_for_customer_windows(meter=usage_meter, windows=WINDOWS) == singles(usage_meter, WINDOWS)


@pytest.mark.django_db
def test_the_numbers_of_the_seeded_customers(environment):
    """A few of the comparisons above pinned as numbers, so both sides cannot be wrong together."""
    seed(environment)
    answers = {
        name: usage_for_customer_windows(meter=meter(environment, name), windows=WINDOWS)
        for name in ("COUNT", "SUM", "MAX", "LATEST", "COUNT_UNIQUE of g")
    }
    # a: the even days 4-26 × 4 hours, plus 24 around midnight on Jan 15 and 16 (3 hours × 4 quarters × 2 days);
    # b: the even days 2-28 × 4; heavy: the even days 10-28 × 4, the same 24, then 7 events on March 8 and 3 on
    # March 9 before 06:20
    assert answers["COUNT"] == {"a": Decimal(72), "b": Decimal(56), "heavy": Decimal(74), "nobody": Decimal(0)}
    assert answers["COUNT_UNIQUE of g"] == {"a": Decimal(2), "b": Decimal(2), "heavy": Decimal(2), "nobody": Decimal(0)}
    assert answers["LATEST"]["nobody"] is None and answers["MAX"]["nobody"] is None


@pytest.mark.django_db
def test_one_statement_whatever_the_number_of_customers(environment):
    usage_meter = meter(environment, "SUM")
    seed(environment)
    many = {f"c{i}": (at(f"2025-01-{1 + i % 20:02d}T0{i % 10}:00"), at("2025-02-01T00:00")) for i in range(60)}

    counts = []
    for windows in ({"a": WINDOWS["a"]}, WINDOWS, {**WINDOWS, **many}):
        read._recent_coverage.clear()  # each looks coverage up (within a minute of the same lookup it would not)
        with CaptureQueriesContext(connection) as captured:
            usage_for_customer_windows(meter=usage_meter, windows=windows)
        counts.append(len(captured.captured_queries))

    assert counts == [usage_statements()] * 3


@pytest.mark.django_db
def test_the_customers_ranges_drive_the_read_of_events(environment):
    """Each customer's raw range is one index range scan inside a loop over the ranges; a plan that reads the events
    of the meter and looks each one up among the ranges took over a minute for 10,000 customers on SQLite, and
    PostgreSQL scanned every event of the meter."""
    if on_clickhouse():
        pytest.skip("ClickHouse reads the events of the meter once by design")
    usage_meter = meter(environment, "SUM")
    seed(environment)
    statements = []

    def keep(execute, sql, params, many, context):
        statements.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(keep):
        usage_for_customer_windows(meter=usage_meter, windows=WINDOWS)
    sql, params = statements[-1]
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
            steps = [row[3] for row in cursor.fetchall()]
            ranges = next(i for i, step in enumerate(steps) if "json_each" in step or "VIRTUAL TABLE" in step)
            events = next(i for i, step in enumerate(steps) if "event_usage_lookup" in step)
            assert ranges < events, steps
            assert "SEARCH e USING" in steps[events], steps
        else:
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("EXPLAIN " + sql, params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            # the ranges are the outer side of a nested loop and each events scan inside is bounded by one range
            outer = plan.index("Function Scan on json_to_recordset cw", plan.index("Nested Loop"))
            assert "cw.c" in plan[plan.index("on metering_event", outer) :], plan
            assert "Seq Scan on metering_event" not in plan, plan


@pytest.mark.django_db
def test_a_window_that_makes_no_sense_is_refused(environment):
    usage_meter = meter(environment, "SUM")
    naive = at("2025-01-01T00:00").replace(tzinfo=None)

    with pytest.raises(ValidationFailed) as refused:
        usage_for_customer_windows(
            meter=usage_meter,
            windows={"a": (at("2025-02-01T00:00"), at("2025-01-01T00:00")), "b": (naive, at("2025-01-02T00:00"))},
        )

    assert refused.value.details == {
        "windows.a.end": "end must not be before start",
        "windows.b.start": "must carry a time zone offset",
    }


postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql" or on_clickhouse(), reason="rollups are a PostgreSQL feature"
)


@postgres_only
@pytest.mark.django_db(transaction=True)  # rollups see committed writes only
@pytest.mark.parametrize("name", list(METERS))
def test_rolled_up_days_and_quarters_give_the_same_numbers(environment, name):
    usage_meter = meter(environment, name)
    seed(environment)
    raw = usage_for_customer_windows(meter=usage_meter, windows=WINDOWS)
    assert rollups_refresh().days > 0
    read._recent_coverage.clear()  # the coverage remembered before the refresh had no rollups (still exact)

    with CaptureQueriesContext(connection) as captured:
        rolled = usage_for_customer_windows(meter=usage_meter, windows=WINDOWS)

    assert rolled == raw == singles(usage_meter, WINDOWS)
    statement = [q["sql"] for q in captured.captured_queries if q["sql"] not in ("BEGIN", "COMMIT")][-1]
    assert "metering_rollup" in statement  # the rollups were read, not only raw events


@pytest.mark.skipif(connection.vendor != "postgresql", reason="rollups are a PostgreSQL feature")
@pytest.mark.django_db(transaction=True)  # rollups see committed writes only
def test_rolled_up_days_can_be_read_from_the_index_alone(environment):
    """The rollup rows are wide (quarter-hour arrays): the per-customer indexes carry what a read of whole days takes
    (migration 0010) and the refresh leaves the visibility map set, so PostgreSQL can answer from the index without
    fetching a row. Reading the table took 0.8 s of a 1.1 s read of 10,000 customers at 10M events (the plan on that
    data is an index-only scan with no heap fetch; on a few test rows the planner may pick any index)."""
    meter(environment, "SUM")
    meter(environment, "COUNT_UNIQUE")
    seed(environment)
    rollups_refresh()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, array_agg(a.attname ORDER BY a.attnum) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_attribute a ON a.attrelid = c.oid "
            "WHERE c.relname IN ('metering_rollup_customer', 'metering_rollup_distinct_customer') GROUP BY c.relname"
        )
        columns = dict(cursor.fetchall())
        cursor.execute(
            "SELECT relname, relpages, relallvisible FROM pg_class "
            "WHERE relname IN ('metering_rollup', 'metering_rollup_distinct') ORDER BY relname"
        )
        visibility = cursor.fetchall()
    assert columns == {
        "metering_rollup_customer": ["definition_id", "customer", "day", "n1", "n2", "latest"],
        "metering_rollup_distinct_customer": ["definition_id", "customer", "day", "value"],
    }
    assert [pages for _, pages, _ in visibility] != [0, 0]
    assert visibility == [(table, pages, pages) for table, pages, _ in visibility]


@pytest.mark.django_db(transaction=True)
def test_a_read_for_many_customers_gets_more_memory_for_its_own_transaction_only(environment, settings):
    """COUNT_UNIQUE over 10,000 customers hashed 370,000 (customer, value) pairs and spilled them to disk with the
    default work_mem (1.7-1.9 s instead of 1.2 s in the alerts benchmark): from BULK_CUSTOMERS on, the read's
    transaction raises it, and the connection goes back to the pool with the server's own."""
    if connection.vendor != "postgresql":
        pytest.skip("work_mem is PostgreSQL's")
    from metering.usage.customer_windows import BULK_CUSTOMERS

    settings.USAGE_BULK_WORK_MEM_MB = 7
    usage_meter = meter(environment, "COUNT_UNIQUE")
    seed(environment)
    many = {f"c{i}": WINDOWS["b"] for i in range(BULK_CUSTOMERS)} | {"a": WINDOWS["a"], "b": WINDOWS["b"]}

    def show_work_mem() -> str:
        with connection.connection.cursor() as raw:  # the same session, past Django's statement wrappers
            return raw.execute("SHOW work_mem").fetchone()[0]

    server_default = show_work_mem()
    seen = []

    def note_work_mem(execute, sql, params, many_, context):
        if "metering_event" in sql:
            seen.append(show_work_mem())
        return execute(sql, params, many_, context)

    with connection.execute_wrapper(note_work_mem):
        bulk = usage_for_customer_windows(meter=usage_meter, windows=many)
        few = usage_for_customer_windows(meter=usage_meter, windows={"a": WINDOWS["a"], "b": WINDOWS["b"]})

    assert seen == ["7MB", server_default]
    assert show_work_mem() == server_default
    expected = singles(usage_meter, {"a": WINDOWS["a"], "b": WINDOWS["b"]})
    assert {"a": bulk["a"], "b": bulk["b"]} == {"a": few["a"], "b": few["b"]} == expected
