"""The generated permission matrix of the sample config, through the API.

For every role of sample_configs/retail_crm, every entity and every action,
records owned by the user, a teammate, a member of a sub-team, a subordinate
and a stranger: allowed or denied exactly as roles.yaml says. The expectation
is read from the YAML here, by a dozen lines independent of the engine's
compiler (permissions.py), so a mistake there cannot agree with itself.

    top
    └── team          self, mate
        └── sub       down
    other             sub (reports to self), stranger
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from conftest import OVERWRITE, SAMPLE_CONFIG, as_test_app, token_for
from crmkit.permissions import SYSTEM

API = "/api/v1"
ACTIONS = ("read", "create", "update", "delete", "export", "import", "assign", "transition")
CATEGORIES = ("self", "mate", "down", "sub", "stranger")
COVERS = {"own": {"self"}, "team": {"self", "mate"}, "team_tree": {"self", "mate", "down"},
          "subordinates": {"self", "sub"}, "all": set(CATEGORIES), "none": set()}
BUILTIN_ADMIN = {"entities": {"*": dict.fromkeys(ACTIONS, "all")}}


def sample_roles() -> dict:
    roles: dict = {}
    for path in sorted(Path(SAMPLE_CONFIG).rglob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(doc, dict) and "roles" in doc and "entity" not in doc:
            roles.update(doc["roles"])
    roles.setdefault("admin", BUILTIN_ADMIN)
    return roles


ROLES = sample_roles()


def expected_scope(role: str, entity: str, action: str) -> set[str]:
    """The categories of owners whose records the role may act on, read off roles.yaml."""
    entities = ROLES[role].get("entities") or {}
    value = (entities.get(entity) or {}).get(action, (entities.get("*") or {}).get(action, "none"))
    value = {True: "all", False: "none"}.get(value, value)
    if action in ("create", "import"):
        return set(CATEGORIES) if value != "none" else set()
    return set(COVERS[value])


def expected_hidden(role: str, entity: str) -> set[str]:
    return {target.partition(".")[2] for target, level in (ROLES[role].get("fields") or {}).items()
            if level == "hidden" and target.partition(".")[0] == entity}


@pytest.fixture(scope="module")
def world(module_database_url, tmp_path_factory):
    """The sample app with demo data, the org above for every role, and, per
    role, entity and category, two copies of a seeded record owned (or, where
    records have no owner, created) by that category's user."""
    from crmkit.app import create_app
    from crmkit.seed import seed
    from crmkit.settings import Settings

    root = tmp_path_factory.mktemp("matrix")
    settings = Settings(database_url=module_database_url, instance_dir=root / "instance")
    app = as_test_app(create_app(SAMPLE_CONFIG, settings))
    rt = app.extensions["crmkit"]
    seed(rt, size=20, random_seed=7)
    d = rt.directory
    for name, label, parent in (("m_top", "Top", None), ("m_team", "Team", "m_top"), ("m_sub", "Sub", "m_team"),
                                ("m_other", "Other", None)):
        d.create_team({"name": name, "label": label, "parent_id": parent}, SYSTEM)
    users: dict[str, dict[str, dict]] = {}
    for role in ROLES:
        made = {}
        made["self"] = d.create_user({"username": f"{role}.self", "roles": [role], "team_id": "m_team"}, SYSTEM)
        made["mate"] = d.create_user({"username": f"{role}.mate", "roles": [role], "team_id": "m_team"}, SYSTEM)
        made["down"] = d.create_user({"username": f"{role}.down", "roles": [role], "team_id": "m_sub"}, SYSTEM)
        made["sub"] = d.create_user({"username": f"{role}.sub", "roles": [role], "team_id": "m_other",
                                     "superior_id": made["self"]["id"]}, SYSTEM)
        made["stranger"] = d.create_user({"username": f"{role}.stranger", "roles": [role], "team_id": "m_other"},
                                         SYSTEM)
        users[role] = made
        token_for(app, f"{role}.self")
    records: dict[tuple[str, str], dict[str, list[int]]] = {}
    with rt.engine.begin() as conn:
        for entity in rt.spec.entities.values():
            table = rt.tables.entities[entity.name]
            base = conn.execute(sa.select(table).where(table.c.deleted_at.is_(None)).limit(1)).mappings().first()
            assert base is not None, f"the seed made no {entity.name}"
            unique = {f.column for f in entity.fields.values() if f.unique} | {
                entity.fields[n].column for index in entity.indexes if index.unique for n in index.fields}
            for role in ROLES:
                by_category = {}
                for category in CATEGORIES:
                    user = users[role][category]
                    copies = []
                    for _ in range(2):
                        row = {k: (None if k in unique else v) for k, v in base.items() if k != "id"}
                        row["created_by"] = user["id"]
                        if entity.owned:
                            row["owner_id"], row["team_id"] = user["id"], user["team_id"]
                        copies.append(conn.execute(table.insert().returning(table.c.id).values(**row)).scalar_one())
                    by_category[category] = copies
                records[(role, entity.name)] = by_category
    yield app, users, records
    rt.engine.dispose()


def _ids(response) -> set[int]:
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return {r["id"] for r in response.get_json()["data"]}


@pytest.mark.parametrize("role", sorted(ROLES))
def test_permission_matrix(world, role):
    app, users, records = world
    rt = app.extensions["crmkit"]
    client = app.test_client(user=f"{role}.self")
    me = users[role]["self"]
    problems = []

    def check(condition: bool, what: str) -> None:
        if not condition:
            problems.append(what)

    for entity in rt.spec.entities.values():
        name = entity.name
        mine = records[(role, name)]
        first = {c: ids[0] for c, ids in mine.items()}
        all_first = ",".join(str(i) for i in first.values())
        readable = expected_scope(role, name, "read")
        # read: get, list, export
        for category, record_id in first.items():
            status = client.get(f"{API}/{name}/{record_id}").status_code
            check(status == (200 if category in readable else 404), f"{name} read {category}: {status}")
        listed = client.get(f"{API}/{name}?id__in={all_first}&limit=100")
        if readable:
            check(_ids(listed) == {first[c] for c in readable}, f"{name} list {sorted(readable)}")
            record = client.get(f"{API}/{name}/{first[sorted(readable)[0]]}").get_json()["data"]
            hidden = expected_hidden(role, name)
            check(not hidden & set(record), f"{name} shows hidden {hidden & set(record)}")
        else:
            check(listed.status_code == 403, f"{name} list without read: {listed.status_code}")
        exportable = expected_scope(role, name, "export")
        exported = client.get(f"{API}/{name}/_export?id__in={all_first}")
        if exportable:
            rows = list(csv.reader(io.StringIO(exported.get_data(as_text=True).lstrip("\ufeff"))))
            check({int(r[0]) for r in rows[1:]} == {first[c] for c in exportable}, f"{name} export")
        else:
            check(exported.status_code == 403, f"{name} export without the action: {exported.status_code}")
        # create and import: a permission question before any validation
        status = client.post(f"{API}/{name}", json={}).status_code
        check((status == 403) == (not expected_scope(role, name, "create")), f"{name} create: {status}")
        status = client.post(f"{API}/{name}/_bulk", json=[{}]).status_code
        allowed = expected_scope(role, name, "create") and expected_scope(role, name, "import")
        check((status == 403) == (not allowed), f"{name} import: {status}")
        # update (an empty change still needs the permission)
        for action, call in [("update", lambda rid, name=name: client.patch(f"{API}/{name}/{rid}", json={},
                                                                 headers=OVERWRITE))] + (
                [("transition", lambda rid, name=name: client.get(f"{API}/{name}/{rid}/transitions"))]
                if rt.records.workflows.get(name) else []):
            scope = expected_scope(role, name, action)
            for category, record_id in first.items():
                if action == "transition":
                    moves = call(record_id)
                    if category not in readable:
                        check(moves.status_code == 404, f"{name} transitions {category}: {moves.status_code}")
                        continue
                    allowed_any = [m for m in moves.get_json()["data"]
                                   if m["reason"] != "your role does not allow you to move this record"]
                    check(bool(allowed_any) == (category in scope) or not moves.get_json()["data"],
                          f"{name} transition {category}")
                    continue
                status = call(record_id).status_code
                want = 200 if category in scope else (403 if category in readable else 404)
                check(status == want, f"{name} {action} {category}: {status} (want {want})")
        # assign (owned entities): hand the record to yourself
        if entity.owned:
            scope = expected_scope(role, name, "assign")
            for category, record_id in first.items():
                status = client.patch(f"{API}/{name}/{record_id}", json={"owner_id": me["id"]},
                                      headers=OVERWRITE).status_code
                want = 200 if category in scope else (403 if category in readable else 404)
                check(status == want, f"{name} assign {category}: {status} (want {want})")
        # delete, on the second copies
        scope = expected_scope(role, name, "delete")
        for category, ids in mine.items():
            status = client.delete(f"{API}/{name}/{ids[1]}").status_code
            want = 204 if category in scope else (403 if category in readable else 404)
            check(status in (want, 409) if want == 204 else status == want,
                  f"{name} delete {category}: {status} (want {want})")
    assert not problems, f"{role}: " + "; ".join(problems[:40])
