"""What an access check reads on PostgreSQL: the subscriptions of the customers asked about, never every subscriber of
their plans, whatever the planner's statistics say (a fresh table has none). Counted with the row counters of the
current transaction (pg_stat_xact_user_tables)."""

import pytest
from django.db import connection

from entitlements import selectors
from entitlements.models import Subscription
from flexmeter.ids import new_public_id
from metering.models import Customer
from tests.entitlements.helpers import customer, grant, metered_feature, plan
from tests.metering.usage.helpers import at, send

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row counters of PostgreSQL"),
]

OTHER_SUBSCRIBERS = 2000


def _subscription_rows_read(check) -> int:
    def read_so_far() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables "
                "WHERE relname = %s",
                [Subscription._meta.db_table],
            )
            row = cursor.fetchone()
        return row[0] if row else 0

    before = read_so_far()
    check()
    return read_so_far() - before


def _other_subscribers(environment, shared, count: int) -> None:
    """`count` customers other-0… each subscribed to `shared` since 2025-01-01."""
    others = Customer.objects.bulk_create(
        Customer(
            environment=environment,
            public_id=new_public_id("cust"),
            external_id=f"other-{number}",
            billing_anchor=at("2025-01-01T00:00"),
        )
        for number in range(count)
    )
    Subscription.objects.bulk_create(
        Subscription(
            environment=environment,
            public_id=new_public_id("sub"),
            customer=other,
            plan=shared,
            start_date=at("2025-01-01T00:00"),
            billing_anchor=at("2025-01-01T00:00"),
        )
        for other in others
    )


def test_a_check_reads_the_subscriptions_of_its_customers_only(environment):
    calls = metered_feature(environment)
    shared = plan(environment, "Base")
    holder = customer(environment, external_id="acme")
    grant(environment, holder, calls, usage_limit=10, plan_obj=shared)
    grant(environment, holder, calls, usage_limit=5)  # an add-on: two subscriptions of its own
    send(environment, event_name="api.calls", customer="acme", timestamp="2025-01-02T00:00")
    _other_subscribers(environment, shared, OTHER_SUBSCRIBERS)
    moment = at("2025-01-15T00:00")

    single = selectors.customer_feature_access(customer=holder, feature_ref="api_calls", at=moment)
    assert (single.access.usage, single.combined.usage_limit) == (1, 15)

    reads = _subscription_rows_read(
        lambda: selectors.customer_feature_access(customer=holder, feature_ref="api_calls", at=moment)
    )
    batch_pairs = [("acme", "api_calls"), ("other-7", "api_calls"), ("other-8", "api_calls")]
    batch_reads = _subscription_rows_read(
        lambda: selectors.access_check_many(environment=environment, pairs=batch_pairs, at=moment)
    )

    assert reads == 2  # the holder's own two subscriptions, not the 2,001 of the shared plan
    assert batch_reads == 4  # two of the holder's, one each of the two others


def test_a_single_checks_prepared_statement_is_not_planned_again_on_every_run(environment):
    """Prepared, a single check's resolving statement keeps one generic plan: spelled with `= ANY(array)` PostgreSQL
    estimated more rows for the generic plan than for each run's own, and planned every run anew (about 0.5 ms of a
    1 ms statement)."""
    calls = metered_feature(environment)
    shared = plan(environment, "Base")
    holder = customer(environment, external_id="acme")
    grant(environment, holder, calls, usage_limit=10, plan_obj=shared)
    _other_subscribers(environment, shared, 700)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # statistics as autovacuum keeps them: the estimates the plans are weighed by
    moment = at("2025-01-15T00:00")
    for _ in range(16):  # psycopg prepares after 5 runs (DATABASE_PREPARE_THRESHOLD); PostgreSQL then weighs 5 plans
        selectors.customer_feature_access(customer=holder, feature_ref="api_calls", at=moment)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE %s",
            [f"%FROM {Customer._meta.db_table} c WHERE c.environment_id%"],
        )
        (generic, custom), *more = cursor.fetchall()
    assert more == []
    assert (custom, generic) == (5, 6)
