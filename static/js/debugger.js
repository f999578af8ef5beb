/* Event debugger: the stream polls for new events only while "Live" is on, the tab is visible and the user is at
   the top of the page, so rows never move under a reader. Without JavaScript the page is a plain list. */
(function () {
  "use strict";
  window.fmStreamLive = function () {
    var toggle = document.getElementById("stream-live");
    if (toggle && !toggle.checked) return false;
    return !document.hidden && window.scrollY < 160;
  };
  // A timer here rather than htmx's `every 5s [filter]`: htmx evaluates trigger filters as code, which the
  // Content-Security-Policy (no 'unsafe-eval') forbids.
  window.setInterval(function () {
    var poller = document.getElementById("stream-poller");
    if (poller && window.htmx && window.fmStreamLive()) window.htmx.trigger(poller, "fm-poll");
  }, 5000);
})();
