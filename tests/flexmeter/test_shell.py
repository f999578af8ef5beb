"""The dashboard shell: a sandbox never looks like production, and the API docs are one click away."""

import pytest
from django.urls import reverse

from tests.factories import EnvironmentFactory

pytestmark = pytest.mark.django_db

PAGE = reverse("catalog:feature_list")


def switch(dashboard, environment) -> None:
    response = dashboard.post(reverse("flexmeter:environment_switch"), {"environment": environment.pk, "next": PAGE})
    assert response.status_code == 302


def test_a_sandbox_carries_a_banner_and_production_does_not(dashboard, environment, other_environment):
    html = dashboard.get(PAGE).content.decode()
    assert 'data-testid="env-banner"' not in html and "is-test-environment" not in html
    switch(dashboard, other_environment)
    html = dashboard.get(PAGE).content.decode()
    assert 'data-testid="env-banner"' in html and 'class="app is-test-environment"' in html
    assert "You are in <strong>Sandbox</strong>, not production" in html


@pytest.mark.parametrize(("slug", "production"), [("production", True), ("prod-eu", True), ("sandbox", False),
                                                  ("staging", False), ("dev", False)])  # fmt: skip
def test_which_environments_count_as_production(slug, production):
    assert EnvironmentFactory(slug=slug).is_production is production


def test_every_page_links_to_the_api_docs(dashboard, environment, client):
    html = dashboard.get(PAGE).content.decode()
    assert 'href="/v1/docs"' in html and ">API docs</a>" in html
    assert client.get("/v1/docs").status_code == 200  # readable without an API key, like the OpenAPI document
