"""Plans PostgreSQL chooses for the dashboard's reads of many events. The tables here are small, so table scans are
priced out: what is left is the index the planner would pick on a large table."""

import pytest
from django.db import connection

from metering.usage.dialects import dialect_for
from metering.usage.dialects.base import Params
from metering.usage.engine import TOTAL, part_sql
from metering.usage.selectors import usage_query_build
from metering.usage.spec import AggregationSpec
from tests.catalog.factories import MeterFactory
from tests.metering.usage.helpers import at, send

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's plans"),
]


def explain(sql: str, params) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(line for (line,) in cursor.fetchall())


def test_one_name_over_a_time_range_for_all_customers_reads_the_name_and_time_index(environment):
    meter = MeterFactory(environment=environment, event_name="api.calls")
    for hour in range(10):
        send(environment, event_name="api.calls", timestamp=f"2025-01-02T{hour:02d}:00", customer=f"c{hour}")
    query = usage_query_build(spec=AggregationSpec.from_meter(meter), environment_id=environment.pk,
                              start=at("2025-01-02T00:00"), end=at("2025-01-03T00:00"))  # fmt: skip
    params = Params()
    raw_part = part_sql(query, 0, TOTAL, dialect_for(connection), params, query.start, query.end)
    plan = explain(raw_part, params.values)
    # event_usage_lookup puts the customer before the time: for all customers it walks every entry of the name
    assert "event_name_time" in plan, plan
