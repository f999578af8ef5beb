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

  /* The environment switcher submits as soon as a new environment is picked. */
  document.addEventListener("change", function (event) {
    if (event.target.matches("[data-autosubmit]")) event.target.form.requestSubmit();
  });

  function enhance(root) {
    root.querySelectorAll("[data-units-form]").forEach(pluralPreview);
    var focus = root.querySelector("[data-autofocus]:not([data-enhanced])");
    if (focus) {
      focus.setAttribute("data-enhanced", "");
      focus.focus();
    }
  }

  document.addEventListener("DOMContentLoaded", function () { enhance(document); });
  /* After a wizard step is swapped in: show the first error, or bring the new step's top into view. */
  function revealStep() {
    var step = document.getElementById("wizard-step");
    if (!step) return;
    var error = step.querySelector(".has-error, .form-error, .callout.danger");
    if (error) {
      error.scrollIntoView({ block: "center" });
      var input = error.querySelector("input:not([type=radio]), select, textarea");
      if (input) input.focus({ preventScroll: true });
    } else if (step.getBoundingClientRect().top < 0) {
      step.scrollIntoView({ block: "start" });
      window.scrollBy(0, -72);
    }
  }

  document.addEventListener("htmx:afterSwap", function () { enhance(document); });
  document.addEventListener("htmx:afterSettle", revealStep);
})();
