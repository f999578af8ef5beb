"""The customer portal: sessions over the API, the signed token, the read-only page and how it may be framed."""

import datetime as dt
import re

import pytest
from django.core import signing
from django.utils import timezone

from metering.portal import SALT, PortalTokenRefused, portal_customer, portal_session_create
from tests.catalog.factories import FeatureFactory, MeterFactory
from tests.metering.factories import CustomerFactory
from tests.metering.usage.helpers import send, usage_statements

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme(environment, other_environment):
    """acme with 3 calls and 2.5 credits this period; globex (and acme of another environment) with other numbers."""
    now = timezone.now()
    anchor = now - dt.timedelta(days=2)
    customer = CustomerFactory(environment=environment, external_id="acme", name="Acme Inc.", billing_anchor=anchor)
    CustomerFactory(environment=environment, external_id="globex", name="Globex")
    CustomerFactory(environment=other_environment, external_id="acme", name="Other Acme")
    calls_meter = MeterFactory(environment=environment, event_name="calls")
    units = {"unit_singular": "call", "unit_plural": "calls"}
    FeatureFactory(environment=environment, name="API calls", lookup_key="api_calls", meter=calls_meter, **units)
    credits_meter = MeterFactory(
        environment=environment, event_name="credits", aggregation_type="SUM", aggregation_field="n"
    )
    FeatureFactory(environment=environment, name="Credits", lookup_key="credits", meter=credits_meter)
    recent = (now - dt.timedelta(hours=2)).isoformat()
    for _ in range(3):
        send(environment, event_name="calls", customer="acme", timestamp=recent)
    send(environment, event_name="credits", customer="acme", timestamp=recent, properties='{"n": 2.5}')
    for _ in range(7):
        send(environment, event_name="calls", customer="globex", timestamp=recent)
    send(other_environment, event_name="calls", customer="acme", timestamp=recent)
    return customer


def _token_from(api, external_id: str = "acme") -> str:
    response = api.get(f"/v1/customers/portal/{external_id}")
    assert response.status_code == 200, response.json()
    return response.json()["token"]


def test_session_call_returns_url_token_and_expiry_one_hour_ahead(api, acme):
    before = timezone.now()
    body = api.get("/v1/customers/portal/acme").json()
    after = timezone.now()
    assert set(body) == {"url", "token", "expires_at"}
    assert body["url"] == f"http://testserver/portal/{body['token']}/"
    expires_at = dt.datetime.fromisoformat(body["expires_at"])  # whole seconds
    assert before + dt.timedelta(hours=1) - dt.timedelta(seconds=1) < expires_at <= after + dt.timedelta(hours=1)
    assert portal_customer(token=body["token"]) == acme


def test_lifetime_is_configurable(api, acme, settings):
    settings.PORTAL_SESSION_SECONDS = 300
    session = portal_session_create(customer=acme, now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert session.expires_at == dt.datetime(2026, 1, 1, 0, 5, tzinfo=dt.UTC)
    assert portal_customer(token=session.token, now=dt.datetime(2026, 1, 1, 0, 4, 59, tzinfo=dt.UTC)) == acme
    with pytest.raises(PortalTokenRefused) as refused:
        portal_customer(token=session.token, now=dt.datetime(2026, 1, 1, 0, 5, tzinfo=dt.UTC))
    assert refused.value.reason == "expired"


def test_unknown_or_foreign_customers_get_no_session(api, other_api, acme, environment):
    assert api.get("/v1/customers/portal/nobody").status_code == 404
    CustomerFactory(environment=environment, external_id="gone", status="deleted")
    assert api.get("/v1/customers/portal/gone").status_code == 404
    # the other environment's key gets a token for its own acme only
    assert portal_customer(token=_token_from(other_api)).name == "Other Acme"


def test_portal_page_shows_exactly_the_customers_numbers_without_login(
    client, api, acme, django_assert_max_num_queries
):
    token = _token_from(api)
    with django_assert_max_num_queries(4 + usage_statements()):  # the customer, features and plans, then the engine
        response = client.get(f"/portal/{token}/")
    assert response.status_code == 200
    html = response.content.decode()
    api_usage = api.get(f"/v1/customers/{acme.public_id}/usage").json()
    assert {row["feature"]["lookup_key"]: row["current_usage"] for row in api_usage["features"]} == {
        "api_calls": 3,
        "credits": 2.5,
    }
    assert re.search(r'data-testid="portal-usage-api_calls">3 calls<', html)
    assert re.search(r'data-testid="portal-usage-credits">2.5<', html)
    assert "Acme Inc." in html
    assert html.count('<svg class="chart"') == 2
    for foreign in ("Globex", "globex", "Other Acme", "7 calls", "4 calls"):
        assert foreign not in html
    assert response["Cache-Control"] == "no-store"
    assert response["Referrer-Policy"] == "no-referrer"


@pytest.mark.parametrize("alter", ["flip", "truncate", "other-salt", "garbage"])
def test_altered_tokens_open_nothing(client, api, acme, alter):
    token = _token_from(api)
    altered = {
        "flip": token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:],
        "truncate": token[: len(token) // 2],
        "other-salt": signing.dumps({"e": acme.environment_id, "c": acme.public_id, "v": 0, "x": 2**40}),
        "garbage": "not-a-token",
    }[alter]
    response = client.get(f"/portal/{altered}/")
    assert response.status_code == 403
    html = response.content.decode()
    assert "This link is not valid" in html
    assert "Acme" not in html and "calls" not in html


def test_forged_payload_for_another_customer_needs_the_secret(client, acme, environment):
    globex = acme.environment.customers.get(external_id="globex")
    forged = signing.dumps({"e": environment.pk, "c": globex.public_id, "v": 0, "x": 2**40}, salt=SALT, key="guess")
    assert client.get(f"/portal/{forged}/").status_code == 403


def test_expired_token_gets_a_clear_page(client, acme):
    session = portal_session_create(customer=acme, now=timezone.now() - dt.timedelta(hours=2))
    response = client.get(f"/portal/{session.token}/")
    assert response.status_code == 403
    assert "This link has expired" in response.content.decode()
    assert "Acme" not in response.content.decode()


def test_revoking_refuses_earlier_tokens_and_new_ones_work(client, api, acme):
    old = _token_from(api)
    assert api.post("/v1/customers/portal/acme/revoke").status_code == 204
    response = client.get(f"/portal/{old}/")
    assert response.status_code == 403
    assert "no longer valid" in response.content.decode()
    assert client.get(f"/portal/{_token_from(api)}/").status_code == 200
    assert api.post("/v1/customers/portal/nobody/revoke").status_code == 404


def test_deleting_the_customer_refuses_its_tokens(client, api, acme):
    token = _token_from(api)
    assert api.delete(f"/v1/customers/{acme.public_id}").status_code == 204
    assert client.get(f"/portal/{token}/").status_code == 403


def test_portal_is_unframeable_unless_origins_are_configured(client, api, acme, settings):
    token = _token_from(api)
    response = client.get(f"/portal/{token}/")
    assert response["X-Frame-Options"] == "DENY"
    assert response["Content-Security-Policy"] == "frame-ancestors 'none'"
    settings.PORTAL_FRAME_ANCESTORS = ["https://app.example.com", "https://*.example.org"]
    response = client.get(f"/portal/{token}/")
    assert "X-Frame-Options" not in response
    assert response["Content-Security-Policy"] == "frame-ancestors https://app.example.com https://*.example.org"
    refused = client.get("/portal/not-a-token/")
    assert refused["Content-Security-Policy"] == "frame-ancestors https://app.example.com https://*.example.org"


def test_dashboard_stays_unframeable_whatever_the_portal_allows(dashboard, settings):
    settings.PORTAL_FRAME_ANCESTORS = ["https://app.example.com"]
    for path in ("/login/", "/customers/", "/usage/"):
        response = dashboard.get(path)
        assert response.status_code == 200
        assert response["X-Frame-Options"] == "DENY"
        assert response["Content-Security-Policy"] == "frame-ancestors 'none'"


def test_portal_shows_the_customers_plans_and_limits_only(client, api, acme, environment):
    from entitlements import services as entitlement_services
    from tests.entitlements.helpers import plain_feature

    calls = acme.environment.features.get(lookup_key="api_calls")
    sso = plain_feature(environment, type="boolean", lookup_key="sso")
    pro = entitlement_services.plan_create(environment=environment, data={"name": "Pro"})
    enterprise = entitlement_services.plan_create(environment=environment, data={"name": "Enterprise"})
    for plan, feature, settings in [
        (pro, calls, {"usage_limit": 3, "usage_reset_period": "BILLING_PERIOD"}),
        (pro, sso, {}),
        (enterprise, calls, {"usage_limit": None}),
    ]:
        data = {"plan_id": plan.public_id, "feature_id": feature.public_id, **settings}
        entitlement_services.entitlement_create(environment=environment, data=data)
    start = (timezone.now() - dt.timedelta(days=2)).isoformat()
    entitlement_services.subscription_create(
        environment=environment, data={"customer_id": acme.public_id, "plan_id": pro.public_id, "start_date": start}
    )
    globex = acme.environment.customers.get(external_id="globex")
    entitlement_services.subscription_create(
        environment=environment,
        data={"customer_id": globex.public_id, "plan_id": enterprise.public_id, "start_date": start},
    )

    html = client.get(f"/portal/{_token_from(api)}/").content.decode()
    plans = html[html.index('data-testid="portal-plans"') :]
    assert "Pro" in plans and "Enterprise" not in plans and "Unlimited" not in plans
    calls_row = plans[plans.index('data-testid="portal-limit-api_calls"') :].split("</tr>")[0]
    assert re.search(r"<td>3 calls</td>", calls_row)
    assert "3 calls" in calls_row.split('<td class="num">')[1] and "limit reached" in calls_row
    sso_row = plans[plans.index('data-testid="portal-limit-sso"') :].split("</tr>")[0]
    assert "Included" in sso_row
