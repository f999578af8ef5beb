/* Event debugger: the stream polls for new events only while "Live" is on, the tab is visible and the user is at
   the top of the page, so rows never move under a reader. Without JavaScript the page is a plain list.
   Screen readers hear what changes (new events, older events loaded) through base.html's live region, and focus
   stays where the reader was across htmx swaps. */
(function () {
  "use strict";
  // Whether the reader paused "Live". The checkbox is re-rendered with each filter change; the choice is not.
  var paused = false;

  window.fmStreamLive = function () {
    var toggle = document.getElementById("stream-live");
    if (toggle && !toggle.checked) return false;
    return !paused && !document.hidden && window.scrollY < 160;
  };
  // A timer here rather than htmx's `every 5s [filter]`: htmx evaluates trigger filters as code, which the
  // Content-Security-Policy (no 'unsafe-eval') forbids.
  window.setInterval(function () {
    var poller = document.getElementById("stream-poller");
    if (poller && window.htmx && window.fmStreamLive()) window.htmx.trigger(poller, "fm-poll");
  }, 5000);

  function say(text) {
    if (window.fmAnnounce) window.fmAnnounce(text);
  }

  function plural(count, one, many) {
    return count + " " + (count === 1 ? one : many);
  }

  document.addEventListener("change", function (event) {
    if (event.target.id !== "stream-live") return;
    paused = !event.target.checked;
    say(paused ? "Live updates paused" : "Live updates on");
  });

  // Rows in the table before "Load older events" was pressed: the first row after them takes the focus.
  var rowsBeforeMore = null;

  document.addEventListener("htmx:beforeRequest", function (event) {
    var trigger = event.detail.elt;
    rowsBeforeMore = trigger && trigger.closest && trigger.closest("#stream-more")
      ? document.querySelectorAll("#event-rows tr[data-event-id]").length
      : null;
  });

  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.target;
    var toggle = document.getElementById("stream-live");
    if (toggle && paused && toggle.checked) toggle.checked = false;

    if (target.id === "stream-more" || (rowsBeforeMore !== null && target.closest && target.closest("#event-rows"))) {
      if (rowsBeforeMore === null) return;
      var rows = document.querySelectorAll("#event-rows tr[data-event-id]");
      var added = rows.length - rowsBeforeMore;
      var first = rows[rowsBeforeMore];
      var link = first && first.querySelector("a");
      if (link) {
        link.focus();
      } else {
        var more = document.querySelector("#stream-more a, #stream-more td");
        if (more) {
          if (!more.matches("a")) more.setAttribute("tabindex", "-1");
          more.focus();
        }
      }
      say(added > 0 ? plural(added, "older event", "older events") + " loaded" : "No older events");
      rowsBeforeMore = null;
      return;
    }
    if (target.id === "event-rows" || (target.matches && target.matches("#event-rows tr.row-new"))) {
      var fresh = document.querySelectorAll("#event-rows tr.row-new:not([data-announced])");
      if (!fresh.length) return;
      fresh.forEach(function (row) { row.setAttribute("data-announced", ""); });
      say(plural(fresh.length, "new event", "new events"));
    }
  });
})();
