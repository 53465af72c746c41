// omniroute console: the only script of the console (no inline script is
// allowed by its Content-Security-Policy). It does two things:
// - Live: listens to the live stream (server-sent events, resumed by the
//   browser with Last-Event-ID) and, on any change, fetches the page's
//   figures again as HTML rendered by the server and swaps them in;
// - every fetch it makes carries the session's CSRF token header.
(function () {
  "use strict";

  var main = document.getElementById("main");
  var csrf = main ? main.getAttribute("data-csrf") : null;

  function get(url) {
    var headers = { "Accept": "text/html" };
    if (csrf) { headers["X-CSRF-Token"] = csrf; }
    return fetch(url, { credentials: "same-origin", headers: headers, cache: "no-store" });
  }

  function live(panel) {
    var status = document.getElementById("live-status");
    var url = panel.getAttribute("data-panel");
    var busy = false;
    var again = false;

    function say(text) { if (status) { status.textContent = text; } }

    function refresh() {
      if (busy) { again = true; return; }
      busy = true;
      get(url).then(function (response) {
        if (response.status === 401) { window.location.assign("/console/sign-in?next=/console/live"); return null; }
        return response.ok ? response.text() : null;
      }).then(function (html) {
        if (html !== null && html !== undefined) {
          // server-rendered and escaped by the template engine
          panel.innerHTML = html;
          panel.setAttribute("data-updated", String(Date.now()));
        }
      }).catch(function () {
        say("Could not refresh the figures; retrying.");
      }).then(function () {
        busy = false;
        if (again) { again = false; window.setTimeout(refresh, 250); }
      });
    }

    if (!window.EventSource) {
      say("This browser cannot follow the live stream: the figures refresh every 10 seconds.");
      window.setInterval(refresh, 10000);
      return;
    }
    var stream = new EventSource(panel.getAttribute("data-stream"));
    stream.onopen = function () { say("Live: updated as contacts arrive and move."); };
    stream.onerror = function () { say("The live stream was interrupted; reconnecting…"); };
    (panel.getAttribute("data-kinds") || "").split(" ").forEach(function (kind) {
      if (kind) { stream.addEventListener(kind, refresh); }
    });
    // waits grow even when nothing happens
    window.setInterval(refresh, 15000);
  }

  function start() {
    var panel = document.getElementById("live-panel");
    if (panel) { live(panel); }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
