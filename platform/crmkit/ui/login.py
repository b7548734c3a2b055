"""The login and logout pages (a browser's way in; API clients use tokens).

The page is in Chinese and English, loads no script and sends its own strict
Content-Security-Policy. Sessions, cookies and CSRF are crmkit.auth's.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask import Blueprint, Response, current_app, redirect, render_template, request

from ..api.http import json_response
from ..auth import SESSION_COOKIE, clear_session_cookie, safe_next, set_session_cookie
from ..errors import CrmError, TooManyRequests
from ..metadata.spec import label_text

bp = Blueprint("crmkit_login", __name__)


def _runtime():
    return current_app.extensions["crmkit"]


@bp.get("/login")
def login_form():
    return _login_page(safe_next(request.args.get("next")))


#: The login page loads nothing but its style sheet and posts only to this site.
LOGIN_PAGE_POLICY = "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"


def _login_page(target: str, error: CrmError | None = None, username: str = "") -> Response:
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


@bp.post("/login")
def login():
    """Form post (redirects) or JSON ``{"username", "password"}`` (answers the CSRF token)."""
    rt = _runtime()
    as_json = request.is_json
    data = request.get_json(silent=True) if as_json else request.form
    if not isinstance(data, Mapping):
        data = {}
    username = data.get("username") if isinstance(data.get("username"), str) else ""
    password = data.get("password") if isinstance(data.get("password"), str) else ""
    target = safe_next(data.get("next") if isinstance(data.get("next"), str) else None)
    try:
        cookie, csrf, user = rt.directory.login(username, password, request.remote_addr)
    except CrmError as exc:
        if as_json:
            raise
        return _login_page(target, exc, username)
    if as_json:
        response = json_response({"data": {"user": {"id": user["id"], "username": user["username"],
                                                    "display_name": user["display_name"]},
                                           "csrf_token": csrf}})
    else:
        response = redirect(target, code=303)
    old = request.cookies.get(SESSION_COOKIE)
    if old:  # a new session id at every login (no session fixation)
        rt.directory.logout(old)
    set_session_cookie(response, cookie)
    return response


@bp.post("/logout")
def logout():
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        _runtime().directory.logout(cookie)
    response = redirect("/login", code=303) if not request.is_json else Response(status=204)
    clear_session_cookie(response)
    return response


