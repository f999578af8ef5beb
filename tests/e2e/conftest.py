"""Browser tests: Playwright drives Debian's Chromium against pytest-django's live server.

Without /usr/bin/chromium the tests are skipped, unless FLEXMETER_REQUIRE_E2E=1 (CI), where they fail instead.
Set FLEXMETER_E2E_SCREENSHOTS=/some/dir to save a 1280×800 screenshot at each checkpoint.
"""

import os
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in the test thread; the ORM calls made by fixtures are still synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "correct horse battery staple"
VIEWPORT = {"width": 1280, "height": 800}


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    """Signing in through the real form hashes the password; a cheap hasher keeps that from dominating the run."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session")
def chromium():
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (apt-get install -y chromium)"
        if os.environ.get("FLEXMETER_REQUIRE_E2E") == "1":
            pytest.fail(f"Browser tests are required here but {message}")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium, live_server, transactional_db):
    context = chromium.new_context(viewport=VIEWPORT, base_url=live_server.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def signed_in(browser_page, live_server, transactional_db):
    """A page signed in as `admin` with a `production` environment."""
    from tests.factories import EnvironmentFactory, UserFactory

    EnvironmentFactory(slug="production", name="Production")
    UserFactory(username="admin")
    page = browser_page
    page.goto("/login/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(lambda url: url.rstrip("/") == live_server.url)  # the overview is the home page
    return page


@pytest.fixture
def screenshot():
    """`screenshot(page, "name")` saves a PNG when FLEXMETER_E2E_SCREENSHOTS names a directory; otherwise no-op."""
    directory = os.environ.get("FLEXMETER_E2E_SCREENSHOTS")

    def take(page, name: str) -> None:
        if directory:
            Path(directory).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(directory) / f"{name}.png"))

    return take
