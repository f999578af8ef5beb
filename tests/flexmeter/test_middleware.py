"""Sessions, CSRF, the logged-in user and messages serve the dashboard; /v1 requests skip them."""

import pytest
from django.http import HttpResponse
from django.test import Client, RequestFactory

from flexmeter.middleware import (
    DashboardAuthenticationMiddleware,
    DashboardCsrfViewMiddleware,
    DashboardMessageMiddleware,
    DashboardSessionMiddleware,
)

pytestmark = pytest.mark.django_db


def seen_by_view(path: str) -> set[str]:
    """Which of session / user / _messages the request carries once every dashboard middleware ran."""
    seen: set[str] = set()

    def view(request):
        seen.update(name for name in ("session", "user", "_messages") if hasattr(request, name))
        return HttpResponse("ok")

    handler = view
    for middleware in (DashboardMessageMiddleware, DashboardAuthenticationMiddleware, DashboardCsrfViewMiddleware):
        handler = middleware(handler)
    handler = DashboardSessionMiddleware(handler)
    assert handler(RequestFactory().get(path)).status_code == 200
    return seen


def test_api_requests_skip_the_dashboard_middleware():
    assert seen_by_view("/v1/events") == set()


def test_dashboard_requests_keep_them():
    assert seen_by_view("/customers/") == {"session", "user", "_messages"}


def test_dashboard_posts_still_need_a_csrf_token(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post("/settings/environments/new/", {"name": "Staging"}).status_code == 403


def test_api_posts_need_no_csrf_token(api):
    api.client = Client(enforce_csrf_checks=True)
    response = api.post("/v1/events", {"event_name": "a", "external_customer_id": "c"})
    assert response.status_code == 202
    assert "csrftoken" not in response.cookies and "sessionid" not in response.cookies
