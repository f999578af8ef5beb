import datetime as dt

import pytest

from flexmeter.models import ApiKey
from flexmeter.services import api_key_authenticate, api_key_revoke

pytestmark = pytest.mark.django_db


def test_missing_key_is_401_with_envelope(anonymous_api):
    response = anonymous_api.get("/v1/environment")
    assert response.status_code == 401
    body = response.json()
    assert body["http_status_code"] == 401
    assert set(body) == {"code", "message", "http_status_code", "details"}


def test_unknown_key_is_401(anonymous_api):
    response = anonymous_api.get("/v1/environment", headers={"x-api-key": "fm_not-a-real-key"})
    assert response.status_code == 401


def test_revoked_key_is_401(api, api_key):
    api_key_revoke(api_key=api_key)
    assert api.get("/v1/environment").status_code == 401


def test_bearer_header_is_accepted(anonymous_api, api_key, environment):
    response = anonymous_api.get("/v1/environment", headers={"authorization": f"Bearer {api_key.raw_key}"})
    assert response.status_code == 200
    assert response.json()["id"] == environment.public_id


def test_unknown_api_path_is_json_404(api):
    response = api.get("/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_wrong_content_type_is_400(api):
    response = api.client.post(
        "/v1/meters", "name=x", content_type="application/x-www-form-urlencoded", headers={"x-api-key": api.raw_key}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"


def test_malformed_json_is_400(api):
    response = api.post("/v1/meters", "{not json")
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"


def test_oversized_body_is_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    response = api.post("/v1/meters", {"name": "x" * 200})
    assert response.status_code == 413
    assert response.json()["http_status_code"] == 413


def test_openapi_document_is_served(anonymous_api):
    response = anonymous_api.get("/v1/openapi.json")
    assert response.status_code == 200
    assert response.json()["info"]["title"] == "flexmeter API"


def test_key_use_is_recorded_at_most_once_a_minute(api, api_key):
    assert api.get("/v1/environment").status_code == 200
    api_key.refresh_from_db()
    first_use = api_key.last_used_at
    assert first_use is not None
    assert api.get("/v1/environment").status_code == 200
    api_key.refresh_from_db()
    assert api_key.last_used_at == first_use

    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=first_use - dt.timedelta(minutes=5))
    assert api.get("/v1/environment").status_code == 200
    api_key.refresh_from_db()
    assert api_key.last_used_at > first_use - dt.timedelta(minutes=5)


def test_authenticated_key_carries_its_environment(api_key, environment):
    authenticated = api_key_authenticate(api_key.raw_key)
    assert authenticated.pk == api_key.pk
    assert authenticated.environment.public_id == environment.public_id
    assert authenticated.environment.slug == environment.slug
