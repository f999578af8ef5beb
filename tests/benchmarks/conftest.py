"""The bench_* commands exist only with the development-only `benchmarks` app installed: install it for these tests."""

import pytest
from django.conf import settings
from django.test import override_settings


@pytest.fixture(autouse=True)
def benchmarks_installed():
    if "benchmarks" in settings.INSTALLED_APPS:
        yield
        return
    with override_settings(INSTALLED_APPS=[*settings.INSTALLED_APPS, "benchmarks"]):
        yield
