"""Users, teams, passwords, API tokens and browser sessions.

Users and teams are platform entities under the same role model as records:
a role grants ``user`` and ``team`` actions with scopes (own user = yourself,
team = the users of your team, ...); setting a user's roles is the ``assign``
action on ``user``. Every write here takes the acting :class:`Actor` and
checks it, whoever calls (the API, the admin console, automations; the CLI
acts as ``SYSTEM``): a user or team outside the actor's read scope does not
exist for them (404), one they may read but not change is a 403.

Passwords are hashed with Argon2id (argon2-cffi, OWASP's first choice). API
tokens and session cookies are random 256-bit secrets; only their SHA-256
digests are stored, so a copy of the database lets nobody in. Logins are
throttled per user name and per address after repeated failures. Logins,
failed logins, token creation and revocation, and changes of users and teams
are written to the audit trail (entity ``crmkit_user``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .audit import AuditTrail
from .database import write_transaction
from .errors import Conflict, Forbidden, NotFound, TooManyRequests, Unauthorized, ValidationFailed
from .fieldtypes import BLANK, MAX_ID
from .permissions import Actor, Permissions, ScopeSQL, refusal, scope_params
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

    def __init__(self, engine: sa.Engine, tables: Tables, permissions: Permissions, scopes: ScopeSQL,
                 audit: AuditTrail) -> None:
        self.engine = engine
        self.tables = tables
        self.permissions = permissions
        self.scopes = scopes
        self.audit = audit
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

    def actor(self, user: Mapping[Any, Any]) -> Actor:
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

    def login(self, username: str, password: str, address: str | None = None) -> tuple[str, str, sa.RowMapping]:
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
        if not ok or user is None or not user["active"]:
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
            self.audit.login(tx, user["id"], user["username"], address)
        return cookie, csrf, user

    def verify(self, user_id: int, password: str) -> bool:
        """Whether this is the user's password (to confirm a password change)."""
        users = self.tables.users
        with self.engine.connect() as conn:
            stored = conn.execute(sa.select(users.c.password_hash).where(users.c.id == user_id)).scalar()
        try:
            return stored is not None and _hasher.verify(stored, password)
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

    def _fail(self, keys: list[str], at: dt.datetime, user: sa.RowMapping | None, username: str) -> None:
        with write_transaction(self.engine) as tx:
            for key in keys:
                tx.execute(self._count_failure(tx, key, at))
            self.audit.login_failed(tx, user, username, keys[1][3:] if len(keys) > 1 else None)

    def _count_failure(self, tx: sa.Connection, key: str, at: dt.datetime) -> sa.Executable:
        """One more failure for a key, in one statement: parallel guesses (many
        workers) are all counted, and the first of a key is not inserted twice."""
        from sqlalchemy.dialects import postgresql, sqlite

        insert = postgresql.insert if tx.dialect.name == "postgresql" else sqlite.insert
        table = self.tables.login_failures
        when = table.c.first_at.type

        def time(value: dt.datetime) -> sa.ColumnElement[dt.datetime]:
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

    # ------------------------------------------------------------ permissions

    def refuse(self, actor: Actor, entity: str, action: str, record_id: int | None = None,
                message: str | None = None) -> Forbidden:
        target = f"this {entity}" if record_id is not None else f"{entity}s"
        return refusal(actor, f"crmkit_{entity}", action, target, record_id, message)

    def scoped(self, actor: Actor, entity: str, action: str, record_id: int | None = None) -> sa.Select[Any]:
        """The users or teams (``entity``) within the actor's scope of an action
        (bound with ``scope_params(actor)``); a 403 when no scope allows it."""
        ea = self.permissions.of(actor).entity(entity)
        if not ea.allows(action):
            raise self.refuse(actor, entity, action, record_id)
        table = self.scopes.table(entity)
        query = sa.select(table)
        scope = self.scopes.predicate(entity, ea.scope(action))
        if scope is not None:
            query = query.where(scope)
        if record_id is not None:
            query = query.where(table.c.id == record_id)
        return query

    def _target(self, conn: sa.Connection, actor: Actor, entity: str, record_id: int,
                *actions: str) -> sa.RowMapping:
        """A user or team the actor's scope of every action covers: 404 if they
        cannot even read it, 403 if they can read it but not act on it."""
        params = scope_params(actor)
        row = conn.execute(self.scoped(actor, entity, "read", record_id), params).mappings().first()
        if row is None:
            raise NotFound(f"no {entity} {record_id}")
        for action in actions:
            if action != "read" and conn.execute(self.scoped(actor, entity, action, record_id), params).first() is None:
                raise self.refuse(actor, entity, action, record_id)
        return row

    def get_user(self, user_id: int, actor: Actor) -> sa.RowMapping:
        """A user within the actor's read scope (404 otherwise)."""
        with self.engine.connect() as conn:
            return self._target(conn, actor, "user", user_id)

    def get_team(self, team_id: int, actor: Actor) -> sa.RowMapping:
        """A team within the actor's read scope (404 otherwise)."""
        with self.engine.connect() as conn:
            return self._target(conn, actor, "team", team_id)

    def _token_owner(self, conn: sa.Connection, actor: Actor, user_id: int) -> None:
        """Your own tokens are yours to manage; another user's (an integration
        account's) need the update action on that user."""
        if actor.id is None or actor.id != user_id:
            self._target(conn, actor, "user", user_id, "update")

    # ------------------------------------------------------------ tokens

    def create_token(self, user_id: int, name: Any, actor: Actor, *, expires_days: Any = None) -> NewToken:
        """A new API token of a user; its secret is in the answer, once."""
        name = _named(name, "name", 100, "a token needs a name of 1 to 100 characters")
        if expires_days is not None and (isinstance(expires_days, bool) or not isinstance(expires_days, int)):
            raise ValidationFailed("expires_days must be a whole number", {"expires_days": ["must be a whole number"]})
        if expires_days is not None and not 0 < expires_days <= 3650:
            raise ValidationFailed("expires_days must be between 1 and 3650", {"expires_days": ["1 to 3650"]})
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        at = now()
        expires = at + dt.timedelta(days=expires_days) if expires_days else None
        with write_transaction(self.engine) as tx:
            self._token_owner(tx, actor, user_id)
            token_id = tx.execute(self.tables.tokens.insert().returning(self.tables.tokens.c.id).values(
                user_id=user_id, name=name, digest=digest(token), hint=token[:8], created_at=at,
                expires_at=expires)).scalar_one()
            self.audit.people(tx, "token_created", user_id, actor, {"token_id": token_id, "name": name})
        return NewToken(token_id, name, token, expires)

    def tokens(self, user_id: int, actor: Actor) -> list[dict[str, Any]]:
        t = self.tables.tokens
        with self.engine.connect() as conn:
            self._token_owner(conn, actor, user_id)
            rows = conn.execute(sa.select(t.c.id, t.c.name, t.c.hint, t.c.created_at, t.c.expires_at,
                                          t.c.last_used_at, t.c.revoked_at)
                                .where(t.c.user_id == user_id).order_by(t.c.id)).mappings().all()
        return [dict(r) for r in rows]

    def revoke_token(self, user_id: int, token_id: int, actor: Actor) -> None:
        t = self.tables.tokens
        with write_transaction(self.engine) as tx:
            self._token_owner(tx, actor, user_id)
            done = tx.execute(t.update().where(t.c.id == token_id, t.c.user_id == user_id, t.c.revoked_at.is_(None))
                              .values(revoked_at=now())).rowcount
            if not done:
                raise NotFound(f"no active token {token_id}")
            self.audit.people(tx, "token_revoked", user_id, actor, {"token_id": token_id})

    def token_list(self, actor: Actor, *, user_id: int | None = None, limit: int = 500) -> list[dict[str, Any]]:
        """The tokens of the users whose tokens the actor manages (update on
        them), newest first, with each one's user name (the admin console)."""
        t, users = self.tables.tokens, self.tables.users
        managed = self.scoped(actor, "user", "update").with_only_columns(self.scopes.table("user").c.id)
        query = (sa.select(t.c.id, t.c.user_id, users.c.username, t.c.name, t.c.hint, t.c.created_at,
                           t.c.expires_at, t.c.last_used_at, t.c.revoked_at)
                 .join(users, users.c.id == t.c.user_id).where(t.c.user_id.in_(managed))
                 .order_by(t.c.id.desc()).limit(limit))
        if user_id is not None:
            query = query.where(t.c.user_id == user_id)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query, scope_params(actor)).mappings()]

    # ------------------------------------------------------------ users and teams

    def _user(self, conn: sa.Connection, user_id: int) -> sa.RowMapping:
        row = conn.execute(sa.select(self.tables.users).where(self.tables.users.c.id == user_id)).mappings().first()
        if row is None:
            raise NotFound(f"no user {user_id}")
        return row

    def user(self, ref: int | str) -> sa.RowMapping:
        """A user by id or user name (unchecked: for authentication and the system's tools)."""
        users = self.tables.users
        where = users.c.id == ref if isinstance(ref, int) else sa.func.lower(users.c.username) == ref.lower()
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(users).where(where)).mappings().first()
        if row is None:
            raise NotFound(f"no user {ref!r}")
        return row

    def users(self) -> list[sa.RowMapping]:
        """Every user, by id (for admins' tools; the API lists users within a scope)."""
        users = self.tables.users
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(users).order_by(users.c.id)).mappings())

    def teams(self) -> list[sa.RowMapping]:
        """Every team, by name, with ``members``: how many active users it has."""
        teams, users = self.tables.teams, self.tables.users
        members = (sa.select(sa.func.count()).where(users.c.team_id == teams.c.id, users.c.active.is_(True))
                   .scalar_subquery().label("members"))
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(teams, members).order_by(teams.c.name)).mappings())

    def team(self, ref: int | str) -> sa.RowMapping:
        """A team by id or name (unchecked: for the system's tools)."""
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
        found: int | None = None
        if isinstance(value, str) and not (value.isascii() and value.isdigit()):
            column = table.c.username if table is self.tables.users else table.c.name
            found = tx.execute(sa.select(table.c.id).where(column == value)).scalar()
        elif isinstance(value, (int, str)) and not isinstance(value, bool) and len(str(value)) <= 10 \
                and 0 < int(value) <= MAX_ID:  # a larger number is no id (and overflows the column)
            found = tx.execute(sa.select(table.c.id).where(table.c.id == int(value))).scalar()
        if found is None:
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "…"  # never echoed whole
            raise Conflict(f"no {what} {shown}", {f"{what}_id": [f"no {what} {shown}"]}, code="reference_not_found")
        return found

    USER_FIELDS = ("username", "display_name", "email", "mobile", "active", "roles", "team_id", "superior_id",
                   "password")
    #: What a user may change of their own record, whatever their roles.
    PROFILE_FIELDS = ("display_name", "email", "mobile")

    def create_user(self, data: Mapping[str, Any], actor: Actor) -> sa.RowMapping:
        """A user from a mapping of USER_FIELDS (team and superior by id or
        name); needs the create action on users, and assign to give roles."""
        self._mapping(data)
        access = self.permissions.of(actor).entity("user")
        if not access.allows("create"):
            raise self.refuse(actor, "user", "create")
        if data.get("roles") and not access.allows("assign"):
            raise self.refuse(actor, "user", "assign", message="your role does not allow you to give users roles")
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
            self.audit.people(tx, "user_created", user_id, actor,
                              {k: v for k, v in values.items() if k in ("roles", "team_id", "superior_id", "active")})
            return self._user(tx, user_id)

    def update_user(self, user_id: int, data: Mapping[str, Any], actor: Actor) -> sa.RowMapping:
        """Change a user: needs update on them (within its scope) for anything
        but roles, assign for roles."""
        self._mapping(data)  # before its keys decide what is checked
        actions = (("update",) if set(data) - {"roles"} or not data else ()) + (("assign",) if "roles" in data else ())
        with write_transaction(self.engine) as tx:
            self._target(tx, actor, "user", user_id, *actions)
            self._unknown(data, self.USER_FIELDS[1:])
            return self._update_user(tx, user_id, data, actor)

    def update_profile(self, data: Mapping[str, Any], actor: Actor) -> sa.RowMapping:
        """The actor's own display name, email and mobile (no grant needed)."""
        self._mapping(data)
        unknown = sorted(set(data) - set(self.PROFILE_FIELDS))
        if unknown:
            raise ValidationFailed(f"you can change only {', '.join(self.PROFILE_FIELDS)} here",
                                   {k: ["cannot be changed here"] for k in unknown})
        with write_transaction(self.engine) as tx:
            return self._update_user(tx, self._own_id(actor), data, actor)

    def remember_language(self, actor: Actor, language: str) -> None:
        """The language the actor chose on the screens, kept on their user (a
        preference, not audited): messages to them are written in it."""
        if actor.id is None:
            return
        users = self.tables.users
        with write_transaction(self.engine) as tx:
            tx.execute(users.update().where(users.c.id == actor.id, users.c.language.is_distinct_from(language))
                       .values(language=language))

    def change_password(self, current: Any, new: Any, actor: Actor) -> None:
        """The actor's own password, confirmed with the current one; ends their other sessions."""
        if not isinstance(current, str):
            raise ValidationFailed("send current_password and new_password", {"current_password": ["is required"]})
        user_id = self._own_id(actor)
        if not self.verify(user_id, current):
            raise ValidationFailed("the current password is wrong", {"current_password": ["is wrong"]})
        try:
            self.check_password(new)
        except ValidationFailed as exc:  # the body's name for it
            raise ValidationFailed(exc.message, {"new_password": exc.details["password"]}) from None
        with write_transaction(self.engine) as tx:
            self._update_user(tx, user_id, {"password": new}, actor)

    def _own_id(self, actor: Actor) -> int:
        if actor.id is None:
            raise NotFound(f"{actor.name} is not a user")
        return actor.id

    def _update_user(self, tx: sa.Connection, user_id: int, data: Mapping[str, Any], actor: Actor
                     ) -> sa.RowMapping:
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
            self.audit.people(tx, "roles_changed", user_id, actor, {"roles": changes["roles"]})
        if changes.keys() - {"roles"} or "password_hash" in values:
            detail: dict[str, Any] = {k: v for k, v in changes.items() if k != "roles"}
            if "password_hash" in values:
                detail["password"] = "changed"
            self.audit.people(tx, "user_updated", user_id, actor, detail)
        if values.get("active") is False:
            tx.execute(self.tables.sessions.delete().where(self.tables.sessions.c.user_id == user_id))
        return self._user(tx, user_id)

    def _mapping(self, data: Any) -> None:
        if not isinstance(data, Mapping):
            raise ValidationFailed("send a JSON object", {"_body": ["must be a JSON object"]})

    def _unknown(self, data: Any, allowed: Collection[str]) -> None:
        self._mapping(data)
        unknown = [k for k in data if k not in allowed and k not in ("id",)]
        if unknown:
            raise ValidationFailed(f"unknown field '{unknown[0]}'", {k: ["unknown field"] for k in unknown})

    def _user_values(self, tx: sa.Connection, data: Mapping[str, Any]) -> dict[str, Any]:
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
        seen: set[int] = set()
        current: int | None = superior_id
        while current is not None and current not in seen:
            if current == user_id:
                raise Conflict("a user cannot report to themselves or to someone who reports to them",
                               {"superior_id": ["would make a reporting loop"]}, code="reporting_loop")
            seen.add(current)
            current = tx.execute(sa.select(users.c.superior_id).where(users.c.id == current)).scalar()

    TEAM_FIELDS = ("name", "label", "parent_id")

    def create_team(self, data: Mapping[str, Any], actor: Actor) -> sa.RowMapping:
        """A team from ``name`` (snake_case), ``label`` and ``parent_id`` (the
        team above it, by id or name); needs the create action on teams."""
        self._mapping(data)
        if not self.permissions.of(actor).allows("team", "create"):
            raise self.refuse(actor, "team", "create")
        self._unknown(data, self.TEAM_FIELDS)
        name, label = data.get("name"), data.get("label")
        if not isinstance(name, str) or not TEAM_NAME.fullmatch(name):
            raise ValidationFailed("a team name is snake_case (a-z, 0-9, _)",
                                   {"name": ["snake_case, up to 64 characters"]})
        label = name if label is None else _named(label, "label", None, "label must be text")
        teams = self.tables.teams
        at = now()
        with write_transaction(self.engine) as tx:
            if tx.execute(sa.select(teams.c.id).where(teams.c.name == name)).first():
                raise Conflict(f"another team is named '{name}'", {"name": ["already taken"]}, code="unique_violation")
            parent_id = self._reference(tx, teams, data.get("parent_id"), "parent")
            team_id = tx.execute(teams.insert().returning(teams.c.id).values(
                name=name, label=label[:100], parent_id=parent_id, created_at=at,
                updated_at=at)).scalar_one()
            self.audit.people(tx, "team_created", 0, actor, {"team": name, "parent_id": parent_id})
            return tx.execute(sa.select(teams).where(teams.c.id == team_id)).mappings().one()

    def update_team(self, team_id: int, data: Mapping[str, Any], actor: Actor) -> sa.RowMapping:
        """Change a team's label or parent: needs update on it (within its scope)."""
        self._mapping(data)
        teams = self.tables.teams
        with write_transaction(self.engine) as tx:
            self._target(tx, actor, "team", team_id, "update")
            self._unknown(data, ("label", "parent_id"))
            values: dict[str, Any] = {}
            if "label" in data:
                values["label"] = _named(data["label"], "label", None, "label must be text")[:100]
            if "parent_id" in data:
                parent = self._reference(tx, teams, data["parent_id"], "parent")
                seen: set[int] = set()
                current = parent
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
                self.audit.people(tx, "team_updated", 0, actor,
                                  {"team_id": team_id, **{k: v for k, v in values.items() if k != "updated_at"}})
            return tx.execute(sa.select(teams).where(teams.c.id == team_id)).mappings().one()
