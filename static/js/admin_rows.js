/* Admin rows fields (catalog/admin_fields.py): "Add another" appends a blank row. Without this file the form still
   works; it shows a couple of blank rows after the filled ones. */
(function () {
  "use strict";

  function addRow(widget) {
    var body = widget.querySelector("tbody");
    var count = widget.querySelector("[data-rows-count]");
    var last = body.querySelector("tr[data-row]:last-child");
    if (!last) { return; }
    var index = parseInt(count.value, 10) || 0;
    var row = last.cloneNode(true);
    row.querySelectorAll("input, select, textarea").forEach(function (control) {
      control.name = control.name.replace(/-\d+-([^-]+)$/, "-" + index + "-$1");
      control.id = control.id.replace(/-\d+-([^-]+)$/, "-" + index + "-$1");
      control.setAttribute("aria-label", widget.dataset.noun + " " + (index + 1) + " " + control.dataset.column);
      control.removeAttribute("aria-invalid");
      if (control.tagName === "SELECT") { control.selectedIndex = 0; } else { control.value = ""; }
    });
    row.querySelectorAll("td").forEach(function (cell) { cell.className = ""; });
    body.appendChild(row);
    count.value = String(index + 1);
    row.querySelector("input, select, textarea").focus();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-rows-widget]").forEach(function (widget) {
      var button = widget.querySelector("[data-rows-add]");
      button.hidden = false;
      button.addEventListener("click", function () { addRow(widget); });
    });
  });
})();
