"""The audit trail has one writer, the audit module (an internal plugin): it
declares its table through the hook any plugin would use, and every entry, of
whatever origin, is written by it."""

from __future__ import annotations

import datetime as dt
import re
import traceback
from pathlib import Path

import pytest
import sqlalchemy as sa

import crmkit
from conftest import is_error
from crmkit import audit as audit_module
from crmkit.errors import Unauthorized
from crmkit.fieldtypes import BUILTIN_TYPES
from crmkit.loading import load_config
from crmkit.permissions import SYSTEM
from crmkit.plugins import make_plugin_manager
from crmkit.tables import build_tables

API = "/api/v1"
PACKAGE = Path(crmkit.__file__).parent
AUDIT_MODULE = Path(audit_module.__file__).resolve()
#: A write statement on the audit table, however its table is reached.
AUDIT_WRITE = re.compile(r"\baudit\w*(\.table)?\s*\.\s*(insert|update|delete)\s*\(", re.IGNORECASE)


def test_no_module_but_the_audit_module_writes_the_audit_table():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.resolve() == AUDIT_MODULE:
            continue
        text = path.read_text(encoding="utf-8")
        if "crmkit_audit" in text:
            offenders.append(f"{path.relative_to(PACKAGE)} names the audit table")
        offenders += [f"{path.relative_to(PACKAGE)}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
                      for m in AUDIT_WRITE.finditer(text)]
    assert offenders == []


def test_the_audit_table_is_the_audit_plugins(mini_config):
    spec, pm, types = load_config(mini_config)
    assert "crmkit_audit" in build_tables(spec, types, pm).metadata.tables
    without = make_plugin_manager()
    without.unregister(name="crmkit.audit")
    assert "crmkit_audit" not in build_tables(spec, {t.name: t for t in BUILTIN_TYPES}, without).metadata.tables


@pytest.fixture
def audit_writers(rt):
    """The source file of the crmkit code behind each statement that writes the audit table."""
    writers: list[str] = []

    def watch(conn, clauseelement, multiparams, params, execution_options):
        if isinstance(clauseelement, sa.sql.dml.UpdateBase) and clauseelement.table.name == "crmkit_audit":
            ours = [frame.filename for frame in traceback.extract_stack()
                    if Path(frame.filename).resolve().is_relative_to(PACKAGE.resolve())]
            writers.append(ours[-1])

    sa.event.listen(rt.engine, "before_execute", watch)
    yield writers
    sa.event.remove(rt.engine, "before_execute", watch)


def test_every_entry_is_written_by_the_audit_module(app, rt, audit_writers):
    client = app.test_client()  # the admin
    product = client.post(f"{API}/product", json={"name": "tea", "sku": "T1"}).get_json()["data"]
    client.patch(f"{API}/product/{product['id']}", json={"name": "green tea", "version": product["version"]})
    client.delete(f"{API}/product/{product['id']}")
    assert client.post(f"{API}/recycle_bin/product/{product['id']}/restore").status_code == 200
    client.delete(f"{API}/product/{product['id']}")
    assert rt.records.purge(dt.timedelta(0)) == {"product": 1}
    client.get(f"{API}/customer/_export").get_data()
    rep = rt.directory.create_user({"username": "rep", "roles": [], "password": "a good password"}, SYSTEM)
    rt.directory.update_user(rep["id"], {"display_name": "Rep"}, SYSTEM)
    rt.directory.login("rep", "a good password")
    with pytest.raises(Unauthorized):
        rt.directory.login("rep", "a bad password")
    rt.directory.create_team({"name": "east"}, SYSTEM)
    is_error(app.test_client(user="rep").get(f"{API}/customer"), 403)  # a denial
    kinds = {(row["entity"], row["action"]) for row in entries(rt)}
    assert {("product", "create"), ("product", "update"), ("product", "delete"), ("product", "restore"),
            ("product", "purge"), ("customer", "export"), ("crmkit_user", "user_created"),
            ("crmkit_user", "user_updated"), ("crmkit_user", "team_created"),
            ("crmkit_user", "token_created"), ("crmkit_user", "login"), ("crmkit_user", "login_failed"),
            ("customer", "denied")} <= kinds
    assert audit_writers and {Path(f).resolve() for f in audit_writers} == {AUDIT_MODULE}


def test_a_purge_is_audited_as_the_systems(client, rt):
    product = client.post(f"{API}/product", json={"name": "tea"}).get_json()["data"]
    client.delete(f"{API}/product/{product['id']}")
    rt.records.purge(dt.timedelta(0))
    [row] = [r for r in entries(rt) if r["action"] == "purge"]
    assert (row["entity"], row["record_id"], row["actor_id"], row["actor"]) == ("product", product["id"], None,
                                                                                "system")


def entries(rt) -> list[dict]:
    with rt.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(rt.tables.audit).order_by(rt.tables.audit.c.id)).mappings()]
