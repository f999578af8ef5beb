"""copy_events_to_clickhouse: Django database → ClickHouse, resumable, idempotent, and verified per meter."""

import io
import uuid
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from metering.clickhouse.config import clickhouse_client, parse_events_url
from metering.clickhouse.copy import verify_copy
from tests.catalog.factories import MeterFactory
from tests.metering.usage.helpers import send

pytestmark = pytest.mark.django_db


@pytest.fixture
def target(chdb_path, settings):
    settings.EVENTS_URL = ""  # the source is the Django database, whichever backend this run tests
    url = f"chdb://{chdb_path}?database=copy_{uuid.uuid4().hex[:8]}"
    backend = parse_events_url(url)
    yield url, backend
    clickhouse_client(backend).command(f"DROP DATABASE IF EXISTS {backend.database}")


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("copy_events_to_clickhouse", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def seed(environment):
    MeterFactory(environment=environment, event_name="tokens", aggregation_type="SUM", aggregation_field="n")
    MeterFactory(environment=environment, event_name="tokens", aggregation_type="COUNT_UNIQUE", aggregation_field="m")
    MeterFactory(environment=environment, event_name="tokens", aggregation_type="LATEST", aggregation_field="n")
    for i, (customer, n) in enumerate([("a", "0.1"), ("a", "0.2"), ("b", "12345678901234567890.5"), ("c", "x")]):
        send(
            environment,
            event_name="tokens",
            timestamp=f"2025-01-0{i + 1}T00:00",
            customer=customer,
            event_id=f"e{i}",
            properties={"n": n, "m": f"model-{i % 2}"},
        )


def test_dry_run_copies_nothing(environment, target):
    url, backend = target
    seed(environment)
    out, _ = run("--url", url, "--dry-run")
    assert "dry run: 4 events to copy" in out
    assert verify_copy(backend).events == {environment.pk: (4, 0)}


def test_copy_then_verify_then_resume_only_the_new_events(environment, target):
    url, backend = target
    seed(environment)
    out, _ = run("--url", url, "--batch-size", "3")
    assert "copied 4 events" in out
    assert "verified: 4 events and the usage of 3 meters agree on both stores" in out

    # a new event and a redelivery in the Django database: the stores now differ, and a re-run fixes it
    send(
        environment, event_name="tokens", timestamp="2025-01-09T00:00", customer="a", event_id="e9", properties={"n": 1}
    )
    verification = verify_copy(backend)
    assert verification.events == {environment.pk: (5, 4)}
    assert len(verification.differences) == 3  # the count, and SUM and LATEST of customer a
    out, _ = run("--url", url)
    assert "copied 1 events" in out and "verified: 5 events" in out


def test_copying_everything_again_never_double_counts(environment, target):
    url, backend = target
    seed(environment)
    run("--url", url, "--no-verify")
    out, _ = run("--url", url, "--restart")
    assert "copied 4 events" in out and "verified" in out
    total = clickhouse_client(backend).query(
        f"SELECT toString(sum(toDecimal256OrNull(numbers['n'], 20))) FROM {backend.database}.events FINAL"
    )
    assert Decimal(total.result_rows[0][0]) == Decimal("12345678901234567890.8")


def test_a_url_that_is_not_clickhouse_is_refused():
    with pytest.raises(CommandError, match="must name ClickHouse"):
        run("--url", "")
