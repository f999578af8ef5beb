"""A request that fails because the database cannot be reached, or because the database rolled its transaction back
for a concurrent one (a deadlock, a serialization failure, SQLite's write lock), answers 503 with Retry-After, never
500: the JSON envelope with code `service_unavailable` under /v1, a plain page on the dashboard."""

import sqlite3
import time

import django.db.utils
import psycopg
import psycopg.errors
import psycopg_pool
import pytest
from django.db import close_old_connections, connection
from django.test import Client

from flexmeter.db import CONFLICT_MESSAGE, is_database_unavailable, is_transaction_conflict, retry_later_message

pytestmark = pytest.mark.django_db


def wrapped(error: Exception) -> django.db.utils.Error:
    """`error` as Django raises it: its own exception class, caused by psycopg's."""
    django_class = getattr(django.db.utils, type(error).__mro__[1].__name__, django.db.utils.OperationalError)
    if isinstance(error, psycopg.InterfaceError):
        django_class = django.db.utils.InterfaceError
    elif isinstance(error, psycopg.OperationalError):
        django_class = django.db.utils.OperationalError
    try:
        raise django_class(str(error)) from error
    except django.db.utils.Error as exc:
        return exc


@pytest.mark.parametrize(
    "error",
    [
        psycopg.OperationalError("connection failed: Connection refused"),
        psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly"),
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
        psycopg.errors.CannotConnectNow("the database system is starting up"),
        psycopg.errors.ConnectionFailure("connection failure"),
        psycopg_pool.PoolTimeout("couldn't get a connection after 10.00 sec"),
        psycopg.InterfaceError("the connection is closed"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_unreachable_database_errors_count_as_an_outage(error):
    assert is_database_unavailable(wrapped(error))
    assert is_database_unavailable(error)


@pytest.mark.parametrize(
    "error",
    [
        psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
        psycopg.errors.DeadlockDetected("deadlock detected"),
        psycopg.errors.UniqueViolation("duplicate key value"),
        psycopg.errors.NumericValueOutOfRange("numeric field overflow"),
        ValueError("not a database error"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_errors_of_a_working_database_do_not(error):
    assert not is_database_unavailable(error)


@pytest.mark.parametrize(
    "error",
    [
        psycopg.errors.DeadlockDetected("deadlock detected"),
        psycopg.errors.SerializationFailure("could not serialize access due to concurrent update"),
        sqlite3.OperationalError("database is locked"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_transactions_rolled_back_for_a_concurrent_one_may_be_sent_again(error):
    as_django_raises = wrapped(error) if isinstance(error, psycopg.Error) else _sqlite_wrapped(error)
    assert is_transaction_conflict(as_django_raises)
    assert retry_later_message(as_django_raises) == CONFLICT_MESSAGE
    assert not is_database_unavailable(as_django_raises)


@pytest.mark.parametrize(
    "error",
    [
        psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
        psycopg.errors.UniqueViolation("duplicate key value"),
        sqlite3.OperationalError("no such table: metering_event"),
        ValueError("not a database error"),
    ],
    ids=lambda error: str(error)[:20],
)
def test_other_failures_are_not_worth_sending_again(error):
    assert retry_later_message(error) is None


def _sqlite_wrapped(error: sqlite3.Error) -> django.db.utils.Error:
    try:
        raise django.db.utils.OperationalError(str(error)) from error
    except django.db.utils.Error as exc:
        return exc


def refuse(*args, **kwargs):
    raise wrapped(psycopg.OperationalError("connection failed: Connection refused"))


def deadlock(*args, **kwargs):
    raise wrapped(psycopg.errors.DeadlockDetected("deadlock detected"))


def assert_unavailable_envelope(response):
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json() == {
        "code": "service_unavailable",
        "message": "The database is unavailable; retry the request later",
        "http_status_code": 503,
        "details": {},
    }


@pytest.fixture
def api(api):
    """The API client, answering as the server would instead of re-raising what reaches handler500."""
    api.client = Client(raise_request_exception=False)
    return api


def test_ninja_operation_answers_503(api, monkeypatch):
    monkeypatch.setattr("flexmeter.auth.api_key_authenticate", refuse)
    assert_unavailable_envelope(api.get("/v1/environment"))


def test_key_check_before_the_body_answers_503(api, monkeypatch):
    # The precheck runs in middleware, outside any view: Django's handler500 answers.
    monkeypatch.setattr("flexmeter.auth.api_key_authenticate", refuse)
    assert_unavailable_envelope(api.post("/v1/customers", {"external_id": "a", "name": "A"}))


def test_single_event_ingest_answers_503(api, monkeypatch):
    assert api.post("/v1/events", {"event_name": "warm", "external_customer_id": "c"}).status_code == 202
    monkeypatch.setattr("metering.api.ingest_view.events_store_for_key", refuse)
    assert_unavailable_envelope(api.post("/v1/events", {"event_name": "a", "external_customer_id": "c"}))


def test_ingest_that_met_a_deadlock_answers_503_so_the_client_sends_it_again(api, monkeypatch):
    # Two redeliveries moving events between the same two customers in opposite directions can deadlock on their
    # usage marks; PostgreSQL rolls one back whole, so nothing of it was stored and a retry is safe. It was a 500.
    monkeypatch.setattr("metering.api.ingest_view.events_store_for_key", deadlock)
    response = api.post("/v1/events", {"event_name": "a", "external_customer_id": "c"})
    assert (response.status_code, response["Retry-After"]) == (503, "5")
    assert response.json()["message"] == CONFLICT_MESSAGE
    monkeypatch.setattr("flexmeter.auth.api_key_authenticate", deadlock)
    response = api.get("/v1/environment")  # a ninja operation
    assert (response.status_code, response.json()["code"]) == (503, "service_unavailable")


def test_dashboard_request_that_met_a_deadlock_answers_a_plain_503(dashboard, monkeypatch):
    dashboard.raise_request_exception = False
    monkeypatch.setattr("flexmeter.middleware._session_environment", deadlock)
    response = dashboard.get("/customers/")
    assert (response.status_code, response["Retry-After"]) == (503, "5")
    assert b"nothing was saved" in response.content


def test_dashboard_answers_a_plain_503(dashboard, monkeypatch):
    dashboard.raise_request_exception = False
    monkeypatch.setattr("flexmeter.middleware._session_environment", refuse)
    response = dashboard.get("/customers/")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response["Content-Type"].startswith("text/html")
    assert b"Temporarily unavailable" in response.content


def test_other_crashes_stay_500_in_the_envelope(api, monkeypatch):
    def crash(*args, **kwargs):
        raise wrapped(psycopg.errors.NumericValueOutOfRange("numeric field overflow"))

    monkeypatch.setattr("flexmeter.auth.api_key_authenticate", crash)
    response = api.post("/v1/customers", {"external_id": "a", "name": "A"})
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"


@pytest.mark.django_db(transaction=True)
def test_postgres_connections_killed_under_a_request_answer_503_then_recover(api):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    assert api.get("/v1/environment").status_code == 200
    settings_dict = connection.settings_dict
    with psycopg.connect(
        host=settings_dict["HOST"] or "127.0.0.1",
        port=settings_dict["PORT"] or 5432,
        user=settings_dict["USER"],
        password=settings_dict["PASSWORD"] or None,
        dbname=settings_dict["NAME"],
        autocommit=True,
    ) as admin:
        killed = [
            pid
            for pid, terminated in admin.execute(
                "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
            if terminated
        ]
        assert killed
        # termination is a signal: on a loaded machine a backend may still answer for a moment
        for _ in range(100):
            if not admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = ANY(%s)", [killed]).fetchone():
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"backends {killed} still run 5 s after pg_terminate_backend")
    statuses = []
    for _ in range(5):
        # What request_finished does in a real server (the test client leaves it out): a connection that failed
        # and is no longer usable is closed, so the pool drops it.
        close_old_connections()
        response = api.get("/v1/environment")
        statuses.append(response.status_code)
        if response.status_code == 503:
            assert_unavailable_envelope(response)
        if response.status_code == 200:
            break
    assert statuses[0] == 503
    assert statuses[-1] == 200
    assert set(statuses) <= {200, 503}


def test_a_refused_connection_answers_503(api, monkeypatch):
    """psycopg's real 'connection refused' (a closed port), raised where the request needs the database."""

    def connect_to_closed_port(raw_key):
        with psycopg.connect(host="127.0.0.1", port=1, dbname="flexmeter", user="postgres", connect_timeout=2):
            raise AssertionError("port 1 accepted a connection")

    monkeypatch.setattr("flexmeter.auth.api_key_authenticate", connect_to_closed_port)
    assert_unavailable_envelope(api.post("/v1/events", {"event_name": "a", "external_customer_id": "c"}))
    assert_unavailable_envelope(api.get("/v1/environment"))
