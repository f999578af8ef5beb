"""API-key authentication: `x-api-key: KEY` or `Authorization: Bearer KEY`. The key fixes the environment."""

from django.http import HttpRequest, JsonResponse
from ninja.security import APIKeyHeader

from flexmeter.envelope import error_response
from flexmeter.services import api_key_authenticate

UNAUTHORIZED_MESSAGE = "Missing, unknown or revoked API key"


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


class ApiKeyAuth(APIKeyHeader):
    """Sets `request.environment` and `request.api_key` on success; ninja answers 401 otherwise."""

    param_name = "x-api-key"

    def _get_key(self, request: HttpRequest) -> str | None:
        return raw_key_from_request(request)

    def authenticate(self, request: HttpRequest, key: str | None):
        api_key = api_key_authenticate(key or "")
        if api_key is None:
            return None
        request.api_key = api_key
        request.environment = api_key.environment
        return api_key
