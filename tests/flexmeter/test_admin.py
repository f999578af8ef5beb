import pytest
from django.urls import reverse

from flexmeter.models import ApiKey, Environment, hash_api_key
from tests.factories import ApiKeyFactory

pytestmark = pytest.mark.django_db


def test_environment_and_api_key_pages_render(dashboard, environment, api_key):
    for url in (
        reverse("admin:flexmeter_environment_changelist"),
        reverse("admin:flexmeter_environment_add"),
        reverse("admin:flexmeter_environment_change", args=[environment.pk]),
        reverse("admin:flexmeter_apikey_changelist"),
        reverse("admin:flexmeter_apikey_add"),
    ):
        assert dashboard.get(url).status_code == 200


def test_api_key_pages_never_show_the_hash(dashboard, api_key):
    changelist = dashboard.get(reverse("admin:flexmeter_apikey_changelist")).content.decode()
    change = dashboard.get(reverse("admin:flexmeter_apikey_change", args=[api_key.pk])).content.decode()
    assert api_key.prefix in changelist
    assert api_key.key_hash not in changelist
    assert api_key.key_hash not in change


def test_creating_a_key_shows_the_raw_key_once(dashboard, environment):
    response = dashboard.post(
        reverse("admin:flexmeter_apikey_add"), {"environment": environment.pk, "name": "ci"}, follow=True
    )
    api_key = ApiKey.objects.get(name="ci")
    texts = [str(message) for message in response.context["messages"]]
    raw_keys = [word for text in texts for word in text.split() if word.startswith("fm_")]
    assert len(raw_keys) == 1
    assert hash_api_key(raw_keys[0]) == api_key.key_hash
    assert raw_keys[0] in response.content.decode()
    again = dashboard.get(reverse("admin:flexmeter_apikey_change", args=[api_key.pk])).content.decode()
    assert raw_keys[0] not in again
    assert api_key.prefix in again


def test_revoke_action_revokes_and_the_key_stops_working(dashboard, environment, api, api_key):
    other = ApiKeyFactory(environment=environment)
    dashboard.post(
        reverse("admin:flexmeter_apikey_changelist"), {"action": "revoke_keys", "_selected_action": [api_key.pk]}
    )
    api_key.refresh_from_db()
    other.refresh_from_db()
    assert api_key.revoked_at is not None
    assert other.revoked_at is None
    assert api.get("/v1/environment").status_code == 401


def test_environments_cannot_be_deleted_from_admin(dashboard, environment):
    response = dashboard.post(reverse("admin:flexmeter_environment_delete", args=[environment.pk]), {"post": "yes"})
    assert response.status_code == 403
    assert Environment.objects.filter(pk=environment.pk).exists()


def test_creating_an_environment_assigns_a_public_id(dashboard):
    response = dashboard.post(reverse("admin:flexmeter_environment_add"), {"name": "Staging", "slug": "staging"})
    assert response.status_code == 302
    assert Environment.objects.get(slug="staging").public_id.startswith("env_")
