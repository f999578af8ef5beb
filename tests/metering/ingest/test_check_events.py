"""check_events: finds rows stored before the rule for what can be stored and says what to do (issue #16)."""

import io

import pytest
from django.core.management import CommandError, call_command

from metering.models import Event
from tests.catalog.factories import MeterFactory
from tests.factories import EnvironmentFactory
from tests.metering.test_readers_total import DEEP, HUGE, insert_raw

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def events_in_the_django_database(settings):
    """check_events audits rows stored in the Django database before the rule (they are inserted here with SQL);
    events in ClickHouse only ever arrive validated, so these tests keep the Django events store on every pass."""
    settings.EVENTS_URL = ""


def check(**options) -> tuple[str, str | None]:
    out = io.StringIO()
    try:
        call_command("check_events", stdout=out, stderr=io.StringIO(), **options)
    except CommandError as exc:
        return out.getvalue(), str(exc)
    return out.getvalue(), None


def test_a_clean_database_passes(environment):
    insert_raw(environment, "good", '{"v": 2, "n": {"k": [1, 2.5]}}', 0)
    MeterFactory(environment=environment, aggregation_type="SUM", aggregation_expression="v * 2")
    out, error = check()
    assert error is None
    assert out == "No stored event or meter breaks the rule for what can be stored.\n"


def test_rows_and_meters_stored_before_the_rule_are_reported_with_what_to_do(environment):
    insert_raw(environment, "good", '{"v": 2}', 0)
    insert_raw(environment, "huge", f'{{"v": {HUGE}}}', 1)
    insert_raw(environment, "deep", f'{{"d": {DEEP}}}', 2)
    insert_raw(environment, "tiny", '{"list": [1, 1e-40]}', 3)
    meter = MeterFactory(environment=environment, name="Old", aggregation_type="SUM", aggregation_expression="1e99 * v")
    out, error = check()
    assert out.splitlines() == [
        "production event huge: properties.v: is out of range: it has 131,072 digits before the decimal point "
        "(numbers must be less than 1e38 in magnitude with at most 38 digits after the decimal point)",
        "production event deep: properties: cannot be read: it is nested more than 100 levels deep",
        "production event tiny: properties.list[1]: is out of range: it has 40 digits after the decimal point "
        "(numbers must be less than 1e38 in magnitude with at most 38 digits after the decimal point)",
        f"production meter {meter.public_id} (Old): Number 1E+99 is out of range: constants follow the rule for "
        "stored numbers (numbers must be less than 1e38 in magnitude with at most 38 digits after the decimal point)",
    ]
    assert error == (
        "3 stored events break the rule: re-send each within the rule (the same event_id replaces the stored event) "
        "or delete them with `manage.py check_events --delete`. 1 meters have an expression that no longer compiles "
        "and count nothing: archive each and create a new one with an expression within the rule."
    )
    assert Event.objects.count() == 4


def test_delete_removes_only_the_rows_that_break_the_rule_of_the_chosen_environment(environment):
    other = EnvironmentFactory(slug="sandbox")
    insert_raw(environment, "good", '{"v": 2}', 0)
    insert_raw(environment, "huge", f'{{"v": {HUGE}}}', 1)
    insert_raw(other, "huge", f'{{"v": {HUGE}}}', 1)
    out, error = check(environment="production", delete=True, batch_size=1)
    assert "Deleted 1 events that broke the rule." in out
    assert error is None
    assert sorted(Event.objects.values_list("environment__slug", "event_id")) == [
        ("production", "good"),
        ("sandbox", "huge"),
    ]
    assert check()[1].startswith("1 stored events break the rule")


def test_unknown_environment_is_an_error(environment):
    assert check(environment="nope")[1] == "unknown environment 'nope'"


def test_a_meter_stored_before_the_rule_answers_400_saying_what_to_do_and_is_skipped_by_rollups(api, environment):
    meter = MeterFactory(
        environment=environment, event_name="x", aggregation_type="SUM", aggregation_expression="1e99 * v"
    )
    api.post("/v1/events", {"event_name": "x", "external_customer_id": "c", "properties": {"v": 1}})
    response = api.post("/v1/events/usage/meter", {"meter_id": meter.public_id})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_operation"
    assert response.json()["message"].startswith(
        f"Meter {meter.public_id} cannot be computed: its expression no longer compiles (Number 1E+99 is out of range"
    )
    assert response.json()["message"].endswith("Archive it and create a new one.")
    assert api.get("/v1/events/lookup", {"id": api.get("/v1/events").json()["events"][0]["id"]}).status_code == 200
    call_command("refresh_rollups", stdout=io.StringIO(), stderr=io.StringIO())
