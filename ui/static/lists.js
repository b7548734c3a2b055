/* The list screen's little behaviour (crmkit.ui.lists): choose every record
   of the page, confirm a bulk delete, and keep empty filters out of the URL.
   Every list works without it. */
(function () {
  "use strict";

  document.addEventListener("change", function (event) {
    var box = event.target;
    if (!box.classList || !box.classList.contains("pick-all")) {
      return;
    }
    var form = box.closest("form");
    form.querySelectorAll('input[type="checkbox"][name="id"]').forEach(function (one) {
      one.checked = box.checked;
    });
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button[data-confirm]") : null;
    if (button && !window.confirm(button.dataset.confirm)) {
      event.preventDefault();
    }
  });

  // A filter left empty says nothing: leave it out of the list's URL.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList || !form.classList.contains("list-filters")) {
      return;
    }
    form.querySelectorAll("input, select").forEach(function (input) {
      if (input.name && input.value === "") {
        input.disabled = true;
      }
    });
  }, true);
})();
