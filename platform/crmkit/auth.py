"""Authentication of every request, browser login and logout, CSRF.

API clients send ``Authorization: Bearer TOKEN`` (a personal API token).
Browsers log in at /login and get a session cookie (HttpOnly, SameSite=Lax,
Secure when the request came over HTTPS); a request that changes something
with that cookie must carry the session's CSRF token (``X-CSRF-Token`` header
or ``csrf_token`` form field). Every route needs one or the other, except
/login, /healthz, static files and the paths the config lists as public.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from urllib.parse import quote, urlsplit

from flask import Blueprint, Flask, Response, g, redirect, render_template, request

from .errors import CrmError, Forbidden, TooManyRequests, Unauthorized
from .records import ANONYMOUS

SESSION_COOKIE = "crmkit_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ALWAYS_PUBLIC = ("/healthz", "/login", "/static/")

web = Blueprint("crmkit_auth", __name__)


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
    if request.path.startswith("/api/") and not _wants_a_page():
        raise Unauthorized("log in first: send Authorization: Bearer TOKEN (create one with "
                           "'crmkit token create USER')", code="unauthorized")
    return redirect("/login?next=" + quote(_safe_next(request.full_path), safe="/"))


def _wants_a_page() -> bool:
    """A browser asking for a page (such as /api/v1/docs) rather than a program asking for JSON."""
    accept = request.accept_mimetypes
    return request.method in ("GET", "HEAD") and accept["text/html"] > accept["application/json"]


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no scheme, no host, no //evil.example)."""
    if not target:
        return "/"
    if any(ch < " " or ch == "\x7f" for ch in target):  # urlsplit and browsers drop tabs and newlines
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target.rstrip("?") or "/"


def _client_address() -> str | None:
    return request.remote_addr


def _set_session_cookie(response: Response, value: str) -> None:
    from .identity import SESSION_DAYS

    response.set_cookie(SESSION_COOKIE, value, max_age=SESSION_DAYS * 86400, httponly=True, samesite="Lax",
                        secure=request.is_secure, path="/")


@web.get("/login")
def login_form():
    return _login_page(_safe_next(request.args.get("next")))


#: The login page loads nothing but its style sheet and posts only to this site.
LOGIN_PAGE_POLICY = "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"


def _login_page(target: str, error: CrmError | None = None, username: str = "") -> Response:
    from .metadata.spec import label_text

    spec = _runtime().spec
    page = render_template("login.html", next=target, username=username,
                           app_label=label_text(spec.label, "zh", spec.name),
                           error=error.message if error else None, error_zh=_in_chinese(error) if error else None)
    response = Response(page, status=error.status if error else 200, mimetype="text/html")
    response.headers["Content-Security-Policy"] = LOGIN_PAGE_POLICY
    response.headers["Cache-Control"] = "no-store"
    if isinstance(error, TooManyRequests):
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def _in_chinese(error: CrmError) -> str:
    if isinstance(error, TooManyRequests):
        return f"登录失败次数过多，请 {error.retry_after} 秒后再试"
    return "用户名或密码错误" if error.code == "login_failed" else "登录失败"


@web.post("/login")
def login():
    """Form post (redirects) or JSON ``{"username", "password"}`` (answers the CSRF token)."""
    rt = _runtime()
    as_json = request.is_json
    data = request.get_json(silent=True) if as_json else request.form
    if not isinstance(data, Mapping):
        data = {}
    username = data.get("username") if isinstance(data.get("username"), str) else ""
    password = data.get("password") if isinstance(data.get("password"), str) else ""
    target = _safe_next(data.get("next") if isinstance(data.get("next"), str) else None)
    try:
        cookie, csrf, user = rt.directory.login(username, password, _client_address())
    except CrmError as exc:
        if as_json:
            raise
        return _login_page(target, exc, username)
    if as_json:
        from .api import json_response

        response = json_response({"data": {"user": {"id": user["id"], "username": user["username"],
                                                    "display_name": user["display_name"]},
                                           "csrf_token": csrf}})
    else:
        response = redirect(target, code=303)
    old = request.cookies.get(SESSION_COOKIE)
    if old:  # a new session id at every login (no session fixation)
        rt.directory.logout(old)
    _set_session_cookie(response, cookie)
    return response


@web.post("/logout")
def logout():
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        _runtime().directory.logout(cookie)
    response = redirect("/login", code=303) if not request.is_json else Response(status=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Lax", secure=request.is_secure)
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(web)
    app.before_request(authenticate)

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if response.status_code == 401 and request.path.startswith("/api/"):
            response.headers.setdefault("WWW-Authenticate", 'Bearer realm="crmkit"')
        return response
