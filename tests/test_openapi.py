"""The OpenAPI 3.1 document, the browsable docs page and the health check."""

from __future__ import annotations

from openapi_spec_validator import validate

from conftest import SAMPLE_CONFIG
from crmkit.database import create_engine
from crmkit.permissions import SYSTEM


def test_openapi_document_of_the_mini_config_is_valid(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    document = response.get_json()
    assert document["openapi"] == "3.1.0"
    validate(document)
    assert document["info"]["title"] == "Mini CRM API"
    for path in ("/api/v1/customer", "/api/v1/customer/{id}", "/api/v1/customer/_bulk",
                 "/api/v1/customer/{id}/orders", "/api/v1/customer/{id}/favourites",
                 "/api/v1/recycle_bin/customer/{id}/restore"):
        assert path in document["paths"], path
    assert set(document["paths"]["/api/v1/customer/{id}"]) == {"get", "patch", "delete"}


def test_openapi_schemas_follow_the_spec(client):
    schemas = client.get("/api/v1/openapi.json").get_json()["components"]["schemas"]
    customer, create = schemas["Customer"]["properties"], schemas["CustomerCreate"]
    assert customer["level"]["enum"] == ["bronze", "silver", "gold", None]
    assert customer["name"]["maxLength"] == 20 and customer["name"]["x-label-zh"] == "姓名"
    assert customer["balance"]["type"] == ["string", "number", "null"] and customer["balance"]["x-currency"] == "CNY"
    assert customer["total_spent"]["readOnly"] is True
    assert "total_spent" not in create["properties"] and "code" not in create["properties"]
    assert create["required"] == ["name"]
    assert schemas["Error"]["required"] == ["error"]


def test_docs_page_lists_the_entities(client):
    response = client.get("/api/v1/docs")
    assert response.status_code == 200 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    for name, label in (("customer", "客户"), ("order", "订单"), ("contract", "合同"), ("product", "产品")):
        assert f'id="{name}"' in html and label in html
    assert "/api/v1/openapi.json" in html
    assert client.get("/").headers["Location"] == "/app/"  # the screens (issue 8); the docs stay at /api/v1/docs


def test_health(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "app": "mini"}


def test_health_reports_an_unreachable_database(client, rt, tmp_path):
    broken = create_engine(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'db.sqlite3'}")
    # Swapped by hand, not with monkeypatch: its undo runs after the fixtures
    # dispose the app's engine, which would then dispose the broken one and
    # leave the real one's connections open (a ResourceWarning in a later test).
    real, rt.engine = rt.engine, broken
    try:
        response = client.get("/healthz")
    finally:
        rt.engine = real
        broken.dispose()
    assert response.status_code == 503
    assert response.get_json() == {"status": "error", "database": "unreachable"}


def test_openapi_document_of_the_sample_config_is_valid(make_app):
    client = make_app(SAMPLE_CONFIG).test_client()
    document = client.get("/api/v1/openapi.json").get_json()
    validate(document)
    assert "/api/v1/customer" in document["paths"] and "/api/v1/order_line" in document["paths"]
    html = client.get("/api/v1/docs").get_data(as_text=True)
    assert 'id="customer"' in html and 'id="opportunity"' in html


# ---------------------------------------------------------------- every route, each caller's view

#: Routes that are not part of the API: the static files of the screens.
NOT_API = {"static"}
SCREENS = ("crmkit_app.",  # the business users' HTML screens (crmkit.ui.shell's blueprint), not API operations
           "crmkit_notifications.",  # the notifications page (crmkit.messaging.screens)
           "crmkit_admin")  # the admin console's pages (crmkit.ui.admin: crmkit_admin, crmkit_admin_users, ...)


def _filled(path: str) -> str:
    """A documented path with its parameters filled in, to route it."""
    import re

    return re.sub(r"\{[^}]+\}", "1", path)


def test_every_route_the_app_serves_is_in_the_document(make_app):
    """Walks the URL map: each method of each rule is an operation of the
    document, and each operation of the document is served."""
    app = make_app(SAMPLE_CONFIG)
    rt = app.extensions["crmkit"]
    from crmkit.api.openapi import document

    full = document(rt)
    adapter = app.url_map.bind("localhost")
    documented = set()
    for path, operations in full["paths"].items():
        for method in operations:
            concrete = _filled(path)
            for name in ("name",):  # a transition's name is one of the entity's moves
                for parameter in operations[method].get("parameters", ()):
                    if parameter.get("name") == name and "enum" in parameter.get("schema", {}):
                        concrete = path.replace("{id}", "1").replace("{name}", parameter["schema"]["enum"][0])
            endpoint, _ = adapter.match(concrete, method.upper())  # raises if nothing serves it
            documented.add((endpoint, method.upper()))
    served = {(rule.endpoint, method) for rule in app.url_map.iter_rules() if rule.endpoint not in NOT_API
                                          and not rule.endpoint.startswith(SCREENS)
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    missing = served - documented
    assert not missing, sorted(missing)


def _operations(document: dict) -> set[tuple[str, str]]:
    return {(method, path) for path, operations in document["paths"].items() for method in operations}


def test_each_role_sees_the_operations_it_may_call(make_app):
    app = make_app(SAMPLE_CONFIG)
    rt = app.extensions["crmkit"]
    from crmkit.api.openapi import document

    full = _operations(document(rt))
    for role in rt.permissions.roles:
        access = rt.permissions.access((role,))
        seen = _operations(document(rt, access))
        assert seen <= full
        for name in rt.spec.entities:
            ea = access.entity(name)
            expected = {
                ("get", f"/api/v1/{name}"): ea.allows("read"),
                ("post", f"/api/v1/{name}"): ea.allows("create"),
                ("post", f"/api/v1/{name}/_bulk"): ea.allows("import"),
                ("get", f"/api/v1/{name}/_export"): ea.allows("export"),
                ("patch", f"/api/v1/{name}/{{id}}"): ea.allows("update") or ea.allows("assign"),
                ("delete", f"/api/v1/{name}/{{id}}"): ea.allows("delete"),
                ("post", f"/api/v1/recycle_bin/{name}/{{id}}/restore"): ea.allows("delete"),
            }
            if rt.records.workflows.get(name):
                expected[("post", f"/api/v1/{name}/{{id}}/transitions/{{name}}")] = ea.allows("transition")
            for operation, allowed in expected.items():
                assert (operation in seen) == allowed, (role, operation)
        for operation, allowed in {("get", "/api/v1/users"): access.allows("user", "read"),
                                   ("post", "/api/v1/users"): access.allows("user", "create"),
                                   ("post", "/api/v1/teams"): access.allows("team", "create"),
                                   ("get", "/api/v1/audit"): access.allows("audit", "read"),
                                   ("get", "/api/v1/me"): True}.items():
            assert (operation in seen) == allowed, (role, operation)
    for role in ("sales_rep", "analyst"):  # a view is a valid document (each takes seconds to validate)
        validate(document(rt, rt.permissions.access((role,))))


def test_a_rep_sees_no_delete_no_bulk_no_export_and_no_hidden_field(make_app):
    app = make_app(SAMPLE_CONFIG)
    rt = app.extensions["crmkit"]
    rt.directory.create_user({"username": "rep", "roles": ["sales_rep"]}, SYSTEM)
    client = app.test_client(user="rep")
    document = client.get("/api/v1/openapi.json").get_json()
    customer = document["paths"]["/api/v1/customer/{id}"]
    assert set(customer) == {"get", "patch"}
    assert "/api/v1/customer/_bulk" not in document["paths"] and "/api/v1/customer/_export" not in document["paths"]
    assert "post" in document["paths"]["/api/v1/opportunity/{id}/transitions/{name}"]
    html = client.get("/api/v1/docs").get_data(as_text=True)
    assert "/api/v1/customer/_bulk" not in html and "/api/v1/opportunity/{id}/transitions/{name}" in html
    assert ">DELETE</td><td><code>/api/v1/customer/{id}</code>" not in html
    assert ">DELETE</td><td><code>/api/v1/contact/{id}</code>" in html  # reps delete their own contacts


def test_views_are_cached_per_combination_of_roles(rt):
    from crmkit.api.openapi import document

    admin = rt.permissions.access(("admin",))
    assert document(rt, admin) is document(rt, rt.permissions.access(("admin",)))
    assert document(rt) is document(rt)


def test_transition_labels_are_label_objects(make_app):
    app = make_app(SAMPLE_CONFIG)
    rt = app.extensions["crmkit"]
    from crmkit.permissions import SYSTEM

    customer = rt.records.create("customer", {"name": "张三"}, SYSTEM)
    opportunity = rt.records.create("opportunity", {"name": "大单", "customer": customer["id"]}, SYSTEM)
    moves = app.test_client().get(f"/api/v1/opportunity/{opportunity['id']}/transitions").get_json()["data"]
    assert moves and all(isinstance(m["label"], dict) and m["label"].get("en") for m in moves)
    assert any(m["label"].get("zh") for m in moves)
