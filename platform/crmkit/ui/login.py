"""The login and logout pages (a browser's way in; API clients use tokens).

The page is in the visitor's language with the other one beside it (nobody
has chosen yet, and the wrong language should not stop anyone at the door),
loads no script and sends its own strict Content-Security-Policy. Sessions,
cookies and CSRF are crmkit.auth's.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask import Blueprint, Response, current_app, redirect, render_template, request
from flask_babel import force_locale, gettext
from werkzeug.wrappers import Response as BaseResponse

from ..api.http import json_response
from ..auth import SESSION_COOKIE, clear_session_cookie, safe_next, set_session_cookie
from ..errors import CrmError, TooManyRequests
from .i18n import label, locale, offered, remember_language

bp = Blueprint("crmkit_login", __name__)


def _runtime():
    return current_app.extensions["crmkit"]


@bp.get("/login")
def login_form():
    response = _login_page(safe_next(request.args.get("next")))
    if request.args.get("lang") in offered():  # the visitor chose on this page: keep it
        remember_language(response, request.args["lang"])
    return response


#: The login page loads nothing but its style sheets (and their data: icons) and posts only to this site.
LOGIN_PAGE_POLICY = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
                     "frame-ancestors 'none'; base-uri 'none'")


def _texts(error: CrmError | None) -> dict[str, str]:
    """The page's words in the current language."""
    texts = {"log_in": gettext("Log in"), "please": gettext("Please log in"), "user_name": gettext("User name"),
             "password": gettext("Password")}
    if isinstance(error, TooManyRequests):
        texts["error"] = gettext("too many failed logins; try again in %(seconds)s seconds",
                                 seconds=error.retry_after)
    elif error is not None:
        texts["error"] = gettext("wrong user name or password") if error.code == "login_failed" \
            else gettext("the login failed")
    return texts


def _login_page(target: str, error: CrmError | None = None, username: str = "") -> Response:
    spec = _runtime().spec
    language = locale()
    others = [code for code in offered() if code != language]
    second: dict[str, str] = {}
    if others:
        with force_locale(others[0]):
            second = _texts(error)
    page = render_template("login.html", next=target, username=username, app_label=label(spec.label, spec.name),
                           text=_texts(error), second=second, second_language=others[0] if others else None,
                           error=error)
    response = Response(page, status=error.status if error else 200, mimetype="text/html")
    response.headers["Content-Security-Policy"] = LOGIN_PAGE_POLICY
    response.headers["Cache-Control"] = "no-store"
    if isinstance(error, TooManyRequests):
        response.headers["Retry-After"] = str(error.retry_after)
    return response


@bp.post("/login")
def login():
    """Form post (redirects) or JSON ``{"username", "password"}`` (answers the CSRF token)."""
    rt = _runtime()
    as_json = request.is_json
    data = request.get_json(silent=True) if as_json else request.form
    if not isinstance(data, Mapping):
        data = {}
    username = data["username"] if isinstance(data.get("username"), str) else ""
    password = data["password"] if isinstance(data.get("password"), str) else ""
    target = safe_next(data.get("next") if isinstance(data.get("next"), str) else None)
    try:
        cookie, csrf, user = rt.directory.login(username, password, request.remote_addr)
    except CrmError as exc:
        if as_json:
            raise
        return _login_page(target, exc, username)
    response: BaseResponse
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
    if user["language"] in offered():  # the language they chose on the screens, on any browser they log in on
        remember_language(response, user["language"])
    return response


@bp.post("/logout")
def logout():
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        _runtime().directory.logout(cookie)
    response: BaseResponse = redirect("/login", code=303) if not request.is_json else Response(status=204)
    clear_session_cookie(response)
    return response


