"""Parts of pages kept rendered: the same for everyone with the same roles,
language and page, with marks where one user's own values go.

A part is rendered once per key with :func:`mark` values in place of the
user's own (their name, their anti-forgery token, the page's own path...),
and :func:`fill` puts the values in, escaped, on every page. A mark starts
with ``<``, which no escaped text holds, so nothing a user typed can stand
for a mark. The key must hold everything else the part reads (the caller's
to say: see crmkit.ui.shell and crmkit.ui.lists); parts are forgotten with
the spec they were rendered for.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Hashable, Mapping

from flask import current_app
from markupsafe import Markup, escape

#: Parts kept per app (role sets × languages × pages × a list's arguments): a bound, not an
#: expected size; at it they are all forgotten (a list's panels are about 10 kB: 10 MB at most).
SIZE = 1024
_MARKS = re.compile("<\x1f([a-z_]+)\x1f>")


def mark(name: str) -> Markup:
    """Where a user's own value goes in a kept part (Markup: the template keeps it as it is)."""
    return Markup(f"<\x1f{name}\x1f>")


class KeptParts:
    """Rendered parts of one app's pages, by key."""

    def __init__(self, spec: object) -> None:
        self.spec = spec
        self._parts: dict[Hashable, str] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, render: Callable[[], str]) -> str:
        found = self._parts.get(key)
        if found is None:
            found = str(render())
            with self._lock:
                if len(self._parts) >= SIZE:
                    self._parts.clear()
                self._parts[key] = found
        return found


def kept_parts() -> KeptParts:
    """The app's kept parts (new ones for a new spec)."""
    rt = current_app.extensions["crmkit"]
    parts = current_app.extensions.get("crmkit_kept_parts")
    if parts is None or parts.spec is not rt.spec:
        parts = current_app.extensions["crmkit_kept_parts"] = KeptParts(rt.spec)
    return parts


def fill(part: str, values: Mapping[str, object]) -> Markup:
    """A kept part with each mark replaced by its value, escaped (in one pass:
    a value put in is never searched for marks). A value may be a function,
    called only when the part holds its mark (a count that costs a query);
    Markup it returns is put in as it is."""
    def value(found: re.Match[str]) -> str:
        given = values[found.group(1)]
        return str(escape(given() if callable(given) else given))
    return Markup(_MARKS.sub(value, part))
