/* flexmeter dashboard behaviour: progressive enhancement only — every page works without this file. */
(function () {
  "use strict";

  function copyText(text, button) {
    var done = function () {
      button.setAttribute("data-copied", "");
      window.setTimeout(function () { button.removeAttribute("data-copied"); }, 1600);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text); done(); });
    } else {
      fallbackCopy(text);
      done();
    }
  }

  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } catch (e) { /* the text stays selectable by hand */ }
    document.body.removeChild(area);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-target]");
    if (!button) return;
    event.preventDefault();
    var target = document.getElementById(button.getAttribute("data-copy-target"));
    if (target) copyText(target.value !== undefined ? target.value : target.textContent, button);
  });

  /* A field whose whole text is meant to be copied (a new API key) selects it on click. */
  document.addEventListener("click", function (event) {
    var field = event.target.closest("[data-select-on-click]");
    if (field && field.select) field.select();
  });

  /* Ctrl/Cmd+Enter in a marked field submits its form (the event tester). */
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
    var field = event.target.closest("[data-submit-on-ctrl-enter]");
    if (!field || !field.form) return;
    event.preventDefault();
    field.form.requestSubmit();
  });

  /* Property chips fill the input they name (field step). */
  document.addEventListener("click", function (event) {
    var chip = event.target.closest("[data-fill-target]");
    if (!chip) return;
    var input = document.getElementById(chip.getAttribute("data-fill-target"));
    if (input) {
      input.value = chip.getAttribute("data-fill-value");
      input.focus();
    }
  });

  /* Units step: "1 credit / 5 credits" preview while typing. */
  function pluralPreview(root) {
    var singular = root.querySelector("[name=unit_singular]");
    var plural = root.querySelector("[name=unit_plural]");
    var one = root.querySelector("[data-unit-one]");
    var many = root.querySelector("[data-unit-many]");
    if (!singular || !plural || !one || !many || root.hasAttribute("data-enhanced")) return;
    root.setAttribute("data-enhanced", "");
    var update = function () {
      var s = singular.value.trim() || "unit";
      var p = plural.value.trim() || (singular.value.trim() ? singular.value.trim() : "units");
      one.textContent = "1 " + s;
      many.textContent = "5 " + p;
    };
    singular.addEventListener("input", update);
    plural.addEventListener("input", update);
    update();
  }

  /* Destructive forms ask first (without JavaScript they submit straight away). */
  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
  });

  /* Screen readers hear `text` through the page's one polite live region (#fm-announce in base.html). */
  function announce(text) {
    var region = document.getElementById("fm-announce");
    if (!region || !text) return;
    region.textContent = "";
    window.setTimeout(function () { region.textContent = text; }, 60);
  }
  window.fmAnnounce = announce;

  /* The environment switcher submits as soon as an environment is picked with the mouse. From the keyboard, the
     arrows only move through the environments (Chromium fires "change" on each); Enter or the Switch button
     applies the choice. */
  var movedWithKeys = false;
  document.addEventListener("pointerdown", function () { movedWithKeys = false; });
  document.addEventListener("keydown", function (event) {
    var select = event.target.closest("[data-autosubmit]");
    if (!select) return;
    movedWithKeys = true;
    if (event.key === "Enter") {
      event.preventDefault();
      select.form.requestSubmit();
    }
  });
  document.addEventListener("change", function (event) {
    var select = event.target.closest("[data-autosubmit]");
    if (!select) return;
    if (!movedWithKeys) {
      select.form.requestSubmit();
      return;
    }
    var go = select.form.querySelector("[data-env-go]");
    if (go) go.hidden = select.value === select.getAttribute("data-current");
  });

  /* Tablets and phones: the navigation folds behind "Menu" (CSS shows the button only on narrow screens). */
  var narrow = window.matchMedia("(max-width: 820px)");
  function setNavOpen(sidebar, open) {
    var toggle = sidebar.querySelector(".nav-toggle");
    sidebar.classList.toggle("collapsed", !open);
    if (toggle) toggle.setAttribute("aria-expanded", open ? "true" : "false");
  }
  function enhanceShell() {
    var sidebar = document.querySelector(".sidebar");
    if (!sidebar) return;
    var toggle = sidebar.querySelector(".nav-toggle");
    if (toggle) {
      toggle.hidden = false;
      setNavOpen(sidebar, !narrow.matches);
      narrow.addEventListener("change", function () { setNavOpen(sidebar, !narrow.matches); });
      toggle.addEventListener("click", function () { setNavOpen(sidebar, sidebar.classList.contains("collapsed")); });
    }
    var env = sidebar.querySelector("[data-autosubmit]");
    var go = sidebar.querySelector("[data-env-go]");
    if (env && go) {
      env.setAttribute("data-current", env.value);
      go.hidden = true;
    }
  }
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || !narrow.matches) return;
    var sidebar = document.querySelector(".sidebar:not(.collapsed)");
    if (!sidebar || !sidebar.contains(document.activeElement)) return;
    setNavOpen(sidebar, false);
    var toggle = sidebar.querySelector(".nav-toggle");
    if (toggle) toggle.focus();
  });

  function enhance(root) {
    root.querySelectorAll("[data-units-form]").forEach(pluralPreview);
    var focus = root.querySelector("[data-autofocus]:not([data-enhanced])");
    if (focus) {
      focus.setAttribute("data-enhanced", "");
      focus.focus();
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    enhanceShell();
    enhance(document);
  });
  /* After a wizard step is swapped in: show the first error, or bring the new step's top into view. Focus never
     falls back to <body>: it goes to the first field in error, the step's first field, or else its heading; and the
     live region says which step this is ("Step 3 of 7: How should usage add up?"). */
  function revealStep(event) {
    var step = document.getElementById("wizard-step");
    if (!step || event.target !== step) return;
    var heading = step.querySelector(".card-header h2");
    var eyebrow = step.querySelector(".card-header .eyebrow");
    var title = heading ? (eyebrow ? eyebrow.textContent.trim() + ": " : "") + heading.textContent.trim() : "";
    var error = step.querySelector(".has-error, .form-error, .callout.danger");
    if (error) {
      error.scrollIntoView({ block: "center" });
      var input = error.querySelector("input, select, textarea");
      if (input) input.focus({ preventScroll: true });
      announce(title ? title + ". Please correct the errors." : "Please correct the errors.");
      return;
    }
    if (step.getBoundingClientRect().top < 0) {
      step.scrollIntoView({ block: "start" });
      window.scrollBy(0, -72);
    }
    if (!step.contains(document.activeElement) && heading) {
      heading.setAttribute("tabindex", "-1");
      heading.focus({ preventScroll: true });
    }
    announce(title);
  }

  /* Focus kept across htmx swaps: when the focused control is inside the region being replaced (a pagination link,
     a sort header), focus moves to its twin in the new content (same name, or same text), else to the region's
     first link or button, never to <body>. The wizard and the debugger place focus themselves. */
  var lostFocus = null;
  document.addEventListener("htmx:beforeSwap", function (event) {
    var active = document.activeElement;
    var target = event.detail.target;
    lostFocus = null;
    if (!active || active === document.body || !target || !target.contains(active)) return;
    if (target.id === "wizard-step" || target.id === "stream-more") return;
    var group = active.closest("nav[aria-label], [role=group][aria-label], form[aria-label]");
    lostFocus = {
      region: target.id,
      name: active.getAttribute("name"),
      text: (active.textContent || "").trim(),
      group: group ? group.tagName.toLowerCase() + "[aria-label='" + group.getAttribute("aria-label") + "']" : null,
    };
  });
  function focusTwin(event) {
    if (!lostFocus) return;
    var wanted = lostFocus;
    lostFocus = null;
    if (document.activeElement && document.activeElement !== document.body) return;
    var region = (wanted.region && document.getElementById(wanted.region)) || event.target;
    if (!region || !region.querySelectorAll) return;
    var focusable = "a[href], button:not([disabled]), input:not([type=hidden]), select, textarea";
    var candidates = Array.prototype.slice.call(region.querySelectorAll(focusable));
    var group = wanted.group && region.querySelector(wanted.group);
    var twin = candidates.filter(function (el) {
      return wanted.name ? el.getAttribute("name") === wanted.name : (el.textContent || "").trim() === wanted.text;
    })[0] || (group && group.querySelector(focusable)) || candidates[0];
    if (twin) {
      twin.focus();
    } else {
      region.setAttribute("tabindex", "-1");
      region.focus();
    }
  }

  document.addEventListener("htmx:afterSwap", function () { enhance(document); });
  document.addEventListener("htmx:afterSettle", focusTwin);
  document.addEventListener("htmx:afterSettle", revealStep);
})();
