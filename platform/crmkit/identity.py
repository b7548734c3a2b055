"""Users, teams, passwords, API tokens and browser sessions.

Passwords are hashed with Argon2id (argon2-cffi, OWASP's first choice). API
tokens and session cookies are random 256-bit secrets; only their SHA-256
digests are stored, so a copy of the database lets nobody in. Logins are
throttled per user name and per address after repeated failures. Logins,
failed logins, token creation and revocation, and role changes are written to
the audit trail (entity ``crmkit_user``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .database import write_transaction
from .errors import Conflict, NotFound, TooManyRequests, Unauthorized, ValidationFailed
from .fieldtypes import BLANK, MAX_ID
from .permissions import Actor, Permissions
from .sqltypes import UTC
from .tables import Tables

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{1,63}$")
TEAM_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
HAS_TEXT = re.compile(f"[^{BLANK}]")
MIN_PASSWORD = 8
TOKEN_PREFIX = "crm_"
SESSION_DAYS = 14
#: Failures before a lock, the window they are counted in, and the lock.
THROTTLE_FAILURES = 5
#: An address is shared by a whole office behind NAT: it gets more tries
#: before it locks (a guesser trying many user names still meets it soon).
ADDRESS_FAILURES = 20
THROTTLE_WINDOW = dt.timedelta(minutes=15)
THROTTLE_LOCK = dt.timedelta(minutes=15)
AUDIT_ENTITY = "crmkit_user"
#: A token's last use is written at most this often (a write per request would serialise readers).
TOUCH_EVERY = dt.timedelta(minutes=1)

_hasher = PasswordHasher()
#: Verified against when the user does not exist, so both cases take as long.
_DUMMY_HASH: str | None = None  # made on the first login, not at import (a third of a second)


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = _hasher.hash("not a password of anyone")
    return _DUMMY_HASH


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _named(value: Any, key: str, max_length: int | None, message: str) -> str:
    """A name people read (a display name, a label): text with something
    besides blanks and no NUL, at most ``max_length`` as sent; stored trimmed."""
    if (not isinstance(value, str) or "\x00" in value or not HAS_TEXT.search(value)
            or max_length is not None and len(value) > max_length):
        limit = f" of at most {max_length} characters" if max_length else ""
        raise ValidationFailed(message, {key: [f"must be text{limit}, not only blanks"]})
    return value.strip()


def now() -> dt.datetime:
    return dt.datetime.now(UTC)


@dataclass(frozen=True)
class NewToken:
    id: int
    name: str
    token: str  # shown once
    expires_at: dt.datetime | None


class Directory:
    """The people who use the CRM: users, teams and how they prove who they are."""

    def __init__(self, engine: sa.Engine, tables: Tables, permissions: Permissions) -> None:
        self.engine = engine
        self.tables = tables
        self.permissions = permissions
        users, tokens = tables.users, tables.tokens
        self._by_token = (sa.select(users, tokens.c.id.label("token_id"), tokens.c.last_used_at.label("token_used_at"))
                          .join(tokens, tokens.c.user_id == users.c.id)
                          .where(tokens.c.digest == sa.bindparam("_digest"), tokens.c.revoked_at.is_(None),
                                 sa.or_(tokens.c.expires_at.is_(None), tokens.c.expires_at > sa.bindparam("_now")),
                                 users.c.active.is_(True)))
        sessions = tables.sessions
        self._by_session = (sa.select(users, sessions.c.csrf.label("session_csrf"),
                                      sessions.c.last_seen_at.label("session_seen_at"))
                            .join(sessions, sessions.c.user_id == users.c.id)
                            .where(sessions.c.digest == sa.bindparam("_digest"),
                                   sessions.c.expires_at > sa.bindparam("_now"), users.c.active.is_(True)))

    # ------------------------------------------------------------ actors

    def actor(self, user: Mapping) -> Actor:
        return Actor(user["id"], user["username"], team_id=user["team_id"],
                     access=self.permissions.access(user["roles"] or ()))

    def actor_for_token(self, token: str) -> Actor | None:
        if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
            return None
        at = now()
        with self.engine.connect() as conn:
            row = conn.execute(self._by_token, {"_digest": digest(token), "_now": at}).mappings().first()
        if row is None:
            return None
        if row["token_used_at"] is None or at - row["token_used_at"] > TOUCH_EVERY:
            with write_transaction(self.engine) as tx:
                tx.execute(self.tables.tokens.update().where(self.tables.tokens.c.id == row["token_id"])
                           .values(last_used_at=at))
        return self.actor(row)

    def session(self, cookie: str) -> tuple[Actor, str] | None:
        """(actor, CSRF token) of a live session; sliding expiry."""
        if not cookie or len(cookie) > 100:
            return None
        at = now()
        key = digest(cookie)
        with self.engine.connect() as conn:
            row = conn.execute(self._by_session, {"_digest": key, "_now": at}).mappings().first()
        if row is None:
            return None
        if at - row["session_seen_at"] > TOUCH_EVERY:
            sessions = self.tables.sessions
            with write_transaction(self.engine) as tx:
                tx.execute(sessions.update().where(sessions.c.digest == key)
                           .values(last_seen_at=at, expires_at=at + dt.timedelta(days=SESSION_DAYS)))
        return self.actor(row), row["session_csrf"]

    # ------------------------------------------------------------ login

    def login(self, username: str, password: str, address: str | None = None) -> tuple[str, str, Mapping]:
        """Check a password; returns (session cookie value, CSRF token, user).

        Raises Unauthorized (one message whether the name or the password was
        wrong) or TooManyRequests while the name or the address is locked."""
        keys = [f"user:{username.strip().lower()[:100]}"] + ([f"ip:{address}"] if address else [])
        at = now()
        self._check_throttle(keys, at)
        users = self.tables.users
        with self.engine.connect() as conn:
            user = conn.execute(sa.select(users).where(sa.func.lower(users.c.username) == username.strip().lower())
                                ).mappings().first()
        stored = user["password_hash"] if user is not None and user["password_hash"] else _dummy_hash()
        try:
            ok = _hasher.verify(stored, password) and user is not None and bool(user["password_hash"])
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok or not user["active"]:
            self._fail(keys, at, user, username)
            raise Unauthorized("wrong user name or password", code="login_failed")
        cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with write_transaction(self.engine) as tx:
            tx.execute(self.tables.login_failures.delete().where(self.tables.login_failures.c.key == keys[0]))
            tx.execute(self.tables.sessions.insert().values(
                digest=digest(cookie), user_id=user["id"], csrf=csrf, created_at=at, last_seen_at=at,
                expires_at=at + dt.timedelta(days=SESSION_DAYS)))
            updates: dict[str, Any] = {"last_login_at": at}
            if _hasher.check_needs_rehash(user["password_hash"]):
                updates["password_hash"] = _hasher.hash(password)
            tx.execute(users.update().where(users.c.id == user["id"]).values(**updates))
            self._audit(tx, "login", user["id"], user["username"], {"address": address})
        return cookie, csrf, user

    def verify(self, user_id: int, password: str) -> bool:
        """Whether this is the user's password (to confirm a password change)."""
        users = self.tables.users
        with self.engine.connect() as conn:
            stored = conn.execute(sa.select(users.c.password_hash).where(users.c.id == user_id)).scalar()
        try:
            return bool(stored) and _hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    def logout(self, cookie: str) -> None:
        with write_transaction(self.engine) as tx:
            tx.execute(self.tables.sessions.delete().where(self.tables.sessions.c.digest == digest(cookie)))

    def _check_throttle(self, keys: list[str], at: dt.datetime) -> None:
        table = self.tables.login_failures
        with self.engine.connect() as conn:
            locked = conn.execute(sa.select(sa.func.max(table.c.locked_until))
                                  .where(table.c.key.in_(keys), table.c.locked_until > at)).scalar()
        if locked is not None:
            wait = max(1, int((locked - at).total_seconds()) + 1)
            raise TooManyRequests(f"too many failed logins; try again in {wait} seconds", wait)

    def _fail(self, keys: list[str], at: dt.datetime, user: Mapping | None, username: str) -> None:
        with write_transaction(self.engine) as tx:
            for key in keys:
                tx.execute(self._count_failure(tx, key, at))
            self._audit(tx, "login_failed", user["id"] if user is not None else 0,
                        user["username"] if user is not None else "anonymous",
                        {"username": username[:100], "address": keys[1][3:] if len(keys) > 1 else None})

    def _count_failure(self, tx: sa.Connection, key: str, at: dt.datetime) -> sa.Executable:
        """One more failure for a key, in one statement: parallel guesses (many
        workers) are all counted, and the first of a key is not inserted twice."""
        if tx.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        table = self.tables.login_failures
        when = table.c.first_at.type

        def time(value: dt.datetime) -> sa.ColumnElement:
            return sa.literal(value, when)

        window_over = table.c.first_at < time(at - THROTTLE_WINDOW)  # of the row as it was
        limit = ADDRESS_FAILURES if key.startswith("ip:") else THROTTLE_FAILURES
        return insert(table).values(key=key, failures=1, first_at=at, locked_until=None).on_conflict_do_update(
            index_elements=[table.c.key],
            set_={"failures": sa.case((window_over, 1), else_=table.c.failures + 1),
                  "first_at": sa.case((window_over, time(at)), else_=table.c.first_at),
                  "locked_until": sa.case((window_over, sa.null()),
                                          (table.c.failures + 1 >= limit, time(at + THROTTLE_LOCK)),
                                          else_=table.c.locked_until)})

    # ------------------------------------------------------------ tokens

    def create_token(self, user_id: int, name: str, *, expires_days: int | None = None,
                     by: Actor | None = None) -> NewToken:
        name = _named(name, "name", 100, "a token needs a name of 1 to 100 characters")
        if expires_days is not None and not 0 < expires_days <= 3650:
            raise ValidationFailed("expires_days must be between 1 and 3650", {"expires_days": ["1 to 3650"]})
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        at = now()
        expires = at + dt.timedelta(days=expires_days) if expires_days else None
        with write_transaction(self.engine) as tx:
            self._user(tx, user_id)
            token_id = tx.execute(self.tables.tokens.insert().returning(self.tables.tokens.c.id).values(
                user_id=user_id, name=name, digest=digest(token), hint=token[:8], created_at=at,
                expires_at=expires)).scalar_one()
            self._audit(tx, "token_created", user_id, by.name if by else "system",
                        {"token_id": token_id, "name": name}, by)
        return NewToken(token_id, name, token, expires)

    def tokens(self, user_id: int) -> list[dict]:
        t = self.tables.tokens
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.c.id, t.c.name, t.c.hint, t.c.created_at, t.c.expires_at,
                                          t.c.last_used_at, t.c.revoked_at)
                                .where(t.c.user_id == user_id).order_by(t.c.id)).mappings().all()
        return [dict(r) for r in rows]

    def revoke_token(self, user_id: int, token_id: int, *, by: Actor | None = None) -> None:
        t = self.tables.tokens
        with write_transaction(self.engine) as tx:
            done = tx.execute(t.update().where(t.c.id == token_id, t.c.user_id == user_id, t.c.revoked_at.is_(None))
                              .values(revoked_at=now())).rowcount
            if not done:
                raise NotFound(f"no active token {token_id}")
            self._audit(tx, "token_revoked", user_id, by.name if by else "system", {"token_id": token_id}, by)

    # ------------------------------------------------------------ users and teams

    def _user(self, conn: sa.Connection, user_id: int) -> Mapping:
        row = conn.execute(sa.select(self.tables.users).where(self.tables.users.c.id == user_id)).mappings().first()
        if row is None:
            raise NotFound(f"no user {user_id}")
        return row

    def user(self, ref: int | str) -> Mapping:
        """A user by id or user name."""
        users = self.tables.users
        where = users.c.id == ref if isinstance(ref, int) else sa.func.lower(users.c.username) == ref.lower()
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(users).where(where)).mappings().first()
        if row is None:
            raise NotFound(f"no user {ref!r}")
        return row

    def users(self) -> list[Mapping]:
        """Every user, by id (for admins' tools; the API lists users within a scope)."""
        users = self.tables.users
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(users).order_by(users.c.id)).mappings())

    def teams(self) -> list[Mapping]:
        """Every team, by name, with ``members``: how many active users it has."""
        teams, users = self.tables.teams, self.tables.users
        members = (sa.select(sa.func.count()).where(users.c.team_id == teams.c.id, users.c.active.is_(True))
                   .scalar_subquery().label("members"))
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(teams, members).order_by(teams.c.name)).mappings())

    def team(self, ref: int | str) -> Mapping:
        teams = self.tables.teams
        where = teams.c.id == ref if isinstance(ref, int) else teams.c.name == ref
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(teams).where(where)).mappings().first()
        if row is None:
            raise NotFound(f"no team {ref!r}")
        return row

    def _check_roles(self, roles: Any) -> list[str]:
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise ValidationFailed("roles must be a list of role names", {"roles": ["must be a list of role names"]})
        unknown = [r for r in roles if r not in self.permissions.roles]
        if unknown:
            from .metadata.problems import did_you_mean

            hint = did_you_mean(unknown[0], self.permissions.roles)
            raise ValidationFailed(f"unknown role '{unknown[0]}'" + (f" ({hint})" if hint else ""),
                                   {"roles": [f"unknown role '{r}'" for r in unknown]})
        return list(dict.fromkeys(roles))

    def check_password(self, password: Any) -> str:
        if not isinstance(password, str) or len(password) < MIN_PASSWORD:
            raise ValidationFailed(f"a password needs at least {MIN_PASSWORD} characters",
                                   {"password": [f"at least {MIN_PASSWORD} characters"]})
        if len(password) > 1024:
            raise ValidationFailed("a password has at most 1024 characters", {"password": ["at most 1024 characters"]})
        return password

    def _reference(self, tx: sa.Connection, table: sa.Table, value: Any, what: str) -> int | None:
        if value is None:
            return None
        if isinstance(value, str) and not (value.isascii() and value.isdigit()):
            column = table.c.username if table is self.tables.users else table.c.name
            found = tx.execute(sa.select(table.c.id).where(column == value)).scalar()
        elif isinstance(value, (int, str)) and not isinstance(value, bool) and len(str(value)) <= 10 \
                and 0 < int(value) <= MAX_ID:  # a larger number is no id (and overflows the column)
            found = tx.execute(sa.select(table.c.id).where(table.c.id == int(value))).scalar()
        else:
            found = None
        if found is None:
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "…"  # never echoed whole
            raise Conflict(f"no {what} {shown}", {f"{what}_id": [f"no {what} {shown}"]}, code="reference_not_found")
        return found

    USER_FIELDS = ("username", "display_name", "email", "mobile", "active", "roles", "team_id", "superior_id",
                   "password")

    def create_user(self, data: Mapping, *, by: Actor | None = None) -> Mapping:
        """A user from a mapping of USER_FIELDS (team and superior by id or name)."""
        self._unknown(data, self.USER_FIELDS)
        username = data.get("username")
        if not isinstance(username, str) or not USERNAME.fullmatch(username):
            raise ValidationFailed("a user name has 2 to 64 letters, digits, and . _ @ -",
                                   {"username": ["2 to 64 letters, digits, and . _ @ -"]})
        at = now()
        with write_transaction(self.engine) as tx:
            users = self.tables.users
            if tx.execute(sa.select(users.c.id).where(sa.func.lower(users.c.username) == username.lower())).first():
                raise Conflict(f"another user is named '{username}'", {"username": ["already taken"]},
                               code="unique_violation")
            values = self._user_values(tx, {"display_name": username, "roles": [], "active": True, **data})
            if data.get("password") is not None:
                values["password_hash"] = _hasher.hash(self.check_password(data["password"]))
                values["password_changed_at"] = at
            values.update(username=username, created_at=at, updated_at=at)
            user_id = tx.execute(users.insert().returning(users.c.id).values(**values)).scalar_one()
            self._audit(tx, "user_created", user_id, by.name if by else "system",
                        {k: v for k, v in values.items() if k in ("roles", "team_id", "superior_id", "active")}, by)
            return self._user(tx, user_id)

    def update_user(self, user_id: int, data: Mapping, *, by: Actor | None = None) -> Mapping:
        self._unknown(data, self.USER_FIELDS[1:])
        with write_transaction(self.engine) as tx:
            old = self._user(tx, user_id)
            values = self._user_values(tx, data)
            if "superior_id" in values and values["superior_id"] is not None:
                self._no_cycle(tx, user_id, values["superior_id"])
            if data.get("password") is not None:
                values["password_hash"] = _hasher.hash(self.check_password(data["password"]))
                values["password_changed_at"] = now()
                tx.execute(self.tables.sessions.delete().where(self.tables.sessions.c.user_id == user_id))
            changes = {k: [old[k], v] for k, v in values.items() if k != "password_hash" and old[k] != v}
            if values:
                values["updated_at"] = now()
                tx.execute(self.tables.users.update().where(self.tables.users.c.id == user_id).values(**values))
            if "roles" in changes:
                self._audit(tx, "roles_changed", user_id, by.name if by else "system", {"roles": changes["roles"]}, by)
            if changes.keys() - {"roles"} or "password_hash" in values:
                detail = {k: v for k, v in changes.items() if k != "roles"}
                if "password_hash" in values:
                    detail["password"] = "changed"
                self._audit(tx, "user_updated", user_id, by.name if by else "system", detail, by)
            if values.get("active") is False:
                tx.execute(self.tables.sessions.delete().where(self.tables.sessions.c.user_id == user_id))
            return self._user(tx, user_id)

    def _unknown(self, data: Mapping, allowed: Iterable[str]) -> None:
        if not isinstance(data, Mapping):
            raise ValidationFailed("send a JSON object", {"_body": ["must be a JSON object"]})
        unknown = [k for k in data if k not in allowed and k not in ("id",)]
        if unknown:
            raise ValidationFailed(f"unknown field '{unknown[0]}'", {k: ["unknown field"] for k in unknown})

    def _user_values(self, tx: sa.Connection, data: Mapping) -> dict:
        values: dict[str, Any] = {}
        for key in ("display_name", "email", "mobile"):
            if key in data:
                value = data[key]
                if key == "display_name":  # a person always has a name to show
                    values[key] = _named(value, key, 254, f"{key} must be text")
                    continue
                if value is not None and (not isinstance(value, str) or len(value) > 254 or "\x00" in value):
                    raise ValidationFailed(f"{key} must be text", {key: ["must be text of at most 254 characters"]})
                values[key] = value.strip() if isinstance(value, str) else value
        if "active" in data:
            if not isinstance(data["active"], bool):
                raise ValidationFailed("active must be true or false", {"active": ["must be true or false"]})
            values["active"] = data["active"]
        if "roles" in data:
            values["roles"] = self._check_roles(data["roles"])
        if "team_id" in data:
            values["team_id"] = self._reference(tx, self.tables.teams, data["team_id"], "team")
        if "superior_id" in data:
            values["superior_id"] = self._reference(tx, self.tables.users, data["superior_id"], "superior")
        return values

    def _no_cycle(self, tx: sa.Connection, user_id: int, superior_id: int) -> None:
        users = self.tables.users
        seen, current = set(), superior_id
        while current is not None and current not in seen:
            if current == user_id:
                raise Conflict("a user cannot report to themselves or to someone who reports to them",
                               {"superior_id": ["would make a reporting loop"]}, code="reporting_loop")
            seen.add(current)
            current = tx.execute(sa.select(users.c.superior_id).where(users.c.id == current)).scalar()

    def create_team(self, name: str, label: str | None = None, parent: int | str | None = None, *,
                    by: Actor | None = None) -> Mapping:
        if not isinstance(name, str) or not TEAM_NAME.fullmatch(name):
            raise ValidationFailed("a team name is snake_case (a-z, 0-9, _)", {"name": ["snake_case, up to 64 characters"]})
        teams = self.tables.teams
        at = now()
        with write_transaction(self.engine) as tx:
            if tx.execute(sa.select(teams.c.id).where(teams.c.name == name)).first():
                raise Conflict(f"another team is named '{name}'", {"name": ["already taken"]}, code="unique_violation")
            parent_id = self._reference(tx, teams, parent, "parent")
            team_id = tx.execute(teams.insert().returning(teams.c.id).values(
                name=name, label=(name if label is None else _named(label, "label", None, "label must be text"))[:100],
                parent_id=parent_id, created_at=at, updated_at=at)).scalar_one()
            self._audit(tx, "team_created", 0, by.name if by else "system", {"team": name, "parent_id": parent_id}, by)
            return tx.execute(sa.select(teams).where(teams.c.id == team_id)).mappings().one()

    def update_team(self, team_id: int, data: Mapping, *, by: Actor | None = None) -> Mapping:
        self._unknown(data, ("label", "parent_id"))
        teams = self.tables.teams
        with write_transaction(self.engine) as tx:
            if tx.execute(sa.select(teams.c.id).where(teams.c.id == team_id)).first() is None:
                raise NotFound(f"no team {team_id}")
            values: dict[str, Any] = {}
            if "label" in data:
                values["label"] = _named(data["label"], "label", None, "label must be text")[:100]
            if "parent_id" in data:
                parent = self._reference(tx, teams, data["parent_id"], "parent")
                seen, current = set(), parent
                while current is not None and current not in seen:
                    if current == team_id:
                        raise Conflict("a team cannot sit below itself", {"parent_id": ["would make a loop"]},
                                       code="team_loop")
                    seen.add(current)
                    current = tx.execute(sa.select(teams.c.parent_id).where(teams.c.id == current)).scalar()
                values["parent_id"] = parent
            if values:
                values["updated_at"] = now()
                tx.execute(teams.update().where(teams.c.id == team_id).values(**values))
                self._audit(tx, "team_updated", 0, by.name if by else "system",
                            {"team_id": team_id, **{k: v for k, v in values.items() if k != "updated_at"}}, by)
            return tx.execute(sa.select(teams).where(teams.c.id == team_id)).mappings().one()

    # ------------------------------------------------------------ audit

    def _audit(self, tx: sa.Connection, action: str, user_id: int, actor_name: str, details: dict,
               by: Actor | None = None) -> None:
        tx.execute(self.tables.audit.insert().values(
            entity=AUDIT_ENTITY, record_id=user_id, action=action[:16],
            actor_id=by.id if by else (user_id if action.startswith("login") and user_id else None),
            actor=(by.name if by else actor_name)[:100], at=now(), changes=_jsonable(details)))

    def audit_export(self, actor: Actor, entity: str, rows: int, args: list) -> None:
        with write_transaction(self.engine) as tx:
            tx.execute(self.tables.audit.insert().values(
                entity=entity, record_id=0, action="export", actor_id=actor.id, actor=actor.name[:100], at=now(),
                changes={"rows": rows, "query": [[k, v[:200]] for k, v in args[:50]]}))

    def audit_denial(self, denial: Mapping) -> None:
        """A refused action (after its request's transaction is over)."""
        with write_transaction(self.engine) as tx:
            tx.execute(self.tables.audit.insert().values(
                entity=denial.get("entity", "?")[:64], record_id=denial.get("record_id") or 0, action="denied",
                actor_id=denial.get("actor_id"), actor=str(denial.get("actor", "?"))[:100], at=now(),
                changes=_jsonable({"action": denial.get("action"), **({"reason": denial["reason"]}
                                                                     if "reason" in denial else {})})))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value
