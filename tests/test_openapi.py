"""The OpenAPI 3.1 document, the browsable docs page and the health check."""

from __future__ import annotations

from openapi_spec_validator import validate

from conftest import SAMPLE_CONFIG
from crmkit.database import create_engine


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
    assert customer["balance"]["type"] == ["string", "null"] and customer["balance"]["x-currency"] == "CNY"
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
    assert client.get("/").headers["Location"].endswith("/api/v1/docs")


def test_health(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "app": "mini"}


def test_health_reports_an_unreachable_database(client, rt, monkeypatch, tmp_path):
    broken = create_engine(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'db.sqlite3'}")
    monkeypatch.setattr(rt, "engine", broken)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "error", "database": "unreachable"}
    broken.dispose()


def test_openapi_document_of_the_sample_config_is_valid(make_app):
    client = make_app(SAMPLE_CONFIG).test_client()
    document = client.get("/api/v1/openapi.json").get_json()
    validate(document)
    assert "/api/v1/customer" in document["paths"] and "/api/v1/order_line" in document["paths"]
    html = client.get("/api/v1/docs").get_data(as_text=True)
    assert 'id="customer"' in html and 'id="opportunity"' in html
