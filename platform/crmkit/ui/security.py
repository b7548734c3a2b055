"""What every page promises the browser: a strict Content-Security-Policy,
no caching of pages with people's data, and safe redirects.

The policy allows scripts and styles from this site only (no inline script,
style attribute or ``on*=`` handler: behaviour lives in static files), images
from this site and ``data:`` (the style sheets' small icons), requests and
form posts to this site only, and no framing. ``X-Content-Type-Options``,
``X-Frame-Options`` and ``Referrer-Policy`` are set for every response by
crmkit.auth.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from flask import Flask, redirect, request
from werkzeug.wrappers import Response

from ..auth import safe_next

PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
               "base-uri 'none'")


def redirect_to(target: str | None, fallback: str = "/app/") -> Response:
    """303 to a path on this site (a ``next`` from a form or a query); anything
    else (another host, a scheme, //evil.example) goes to ``fallback``."""
    safe = safe_next(target)
    return redirect(fallback if safe == "/" and target != "/" else safe, code=303)


def is_htmx() -> bool:
    """Whether htmx sent this request (it swaps a fragment of the answer)."""
    return request.headers.get("HX-Request") == "true"


def done(target: str) -> Response:
    """After a POST, to a path on this site: a 303, or for htmx a 204 whose
    ``HX-Redirect`` loads the whole page (a 303 would be followed by the
    request itself, and its page swapped into the fragment's target)."""
    if not is_htmx():
        return redirect_to(target)
    response = Response("", 204)
    response.headers["HX-Redirect"] = redirect_to(target).headers["Location"]
    return response


#: The vendored libraries live in folders named with their version (ui/static/vendor/htmx-2.0.11/...):
#: a new version is a new URL, so a browser keeps them rather than asking again on every page.
VENDOR_PATH = "vendor/"
VENDOR_CACHE = "public, max-age=31536000, immutable"


def _page_headers(response: Response) -> Response:
    if request.endpoint == "static":
        if str((request.view_args or {}).get("filename", "")).startswith(VENDOR_PATH) \
                and response.status_code in (200, 304):
            response.headers["Cache-Control"] = VENDOR_CACHE
        return response
    if response.mimetype == "text/html":
        response.headers.setdefault("Content-Security-Policy", PAGE_POLICY)
        response.headers.setdefault("Cache-Control", "no-store")  # pages carry people's data: not kept after logout
        response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    elif response.status_code == 401 and is_htmx():
        # An htmx request whose session ended: send the whole page to the login form.
        here = urlsplit(request.headers.get("HX-Current-URL", ""))
        back = safe_next(here.path + ("?" + here.query if here.query else ""))
        response.headers["HX-Redirect"] = "/login?next=" + quote(back, safe="/")
    return response


def init_app(app: Flask) -> None:
    app.after_request(_page_headers)
