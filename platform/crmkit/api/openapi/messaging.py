"""The messaging area (crmkit.messaging.api): the messages log and the caller's
notifications."""

from __future__ import annotations

from ...fieldtypes import MAX_ID
from .operations import _Operations
from .pieces import _data, _errors, _ok, _page, _path_id, _query


class _MessagingPaths(_Operations):
    """The messages' and notifications' paths."""

    def _messaging_paths(self) -> None:
        """crmkit.messaging.api: the messages log and the caller's notifications."""
        paging = [_query("limit", {"type": "integer", "minimum": 1, "maximum": 200}, "Items per page (default 50)."),
                  _query("cursor", {"type": "integer", "minimum": 0}, "The next of the previous page.")]
        message = {"type": "object", "properties": {
            name: {"type": ["string", "null"]} for name in (
                "channel", "recipient", "recipient_name", "subject", "body", "status", "error", "template",
                "automation", "entity", "created_at", "updated_at")} | {
            name: {"type": ["integer", "null"]} for name in ("id", "user_id", "record_id", "attempts")}}
        notification = {"type": "object", "properties": {
            "id": {"type": "integer"}, "title": {"type": "string"}, "body": {"type": "string"},
            "entity": {"type": ["string", "null"]}, "record_id": {"type": ["integer", "null"]},
            "automation": {"type": ["string", "null"]}, "created_at": {"type": "string"},
            "read": {"type": "boolean"}, "read_at": {"type": ["string", "null"]}}}
        self._op("/api/v1/messages", "get", "messages",
                 "What was sent about a record (email, SMS, WeChat, in-app, webhooks), newest first",
                 {**_ok(_page(message)), **_errors(400, 404)},
                 parameters=[_query("entity", {"enum": list(self.spec.entities)},
                                    "The record's entity (required unless you are an admin)."),
                             _query("record_id", {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                                    "The record's id (required unless you are an admin)."), *paging])
        unread = _page(notification)
        unread["properties"]["unread"] = {"type": "integer"}
        self._op("/api/v1/notifications", "get", "messages", "Your in-app notifications, newest first",
                 {**_ok(unread), **_errors(400)},
                 parameters=[_query("unread", {"enum": ["true", "false", "1", "0"]}, "Only the unread ones."),
                             _query("lang", {"enum": list(self.spec.locales)}, "The language of the texts."),
                             *paging])
        self._op("/api/v1/notifications/{notification_id}/read", "post", "messages",
                 "Mark one of your notifications read", {**_ok(_data(notification)), **_errors(404)},
                 parameters=[_path_id("notification_id", "notification")])
