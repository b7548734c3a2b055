/* crmkit's screens: the little behaviour htmx does not give. A static file
   because the Content-Security-Policy allows no inline script; every page
   works without it (it only makes them quicker to use). */
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // Every htmx request that changes something carries the session's CSRF token
  // (htmx only talks to this site: selfRequestsOnly in the page's htmx-config).
  document.addEventListener("htmx:configRequest", function (event) {
    if (event.detail.verb !== "get") {
      event.detail.headers["X-CSRF-Token"] = csrfToken();
    }
  });

  // Ctrl-K (Cmd-K on a Mac) jumps to the global search box.
  document.addEventListener("keydown", function (event) {
    if ((event.ctrlKey || event.metaKey) && !event.altKey && (event.key === "k" || event.key === "K")) {
      var box = document.getElementById("global-search");
      if (box) {
        event.preventDefault();
        box.focus();
        box.select();
      }
    }
  });

  // A failed htmx request says so in the page's message area, in the user's
  // language (the words come from the server), with the API error's own message.
  // kind: "error" (the default, an alert) or "success" (a status).
  function say(text, kind) {
    var area = document.getElementById("messages");
    if (!area || !text) {
      return;
    }
    var message = document.createElement("p");
    message.className = "message message-" + (kind || "error");
    message.setAttribute("role", kind === "success" ? "status" : "alert");
    message.textContent = text;
    area.appendChild(message);
    window.setTimeout(function () { message.remove(); }, 10000);
  }

  // For the screens' own scripts (board.js, calendar.js), loaded after this one.
  window.crmkit = {csrfToken: csrfToken, say: say};

  document.addEventListener("htmx:responseError", function (event) {
    var area = document.getElementById("messages");
    var text = area ? area.dataset.requestFailed : "";
    try {
      var body = JSON.parse(event.detail.xhr.responseText);
      if (body && body.error && typeof body.error.message === "string") {
        text = text + " (" + body.error.message + ")";
      }
    } catch (ignored) {
      // not JSON: the generic message
    }
    say(text);
  });

  document.addEventListener("htmx:sendError", function () {
    var area = document.getElementById("messages");
    say(area ? area.dataset.connectionLost : "");
  });
})();
