"""Keyboard-only use in a real browser: the wizard, the event debugger, the usage pages and the shell (skip link,
environment switcher, folding navigation), with a visible focus ring (≥ 3:1 against what surrounds it) at every
stop, focus that survives htmx swaps, and live-region announcements of wizard steps and stream updates."""

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.a11y_pages import A11yData, seed_a11y_data, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# The focused element, its focus indicator (outline, or the outermost focus box-shadow; for a choice card's hidden
# radio, the card's) and the colour behind it.
FOCUS_STATE = """() => {
  const el = document.activeElement;
  if (!el || el === document.body || el === document.documentElement) return null;
  const probe = el.matches(".choice input") ? el.nextElementSibling : el;
  const style = getComputedStyle(probe);
  let color = null, width = 0;
  if (style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0) {
    color = style.outlineColor; width = parseFloat(style.outlineWidth);
  } else if (style.boxShadow && style.boxShadow !== "none") {
    for (const part of style.boxShadow.split(/,(?![^(]*\\))/)) {
      const match = part.trim().match(/^(rgba?\\([^)]*\\))\\s+0px\\s+0px\\s+0px\\s+([\\d.]+)px$/);
      if (match && parseFloat(match[2]) >= width) { color = match[1]; width = parseFloat(match[2]); }
    }
  }
  let behind = "rgb(255, 255, 255)";
  for (let node = probe.parentElement; node; node = node.parentElement) {
    const bg = getComputedStyle(node).backgroundColor;
    if (bg && bg !== "transparent" && !/rgba\\(.*,\\s*0\\)$/.test(bg)) { behind = bg; break; }
  }
  return {
    tag: el.tagName.toLowerCase(), text: (el.textContent || el.value || "").trim().slice(0, 60),
    name: el.getAttribute("name"), id: el.id, color, width, behind,
  };
}"""


def _channels(css: str) -> tuple[float, float, float, float]:
    numbers = [float(n) for n in re.findall(r"[\d.]+", css)]
    return (*numbers[:3], numbers[3] if len(numbers) > 3 else 1.0)


def _luminance(rgb: tuple[float, float, float]) -> float:
    def linear(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(css_a: str, css_b: str) -> float:
    """WCAG contrast ratio of two opaque `rgb(...)` colours (a translucent first colour is laid over the second)."""
    *a, alpha = _channels(css_a)
    b = _channels(css_b)[:3]
    a = [alpha * x + (1 - alpha) * y for x, y in zip(a, b, strict=True)]
    high, low = sorted((_luminance(tuple(a)), _luminance(tuple(b))), reverse=True)
    return (high + 0.05) / (low + 0.05)


def focus_settled(page) -> None:
    """Wait until focus has been placed after an htmx swap (the page moves it once the swap settles, a moment after
    the URL changes); times out, failing the test, if focus stays on <body>."""
    page.wait_for_function("document.activeElement && document.activeElement !== document.body")


def focused(page) -> dict:
    """The focused element with a visible focus indicator of ≥ 3:1 (WCAG 2.1 1.4.11); fails on a focus lost to
    <body>."""
    state = page.evaluate(FOCUS_STATE)
    assert state is not None, "focus fell back to <body>"
    assert state["color"] and state["width"] >= 2, f"no visible focus indicator on {state}"
    ratio = contrast(state["color"], state["behind"])
    assert ratio >= 3, f"focus indicator {state['color']} on {state['behind']} is {ratio:.2f}:1 ({state})"
    return state


def tab_to(page, matches, *, limit: int = 60, backwards: bool = False) -> dict:
    """Press Tab until the focused element satisfies `matches(state)`, checking the focus ring at every stop."""
    for _ in range(limit):
        page.keyboard.press("Shift+Tab" if backwards else "Tab")
        state = focused(page)
        if matches(state):
            return state
    raise AssertionError(f"no focus stop matched within {limit} presses of Tab")


def announced(page):
    return page.locator("#fm-announce")


@pytest.fixture
def data(transactional_db) -> A11yData:
    return seed_a11y_data()


@pytest.fixture
def page(browser_page, data):
    # Without motion the focus ring is drawn at once (no 120 ms transition), so it can be read right after a key.
    browser_page.emulate_media(reduced_motion="reduce")
    sign_in(browser_page)
    return browser_page


def test_skip_link_is_the_first_stop_and_moves_focus_to_the_content(page):
    page.goto("/usage/")
    expect(page.locator(".nav-toggle")).to_be_hidden()  # wide screens keep the sidebar open, with no Menu button
    page.keyboard.press("Tab")
    state = focused(page)
    assert state["text"] == "Skip to content"
    expect(page.locator(".skip-link")).to_be_in_viewport()
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    state = tab_to(page, lambda s: True)
    assert page.evaluate("document.getElementById('main').contains(document.activeElement)")


def test_environment_switcher_moves_with_arrows_and_switches_on_enter(page):
    page.goto("/usage/")
    expect(page.locator(".topbar-env")).to_have_text("Production")
    tab_to(page, lambda s: s["id"] == "env-select")
    page.keyboard.press("ArrowDown")
    # Arrows alone switch nothing: same page, same environment, and the Switch button is offered.
    expect(page.locator("[data-env-go]")).to_be_visible()
    page.wait_for_timeout(500)  # a submit would have started navigating by now
    assert page.url.endswith("/usage/")
    expect(page.locator(".topbar-env")).to_have_text("Production")
    page.keyboard.press("Enter")
    expect(page.locator(".topbar-env")).to_have_text("Sandbox")
    expect(page.locator("[data-env-go]")).to_be_hidden()


def test_wizard_by_keyboard_only_keeps_focus_and_announces_each_step(page):
    page.goto("/catalog/features/new/")
    assert focused(page)["name"] == "name"  # the first field has focus on arrival
    page.keyboard.type("GPU minutes")
    page.keyboard.press("Enter")
    expect(page.locator("#wizard-step h2")).to_have_text("Which event does it count?")
    expect(announced(page)).to_have_text(re.compile(r"^Step 2 of \d+: Which event does it count\?$"))
    assert focused(page)["name"] == "event_name"
    page.keyboard.type("gpu.minutes", delay=20)
    page.keyboard.press("Enter")

    expect(page.locator("#wizard-step h2")).to_have_text("How should usage add up?")
    expect(announced(page)).to_have_text(re.compile(r"^Step 3 of \d+: How should usage add up\?$"))
    assert page.evaluate("document.activeElement.matches('#wizard-step h2')"), "step 3 dropped focus"
    # The aggregation cards are one radio group with a name; arrows move the choice, with a visible ring.
    state = tab_to(page, lambda s: s["name"] == "type")
    assert page.evaluate("document.activeElement.closest('fieldset').querySelector('legend').textContent") == (
        "Aggregation"
    )
    page.keyboard.press("ArrowDown")
    focused(page)
    checked = page.evaluate("document.querySelector('input[name=type]:checked').value")
    tab_to(page, lambda s: s["text"].startswith("Continue"))
    page.keyboard.press("Enter")

    headings = {
        "SUM": "Which property holds the quantity?",
        "SUM_WITH_MULTIPLIER": "Which property holds the quantity?",
        "COUNT_UNIQUE": "Which property holds the quantity?",
        "MAX": "Which property holds the quantity?",
    }
    if checked in headings:
        expect(page.locator("#wizard-step h2")).to_have_text(headings[checked])
        # Focus is placed once the swap settles (a few ms after the heading shows).
        page.wait_for_function("document.activeElement.matches('#wizard-step h2, #wizard-step input')")
        tab_to(page, lambda s: s["name"] == "field")
        page.keyboard.type("minutes")
        if checked == "SUM_WITH_MULTIPLIER":
            tab_to(page, lambda s: s["name"] == "multiplier", backwards=True)
        page.keyboard.press("Enter")
    expect(page.locator("#wizard-step h2")).to_have_text("When does usage start again?")
    expect(announced(page)).to_contain_text("When does usage start again?")
    page.wait_for_function("document.activeElement.matches('#wizard-step h2')")  # placed once the swap settles

    tab_to(page, lambda s: s["text"].startswith("Continue"))
    page.keyboard.press("Enter")
    expect(page.locator("#wizard-step h2")).to_have_text("What is one unit called?")
    page.wait_for_function("document.activeElement.matches('#wizard-step h2')")  # placed once the swap settles
    tab_to(page, lambda s: s["name"] == "unit_singular")
    page.keyboard.type("minute")
    # An error keeps focus on the field in error, marked invalid and described by its message.
    page.keyboard.press("Enter")  # the plural is missing
    expect(page.locator("#wizard-step .field-error")).to_have_count(1)
    page.wait_for_function("document.activeElement.name === 'unit_plural'")  # placed once the swap settles
    state = focused(page)
    assert state["name"] == "unit_plural"
    described = page.evaluate(
        "[...document.activeElement.getAttribute('aria-describedby').split(' ')]"
        ".map(id => document.getElementById(id).textContent.trim())"
    )
    assert any("plural" in text.lower() or "both" in text.lower() for text in described), described
    assert page.evaluate("document.activeElement.getAttribute('aria-invalid')") == "true"
    expect(announced(page)).to_contain_text("Please correct the errors.")


def test_debugger_by_keyboard_announces_new_events_keeps_pause_and_focus(page, data):
    page.goto("/events/")
    expect(page.locator("#event-rows tr[data-event-id]")).to_have_count(50)

    # A new event while Live is on is announced, once.
    response = page.request.post(
        "/v1/events",
        data={"event_name": "api.calls", "external_customer_id": "someone-new"},
        headers={"x-api-key": data.api_key},
    )
    assert response.status == 202
    expect(announced(page)).to_have_text("1 new event", timeout=30_000)

    # "Load older events" from the keyboard: focus goes to the first older row, and the count is announced.
    tab_to(page, lambda s: s["text"] == "Load older events", limit=400)
    rows_before = page.locator("#event-rows tr[data-event-id]").count()
    page.keyboard.press("Enter")
    expect(announced(page)).to_have_text(re.compile(r"^\d+ older events? loaded$"))
    first_older = page.locator("#event-rows tr[data-event-id]").nth(rows_before)
    assert first_older.evaluate("row => row.contains(document.activeElement)")
    focused(page)

    # Pause Live with the keyboard; filtering re-renders the stream but keeps it paused.
    page.goto("/events/")
    tab_to(page, lambda s: s["id"] == "stream-live")
    page.keyboard.press("Space")
    expect(page.locator("#stream-live")).not_to_be_checked()
    expect(announced(page)).to_have_text("Live updates paused")
    tab_to(page, lambda s: s["name"] == "event_name", backwards=True)
    page.keyboard.type("api.calls", delay=20)
    expect(page).to_have_url(re.compile(r"event_name=api.calls"))
    expect(page.locator("#event-rows tr[data-event-id]").first).to_contain_text("api.calls")
    expect(page.locator("#stream-live")).not_to_be_checked()
    assert focused(page)["name"] == "event_name"  # typing on after the swap goes where it went


def test_usage_page_by_keyboard_keeps_focus_across_htmx_paging_and_filtering(page, data, monkeypatch):
    monkeypatch.setattr("metering.views.usage.PAGE_SIZE", 3)
    page.goto(f"/usage/features/{data.feature}/?window=30d")
    expect(page.locator("#customer-usage .pagination")).to_be_visible()
    tab_to(page, lambda s: s["text"] == "Next", limit=120)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"page=2"))
    focus_settled(page)
    state = focused(page)
    assert state["text"] == "Next", state  # the same control in the new page of customers
    tab_to(page, lambda s: s["text"] == "Previous", backwards=True)
    page.keyboard.press("Enter")
    expect(page).not_to_have_url(re.compile(r"page=2"))
    # The first page has no "Previous" link: focus goes to the pagination's other control, not to <body>.
    focus_settled(page)
    assert focused(page)["text"] == "Next"

    tab_to(page, lambda s: s["name"] == "q", backwards=True, limit=120)
    page.keyboard.type("zzz-nobody", delay=20)
    expect(page).to_have_url(re.compile(r"q=zzz-nobody"))
    assert focused(page)["name"] == "q"
    tab_to(page, lambda s: s["name"] == "sort")


def test_navigation_folds_behind_a_menu_button_on_a_phone(chromium, live_server, data):
    context = chromium.new_context(
        viewport={"width": 375, "height": 800}, base_url=live_server.url, reduced_motion="reduce"
    )
    page = context.new_page()
    try:
        sign_in(page)
        page.goto("/usage/")
        toggle = page.locator(".nav-toggle")
        expect(toggle).to_be_visible()
        expect(toggle).to_have_attribute("aria-expanded", "false")
        expect(page.locator("nav.nav")).to_be_hidden()
        toggle.focus()
        focused(page)
        page.keyboard.press("Enter")
        expect(toggle).to_have_attribute("aria-expanded", "true")
        expect(page.locator("nav.nav a:has-text('Debugger')")).to_be_visible()
        tab_to(page, lambda s: s["text"] == "Debugger")
        page.keyboard.press("Escape")
        expect(toggle).to_have_attribute("aria-expanded", "false")
        assert focused(page)["text"] == "Menu"
        # Tables scroll inside their card; the page itself never scrolls sideways.
        page.goto("/events/")
        assert page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth")
        scrolls_in_card = page.locator("table.stream-table").evaluate(
            """table => {
              for (let el = table.parentElement; el && el !== document.body; el = el.parentElement) {
                const overflow = getComputedStyle(el).overflowX;
                if ((overflow === "auto" || overflow === "scroll") && el.scrollWidth > el.clientWidth) return true;
              }
              return false;
            }"""
        )
        assert scrolls_in_card
    finally:
        context.close()
