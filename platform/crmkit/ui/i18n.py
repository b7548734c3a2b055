"""The screens' language: which one a request gets, and the message catalogs.

Platform strings are marked with ``gettext`` (``_``) in Python and templates
and translated by Flask-Babel from the catalogs in ``ui/translations``
(compiled to ``.mo`` at install and build time). Labels written by the admin
(entities, fields, options) are not in the catalogs: they come from the
config, ``{en: ..., zh: ...}``, read with :func:`label`.

Which language: ``?lang=`` for one response, else the user's remembered
choice (a cookie for now), else the best match of the browser's
Accept-Language among the app's ``locales``, else the first of them.
"""

from __future__ import annotations

from collections.abc import Callable

from babel import Locale
from babel.support import NullTranslations
from flask import Flask, current_app, g, request
from flask_babel import Babel, get_locale, get_translations
from jinja2.nodes import EvalContext
from jinja2.utils import pass_eval_context
from markupsafe import Markup
from werkzeug.wrappers import Response

from ..metadata.spec import Label
from . import display

#: The cookie that remembers the language a user chose (until profiles keep it).
LANGUAGE_COOKIE = "crmkit_lang"
LANGUAGE_COOKIE_DAYS = 365
#: Each language's name in itself, for the language switch.
LANGUAGE_NAMES = {"zh": "中文", "en": "English"}
#: Each language's tag in HTML ``lang`` attributes (fonts and screen readers pick by it).
HTML_LANG = {"zh": "zh-CN", "en": "en"}
#: Where the compiled catalogs are, relative to the package (a link to ui/translations).
TRANSLATIONS = "ui/translations"


def offered() -> tuple[str, ...]:
    """The languages of the app (app.yaml ``locales``; the first is the default)."""
    return tuple(current_app.extensions["crmkit"].spec.locales)


def select_locale() -> str:
    languages = offered()
    for chosen in (request.args.get("lang"), request.cookies.get(LANGUAGE_COOKIE)):
        if chosen in languages:
            return chosen
    return request.accept_languages.best_match(languages) or languages[0]


def select_timezone() -> str:
    """Dates are shown in the app's timezone (app.yaml ``timezone``), for everyone."""
    return current_app.extensions["crmkit"].spec.timezone


def _current() -> Locale | None:
    """This response's Locale, read where Flask-Babel keeps it for the request
    (its get_locale() costs tens of µs a call, and a page asks hundreds of
    times); force_locale() swaps it there too, so this follows it."""
    state = g.get("_flask_babel")
    return getattr(state, "babel_locale", None) or get_locale()


def locale() -> str:
    """The language of the current response: ``zh`` or ``en``."""
    current = _current()
    cached = g.get("crmkit_locale")
    if cached is None or cached[0] is not current:
        cached = g.crmkit_locale = (current, str(current or offered()[0]))
    return cached[1]


def label(value: Label | None, fallback: str = "") -> str:
    """A config label (``{en, zh}`` or a plain string) in the current language."""
    return display.label(value, locale(), fallback)


def html_lang(language: str | None = None) -> str:
    code = language or locale()
    return HTML_LANG.get(code, code)


def translations() -> NullTranslations:
    """The catalog of this response's language, looked up once per request and
    language: Flask-Babel looks it up again for every string, which made a page
    of a hundred strings pay more for them than for its data."""
    language = _current()
    cached = g.get("crmkit_translations")
    if cached is None or cached[0] is not language:  # force_locale() sets another Locale
        cached = g.crmkit_translations = (language, get_translations())
    return cached[1]


def template_gettext() -> Callable[..., str]:
    """The templates' ``_()`` for this response's catalog: what Jinja's
    newstyle gettext does (a format string, escaped in HTML), with the catalog
    looked up once per template rather than per string (a page has dozens,
    and each lookup went through Flask's and Babel's request globals)."""
    lookup: Callable[[str], str] | None = None

    @pass_eval_context
    def gettext(eval_ctx: EvalContext, text: str, **variables: object) -> str:
        nonlocal lookup
        if lookup is None:  # at the first string: a template without one asks for no catalog
            lookup = translations().ugettext
        found: str = lookup(text)
        if eval_ctx.autoescape:
            found = Markup(found)
        return found % variables
    return gettext


def _template_gettext() -> dict[str, Callable[..., str]]:
    gettext = template_gettext()
    return {"_": gettext, "gettext": gettext}


def gettext(text: str, **variables: object) -> str:
    """flask_babel's ``gettext`` (the same catalog, the same formatting)
    through this response's catalog looked up once (:func:`translations`):
    a record page asks for a few dozen strings from Python."""
    found: str = translations().ugettext(text)
    return found % variables if variables else found


def remember_language(response: Response, language: str) -> None:
    response.set_cookie(LANGUAGE_COOKIE, language, max_age=LANGUAGE_COOKIE_DAYS * 86400, httponly=True,
                        samesite="Lax", secure=request.is_secure, path="/")


def init_app(app: Flask) -> None:
    Babel(app, locale_selector=select_locale, timezone_selector=select_timezone,
          default_translation_directories=TRANSLATIONS)
    # The templates' _() and ngettext(), through the cache above (the method comes with jinja2.ext.i18n).
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=lambda text: translations().ugettext(text),
        ngettext=lambda one, many, n: translations().ungettext(one, many, n), newstyle=True)
    app.context_processor(_template_gettext)
    app.jinja_env.globals.update(current_locale=locale, html_lang=html_lang, language_names=LANGUAGE_NAMES,
                                 offered_languages=offered)
    app.jinja_env.filters["label"] = label
