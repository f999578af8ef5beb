"""API-key authentication: `x-api-key: KEY` or `Authorization: Bearer KEY`. The key fixes the environment."""

import time

from django.http import HttpRequest, JsonResponse
from ninja.security import APIKeyHeader

from flexmeter.envelope import error_response
from flexmeter.models import hash_api_key
from flexmeter.services import api_key_authenticate

UNAUTHORIZED_MESSAGE = "Missing, unknown or revoked API key"

# Hashes of keys found valid in the last PRECHECK_TTL seconds, with the monotonic time they stop counting.
PRECHECK_TTL = 60.0
PRECHECK_MAX_KEYS = 10_000
_recently_valid: dict[str, float] = {}


def unauthorized_response() -> JsonResponse:
    return error_response(code="unauthorized", message=UNAUTHORIZED_MESSAGE, status=401)


def raw_key_from_request(request: HttpRequest) -> str | None:
    # META rather than request.headers: building the headers mapping costs more than the rest of this function.
    key = request.META.get("HTTP_X_API_KEY")
    if key:
        return key.strip()
    authorization = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def api_key_precheck(request: HttpRequest) -> bool:
    """Whether the request's key is worth reading a body for: valid now, or found valid in the last minute.

    Runs before any /v1 write body is read, so a client without a valid key cannot hold a thread by sending
    its body slowly. It only gates the body: the view still authenticates the key itself (the single-event ingest
    in its write statement, ninja through ApiKeyAuth), so a key revoked within the minute still gets 401, only
    after its body was read. The minute saves the hot single-event path a second query per request.
    """
    raw_key = raw_key_from_request(request)
    if not raw_key:
        return False
    digest = hash_api_key(raw_key)
    now = time.monotonic()
    if _recently_valid.get(digest, 0.0) > now:
        return True
    api_key = api_key_authenticate(raw_key)
    if api_key is None:
        return False
    request.prechecked_api_key = api_key
    if len(_recently_valid) >= PRECHECK_MAX_KEYS:
        _recently_valid.clear()
    _recently_valid[digest] = now + PRECHECK_TTL
    return True


class ApiKeyAuth(APIKeyHeader):
    """Sets `request.environment` and `request.api_key` on success; ninja answers 401 otherwise."""

    param_name = "x-api-key"

    def _get_key(self, request: HttpRequest) -> str | None:
        return raw_key_from_request(request)

    def authenticate(self, request: HttpRequest, key: str | None):
        # Authenticated moments ago by api_key_precheck, in this request: no second query.
        api_key = getattr(request, "prechecked_api_key", None) or api_key_authenticate(key or "")
        if api_key is None:
            return None
        request.api_key = api_key
        request.environment = api_key.environment
        return api_key
