/* The calendar: drag a record to another day to reschedule it (an update of
   its date through the server, with the version the page showed). A refused
   change (someone changed the record meanwhile, no permission) snaps back and
   says why. Without this script the calendar is still readable. */
(function () {
  "use strict";

  var calendar = document.getElementById("calendar");
  if (!calendar || typeof Sortable === "undefined") {
    return;
  }

  var csrfToken = window.crmkit.csrfToken; // crmkit.js: the session's token, and the message area
  var say = window.crmkit.say;

  function textOf(html) {
    return new DOMParser().parseFromString(html, "text/html").body.textContent.trim();
  }

  function dropped(event) {
    if (event.from === event.to) {
      return;
    }
    var item = event.item;
    var from = event.from;
    var index = event.oldIndex;
    function snapBack() {
      from.insertBefore(item, from.children[index] || null);
    }
    var body = new FormData();
    body.set("date", event.to.dataset.date);
    body.set("version", item.dataset.version);
    body.set("view", calendar.dataset.view || "");
    body.set("mode", calendar.dataset.mode || "");
    fetch(item.dataset.moveUrl, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: {"HX-Request": "true", "X-CSRF-Token": csrfToken()}
    }).then(function (response) {
      return response.text().then(function (text) {
        if (response.ok) {
          item.dataset.version = response.headers.get("X-Crmkit-Version") || item.dataset.version;
          say(textOf(text), "success");
        } else {
          snapBack();
          say(textOf(text));
        }
      });
    }).catch(function () {
      snapBack();
      say(calendar.dataset.failed);
    });
  }

  calendar.querySelectorAll(".calendar-items").forEach(function (list) {
    Sortable.create(list, {
      group: "calendar",
      sort: false,
      draggable: ".movable",
      filter: ".calendar-reschedule", // the small form (no script needed) is for clicks and typing, not dragging
      preventOnFilter: false,
      animation: 150,
      forceFallback: true, // mouse and touch events, not the browser's link dragging
      onEnd: dropped
    });
  });
})();
