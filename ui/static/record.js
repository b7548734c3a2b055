/* The record page's little behaviour: the dialog of a workflow move closes
   with its Cancel button or Escape, and its first input gets the focus. Every
   part works without it (Cancel is a link back to the record). */
(function () {
  "use strict";

  function closeDialog(dialog) {
    var holder = dialog.parentElement;
    dialog.remove();
    if (holder) {
      var opener = document.querySelector(".record-moves a.move");
      if (opener) {
        opener.focus();
      }
    }
  }

  document.addEventListener("click", function (event) {
    var cancel = event.target.closest("[data-dialog-close]");
    if (cancel) {
      var dialog = cancel.closest("dialog");
      if (dialog) {
        event.preventDefault();
        closeDialog(dialog);
      }
    }
  });

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      var dialog = document.querySelector("#record-dialog dialog");
      if (dialog) {
        closeDialog(dialog);
      }
    }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "record-dialog") {
      var first = event.detail.target.querySelector("input:not([type=hidden]), select, textarea");
      if (first) {
        first.focus();
      }
    }
  });
})();
