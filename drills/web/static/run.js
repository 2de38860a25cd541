// Stormdrill run page: follow a live run over Server-Sent Events (no inline script: CSP).
// The page says the run is live with data-live="/runs/{id}/events" on #run (and the seq of
// the last event it drew in data-last-seq). This script then:
// - appends each new timeline line to the journal (#journal), as the server draws them;
// - updates the state badge (#run-state: its text is the state, e.g. COMPLETED);
// - reloads the page once when a manual step starts waiting (to show its Ack form, unless
//   an Ack form is being filled in) and once when the run reaches a terminal state (so the
//   pictures and the post-mortem appear).
// Without JS (or EventSource) the page is complete, just not live.
"use strict";
(function () {
  var root = document.getElementById("run");
  if (!root || !root.hasAttribute("data-live") || !window.EventSource) { return; }
  var url = root.getAttribute("data-live");
  var lastSeq = parseInt(root.getAttribute("data-last-seq") || "0", 10) || 0;
  var terminal = (root.getAttribute("data-terminal") || "").split(" ").filter(Boolean);
  var kinds = (root.getAttribute("data-kinds") || "").split(" ").filter(Boolean);
  var styles = {};
  try { styles = JSON.parse(root.getAttribute("data-state-styles") || "{}"); } catch (e) { styles = {}; }
  var journal = document.getElementById("journal");
  var empty = document.getElementById("journal-empty");
  var note = document.getElementById("live-note");
  var reloading = false;
  var failures = 0;

  function pad(n, width) { var s = String(n); while (s.length < width) { s = "0" + s; } return s; }

  function clock(iso) {
    var at = new Date(iso);
    if (isNaN(at.getTime())) { return iso; }
    return pad(at.getUTCHours(), 2) + ":" + pad(at.getUTCMinutes(), 2) + ":" +
      pad(at.getUTCSeconds(), 2) + "." + Math.floor(at.getUTCMilliseconds() / 100);
  }

  function append(seq, view) {
    if (!journal || journal.querySelector('li[data-seq="' + seq + '"]')) { return; }
    var item = document.createElement("li");
    item.setAttribute("data-seq", String(seq));
    item.setAttribute("data-kind", view.kind);
    var time = document.createElement("time");
    time.setAttribute("datetime", view.at);
    time.textContent = clock(view.at);
    var kind = document.createElement("span");
    kind.className = "kind";
    kind.textContent = view.kind;
    var message = document.createElement("span");
    message.className = "message";
    message.textContent = view.message;
    item.appendChild(time);
    item.appendChild(document.createTextNode(" "));
    item.appendChild(kind);
    item.appendChild(document.createTextNode(" "));
    item.appendChild(message);
    journal.appendChild(item);
    if (empty) { empty.hidden = true; }
  }

  function showState(state) {
    var text = document.getElementById("run-state");
    if (!text) { return; }
    text.textContent = state.toUpperCase();
    var badge = text.parentNode;
    var style = styles[state];
    if (badge && style) {
      badge.className = "badge " + style[0];
      var symbol = badge.querySelector(".symbol");
      if (symbol) { symbol.textContent = style[1]; }
    }
  }

  function filling() {
    var fields = document.querySelectorAll("form.ack textarea, form.ack input:not([type=hidden]), form.ack select");
    for (var i = 0; i < fields.length; i++) { if (fields[i].value) { return true; } }
    return false;
  }

  function reload(source) {
    if (reloading) { return; }
    reloading = true;
    source.close();
    window.location.reload();
  }

  var source = new EventSource(url + (url.indexOf("?") < 0 ? "?" : "&") + "lastEventId=" + lastSeq);
  if (note) { note.textContent = "Following the run live."; }

  function onEvent(event) {
    failures = 0;
    var seq = parseInt(event.lastEventId, 10);
    var view;
    try { view = JSON.parse(event.data); } catch (e) { return; }
    if (!isNaN(seq)) {
      if (seq <= lastSeq && journal && journal.querySelector('li[data-seq="' + seq + '"]')) { return; }
      lastSeq = Math.max(lastSeq, seq);
    }
    append(isNaN(seq) ? "" : seq, view);
    if (view.kind === "state" && view.data && typeof view.data.state === "string") {
      showState(view.data.state);
      if (terminal.indexOf(view.data.state) >= 0) {
        if (note) { note.textContent = "The run ended; loading its pictures and post-mortem."; }
        reload(source);
      }
    } else if (view.kind === "manual" && !filling()) {
      reload(source);
    }
  }

  kinds.forEach(function (kind) { source.addEventListener(kind, onEvent); });
  source.addEventListener("message", onEvent);
  source.addEventListener("error", function () {
    failures += 1;
    if (failures >= 5 && !reloading) {
      source.close();
      if (note) { note.textContent = "Live updates stopped; reload the page to see what changed."; }
    }
  });
}());
