"""PostgreSQL's JIT is off on flexmeter's connections unless DATABASE_JIT=on: compiling the dashboard's mid-sized
statements took longer than running them."""

import subprocess
import sys

import pytest
from django.conf import settings
from django.db import connection

pytestmark = pytest.mark.django_db


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a PostgreSQL setting")
def test_connections_run_without_jit():
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == "off"


@pytest.mark.parametrize(("given", "options"), [(None, "-c jit=off"), ("on", None)])
def test_database_jit_setting(given, options):
    env = {"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/unused", "DJANGO_SETTINGS_MODULE": "flexmeter.settings"}
    if given is not None:
        env["DATABASE_JIT"] = given
    code = "from django.conf import settings; print(settings.DATABASES['default']['OPTIONS'].get('options'))"
    completed = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=settings.BASE_DIR, capture_output=True, text=True, check=True
    )
    assert completed.stdout.strip() == str(options)
