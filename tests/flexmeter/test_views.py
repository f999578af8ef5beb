"""Dashboard shell and settings pages: login, environment switching, API keys, environments."""

import pytest
from django.test import Client
from django.urls import reverse

from flexmeter.middleware import SESSION_ENVIRONMENT_KEY
from flexmeter.models import ApiKey, Environment
from flexmeter.services import api_key_authenticate
from tests.factories import ApiKeyFactory, EnvironmentFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_pages_require_login(client: Client, environment):
    response = client.get(reverse("catalog:feature_list"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("flexmeter:login"))


def test_login_page_and_sign_in(client: Client, environment):
    UserFactory(username="ada")
    page = client.get(reverse("flexmeter:login"))
    assert page.status_code == 200
    assert b"Sign in to your dashboard" in page.content
    response = client.post(
        reverse("flexmeter:login"), {"username": "ada", "password": "correct horse battery staple"}, follow=True
    )
    assert response.redirect_chain[-1][0] == reverse("flexmeter:home")  # the overview is the home page
    assert b"<h1>Overview</h1>" in response.content
    assert b"No metered features yet" in response.content


def test_wrong_password_shows_an_error(client: Client, environment):
    UserFactory(username="ada")
    response = client.post(reverse("flexmeter:login"), {"username": "ada", "password": "nope"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content


def test_first_login_on_an_empty_install_creates_production(client: Client):
    client.force_login(UserFactory(username="ada"))
    assert not Environment.objects.exists()
    response = client.get(reverse("catalog:feature_list"))
    assert response.status_code == 200
    assert list(Environment.objects.values_list("slug", flat=True)) == ["production"]


def test_shell_has_sidebar_switcher_and_breadcrumbs(dashboard: Client, environment, other_environment):
    html = dashboard.get(reverse("catalog:meter_list")).content.decode()
    for label in ("Features", "Meters", "Customers", "Debugger", "Usage", "API keys", "Environments"):
        assert f">{label}</a>" in html
    assert 'href="/events/"' in html and 'href="/usage/"' in html
    assert f'<option value="{environment.pk}" selected>Production</option>' in html
    assert f'<option value="{other_environment.pk}">Sandbox</option>' in html
    assert '<ol class="breadcrumbs"' in html and "<li>Meters</li>" in html
    assert "django_htmx/htmx-2.min.js" in html and "css/flexmeter.css" in html


def test_environment_switch_scopes_pages_and_redirects_back(dashboard: Client, environment, other_environment):
    ApiKeyFactory(environment=other_environment, name="sandbox-only")
    response = dashboard.post(
        reverse("flexmeter:environment_switch"),
        {"environment": other_environment.pk, "next": reverse("flexmeter:api_key_list")},
    )
    assert response.status_code == 302 and response.url == reverse("flexmeter:api_key_list")
    assert dashboard.session[SESSION_ENVIRONMENT_KEY] == other_environment.pk
    assert b"sandbox-only" in dashboard.get(reverse("flexmeter:api_key_list")).content


def test_environment_switch_ignores_foreign_redirects(dashboard: Client, environment):
    response = dashboard.post(
        reverse("flexmeter:environment_switch"), {"environment": environment.pk, "next": "https://evil.example/"}
    )
    assert response.url == reverse("flexmeter:home")


def test_environment_switch_to_unknown_environment_is_refused(dashboard: Client, environment):
    response = dashboard.post(reverse("flexmeter:environment_switch"), {"environment": 999999}, follow=True)
    assert b"That environment does not exist any more." in response.content
    assert SESSION_ENVIRONMENT_KEY not in dashboard.session


def test_api_key_list_queries_do_not_grow(dashboard: Client, environment, django_assert_num_queries):
    ApiKeyFactory.create_batch(2, environment=environment)
    with django_assert_num_queries(6):
        assert dashboard.get(reverse("flexmeter:api_key_list")).status_code == 200
    ApiKeyFactory.create_batch(20, environment=environment)
    with django_assert_num_queries(6):
        assert dashboard.get(reverse("flexmeter:api_key_list")).status_code == 200


def test_api_key_list_shows_only_this_environment(dashboard: Client, environment, other_environment):
    ApiKeyFactory(environment=environment, name="mine")
    ApiKeyFactory(environment=other_environment, name="theirs")
    html = dashboard.get(reverse("flexmeter:api_key_list")).content.decode()
    assert "mine" in html and "theirs" not in html


def test_api_key_list_empty_state(dashboard: Client, environment):
    assert b"No API keys in Production yet" in dashboard.get(reverse("flexmeter:api_key_list")).content


def test_api_key_create_shows_the_secret_exactly_once(dashboard: Client, environment):
    response = dashboard.post(reverse("flexmeter:api_key_create"), {"name": "backend"}, follow=True)
    html = response.content.decode()
    key = ApiKey.objects.get(name="backend")
    start = html.index('id="new-api-key"')
    raw_key = html[start:].split('value="', 1)[1].split('"', 1)[0]
    assert raw_key.startswith(key.prefix)
    assert api_key_authenticate(raw_key) == key
    assert raw_key not in dashboard.get(reverse("flexmeter:api_key_list")).content.decode()


def test_api_key_create_requires_a_name(dashboard: Client, environment):
    response = dashboard.post(reverse("flexmeter:api_key_create"), {"name": ""})
    assert response.status_code == 400
    assert b"This field is required." in response.content
    assert not ApiKey.objects.exists()


def test_api_key_revoke(dashboard: Client, environment):
    key = ApiKeyFactory(environment=environment, name="old")
    response = dashboard.post(reverse("flexmeter:api_key_revoke", args=[key.pk]), follow=True)
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert "API key “old” revoked" in response.content.decode()
    assert api_key_authenticate(key.raw_key) is None


def test_api_key_revoke_of_another_environment_is_404(dashboard: Client, environment, other_environment):
    key = ApiKeyFactory(environment=other_environment)
    assert dashboard.post(reverse("flexmeter:api_key_revoke", args=[key.pk])).status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None


def test_api_key_revoke_needs_post(dashboard: Client, environment):
    key = ApiKeyFactory(environment=environment)
    assert dashboard.get(reverse("flexmeter:api_key_revoke", args=[key.pk])).status_code == 405


def test_environment_list_queries_do_not_grow(dashboard: Client, environment, django_assert_num_queries):
    with django_assert_num_queries(6):
        assert dashboard.get(reverse("flexmeter:environment_list")).status_code == 200
    for index in range(10):
        EnvironmentFactory(slug=f"extra-{index}")
    with django_assert_num_queries(6):
        assert dashboard.get(reverse("flexmeter:environment_list")).status_code == 200


def test_environment_create_derives_the_slug(dashboard: Client, environment):
    response = dashboard.post(reverse("flexmeter:environment_create"), {"name": "EU Staging", "slug": ""}, follow=True)
    assert Environment.objects.filter(slug="eu-staging", name="EU Staging").exists()
    assert "Environment “EU Staging” created" in response.content.decode()


def test_environment_create_rejects_a_taken_slug(dashboard: Client, environment):
    response = dashboard.post(reverse("flexmeter:environment_create"), {"name": "Prod", "slug": "production"})
    assert response.status_code == 400
    assert "An environment with slug “production” exists." in response.content.decode()
    assert Environment.objects.count() == 1
