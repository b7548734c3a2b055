"""Fixtures: apps built from small inline configs, on SQLite and (when
CRMKIT_TEST_DATABASE_URL is set) on PostgreSQL, each test in a fresh schema."""

from __future__ import annotations

import contextlib
import os
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.engine import make_url

from crmkit import identity
from crmkit.app import create_app
from crmkit.errors import NotFound
from crmkit.permissions import SYSTEM
from crmkit.runtime import Runtime, build
from crmkit.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CONFIG = ROOT / "sample_configs" / "retail_crm"
PG_URL = os.environ.get("CRMKIT_TEST_DATABASE_URL") or None
REQUIRE_SERVICES = os.environ.get("CRMKIT_REQUIRE_SERVICES", "").lower() in ("1", "true", "yes")
NO_POSTGRES = "PostgreSQL not configured: set CRMKIT_TEST_DATABASE_URL"
DATABASES = ["sqlite", pytest.param("postgresql", marks=[
    pytest.mark.postgres, pytest.mark.skipif(not PG_URL and not REQUIRE_SERVICES, reason=NO_POSTGRES)])]
REDIS_URL = os.environ.get("CRMKIT_TEST_REDIS_URL") or None
NO_REDIS = "Redis not configured: set CRMKIT_TEST_REDIS_URL"
#: The job backends (crmkit.jobs): tests of jobs run on each.
JOB_BACKENDS = ["database", pytest.param("redis", marks=[
    pytest.mark.redis, pytest.mark.skipif(not REDIS_URL and not REQUIRE_SERVICES, reason=NO_REDIS)])]


# ---------------------------------------------------------------- configs

def make_config(root: Path, files: dict[str, str]) -> Path:
    """Write config files (name -> YAML text, dedented) under ``root``; returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


APP_YAML = """
    app: mini
    label: {en: Mini CRM, zh: 迷你CRM}
    max_page_size: 100
"""

CUSTOMER_YAML = """
    entity: customer
    label: {en: Customer, zh: 客户}
    plural: {en: Customers, zh: 客户}
    title: name
    owned: true
    fields:
      name: {type: string, required: true, max_length: 20, label: {zh: 姓名}}
      mobile: {type: phone, unique: true}
      email: {type: email}
      age: {type: integer, min: 0, max: 150}
      balance: {type: money}
      birthday: {type: date}
      last_seen: {type: datetime, index: true}
      level: {type: enum, options: [bronze, silver, gold], default: bronze}
      tags: {type: multi_enum, options: [vip, new, risk]}
      region: {type: region}
      website: {type: url}
      active: {type: boolean}
      notes: {type: text}
      extra: {type: json}
      total_spent: {type: money, readonly: true}
      referrer: {type: ref, to: customer, on_delete: set_null}
      code: {type: autonumber, pattern: "KH{YYYYMMDD}{seq:4}"}
    list: {columns: [name, mobile, level], sort: "-created_at", search: [name, mobile]}
    relations:
      orders: {kind: one_to_many, entity: order, field: customer}
      contracts: {kind: one_to_many, entity: contract, field: customer}
      favourites: {kind: many_to_many, entity: product}
"""

ORDER_YAML = """
    entity: order
    label: {en: Order, zh: 订单}
    fields:
      customer: {type: ref, to: customer, required: true}
      total: {type: money, min: 0}
      ordered_at: {type: datetime, required: true}
"""

CONTRACT_YAML = """
    entity: contract
    label: {en: Contract, zh: 合同}
    fields:
      number: {type: autonumber, pattern: "HT{YYYYMMDD}{seq:6}"}
      customer: {type: ref, to: customer, on_delete: cascade}
      amount: {type: money}
"""

PRODUCT_YAML = """
    entity: product
    label: {en: Product, zh: 产品}
    fields:
      name: {type: string, required: true}
      sku: {type: string, unique: true, max_length: 32}
"""

MINI_FILES = {
    "app.yaml": APP_YAML,
    "entities/customer.yaml": CUSTOMER_YAML,
    "entities/order.yaml": ORDER_YAML,
    "entities/contract.yaml": CONTRACT_YAML,
    "entities/product.yaml": PRODUCT_YAML,
}


@pytest.fixture
def mini_config(tmp_path: Path) -> Path:
    return make_config(tmp_path / "config", MINI_FILES)


# ---------------------------------------------------------------- users

_TOKENS_LOCK = threading.Lock()


def token_for(app, username: str = "admin", roles: tuple[str, ...] = ("admin",), **fields) -> str:
    """An API token of a user (made with these roles and fields the first time)."""
    with _TOKENS_LOCK:  # clients made in threads share the app
        return _token_for(app, username, roles, **fields)


def _token_for(app, username: str, roles: tuple[str, ...], **fields) -> str:
    tokens = app.extensions.setdefault("crmkit_test_tokens", {})
    if username not in tokens:
        directory = app.extensions["crmkit"].directory
        try:
            user = directory.user(username)
        except NotFound:
            user = directory.create_user({"username": username, "roles": list(roles), **fields}, SYSTEM)
        tokens[username] = directory.create_token(user["id"], "tests", SYSTEM).token
    return tokens[username]


class AuthClient(FlaskClient):
    """A test client that sends an API token: the admin's by default,
    ``app.test_client(user="rep")`` for another user, ``user=None`` for none."""

    def __init__(self, *args, user: str | None = "admin", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if user is not None:
            self.environ_base["HTTP_AUTHORIZATION"] = "Bearer " + token_for(self.application, user)


def as_test_app(app: Flask) -> Flask:
    """An app as tests use it: TESTING on, and test clients that send a token (AuthClient)."""
    app.config["TESTING"] = True
    app.test_client_class = AuthClient
    return app


#: The hasher users' passwords get in production (the tests use a quick one).
PRODUCTION_HASHER = identity._hasher
QUICK_HASHER = PasswordHasher(time_cost=1, memory_cost=256, parallelism=1)


@pytest.fixture(autouse=True)
def quick_password_hashing(monkeypatch):
    """Argon2id with little memory and one pass for every test: the same code
    paths in a hundredth of the time (a production hash costs about 0.3 s)."""
    monkeypatch.setattr(identity, "_hasher", QUICK_HASHER)
    monkeypatch.setattr(identity, "_DUMMY_HASH", QUICK_DUMMY_HASH)


QUICK_DUMMY_HASH = QUICK_HASHER.hash("not a password of anyone")


# ---------------------------------------------------------------- databases

def _pg_admin_engine() -> sa.Engine:
    url = make_url(PG_URL)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


@contextlib.contextmanager
def database(kind: str, directory: Path) -> Iterator[str]:
    """A database URL for one test (or module): an SQLite file in ``directory``,
    or a fresh PostgreSQL schema, dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'crm.sqlite3'}"
        return
    if not PG_URL:
        if REQUIRE_SERVICES:
            pytest.fail("CRMKIT_REQUIRE_SERVICES is set but CRMKIT_TEST_DATABASE_URL is not")
        pytest.skip(NO_POSTGRES)
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = _pg_admin_engine()
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def redis_url_for_tests() -> str:
    """CRMKIT_TEST_REDIS_URL; without it the test fails under
    CRMKIT_REQUIRE_SERVICES, else it is skipped."""
    if not REDIS_URL:
        if REQUIRE_SERVICES:
            pytest.fail("CRMKIT_REQUIRE_SERVICES is set but CRMKIT_TEST_REDIS_URL is not")
        pytest.skip(NO_REDIS)
    return REDIS_URL


class Engines:
    """Runtimes and apps made by a test, so their engines are disposed before
    the database goes away."""

    def __init__(self) -> None:
        self.engines: list[sa.Engine] = []

    def add(self, rt: Runtime) -> Runtime:
        # The engine itself, not the runtime: a test may swap rt.engine (for a
        # broken one) and the swap may be undone only after this teardown.
        self.engines.append(rt.engine)
        return rt

    def dispose(self) -> None:
        for engine in self.engines:
            engine.dispose()
        self.engines.clear()


@pytest.fixture(params=DATABASES)
def database_url(request, tmp_path: Path) -> Iterator[str]:
    with database(request.param, tmp_path) as url:
        yield url


@pytest.fixture(scope="module", params=DATABASES)
def module_database_url(request, tmp_path_factory) -> Iterator[str]:
    with database(request.param, tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, instance_dir=tmp_path / "instance")


@pytest.fixture
def engines() -> Iterator[Engines]:
    made = Engines()
    yield made
    made.dispose()


@pytest.fixture
def make_runtime(settings: Settings, engines: Engines):
    """build(config_dir) on the test's database; engines disposed at teardown."""

    def make(config_dir: Path, **overrides) -> Runtime:
        return engines.add(build(config_dir, _with(settings, overrides)))

    return make


@pytest.fixture
def make_app(settings: Settings, engines: Engines):
    """create_app(config_dir) on the test's database; engines disposed at teardown."""

    def make(config_dir: Path, **kwargs):
        app = as_test_app(create_app(config_dir, settings, **kwargs))
        engines.add(app.extensions["crmkit"])
        return app

    return make


def _with(settings: Settings, overrides: dict) -> Settings:
    if not overrides:
        return settings
    from dataclasses import replace

    return replace(settings, **overrides)


@pytest.fixture
def app(make_app, mini_config: Path):
    return make_app(mini_config)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def rt(app) -> Runtime:
    return app.extensions["crmkit"]


@pytest.fixture(scope="module")
def module_app(module_database_url: str, tmp_path_factory):
    """One app on the mini config for a whole module (tests that only read, or
    whose writes do not disturb each other)."""
    root = tmp_path_factory.mktemp("app")
    config = make_config(root / "config", MINI_FILES)
    app = as_test_app(create_app(config, Settings(database_url=module_database_url, instance_dir=root / "instance")))
    yield app
    app.extensions["crmkit"].engine.dispose()


#: The header of a PATCH that means to overwrite whatever version is current
#: (a PATCH must name the version it changes, or say this).
OVERWRITE = {"If-Match": "*"}


def is_error(response, status: int, code: str | None = None) -> dict:
    """The response is the one JSON error shape with this status (and code); returns the error."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert {"code", "message"} <= set(error) <= {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


# ---------------------------------------------------------------- reporting

def pytest_terminal_summary(terminalreporter) -> None:
    """One line per skip reason (not one per test): 'N skipped: reason'."""
    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    for reason, count in sorted(reasons.items()):
        terminalreporter.write_line(f"{count} skipped: {reason}")
