"""Fixtures shared by every test: environments, API clients with keys, a logged-in dashboard client."""

import json
import os
import uuid

import pytest
from django.test import Client

from tests.factories import ApiKeyFactory, EnvironmentFactory, UserFactory


class ApiClient:
    """A JSON client for /v1 that sends an API key, so tests read like API calls."""

    def __init__(self, raw_key: str | None):
        self.raw_key = raw_key
        self.client = Client()

    def _headers(self, headers: dict | None) -> dict:
        merged = {"x-api-key": self.raw_key} if self.raw_key else {}
        merged.update(headers or {})
        return merged

    def get(self, path: str, params: dict | None = None, headers: dict | None = None):
        return self.client.get(path, params or {}, headers=self._headers(headers))

    def post(self, path: str, body=None, headers: dict | None = None):
        data = body if isinstance(body, (str, bytes)) else json.dumps(body if body is not None else {})
        return self.client.post(path, data, content_type="application/json", headers=self._headers(headers))

    def put(self, path: str, body=None, headers: dict | None = None):
        return self.client.put(
            path, json.dumps(body or {}), content_type="application/json", headers=self._headers(headers)
        )

    def delete(self, path: str, headers: dict | None = None):
        return self.client.delete(path, headers=self._headers(headers))


@pytest.fixture
def environment():
    return EnvironmentFactory(slug="production", name="Production")


@pytest.fixture
def other_environment():
    return EnvironmentFactory(slug="sandbox", name="Sandbox")


@pytest.fixture
def api_key(environment):
    return ApiKeyFactory(environment=environment)


@pytest.fixture
def api(api_key) -> ApiClient:
    """API client authenticated for `environment`."""
    return ApiClient(api_key.raw_key)


@pytest.fixture
def other_api(other_environment) -> ApiClient:
    """API client authenticated for `other_environment`, for isolation tests."""
    return ApiClient(ApiKeyFactory(environment=other_environment).raw_key)


@pytest.fixture
def anonymous_api() -> ApiClient:
    return ApiClient(None)


@pytest.fixture
def user(db):
    return UserFactory(username="admin")


@pytest.fixture
def dashboard(user, environment) -> Client:
    """A logged-in dashboard client whose current environment is `environment`."""
    client = Client()
    client.force_login(user)
    return client


# FLEXMETER_TEST_EVENTS=chdb runs the selected tests with events in ClickHouse (chdb, in-process): every test gets
# its own database in one data directory per run (chdb opens one directory per process).
EVENTS_UNDER_TEST = os.environ.get("FLEXMETER_TEST_EVENTS", "")


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory):
    return tmp_path_factory.mktemp("chdb")


def chdb_backend(chdb_path):
    """A fresh ClickHouse events database on chdb: (backend, drop)."""
    from metering.clickhouse.config import CHDB, EventsBackend, clickhouse_client
    from metering.clickhouse.schema import schema_statements

    database = f"t_{uuid.uuid4().hex[:12]}"
    backend = EventsBackend(kind=CHDB, url=f"chdb://{chdb_path}?database={database}", database=database)
    client = clickhouse_client(backend)
    for statement in schema_statements(database):
        client.command(statement)
    return backend, lambda: client.command(f"DROP DATABASE IF EXISTS {database}")


@pytest.fixture(autouse=True)
def events_under_test(request, settings):
    if EVENTS_UNDER_TEST != "chdb":
        yield None
        return
    backend, drop = chdb_backend(request.getfixturevalue("chdb_path"))
    settings.EVENTS_URL = backend.url
    yield backend
    drop()


@pytest.fixture(autouse=True)
def coverage_forgotten():
    """Each test starts with no remembered rollup coverage (metering/usage/rollups/read.py): a test's first usage
    read looks coverage up, as a process's first read does."""
    from metering.usage.rollups import read

    read._recent_coverage.clear()
    yield
    read._recent_coverage.clear()
