// Stormdrill pages: the one script every page loads (no inline script: the CSP forbids it).
// - A form with data-confirm asks first ("Abort this drill?").
// - A form's submit buttons are disabled once it is sent, so a double click sends it once
//   (the form's idempotency key makes a second send harmless anyway).
"use strict";
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (!(form instanceof HTMLFormElement)) { return; }
  var question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) { event.preventDefault(); return; }
  if (form.method.toLowerCase() !== "post") { return; }
  if (form.dataset.sent === "yes") { event.preventDefault(); return; }
  form.dataset.sent = "yes";
  window.setTimeout(function () {
    form.querySelectorAll("button[type=submit], button:not([type])").forEach(function (b) { b.disabled = true; });
  }, 0);
});
