/* Record forms (ui/templates/form.html, _widgets.html): ref pickers that ask
   the server as the user types, and a form's answer with errors (422) or a
   conflict (409) swapped in like a success. Loaded only by the pages with a
   form; the form works without it (a select box with the current record,
   the page reloading on save). The rules of a form (which sections and
   fields show, are required, read-only) are the server's: this file knows
   none of them. */
(function () {
  "use strict";

  // A ref picker: Tom Select over the <select>, its options asked of
  // /app/<entity>/_options?q= as the user types (the server searches, at most
  // 20 records the user may read: never the whole table in the page).
  function picker(select) {
    if (select.tomselect || typeof TomSelect === "undefined") {
      return;
    }
    var url = select.dataset.optionsUrl;
    var answered = {};
    // Tom Select points the label at its own input; the hidden select keeps the name for assistive technology.
    var label = document.querySelector('label[for="' + select.id + '"]');
    if (label) {
      select.setAttribute("aria-label", label.textContent.replace("*", "").trim());
    }
    new TomSelect(select, {
      valueField: "value",
      labelField: "text",
      searchField: [],
      maxOptions: 20,
      loadThrottle: 250,
      preload: "focus",
      plugins: ["clear_button"],
      placeholder: select.dataset.placeholder,
      shouldLoad: function () { return true; },
      // The server decides what matches: show exactly what it answered for this text.
      score: function (search) {
        var ids = answered[search];
        return function (item) { return ids && ids.indexOf(String(item.value)) >= 0 ? 1 : 0; };
      },
      load: function (query, callback) {
        fetch(url + "?q=" + encodeURIComponent(query), {
          headers: {"Accept": "application/json"}, credentials: "same-origin"
        }).then(function (response) {
          return response.ok ? response.json() : {data: []};
        }).then(function (body) {
          answered[query] = body.data.map(function (option) { return option.value; });
          callback(body.data);
        }).catch(function () {
          callback();
        });
      },
      render: {
        no_results: function (data, escape) {
          return '<div class="no-results">' + escape(select.dataset.noResults || "") + "</div>";
        }
      }
    });
  }

  function pickers(root) {
    if (root && root.querySelectorAll) {
      root.querySelectorAll("select.ref-picker").forEach(picker);
    }
  }

  document.addEventListener("DOMContentLoaded", function () { pickers(document); });
  document.addEventListener("htmx:load", function (event) { pickers(event.detail.elt); });
  // Fields put in the page by a script of another screen (the board's move dialog).
  document.addEventListener("crmkit:fields", function (event) { pickers(event.target); });

  // A form answered 422 (errors beside the fields) or 409 (saved by someone
  // else meanwhile): the answer is the form again, swapped in like a success,
  // and the first error (or the conflict) gets the focus.
  var refused = false;

  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    if ((status === 422 || status === 409) && event.detail.elt.id === "record-form") {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
      refused = true;
    }
  });

  document.addEventListener("htmx:afterSettle", function () {
    var form = document.getElementById("record-form");
    if (!refused || !form) {
      return;
    }
    refused = false;
    var first = form.querySelector("#form-conflict, [aria-invalid=true], #form-errors");
    if (first) {
      if (first.id === "form-conflict" || first.id === "form-errors") {
        first.setAttribute("tabindex", "-1");
      }
      first.focus();
    }
  });
})();
