// Stormdrill pages: the viewer's own local time beside each <time data-local datetime="…Z">.
// The page's text already gives the time in its zone and in UTC (complete without JS); this
// adds "your time (Europe/London): Tue, 8 Dec 2026, 09:00 GMT" after it, once (a
// <time data-local="short"> in a calendar cell gets only the clock: "(09:00 GMT yours)"). No inline
// script (the CSP forbids it): loaded with <script src defer>.
"use strict";
(function () {
  var format, clock;
  var zone = "";
  try {
    format = new Intl.DateTimeFormat(undefined, {
      weekday: "short", year: "numeric", month: "short", day: "numeric",
      hour: "2-digit", minute: "2-digit", timeZoneName: "short"
    });
    clock = new Intl.DateTimeFormat(undefined, {
      hour: "2-digit", minute: "2-digit", timeZoneName: "short"
    });
    zone = format.resolvedOptions().timeZone || "";
  } catch (e) {
    return; // no Intl: the zone and UTC text stand alone
  }
  function show() {
    document.querySelectorAll("time[data-local]").forEach(function (el) {
      var next = el.nextElementSibling;
      if (next && next.classList.contains("viewer-time")) { return; }
      var when = new Date(el.getAttribute("datetime"));
      if (isNaN(when.getTime())) { return; }
      var span = document.createElement("span");
      span.className = "viewer-time";
      if (el.getAttribute("data-local") === "short") {
        // a calendar cell: the viewer's clock only (the cell is the date in the item's zone)
        span.textContent = " (" + clock.format(when) + " yours)";
      } else {
        span.textContent = " · your time" + (zone ? " (" + zone + ")" : "") + ": " + format.format(when);
      }
      el.insertAdjacentElement("afterend", span);
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", show);
  } else {
    show();
  }
})();
