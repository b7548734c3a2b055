"""Authentication of every request, browser login and logout, CSRF.

API clients send ``Authorization: Bearer TOKEN`` (a personal API token).
Browsers log in at /login and get a session cookie (HttpOnly, SameSite=Lax,
Secure when the request came over HTTPS); a request that changes something
with that cookie must carry the session's CSRF token (``X-CSRF-Token`` header
or ``csrf_token`` form field). Every route needs one or the other, except
/login, /healthz, static files and the paths the config lists as public.
The login and logout pages themselves are screens (crmkit.ui.login).
"""

from __future__ import annotations

import hmac
from urllib.parse import quote, urlsplit

from flask import Flask, g, redirect, request
from werkzeug.wrappers import Response  # what redirect() makes; flask.Response is one too

from .errors import Forbidden, Unauthorized
from .permissions import ANONYMOUS

SESSION_COOKIE = "crmkit_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ALWAYS_PUBLIC = ("/healthz", "/login", "/static/")
#: The API and the screens: without credentials, a browser asking for a page is
#: sent to the login form; anything else (a program, an htmx request) gets 401.
CHALLENGED = ("/api/", "/app/")

def _runtime():
    from flask import current_app

    return current_app.extensions["crmkit"]


def is_public(path: str, public: tuple[str, ...]) -> bool:
    for prefix in ALWAYS_PUBLIC + public:
        if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
            return True
    return False


def authenticate() -> Response | None:
    """Set g.crmkit_actor, or answer 401 (API) / redirect to the login page (screens)."""
    rt = _runtime()
    g.crmkit_actor = ANONYMOUS
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.strip().partition(" ")
        actor = rt.directory.actor_for_token(token.strip()) if scheme.lower() == "bearer" and token else None
        if actor is None:
            if is_public(request.path, rt.spec.public):
                return None
            raise Unauthorized("the API token is missing, malformed, expired or revoked", code="invalid_token")
        g.crmkit_actor = actor
        return None
    cookie = request.cookies.get(SESSION_COOKIE)
    found = rt.directory.session(cookie) if cookie else None
    if found is not None:
        g.crmkit_actor, g.crmkit_csrf = found
        if request.method not in SAFE_METHODS and not is_public(request.path, ()):
            sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token") or ""
            if not hmac.compare_digest(sent.encode(), g.crmkit_csrf.encode()):
                raise Forbidden("the request lacks the session's CSRF token (X-CSRF-Token header)",
                                code="csrf_failed")
        return None
    if is_public(request.path, rt.spec.public):
        return None
    if request.path == "/logout":  # no session to end: back to the login page, not a trip through it
        return redirect("/login", code=303)
    if request.path.startswith(CHALLENGED) and not _wants_a_page():
        raise Unauthorized("log in first: send Authorization: Bearer TOKEN (create one with "
                           "'crmkit token create USER')", code="unauthorized")
    return redirect("/login?next=" + quote(safe_next(request.full_path), safe="/"))


def _wants_a_page() -> bool:
    """A browser asking for a page (such as /api/v1/docs) rather than a program asking for JSON."""
    accept = request.accept_mimetypes
    return request.method in ("GET", "HEAD") and accept["text/html"] > accept["application/json"]


def safe_next(target: str | None) -> str:
    """Only a path on this site (no scheme, no host, no //evil.example)."""
    if not target:
        return "/"
    if any(ch < " " or ch == "\x7f" for ch in target):  # urlsplit and browsers drop tabs and newlines
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target.rstrip("?") or "/"


def set_session_cookie(response: Response, value: str) -> None:
    from .identity import SESSION_DAYS

    response.set_cookie(SESSION_COOKIE, value, max_age=SESSION_DAYS * 86400, httponly=True, samesite="Lax",
                        secure=request.is_secure, path="/")


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Lax", secure=request.is_secure)


def init_app(app: Flask) -> None:
    app.before_request(authenticate)

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if response.status_code == 401 and request.path.startswith(CHALLENGED):
            response.headers.setdefault("WWW-Authenticate", 'Bearer realm="crmkit"')
        return response
