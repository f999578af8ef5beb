"""Unknown ids and paths are a proper 404 page, with DEBUG on too (the demo runs with DEBUG): never Django's debug
page. Signed-in users get it inside the dashboard; anyone else (a portal visitor) a plain page; /v1 keeps JSON."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

DEBUG_PAGE_MARKS = ("DEBUG = True", "technical_404", "Using the URLconf", "Raised by:")


@pytest.fixture(params=[True, False], ids=["debug", "no-debug"])
def debug(request, settings):
    settings.DEBUG = request.param
    return request.param


def test_unknown_event_id_is_a_404_page_in_the_dashboard(dashboard, debug):
    response = dashboard.get(reverse("metering:event_detail"), {"id": "no-such-event"})
    html = response.content.decode()
    assert response.status_code == 404
    assert not any(mark in html for mark in DEBUG_PAGE_MARKS)
    assert 'data-testid="not-found"' in html
    assert "No such event in this environment." in html
    assert 'class="sidebar"' in html  # inside the dashboard, with its navigation
    assert reverse("metering:event_stream") in html


def test_other_unknown_dashboard_ids_too(dashboard, debug):
    for url in (
        reverse("catalog:feature_detail", args=["feat_nope"]),
        reverse("catalog:meter_detail", args=["meter_nope"]),
        reverse("metering:customer_detail", args=["cust_nope"]),
    ):
        response = dashboard.get(url)
        assert response.status_code == 404, url
        assert 'data-testid="not-found"' in response.content.decode(), url


def test_unknown_path_without_debug_is_the_plain_page_for_signed_out_visitors(client, settings):
    settings.DEBUG = False
    response = client.get("/no/such/page/")
    html = response.content.decode()
    assert response.status_code == 404
    assert "Page not found" in html and "/no/such/page/" in html
    assert 'class="sidebar"' not in html


def test_the_api_keeps_its_json_404(client, debug):
    response = client.get("/v1/no-such-endpoint", headers={"x-api-key": "x"})
    assert response.status_code in (401, 404)
    assert response["Content-Type"].startswith("application/json")
