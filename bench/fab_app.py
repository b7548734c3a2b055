"""A minimal Flask-AppBuilder app for the comparison from outside (bench/fab.py).

FAB's generated REST API (``ModelRestApi``) over the benchmark's ``customer``
table (a copy of the benchmark database), with FAB's own users, roles and JWT
login. Written for the benchmark from FAB's documented API; it runs in its own
virtual environment (bench/results/fab-venv), never in crmkit's.

The SQLite connections get the settings crmkit's get (WAL, synchronous=NORMAL,
foreign keys, a 30 s busy timeout), so both apps wait for the write lock
alike and neither pays for an fsync the other skips.

    FAB_BENCH_DATABASE_URL=sqlite:///bench/results/fab.sqlite3 python -m bench.fab_app setup PASSWORD
    FAB_BENCH_DATABASE_URL=... gunicorn -w 2 bench.fab_app:app
"""

from __future__ import annotations

import datetime as dt
import os
import sys

from flask import Flask
from flask_appbuilder import AppBuilder, Model, ModelRestApi
from flask_appbuilder.models.sqla.base import SQLA
from flask_appbuilder.models.sqla.interface import SQLAInterface
from sqlalchemy import BigInteger, Column, Date, DateTime, Integer, String, Text, event


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)  # naive UTC text, as crmkit stores it on SQLite


class Customer(Model):
    """The benchmark's customer table as it is (crmkit made it)."""

    __tablename__ = "customer"
    id = Column(Integer, primary_key=True)
    version = Column(Integer, nullable=False, default=1)
    created_at = Column(DateTime, nullable=False, default=_now)
    updated_at = Column(DateTime, nullable=False, default=_now, onupdate=_now)
    created_by = Column(Integer)
    updated_by = Column(Integer)
    deleted_at = Column(DateTime)
    deleted_by = Column(Integer)
    owner_id = Column(Integer)
    team_id = Column(Integer)
    name = Column(String(100), nullable=False)
    mobile = Column(String(24))
    email = Column(String(254))
    gender = Column(String(32))
    level = Column(String(32))
    region = Column(String(6))
    city = Column(String(50))
    total_spent = Column(BigInteger)  # cents, as crmkit stores money on SQLite
    points = Column(BigInteger)
    birthday = Column(Date)
    last_order_at = Column(DateTime)
    notes = Column(Text)


OUTPUT = ["id", "version", "created_at", "updated_at", "created_by", "updated_by", "owner_id", "team_id", "name",
          "mobile", "email", "gender", "level", "region", "city", "total_spent", "points", "birthday",
          "last_order_at", "notes"]
WRITABLE = ["name", "mobile", "email", "gender", "level", "region", "city", "total_spent", "points", "birthday",
            "last_order_at", "notes"]


class CustomerApi(ModelRestApi):
    resource_name = "customer"
    datamodel = SQLAInterface(Customer)
    list_columns = OUTPUT
    show_columns = OUTPUT
    add_columns = WRITABLE
    edit_columns = WRITABLE
    search_columns = ["level", "gender", "city", "region", "name", "mobile"]
    order_columns = ["id", "created_at", "updated_at", "name", "level", "points", "last_order_at"]
    page_size = 50
    max_page_size = 200


class Config:
    SQLALCHEMY_DATABASE_URI = os.environ.get("FAB_BENCH_DATABASE_URL", "sqlite://")
    SECRET_KEY = os.environ.get("FAB_BENCH_SECRET", "crmkit-bench-only")
    AUTH_TYPE = 1  # AUTH_DB: user names and passwords in FAB's tables
    # FAB_ADD_SECURITY_API would add the user/role/permission APIs too, which
    # fail to build under marshmallow 4 in FAB 5.3; the login API (/api/v1/security/login)
    # comes without it.
    FAB_API_SWAGGER_UI = False
    FAB_UPDATE_PERMS = False  # made once by `setup`, not by every worker at start-up
    FAB_API_MAX_PAGE_SIZE = 200
    RATELIMIT_ENABLED = False
    JWT_ACCESS_TOKEN_EXPIRES = dt.timedelta(hours=6)  # one login for the whole run
    WTF_CSRF_ENABLED = False


def _sqlite_settings(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=30000"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def create_app(update_perms: bool = False) -> Flask:
    app = Flask("fab_bench")
    app.config.from_object(Config)
    app.config["FAB_UPDATE_PERMS"] = update_perms
    db = SQLA(app)
    with app.app_context():
        if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
            event.listen(db.engine, "connect", _sqlite_settings)
        appbuilder = AppBuilder(app, db.session, update_perms=update_perms)
        appbuilder.add_api(CustomerApi)

    @app.get("/healthz")
    def healthz():
        return {"status": "ok", "app": "fab"}

    return app


def setup(password: str) -> None:
    """FAB's tables, permissions and one admin user (in the copy of the database)."""
    app = create_app(update_perms=True)
    with app.app_context():
        sm = app.appbuilder.sm
        if sm.find_user(username="admin") is None:
            sm.add_user("admin", "Bench", "Admin", "admin@example.cn", sm.find_role("Admin"), password=password)


app = create_app() if os.environ.get("FAB_BENCH_DATABASE_URL") and __name__ != "__main__" else None

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "setup":
        sys.exit("usage: python -m bench.fab_app setup PASSWORD")
    setup(sys.argv[2])
