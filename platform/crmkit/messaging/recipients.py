"""Who a message goes to (the ``to`` of ``send`` and ``notify``):

- ``owner``: the record's owner; ``superior``: the owner's superior (the
  user's ``superior_id``, crmkit.identity);
- ``{role: R}``: every active user with role R;
- ``approvers``: the users who may decide the open step of the record's
  approval (an approval trigger's step; else every pending approval's open
  step, those who have not decided yet); ``requester``: who asked for the
  approval (an approval trigger's);
- ``{user: FIELD}``: the user a ref-to-user field of the record names;
- ``record``: the record itself (a customer with a mobile and an email);
- a ref path (``customer``, ``contract.customer``): the record it leads to.
A record is reached at its first email field (email) or phone field (SMS,
WeChat), a field named ``mobile`` or ``email`` first. A list of these sends to each.
Only active users receive messages; a recipient without an address for the
channel is skipped (and said so in the run log).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from ..metadata.spec import AppSpec, EntitySpec, FieldSpec
from ..permissions import SYSTEM
from .templates import Recipient

KEYWORDS = ("owner", "superior", "record", "approvers", "requester")
#: Recipients that come from an approval of the record (crmkit.approvals).
APPROVAL_KEYWORDS = ("approvers", "requester")
#: The field type that holds each channel's address on a record.
ADDRESS_TYPES = {"email": "email", "sms": "phone", "wechat": "phone"}


def address_field(entity: EntitySpec, channel: str) -> FieldSpec | None:
    """The field of a record that holds its address on the channel."""
    kind = ADDRESS_TYPES.get(channel)
    if kind is None:
        return None
    fields = [f for f in entity.fields.values() if f.type == kind]
    preferred = "email" if kind == "email" else "mobile"
    fields.sort(key=lambda f: (f.name != preferred, not f.mobile_only))
    return fields[0] if fields else None


def _items(to: Any) -> list[Any]:
    return list(to) if isinstance(to, list | tuple) else [to]


def check_to(spec: AppSpec, entity: EntitySpec | None, to: Any, channel: str) -> list[str]:
    """Problems of a ``to`` for a channel on an entity's records."""
    problems: list[str] = []
    users_only = channel == "in_app"
    for item in _items(to):
        if isinstance(item, Mapping) and set(item) == {"role"}:
            if item["role"] not in spec.roles and item["role"] != "admin":
                problems.append(f"to: unknown role '{item['role']}'")
            continue
        if item in APPROVAL_KEYWORDS:
            if entity is not None and not any(wf.entity == entity.name and any(
                    m.approval is not None for m in wf.transitions) for wf in spec.workflows):
                problems.append(f"to: {item}: no move of {entity.name} needs approval")
            continue
        if entity is None:
            if item not in ("owner", "superior") and not (isinstance(item, Mapping) and "role" in item):
                problems.append("to: only a role can be named without an entity")
            continue
        if isinstance(item, Mapping) and set(item) == {"user"}:
            field = entity.fields.get(str(item["user"]))
            if field is None or not (field.type == "ref" and field.to == "user"
                                     or field.name in ("owner_id", "created_by", "updated_by")):
                problems.append(f"to: {{user: {item['user']}}}: {entity.name} has no ref-to-user field "
                                f"'{item['user']}'")
            continue
        if item in ("owner", "superior"):
            if not entity.owned:
                problems.append(f"to: {item}: {entity.name} records have no owner (owned: false)")
            continue
        if not isinstance(item, str) or not item:
            problems.append("to must be owner, superior, approvers, requester, record, {role: R}, {user: FIELD} "
                            "or a ref path")
            continue
        if users_only:
            problems.append(f"to: {item}: in-app notifications go to users (owner, superior, {{role}}, {{user}})")
            continue
        target = entity if item == "record" else _follow(spec, entity, item.split("."), problems, item)
        if target is not None and address_field(target, channel) is None:
            kind = ADDRESS_TYPES.get(channel, "address")
            problems.append(f"to: {item}: {target.name} has no {kind} field to send {channel} to")
    return problems


def _follow(spec: AppSpec, entity: EntitySpec, steps: list[str], problems: list[str], text: str) -> EntitySpec | None:
    current = entity
    for step in steps:
        field = current.fields.get(step)
        if field is None or field.type != "ref":
            problems.append(f"to: '{text}': {current.name} has no ref field '{step}'")
            return None
        target = spec.entities.get(field.to or "")
        if target is None:
            problems.append(f"to: '{text}': {current.name}.{step} refers to {field.to}, which has no address")
            return None
        current = target
    return current


class RecipientFinder:
    """Resolves a ``to`` for one record (as the system: messages go where the config says)."""

    def __init__(self, rt: Any, conn: sa.Connection, approval: Mapping[str, Any] | None = None) -> None:
        self.rt = rt
        self.conn = conn
        #: The approval of an approval trigger (crmkit.approvals.ApprovalEvent.facts).
        self.approval = approval

    def find(self, to: Any, entity: EntitySpec | None, record: Mapping[str, Any] | None,
             channel: str) -> list[Recipient]:
        found: list[Recipient] = []
        seen: set[tuple[Any, ...]] = set()
        for item in _items(to):
            for recipient in self._one(item, entity, record, channel):
                key = (recipient.user_id, recipient.record, recipient.email, recipient.mobile)
                if key not in seen:
                    seen.add(key)
                    found.append(recipient)
        return found

    def _one(self, item: Any, entity: EntitySpec | None, record: Mapping[str, Any] | None,
             channel: str) -> list[Recipient]:
        record = record or {}
        if isinstance(item, Mapping) and "role" in item:
            return [self._user(row) for row in self._users_with_role(str(item["role"]))]
        if isinstance(item, Mapping) and "user" in item and entity is not None:
            field = entity.fields.get(str(item["user"]))
            return self._users([record.get(field.column)] if field is not None else [])
        if item == "owner":
            return self._users([record.get("owner_id")])
        if item == "approvers":
            if self.approval is not None:
                return self._users(list(self.approval.get("approvers") or ()))
            return self._users(self._deciding(entity, record)) if entity is not None else []
        if item == "requester":
            if self.approval is not None:
                return self._users([self.approval.get("requested_by")])
            return []
        if item == "superior":
            owner = self._user_row(record.get("owner_id"))
            return self._users([owner["superior_id"]] if owner is not None else [])
        if entity is None or not isinstance(item, str):
            return []
        if item == "record":
            return [self._record(entity, record, channel)]
        current, row = entity, record
        for step in item.split("."):
            field = current.fields.get(step)
            target = self.rt.spec.entities.get(field.to) if field is not None and field.type == "ref" else None
            value = row.get(field.column) if field is not None else None
            if target is None or not isinstance(value, int):
                return []
            fetched = self.rt.queries.fetch(self.conn, target, value, actor=SYSTEM)
            if fetched is None:
                return []
            current, row = target, fetched
        return [self._record(current, row, channel)]

    def _record(self, entity: EntitySpec, row: Mapping[str, Any], channel: str) -> Recipient:
        title = entity.fields.get(entity.title)
        name = str(row.get(title.column) or "") if title is not None else ""
        emails = [f for f in entity.fields.values() if f.type == "email"]
        email_field = address_field(entity, "email") if emails else None
        phone_field = address_field(entity, "sms")
        return Recipient(name=name or f"{entity.name} #{row.get('id')}",
                         email=row.get(email_field.column) if email_field is not None else None,
                         mobile=row.get(phone_field.column) if phone_field is not None else None,
                         record=(entity.name, int(row["id"])) if row.get("id") is not None else None)

    def _deciding(self, entity: EntitySpec, record: Mapping[str, Any]) -> list[int]:
        """Who has yet to decide the open step of the record's pending approvals."""
        if not isinstance(record.get("id"), int):
            return []
        approvals = self.rt.records.approvals
        t, a = approvals.table, approvals.approvers
        return list(self.conn.execute(sa.select(a.c.user_id).join(t, sa.and_(
            t.c.id == a.c.approval_id, t.c.step == a.c.position)).where(
            t.c.entity == entity.name, t.c.record_id == record["id"], t.c.status == "pending",
            a.c.decision.is_(None)).order_by(a.c.id)).scalars())

    def _user_row(self, user_id: Any) -> Mapping[Any, Any] | None:
        if not isinstance(user_id, int):
            return None
        users = self.rt.tables.users
        return self.conn.execute(sa.select(users).where(users.c.id == user_id, users.c.active.is_(True))
                                 ).mappings().first()

    def _users(self, ids: list[Any]) -> list[Recipient]:
        rows = [self._user_row(i) for i in ids]
        return [self._user(row) for row in rows if row is not None]

    def _users_with_role(self, role: str) -> list[Mapping[Any, Any]]:
        users = self.rt.tables.users
        rows = self.conn.execute(sa.select(users).where(users.c.active.is_(True)).order_by(users.c.id)).mappings()
        return [row for row in rows if role in (row["roles"] or ())]

    @staticmethod
    def _user(row: Mapping[str, Any]) -> Recipient:
        return Recipient(name=row["display_name"] or row["username"], email=row["email"], mobile=row["mobile"],
                         user_id=row["id"], username=row["username"], language=row["language"])
