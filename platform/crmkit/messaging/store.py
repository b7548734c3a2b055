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


class MessageStore:
    def __init__(self, engine: sa.Engine, metadata: sa.MetaData) -> None:
        self.engine = engine
        self.messages = metadata.tables[MESSAGE_TABLE]
        self.notifications = metadata.tables[NOTIFICATION_TABLE]

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
        t = self.messages
        query = sa.select(t).order_by(t.c.id.desc()).limit(limit)
        if entity is not None:
            query = query.where(t.c.entity == entity)
        if record_id is not None:
            query = query.where(t.c.record_id == record_id)
        if before is not None:
            query = query.where(t.c.id < before)
        with self.engine.connect() as conn:
            return [_message_json(row) for row in conn.execute(query).mappings()]

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
                         limit: int = 50) -> list[sa.RowMapping]:
        t = self.notifications
        query = sa.select(t).where(t.c.user_id == user_id).order_by(t.c.id.desc()).limit(limit)
        if unread:
            query = query.where(t.c.read_at.is_(None))
        if before is not None:
            query = query.where(t.c.id < before)
        with self.engine.connect() as conn:
            return list(conn.execute(query).mappings())

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
