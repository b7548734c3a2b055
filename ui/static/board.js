/* The board: drag a card to another column to make the workflow move there.
   SortableJS does the dragging; the server decides. A card can only be dropped
   on a column its user has a move to (the card's data-moves); a move that
   needs fields first asks for them in a dialog (an HTML fragment from the
   server); a refused move snaps back and says why; a move sent for approval
   stays in its column, marked, with a message. Without this script the
   board is still readable and each card has its move buttons. */
(function () {
  "use strict";

  var board = document.getElementById("board");
  var dialog = document.getElementById("move-dialog");
  if (!board || !dialog || typeof Sortable === "undefined") {
    return;
  }
  var current = null; // the move being made: {item, from, index, move}

  var csrfToken = window.crmkit.csrfToken; // crmkit.js: the session's token, and the message area
  var say = window.crmkit.say;

  // The server's HTML fragments, parsed (never run: a parsed document runs no scripts).
  function parsed(html) {
    return new DOMParser().parseFromString(html, "text/html").body;
  }

  function textOf(html) {
    return parsed(html).textContent.trim();
  }

  function fill(element, html) {
    element.replaceChildren.apply(element, Array.prototype.slice.call(parsed(html).childNodes));
  }

  function movesOf(item) {
    try {
      return JSON.parse(item.dataset.moves || "{}");
    } catch (ignored) {
      return {};
    }
  }

  function snapBack(attempt) {
    var before = attempt.from.children[attempt.index] || null;
    attempt.from.insertBefore(attempt.item, before);
  }

  function finish(attempt, refused) {
    if (current === attempt) {
      current = null;
    }
    if (dialog.open) {
      dialog.close();
    }
    if (refused) {
      snapBack(attempt);
    }
  }

  function request(url, options) {
    options.headers = {"HX-Request": "true", "X-CSRF-Token": csrfToken()};
    options.credentials = "same-origin";
    return fetch(url, options).then(function (response) {
      return response.text().then(function (text) { return {response: response, text: text}; });
    });
  }

  function showDialog(attempt, html) {
    fill(dialog, html);
    if (window.htmx) {
      window.htmx.process(dialog);  // a region picker asks the server for its select boxes
    }
    dialog.dispatchEvent(new CustomEvent("crmkit:fields", {bubbles: true}));  // ref pickers (forms.js)
    var form = dialog.querySelector("form");
    if (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        send(attempt, new FormData(form));
      });
    }
    dialog.querySelectorAll("[data-close-dialog]").forEach(function (button) {
      button.addEventListener("click", function (event) {
        event.preventDefault();
        dialog.close();
      });
    });
    if (!dialog.open) {
      dialog.showModal();
    }
    var first = dialog.querySelector("[aria-invalid=true], input:not([type=hidden]), select, textarea");
    if (first) {
      first.focus();
    }
  }

  function send(attempt, body) {
    body = body || new FormData();
    body.set("transition", attempt.move.name);
    body.set("version", attempt.item.dataset.version);
    body.set("view", board.dataset.view || "");
    request(attempt.item.dataset.moveUrl, {method: "POST", body: body}).then(function (answer) {
      if (answer.response.ok) {
        finish(attempt, false);
        replaceColumns(answer.text);
        // A move sent for approval: the card stays where it was, marked, and this says why.
        var notice = answer.response.headers.get("X-Crmkit-Notice");
        if (notice) {
          say(decodeURIComponent(notice), "success");
        }
      } else if (answer.response.headers.get("X-Crmkit-Dialog")) {
        showDialog(attempt, answer.text);
      } else {
        finish(attempt, true);
        say(textOf(answer.text));
      }
    }).catch(function () {
      finish(attempt, true);
      say(board.dataset.failed);
    });
  }

  function ask(attempt) {
    var url = attempt.item.dataset.dialogUrl + encodeURIComponent(attempt.move.name) +
      "?view=" + encodeURIComponent(board.dataset.view || "");
    request(url, {method: "GET"}).then(function (answer) {
      if (answer.response.ok) {
        showDialog(attempt, answer.text);
      } else {
        finish(attempt, true);
        say(textOf(answer.text));
      }
    }).catch(function () {
      finish(attempt, true);
      say(board.dataset.failed);
    });
  }

  dialog.addEventListener("close", function () {
    if (current) { // closed without moving: the card goes back
      var attempt = current;
      current = null;
      snapBack(attempt);
    }
  });

  function dropped(event) {
    document.querySelectorAll(".board-cards.can-drop").forEach(function (list) {
      list.classList.remove("can-drop");
    });
    if (event.from === event.to) {
      return;
    }
    var move = movesOf(event.item)[event.to.dataset.state];
    var attempt = {item: event.item, from: event.from, index: event.oldIndex, move: move};
    if (!move) {
      snapBack(attempt);
      return;
    }
    current = attempt;
    if (move.missing && move.missing.length) {
      ask(attempt);
    } else {
      send(attempt);
    }
  }

  function started(event) {
    var moves = movesOf(event.item);
    board.querySelectorAll(".board-cards").forEach(function (list) {
      if (moves[list.dataset.state]) {
        list.classList.add("can-drop");
      }
    });
  }

  function init() {
    board.querySelectorAll(".board-cards").forEach(function (list) {
      if (list.dataset.sortable) {
        return;
      }
      list.dataset.sortable = "1";
      Sortable.create(list, {
        group: {
          name: "board",
          pull: true,
          put: function (to, from, item) { return Boolean(movesOf(item)[to.el.dataset.state]); }
        },
        sort: false,
        draggable: ".card-movable",
        filter: "button, summary, input, select, textarea",
        preventOnFilter: false,
        animation: 150,
        forceFallback: true, // mouse and touch events, not the browser's link dragging
        onStart: started,
        onEnd: dropped
      });
    });
  }

  function replaceColumns(html) {
    fill(board, html);
    if (window.htmx) {
      window.htmx.process(board);
    }
    init();
  }

  init();
})();
