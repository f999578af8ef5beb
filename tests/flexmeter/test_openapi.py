"""The OpenAPI document tells the truth (issue #16): every error answer is documented with the envelope, and a
schemathesis run against the served document finds no server error and no answer outside the document."""

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis import checks

from flexmeter.api import operation_error_statuses
from flexmeter.wsgi import application

pytestmark = pytest.mark.django_db

ENVELOPE_REF = {"$ref": "#/components/schemas/ErrorOut"}
# Each operation gets this many generated requests: the whole document in about two minutes per database on a
# quiet machine (48 operations).
EXAMPLES_PER_OPERATION = 10


def test_every_operation_documents_its_error_answers_with_the_envelope(anonymous_api):
    document = anonymous_api.get("/v1/openapi.json").json()

    envelope = document["components"]["schemas"]["ErrorOut"]
    assert set(envelope["required"]) == {"code", "message", "http_status_code", "details"}
    operations = [(path, method, op) for path, ops in document["paths"].items() for method, op in ops.items()]
    assert len(operations) >= 28
    for path, method, operation in operations:
        documented = {int(status) for status in operation["responses"] if int(status) >= 400}
        assert documented == set(operation_error_statuses(path, method)), (method, path)
        assert {400, 401, 500, 503} <= documented
        for status in documented:
            assert operation["responses"][str(status)]["content"]["application/json"]["schema"] == ENVELOPE_REF


@pytest.mark.parametrize(
    ("path", "method", "expected"),
    [
        ("/v1/meters", "get", [400, 401, 500, 503]),
        ("/v1/meters", "post", [400, 401, 408, 409, 413, 500, 503]),
        ("/v1/meters/{meter_id}", "get", [400, 401, 404, 405, 500, 503]),
        ("/v1/events/lookup", "get", [400, 401, 404, 500, 503]),
        ("/v1/events", "post", [400, 401, 408, 413, 500, 503]),
    ],
)
def test_error_statuses_per_operation(path, method, expected):
    assert operation_error_statuses(path, method) == expected


# Loaded from the running application, as a client would: the document served at /v1/openapi.json.
served = schemathesis.openapi.from_wsgi("/v1/openapi.json", application)


@pytest.fixture
def connections_kept_open():
    """The WSGI transport runs whole requests, whose end closes the database connection; inside the test's
    transaction that must not happen (Django's own test client disconnects the same signal handlers)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@served.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_answers_within_its_document(case, api_key, connections_kept_open):
    case.call_and_validate(
        headers={"x-api-key": api_key.raw_key},
        checks=[
            checks.not_a_server_error,
            checks.status_code_conformance,
            checks.content_type_conformance,
            checks.response_schema_conformance,
        ],
    )
