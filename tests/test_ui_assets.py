"""The screens' static files: vendored libraries as published (licence,
version, checksum), and what a first page view downloads."""

from __future__ import annotations

import gzip
import hashlib
import re
import tomllib

import pytest

from conftest import ROOT, SAMPLE_CONFIG, token_for
from crmkit.permissions import SYSTEM

STATIC = ROOT / "ui" / "static"
VENDOR = STATIC / "vendor"
README = (VENDOR / "README.md").read_text(encoding="utf-8")
FOLDERS = sorted(p for p in VENDOR.iterdir() if p.is_dir())
#: What the first page view may download in scripts and styles, compressed (issue 8).
BUDGET = 150 * 1024


def gzipped_size(path) -> int:
    return len(gzip.compress(path.read_bytes(), compresslevel=6))


def test_there_are_the_vendored_libraries_the_screens_need():
    assert [p.name for p in FOLDERS] == ["htmx-2.0.11", "pico-2.1.1", "sortable-1.15.7", "tom-select-2.6.2"]


@pytest.mark.parametrize("folder", FOLDERS, ids=[p.name for p in FOLDERS])
def test_each_library_has_its_licence_and_a_row_in_the_readme(folder):
    assert any(p.name.startswith("LICENSE") for p in folder.iterdir()), f"{folder.name} has no licence file"
    name, version = folder.name.rsplit("-", 1)
    row = re.search(rf"^\| `{re.escape(folder.name)}` \| `[^`]+` \| {re.escape(version)} \| ([^|]+) \|", README, re.M)
    assert row, f"vendor/README.md has no row for {folder.name}"


def test_each_vendored_file_is_the_published_one():
    sums = dict((path, digest) for digest, path in re.findall(r"^([0-9a-f]{64})  (\S+)$", README, re.M))
    files = sorted(str(p.relative_to(VENDOR)) for p in VENDOR.rglob("*")
                   if p.is_file() and not p.name.startswith("LICENSE") and p.name != "README.md")
    assert sorted(sums) == files, "every vendored file has its SHA-256 in vendor/README.md"
    for path, digest in sums.items():
        assert hashlib.sha256((VENDOR / path).read_bytes()).hexdigest() == digest, path


def test_htmx_is_version_2():
    assert (VENDOR / "htmx-2.0.11" / "htmx.min.js").read_text(encoding="utf-8").count('version:"2.0.11"') == 1


# ---------------------------------------------------------------- page weight

def assets_of(html: str) -> list[str]:
    scripts = re.findall(r'<script src="/static/([^"]+)"', html)
    return scripts + re.findall(r'<link rel="stylesheet" href="/static/([^"]+)"', html)


@pytest.mark.parametrize("path", ["/login", "/app/"])
def test_a_first_page_view_stays_within_the_budget(app, path):
    token_for(app)
    html = app.test_client(user=None if path == "/login" else "admin").get(path).get_data(as_text=True)
    assets = assets_of(html)
    assert "crmkit.css" in assets and "vendor/pico-2.1.1/pico.min.css" in assets
    total = sum(gzipped_size(STATIC / asset) for asset in assets) + len(gzip.compress(html.encode(), compresslevel=6))
    assert total <= BUDGET, f"{path}: {total / 1024:.1f} KB compressed ({', '.join(assets)})"


@pytest.fixture
def sample(make_app):
    """The sample retail CRM with a customer and an opportunity; an admin's test client."""
    app = make_app(SAMPLE_CONFIG)
    token_for(app)
    records = app.extensions["crmkit"].records
    customer = records.create("customer", {"name": "预算客户", "mobile": "13800138000"}, SYSTEM)["id"]
    opportunity = records.create("opportunity", {"name": "预算商机", "customer": customer, "amount": "1200"},
                                 SYSTEM)["id"]
    return app.test_client(user="admin"), {"id": customer, "opportunity": opportunity}


#: The main pages of the screens (issue 8), as a person opens them first.
MAIN_PAGES = ["/app/customer", "/app/customer/{id}", "/app/customer/new", "/app/customer/{id}/edit",
              "/app/opportunity/board", "/app/activity/calendar", "/app/search?q=预算"]


@pytest.mark.parametrize("path", MAIN_PAGES)
def test_the_first_view_of_each_main_page_stays_within_the_budget(sample, path):
    client, ids = sample
    response = client.get(path.format(**ids))
    assert response.status_code == 200, path
    html = response.get_data(as_text=True)
    assets = assets_of(html)
    assert "crmkit.css" in assets and any("htmx" in asset for asset in assets), path
    total = sum(gzipped_size(STATIC / asset) for asset in assets) + len(gzip.compress(html.encode(), compresslevel=6))
    assert total <= BUDGET, f"{path}: {total / 1024:.1f} KB compressed ({', '.join(assets)})"


#: What htmx asks for after the first view: (path, extra headers), each answered with a fragment.
FRAGMENTS = [
    ("/app/customer?q=预算", {"HX-Target": "list-results"}),  # search as you type, sort, next page
    ("/app/customer?sort=-name", {"HX-Target": "list-results"}),
    ("/app/customer/{id}/timeline", {}),
    ("/app/customer/_region/region?region__province=440000", {}),
    ("/app/opportunity/board/column/qualification", {}),  # a column's "more"
    ("/app/opportunity/board/{opportunity}/move/lose", {}),  # a move's dialog
]


@pytest.mark.parametrize("path, headers", FRAGMENTS, ids=[path for path, _ in FRAGMENTS])
def test_later_htmx_requests_get_html_fragments_only(sample, path, headers):
    client, ids = sample
    response = client.get(path.format(**ids), headers={"HX-Request": "true", **headers})
    assert response.status_code == 200, path
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert html.strip(), path
    for whole_page in ("<html", "<head", "<body", "<script", 'rel="stylesheet"', 'class="topbar"'):
        assert whole_page not in html, f"{path}: a fragment has {whole_page}"
    assert len(gzip.compress(html.encode(), compresslevel=6)) < 20 * 1024, path


def test_even_a_page_that_loaded_every_library_would_stay_within_the_budget():
    every = [p for p in STATIC.rglob("*") if p.suffix in (".js", ".css")]
    assert sum(gzipped_size(p) for p in every) <= BUDGET


# ---------------------------------------------------------------- packaging

def test_the_wheel_carries_the_compiled_catalogs():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    data = pyproject["tool"]["setuptools"]["package-data"]["crmkit.ui"]
    assert "translations/*/LC_MESSAGES/*.mo" in data and "babel" in " ".join(pyproject["build-system"]["requires"])
    assert "BuildWithCatalogs" in (ROOT / "setup.py").read_text(encoding="utf-8")


@pytest.mark.parametrize("sheet", sorted(p.name for p in STATIC.glob("*.css")))
def test_our_stylesheets_close_every_block(sheet):
    """crmkit.css merges by union, which once dropped the lone ``}`` closing
    two @media blocks: every rule after them applied only on small screens."""
    depth = 0
    text = re.sub(r"/\*.*?\*/", "", (STATIC / sheet).read_text(encoding="utf-8"), flags=re.S)
    for number, line in enumerate(text.splitlines(), 1):
        depth += line.count("{") - line.count("}")
        assert depth >= 0, f"{sheet}:{number}: a brace closes nothing"
        assert depth <= 2, f"{sheet}:{number}: blocks nested three deep (a brace missing above?)"
    assert depth == 0, f"{sheet}: {depth} block(s) left open"
