"""The other routes: automation runs, the recycle bin, regions, this document
and its page, health, logging in and out, the start page."""

from __future__ import annotations

from .parameters import _ListParameters
from .pieces import _array, _data, _errors, _json, _ok, _page, _query, _ref


class _MetaPaths(_ListParameters):
    """The routes of no one area."""

    def _other_paths(self) -> None:
        entities = list(self.spec.entities)
        if self.rt.automations is not None:
            self._op("/api/v1/automations/runs", "get", "automations",
                     "Automation runs, newest first: every run (admins), or one record's runs (entity and "
                     "record_id of a record you may read)",
                     {**_ok(_page(_ref("AutomationRun"))), **_errors(400, 403, 404)},
                     parameters=self._list_parameters(self.rt.automations.log.source.spec))
        self._op("/api/v1/recycle_bin", "get", "meta", "Records in the recycle bin",
                 {**_ok(_data(_array({"type": "object"}))), **_errors(400, 403)},
                 access=[[e, "delete"] for e in entities],
                 parameters=[_query("entity", {"enum": entities}, required=True)])
        self._op("/api/v1/regions", "get", "meta", "省/市/区: the regions below one (provinces without parent)",
                 {**_ok(_data(_array(_ref("Region")))), **_errors(404)},
                 parameters=[_query("parent", _ref("RegionDistrict"))])
        self._op("/api/v1/openapi.json", "get", "meta", "This document (your view of it)",
                 {**_ok({"type": "object"}), **_errors()})
        self._op("/api/v1/docs", "get", "meta", "The API reference page (your view of it)",
                 {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}},
                  **_errors()})
        self._op("/healthz", "get", "meta", "Health: the database answers",
                 {**_ok({"type": "object", "properties": {"status": {"const": "ok"}, "app": {"type": "string"}}}),
                  "503": {"description": "The database does not answer",
                          "content": _json({"type": "object", "properties": {"status": {"const": "error"}}})}},
                 public=True)
        page = {"text/html": {"schema": {"type": "string"}}}
        both = {**_json(_ref("Error")), **page}
        self._op("/login", "post", "meta", "Log in for a browser session (a JSON body answers JSON, a form a page)",
                 {"200": {"description": "Logged in: the session cookie is set (JSON), or the login page again",
                          "content": {**_json(_data({"type": "object"})), **page}},
                  "303": {"description": "Logged in from the form: on to the next page"},
                  "401": {"description": "Wrong user name or password", "content": both},
                  "429": {"description": "Too many attempts", "content": both},
                  "default": {"description": "Any other error", "content": both}}, public=True,
                 body={"type": "object", "required": ["username", "password"],
                       "properties": {"username": {"type": "string"}, "password": {"type": "string"},
                                      "next": {"type": "string"}}})
        self._op("/login", "get", "meta", "The login page", {
            "200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}},
            public=True, parameters=[_query("next", {"type": "string"},
                                            "Where to go after logging in (a path of this site; anything else "
                                            "goes to the start page).")])
        self._op("/logout", "post", "meta", "End the browser session",
                 {"204": {"description": "Logged out (JSON)"}, "303": {"description": "To the login page (a form)"},
                  **_errors()})
        self._op("/", "get", "meta", "The start page: a redirect to the API reference",
                 {"302": {"description": "To /api/v1/docs"}, **_errors()})
