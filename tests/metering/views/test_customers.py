"""Customer pages of the dashboard."""

import pytest
from django.test import Client
from django.urls import reverse

from metering.models import Customer
from tests.metering.factories import CustomerFactory, EventFactory
from tests.metering.usage.helpers import on_clickhouse

pytestmark = pytest.mark.django_db


def test_customer_list_queries_do_not_grow(dashboard: Client, environment, django_assert_num_queries):
    # session, user, environment, count, page, switcher, and one statement for events and last seen (which runs in
    # ClickHouse when the events live there)
    expected = 6 if on_clickhouse() else 7
    CustomerFactory.create_batch(2, environment=environment)
    with django_assert_num_queries(expected):
        assert dashboard.get(reverse("metering:customer_list")).status_code == 200
    for customer in CustomerFactory.create_batch(30, environment=environment):
        EventFactory(environment=environment, external_customer_id=customer.external_id, event_name="api.calls")
        EventFactory(environment=environment, external_customer_id=customer.external_id, event_name="other")
    with django_assert_num_queries(expected):
        assert dashboard.get(reverse("metering:customer_list")).status_code == 200


def test_customer_list_search_and_isolation(dashboard: Client, environment, other_environment):
    CustomerFactory(environment=environment, external_id="acme-corp", name="Acme")
    CustomerFactory(environment=environment, external_id="globex", name="Globex")
    CustomerFactory(environment=other_environment, external_id="acme-sandbox", name="Acme sandbox")
    html = dashboard.get(reverse("metering:customer_list"), {"q": "acme"}).content.decode()
    assert "acme-corp" in html and "globex" not in html and "acme-sandbox" not in html


def test_customer_list_htmx_returns_only_the_results(dashboard: Client, environment):
    CustomerFactory(environment=environment, external_id="acme-corp")
    response = dashboard.get(reverse("metering:customer_list"), {"q": "acme"}, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="customer-results">')
    assert "<aside" not in html and "acme-corp" in html


def test_customer_list_empty_states(dashboard: Client, environment):
    assert b"No customers yet" in dashboard.get(reverse("metering:customer_list")).content
    filtered = dashboard.get(reverse("metering:customer_list"), {"q": "nobody"})
    assert b"No customers match these filters" in filtered.content


def test_customer_create(dashboard: Client, environment):
    response = dashboard.post(
        reverse("metering:customer_create"),
        {"external_id": "acme-corp", "name": "Acme", "email": "billing@acme.com", "billing_period": "ANNUAL"},
        follow=True,
    )
    customer = Customer.objects.get(external_id="acme-corp")
    assert (customer.environment, customer.name, customer.billing_period) == (environment, "Acme", "ANNUAL")
    assert response.redirect_chain[-1][0] == reverse("metering:customer_detail", args=[customer.public_id])
    assert "Customer “Acme” created." in response.content.decode()


def test_customer_create_shows_rule_errors_next_to_fields(dashboard: Client, environment):
    response = dashboard.post(
        reverse("metering:customer_create"), {"external_id": "  ", "name": "Acme", "billing_period": "MONTHLY"}
    )
    assert response.status_code == 422
    assert b'class="field has-error"' in response.content
    assert not Customer.objects.exists()


def test_customer_create_duplicate_external_id(dashboard: Client, environment):
    CustomerFactory(environment=environment, external_id="acme-corp")
    response = dashboard.post(
        reverse("metering:customer_create"), {"external_id": "acme-corp", "name": "Again", "billing_period": "MONTHLY"}
    )
    assert response.status_code == 422
    assert b"Already exists" in response.content


def test_customer_detail_shows_recent_events(dashboard: Client, environment):
    customer = CustomerFactory(environment=environment, external_id="acme-corp")
    EventFactory(environment=environment, external_customer_id="acme-corp", event_name="api.calls", event_id="e-1")
    EventFactory(environment=environment, external_customer_id="globex", event_name="other.event", event_id="e-2")
    html = dashboard.get(reverse("metering:customer_detail", args=[customer.public_id])).content.decode()
    assert customer.public_id in html and "api.calls" in html and "other.event" not in html


def test_customer_detail_of_another_environment_is_404(dashboard: Client, environment, other_environment):
    customer = CustomerFactory(environment=other_environment)
    assert dashboard.get(reverse("metering:customer_detail", args=[customer.public_id])).status_code == 404


def test_open_portal_issues_a_link_and_revoke_stops_earlier_ones(dashboard: Client, environment, other_environment):
    customer = CustomerFactory(environment=environment, external_id="acme", name="Acme")
    response = dashboard.post(f"/customers/{customer.public_id}/portal/")
    assert response.status_code == 302
    portal_url = response["Location"]
    assert portal_url.startswith("/portal/")
    anonymous = Client()
    assert anonymous.get(portal_url).status_code == 200

    response = dashboard.post(f"/customers/{customer.public_id}/portal/revoke/", follow=True)
    assert "stopped working" in response.content.decode()
    assert anonymous.get(portal_url).status_code == 403
    assert anonymous.get(dashboard.post(f"/customers/{customer.public_id}/portal/")["Location"]).status_code == 200

    foreign = CustomerFactory(environment=other_environment)
    assert dashboard.post(f"/customers/{foreign.public_id}/portal/").status_code == 404
    assert dashboard.post(f"/customers/{foreign.public_id}/portal/revoke/").status_code == 404
    assert dashboard.get(f"/customers/{customer.public_id}/portal/").status_code == 405
    signed_out = Client().post(f"/customers/{customer.public_id}/portal/")
    assert (signed_out.status_code, signed_out["Location"].split("?")[0]) == (302, "/login/")
