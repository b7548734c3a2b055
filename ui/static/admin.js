/* The admin console: asks before a destructive post (disable, revoke,
   delete, purge). A form with data-confirm="question" is sent only after
   the person confirms. A static file: the Content-Security-Policy allows
   no inline script or handler; without JS the forms post at once. */
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });
})();
