"""What the server answers outside any view: a bad Host under /v1, HEAD on dashboard pages, static files, and the
security headers of production settings."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from flexmeter.settings import DEFAULT_CSP, csp_from_env

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def test_a_bad_host_on_v1_is_400_in_the_envelope(api):
    response = api.get("/v1/environment", headers={"host": "evil.example"})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "validation_error"
    assert body["http_status_code"] == 400
    assert "evil.example" in body["message"]


def test_a_bad_host_on_the_dashboard_stays_django_s_page(dashboard):
    response = dashboard.get("/customers/", headers={"host": "evil.example"})
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("path", ["/customers/", "/events/", "/catalog/features/", "/usage/", "/login/"])
def test_head_on_a_dashboard_page_answers_like_get_without_a_body(dashboard, path):
    got = dashboard.get(path)
    head = dashboard.head(path)
    assert got.status_code == 200
    assert head.status_code == 200
    assert head.content == b""
    assert head["Content-Length"] == str(len(got.content))
    assert head["Content-Type"] == got["Content-Type"]


def test_head_where_get_is_not_allowed_is_still_405(dashboard):
    assert dashboard.head("/settings/environments/switch/").status_code == 405


def test_head_on_v1_keeps_its_own_rules(api):
    assert api.client.head("/v1/environment", headers={"x-api-key": api.raw_key}).status_code == 405


def test_static_files_are_served_without_collectstatic():
    client = Client()
    css = client.get("/static/css/flexmeter.css")
    assert css.status_code == 200
    assert css["Content-Type"].startswith("text/css")
    assert b"".join(css.streaming_content).startswith((ROOT / "static/css/flexmeter.css").read_bytes()[:100])
    assert client.get("/static/django_htmx/htmx-2.min.js").status_code == 200
    assert client.get("/static/ninja/swagger-ui-bundle.js").status_code == 200


def test_csp_from_env():
    assert csp_from_env(None, default=DEFAULT_CSP) == DEFAULT_CSP
    assert csp_from_env("", default=DEFAULT_CSP) == DEFAULT_CSP
    assert csp_from_env("off", default=DEFAULT_CSP) == {}
    assert csp_from_env("default-src 'self'; img-src 'self' https://cdn.example;", default={}) == {
        "default-src": ["'self'"],
        "img-src": ["'self'", "https://cdn.example"],
    }


def production_settings(**env: str) -> dict:
    """Settings as a fresh process with DEBUG off and `env` sees them (they are read once, at import)."""
    script = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({'hsts': s.SECURE_HSTS_SECONDS, 'subdomains': s.SECURE_HSTS_INCLUDE_SUBDOMAINS, "
        "'csp': s.SECURE_CSP, 'csp_report_only': s.SECURE_CSP_REPORT_ONLY}))"
    )
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "flexmeter.settings",
        "DEBUG": "false",
        "SECRET_KEY": "test-secret-key-for-production-settings",
        "DATABASE_URL": "",
        **env,
    }
    for name in ("CSP", "CSP_REPORT_ONLY", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS"):
        if name not in env:
            environment.pop(name, None)
    output = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=environment, capture_output=True, text=True, check=True
    ).stdout
    return json.loads(output)


def test_production_defaults_turn_hsts_and_the_csp_on():
    defaults = production_settings()
    assert defaults["hsts"] == 31_536_000
    assert defaults["subdomains"] is False
    assert defaults["csp"]["script-src"] == ["'self'"]
    assert defaults["csp"]["default-src"] == ["'self'"]
    assert defaults["csp_report_only"] == {}


def test_hsts_and_the_csp_are_configurable():
    configured = production_settings(
        SECURE_HSTS_SECONDS="0", CSP="default-src 'self' https://cdn.example", CSP_REPORT_ONLY="true"
    )
    assert configured["hsts"] == 0
    assert configured["csp"] == {}
    assert configured["csp_report_only"] == {"default-src": ["'self'", "https://cdn.example"]}
    assert production_settings(CSP="off")["csp"] == {}


def test_the_csp_header_is_sent_when_configured(dashboard, settings):
    settings.SECURE_CSP = DEFAULT_CSP
    response = dashboard.get("/customers/")
    assert response["Content-Security-Policy"].startswith("default-src 'self'; script-src 'self';")
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]


def test_hsts_is_sent_on_https(dashboard, settings):
    settings.SECURE_HSTS_SECONDS = 31_536_000
    response = dashboard.get("/customers/", secure=True)
    assert response["Strict-Transport-Security"] == "max-age=31536000"
