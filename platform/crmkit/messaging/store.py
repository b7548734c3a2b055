"""What was sent to whom: the messages table (every message, webhook call and
in-app notification an automation made, with its status) and the
notifications table (a user's in-app notifications, read or not).

This module is the only writer of both tables; it declares them through the
``crmkit_tables`` hook (crmkit.messaging.plugin), as any plugin would.

A message's ``effect_key`` makes a delivery happen once however often its job
runs: the first run claims the key (status ``sending``) before it sends; a
run that finds the key sent (or being sent) skips it; a failed one may be
tried again by a later run (the job queue's retry).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..database import write_transaction
from ..metadata.builtin_entities import platform_field, platform_id, platform_spec
from ..metadata.spec import EntitySpec
from ..permissions import SYSTEM
from ..query import ALL, NOT_NULL, QueryBuilder, Source
from ..sqltypes import UTC, UTCDateTime, json_type

MESSAGE_TABLE = "crmkit_message"
NOTIFICATION_TABLE = "crmkit_notification"
SENDING = "sending"
#: Longest texts kept (a message longer than this is cut in the log, not in what is sent).
MAX_BODY = 8000
KEY_SIZE = 250


def declare_tables(metadata: sa.MetaData) -> None:
    sa.Table(
        MESSAGE_TABLE, metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("effect_key", sa.String(KEY_SIZE), unique=True),
        sa.Column("channel", sa.String(40), nullable=False),
        sa.Column("recipient", sa.String(300), nullable=False),
        sa.Column("recipient_name", sa.String(200)),
        sa.Column("user_id", sa.Integer),
        sa.Column("subject", sa.String(500)),
        sa.Column("body", sa.Text),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("error", sa.String(500)),
        sa.Column("template", sa.String(64)),
        sa.Column("automation", sa.String(64)),
        sa.Column("entity", sa.String(64)),
        sa.Column("record_id", sa.Integer),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Index("ix_crmkit_message_record", "entity", "record_id", "id"),
        sqlite_autoincrement=True,
    )
    sa.Table(
        NOTIFICATION_TABLE, metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, nullable=False),
        #: {language: text}: the bell shows each reader their own language.
        sa.Column("title", json_type(), nullable=False),
        sa.Column("body", json_type(), nullable=False),
        sa.Column("entity", sa.String(64)),
        sa.Column("record_id", sa.Integer),
        sa.Column("automation", sa.String(64)),
        sa.Column("message_id", sa.Integer),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("read_at", UTCDateTime()),
        sa.Index("ix_crmkit_notification_user", "user_id", "read_at", "id"),
        sqlite_autoincrement=True,
    )


def now() -> dt.datetime:
    return dt.datetime.now(UTC)


@dataclass(frozen=True)
class Origin:
    """Where a message comes from: the automation and the record it ran for."""

    automation: str | None = None
    entity: str | None = None
    record_id: int | None = None
    template: str | None = None


def message_spec() -> EntitySpec:
    """The messages table as the list grammar reads it."""
    return platform_spec("message", "Messages", "消息", (
        platform_id("id", "ID", "编号"),
        platform_field("channel", "string", "Channel", "渠道"),
        platform_field("recipient", "string", "Recipient", "接收地址"),
        platform_field("recipient_name", "string", "Recipient name", "接收人"),
        platform_id("user_id", "User", "用户"),
        platform_field("subject", "string", "Subject", "标题"),
        platform_field("body", "text", "Body", "正文"),
        platform_field("status", "string", "Status", "状态"),
        platform_field("error", "string", "Error", "错误"),
        platform_field("template", "string", "Template", "模板"),
        platform_field("automation", "string", "Automation", "自动化"),
        platform_field("entity", "string", "Entity", "对象"),
        platform_id("record_id", "Record", "记录"),
        platform_field("attempts", "integer", "Attempts", "尝试次数"),
        platform_field("created_at", "datetime", "Created at", "创建时间"),
        platform_field("updated_at", "datetime", "Updated at", "更新时间"),
    ), sort=("-id",))


def notification_spec() -> EntitySpec:
    """The notifications table as the list grammar reads it."""
    return platform_spec("notification", "Notifications", "通知", (
        platform_id("id", "ID", "编号"),
        platform_id("user_id", "User", "用户"),
        platform_field("title", "json", "Title", "标题"),
        platform_field("body", "json", "Body", "正文"),
        platform_field("entity", "string", "Entity", "对象"),
        platform_id("record_id", "Record", "记录"),
        platform_field("automation", "string", "Automation", "自动化"),
        platform_id("message_id", "Message", "消息"),
        platform_field("created_at", "datetime", "Created at", "创建时间"),
        platform_field("read_at", "datetime", "Read at", "阅读时间"),
    ), sort=("-id",))


class MessageStore:
    """The messages and notifications tables: written here only; read
    through the query builder (``queries``), as list sources of their own."""

    def __init__(self, engine: sa.Engine, metadata: sa.MetaData, queries: QueryBuilder) -> None:
        self.engine = engine
        self.messages = metadata.tables[MESSAGE_TABLE]
        self.notifications = metadata.tables[NOTIFICATION_TABLE]
        self.queries = queries
        spec = message_spec()
        self.message_source = Source(MESSAGE_TABLE, spec, self.messages, None, ALL, frozenset(spec.fields),
                                     NOT_NULL | {"channel", "recipient", "status", "attempts"})
        spec = notification_spec()
        self.notification_source = Source(NOTIFICATION_TABLE, spec, self.notifications, None, ALL,
                                          frozenset(spec.fields), NOT_NULL | {"user_id", "title", "body"})

    def _read(self, source: Source, args: list[tuple[str, str]], limit: int) -> list[dict[str, Any]]:
        """A page of a source, newest first, as the system (the callers checked who asks)."""
        access = self.queries.permissions.of(SYSTEM)
        request = self.queries.parse_list(source, [*args, ("sort", "-id")], access)
        request.limit = limit  # the callers' own bounds (a page and one more, to tell if there is a next)
        with self.engine.connect() as conn:
            rows = self.queries.page(conn, source, request, actor=SYSTEM).mappings()
        moments = [name for name, f in source.spec.fields.items() if f.type == "datetime"]
        for row in rows:  # SQLite hands the query builder's lists their moments as API text
            for name in moments:
                if isinstance(row.get(name), str):
                    row[name] = dt.datetime.fromisoformat(row[name].replace("Z", "+00:00"))
        return rows

    # ------------------------------------------------------------ messages

    def claim(self, key: str, channel: str, recipient: str, origin: Origin) -> int | None:
        """The id of a message row now ``sending`` under ``key``, or None when
        the key was sent (or is being sent, or was not sent for want of a
        gateway) by an earlier run."""
        t = self.messages
        key = key[:KEY_SIZE]
        at = now()
        try:
            with write_transaction(self.engine) as tx:
                return int(tx.execute(t.insert().returning(t.c.id).values(
                    effect_key=key, channel=channel, recipient=recipient[:300], status=SENDING,
                    automation=origin.automation, entity=origin.entity, record_id=origin.record_id,
                    template=origin.template, created_at=at, updated_at=at)).scalar_one())
        except sa.exc.IntegrityError:  # an earlier run has the key: only a failed delivery is tried again
            pass
        with write_transaction(self.engine) as tx:
            row = tx.execute(sa.select(t.c.id, t.c.status).where(t.c.effect_key == key)).first()
            if row is None or row.status != "failed":
                return None
            taken = tx.execute(t.update().where(t.c.id == row.id, t.c.status == "failed")
                               .values(status=SENDING, attempts=t.c.attempts + 1, updated_at=at)).rowcount
            return int(row.id) if taken else None

    def finish(self, message_id: int, *, status: str, error: str = "", subject: str | None = None,
               body: str | None = None, recipient_name: str | None = None, user_id: int | None = None) -> None:
        t = self.messages
        with write_transaction(self.engine) as tx:
            tx.execute(t.update().where(t.c.id == message_id).values(
                status=status, error=error[:500] or None, subject=(subject or "")[:500] or None,
                body=(body or "")[:MAX_BODY], recipient_name=(recipient_name or "")[:200] or None,
                user_id=user_id, updated_at=now()))

    def log(self, conn: sa.Connection, *, channel: str, recipient: str, status: str, origin: Origin,
            subject: str = "", body: str = "", error: str = "", key: str | None = None,
            recipient_name: str | None = None, user_id: int | None = None) -> int:
        """A finished message, written in the caller's transaction."""
        t = self.messages
        at = now()
        return int(conn.execute(t.insert().returning(t.c.id).values(
            effect_key=key[:KEY_SIZE] if key else None, channel=channel, recipient=recipient[:300],
            recipient_name=(recipient_name or "")[:200] or None, user_id=user_id, subject=subject[:500] or None,
            body=body[:MAX_BODY], status=status, error=error[:500] or None, automation=origin.automation,
            entity=origin.entity, record_id=origin.record_id, template=origin.template, created_at=at,
            updated_at=at)).scalar_one())

    def of_record(self, entity: str | None, record_id: int | None, *, before: int | None = None,
                  limit: int = 50) -> list[dict[str, Any]]:
        """Messages about a record (or all, for an admin), newest first."""
        args = [("entity", entity)] if entity is not None else []
        args += [("record_id", str(record_id))] if record_id is not None else []
        args += [("id__lt", str(before))] if before is not None else []
        return [_message_json(row) for row in self._read(self.message_source, args, limit)]

    # ------------------------------------------------------------ notifications

    def notify(self, *, key: str, user_id: int, recipient: str, title: Mapping[str, str], body: Mapping[str, str],
               language: str, origin: Origin) -> bool:
        """An in-app notification for a user, and its line in the messages
        table, in one transaction: once per key (False: an earlier run made it)."""
        t = self.notifications
        try:
            with write_transaction(self.engine) as tx:
                message_id = self.log(tx, channel="in_app", recipient=recipient, status="sent", origin=origin,
                                      subject=title.get(language, ""), body=body.get(language, ""), key=key,
                                      recipient_name=recipient, user_id=user_id)
                tx.execute(t.insert().values(user_id=user_id, title=dict(title), body=dict(body),
                                             entity=origin.entity, record_id=origin.record_id,
                                             automation=origin.automation, message_id=message_id, created_at=now()))
        except sa.exc.IntegrityError:
            return False
        return True

    def unread_count(self, user_id: int, conn: sa.Connection | None = None) -> int:
        query = sa.select(self.unread_count_query())
        if conn is not None:
            return int(conn.execute(query, {"user_id": user_id}).scalar_one())
        with self.engine.connect() as own:
            return int(own.execute(query, {"user_id": user_id}).scalar_one())

    def unread_count_query(self) -> sa.ScalarSelect[Any]:
        """:meth:`unread_count` as SQL, of the user in the bind parameter ``user_id``
        (the shell's bell reads it with the shell's other counts in one statement)."""
        t = self.notifications
        return sa.select(sa.func.count()).select_from(t).where(
            t.c.user_id == sa.bindparam("user_id"), t.c.read_at.is_(None)).scalar_subquery()

    def notifications_of(self, user_id: int, *, unread: bool = False, before: int | None = None,
                         limit: int = 50) -> list[dict[str, Any]]:
        """A user's notifications, newest first."""
        args = [("user_id", str(user_id))]
        args += [("read_at__isnull", "true")] if unread else []
        args += [("id__lt", str(before))] if before is not None else []
        return self._read(self.notification_source, args, limit)

    def mark_read(self, user_id: int, notification_id: int) -> sa.RowMapping | None:
        """Mark one of the user's notifications read (None: no such notification of theirs)."""
        t = self.notifications
        with write_transaction(self.engine) as tx:
            tx.execute(t.update().where(t.c.id == notification_id, t.c.user_id == user_id, t.c.read_at.is_(None))
                       .values(read_at=now()))
            return tx.execute(sa.select(t).where(t.c.id == notification_id, t.c.user_id == user_id)).mappings().first()


def _message_json(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {"id": row["id"], "channel": row["channel"], "recipient": row["recipient"],
            "recipient_name": row["recipient_name"], "user_id": row["user_id"], "subject": row["subject"],
            "body": row["body"], "status": row["status"], "error": row["error"], "template": row["template"],
            "automation": row["automation"], "entity": row["entity"], "record_id": row["record_id"],
            "attempts": row["attempts"], "created_at": _iso(row["created_at"]), "updated_at": _iso(row["updated_at"])}


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def notification_json(row: Mapping[Any, Any], language: str) -> dict[str, Any]:
    title, body = row["title"] or {}, row["body"] or {}
    return {"id": row["id"], "title": title.get(language) or next(iter(title.values()), ""),
            "body": body.get(language) or next(iter(body.values()), ""), "entity": row["entity"],
            "record_id": row["record_id"], "automation": row["automation"], "created_at": _iso(row["created_at"]),
            "read": row["read_at"] is not None, "read_at": _iso(row["read_at"])}
