"""Accessibility and small screens in a real browser: axe-core finds no WCAG 2.1 A/AA violation on any page of
tests/e2e/a11y_pages.py, and no page scrolls sideways at a tablet's or a phone's width.

Set FLEXMETER_E2E_SCREENSHOTS=/some/dir to keep a screenshot of every page at each width.
"""

import os
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe

from tests.e2e.a11y_pages import DASHBOARD_PAGES, PUBLIC_PAGES, A11yData, seed_a11y_data, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WCAG_AA = {
    "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
    "resultTypes": ["violations"],
}
WIDTHS = {"desktop": 1280, "tablet": 768, "phone": 375}

# aria-describedby, aria-labelledby, aria-controls and label[for] naming ids that are not on the page (axe accepts
# a description list with one id missing; a screen reader then reads nothing of what was meant).
MISSING_IDREFS = """() => {
  const missing = [];
  for (const attr of ["aria-describedby", "aria-labelledby", "aria-controls"]) {
    for (const el of document.querySelectorAll(`[${attr}]`)) {
      for (const id of el.getAttribute(attr).split(/\\s+/).filter(Boolean)) {
        if (!document.getElementById(id)) missing.push(`${el.tagName.toLowerCase()}[${attr}=${id}]`);
      }
    }
  }
  for (const label of document.querySelectorAll("label[for]")) {
    if (!document.getElementById(label.htmlFor)) missing.push(`label[for=${label.htmlFor}]`);
  }
  return missing;
}"""


@pytest.fixture
def a11y_data(transactional_db) -> A11yData:
    return seed_a11y_data()


def violations_of(page) -> list[str]:
    """axe-core's WCAG 2.1 A/AA violations on the page as it is now, one line per rule with the first offenders."""
    results = page.evaluate("options => axe.run(document, options)", WCAG_AA)
    lines = []
    for violation in results["violations"]:
        targets = [", ".join(map(str, node["target"])) for node in violation["nodes"][:4]]
        summary = violation["nodes"][0].get("failureSummary", "").replace("\n", " ")[:240]
        lines.append(f"{violation['id']} ({violation['impact']}) on {targets}: {summary}")
    lines += [f"dangling idref: {missing}" for missing in page.evaluate(MISSING_IDREFS)]
    return lines


def save_screenshot(page, name: str) -> None:
    directory = os.environ.get("FLEXMETER_E2E_SCREENSHOTS")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(directory) / f"{name}.png"), full_page=False)


def visit(page, path: str) -> None:
    response = page.goto(path)
    assert response is not None and response.status < 400, f"{path} answered {response and response.status}"
    page.wait_for_load_state("load")


def horizontal_overflow(page) -> int:
    """How many CSS pixels the page scrolls sideways (0 when it fits)."""
    return page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_axe_finds_no_wcag_aa_violation_on_any_page(chromium, live_server, a11y_data, width):
    context = chromium.new_context(viewport={"width": WIDTHS[width], "height": 800}, base_url=live_server.url)
    # axe-core (shipped by axe-playwright-python) is loaded into every document as it opens.
    context.add_init_script(script=Axe().axe_script)
    page = context.new_page()
    page.set_default_timeout(15_000)
    found = {}
    try:
        for name, path in PUBLIC_PAGES:
            visit(page, path(a11y_data))
            found[name] = violations_of(page)
            save_screenshot(page, f"{name}-{WIDTHS[width]}")
        sign_in(page)
        for name, path in DASHBOARD_PAGES:
            visit(page, path(a11y_data))
            found[name] = violations_of(page)
            save_screenshot(page, f"{name}-{WIDTHS[width]}")
    finally:
        context.close()
    failing = {name: lines for name, lines in found.items() if lines}
    assert not failing, "\n".join(f"{name}:\n  " + "\n  ".join(lines) for name, lines in failing.items())


@pytest.mark.parametrize("width", ["tablet", "phone"])
def test_no_page_scrolls_sideways(chromium, live_server, a11y_data, width):
    context = chromium.new_context(viewport={"width": WIDTHS[width], "height": 800}, base_url=live_server.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    overflow = {}
    try:
        for name, path in PUBLIC_PAGES:
            visit(page, path(a11y_data))
            overflow[name] = horizontal_overflow(page)
        sign_in(page)
        for name, path in DASHBOARD_PAGES:
            visit(page, path(a11y_data))
            overflow[name] = horizontal_overflow(page)
            save_screenshot(page, f"{name}-{WIDTHS[width]}")
    finally:
        context.close()
    assert {name: px for name, px in overflow.items() if px > 0} == {}
