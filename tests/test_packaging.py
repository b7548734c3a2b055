"""Packaging and public promises: the package list, the layout, the JSON
Schemas of the metadata language, and the documented plugin hooks."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from importlib.metadata import entry_points
from importlib.resources import files

import pytest
from jsonschema import Draft202012Validator

from conftest import ROOT
from crmkit import hookspecs

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SCHEMA_FILES = sorted((ROOT / "metadata" / "schemas").glob("*.json"))


def test_one_python_tree_with_linked_data_folders():
    # The Python package is platform/crmkit alone (mypy and ruff see one tree);
    # the language's schemas and the screens' files live in the top-level
    # folders and are linked into the package, so wheels and editable installs carry them.
    assert PYPROJECT["tool"]["setuptools"]["packages"]["find"]["where"] == ["platform"]
    for link, target in (("platform/crmkit/metadata/schemas", "metadata/schemas"),
                         ("platform/crmkit/ui/templates", "ui/templates"),
                         ("platform/crmkit/ui/static", "ui/static")):
        path = ROOT / link
        assert path.is_symlink() and path.resolve() == (ROOT / target).resolve(), link
    assert not list((ROOT / "metadata").rglob("*.py")), "Python code of the language lives in platform/crmkit/metadata"
    assert not list((ROOT / "ui").rglob("*.py")), "Python code of the screens lives in platform/crmkit/ui"


def test_platform_is_not_a_package():
    assert not (ROOT / "platform" / "__init__.py").exists()
    result = subprocess.run([sys.executable, "-c", "import platform; print(platform.python_version())"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and result.stdout.strip() == ".".join(map(str, sys.version_info[:3]))


def test_console_script_and_example_plugin_entry_points():
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts["crmkit"] == "crmkit.cli:main"
    assert PYPROJECT["project"]["scripts"] == {"crmkit": "crmkit.cli:main"}
    plugins = {ep.name: ep.value for ep in entry_points(group="crmkit.plugins")}
    assert plugins["loyalty"] == "crmkit_loyalty"


def test_data_files_are_reachable_as_package_resources():
    schemas = {p.name for p in files("crmkit.metadata").joinpath("schemas").iterdir() if p.name.endswith(".json")}
    assert schemas == {p.name for p in SCHEMA_FILES}
    assert files("crmkit.ui").joinpath("templates", "api_docs.html").is_file()
    package_data = PYPROJECT["tool"]["setuptools"]["package-data"]
    assert "schemas/*.json" in package_data["crmkit.metadata"]
    assert {"templates/**/*", "static/**/*"} <= set(package_data["crmkit.ui"])


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=[p.name for p in SCHEMA_FILES])
def test_json_schema_is_valid_draft_2020_12(path):
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"https://crmkit.dev/schemas/{path.name}"
    Draft202012Validator.check_schema(schema)


def test_there_is_a_schema_for_every_document_kind():
    from crmkit.metadata.loader import DOCUMENT_KINDS
    from crmkit.metadata.schemas import SCHEMA_FILES as KINDS

    assert set(KINDS) == set(DOCUMENT_KINDS)
    assert {p.name for p in SCHEMA_FILES} == set(KINDS.values()) | {"common.json"}


HOOKS = sorted(name for name in dir(hookspecs) if getattr(getattr(hookspecs, name), "crmkit_spec", None))


def test_hook_list_is_what_the_platform_calls():
    assert HOOKS == ["crmkit_app_ready", "crmkit_automation_actions", "crmkit_channels", "crmkit_field_types",
                     "crmkit_metadata_dirs", "crmkit_schedules", "crmkit_tables", "record_after_create",
                     "record_after_delete", "record_after_update", "record_approval_changed", "record_before_create",
                     "record_before_delete", "record_before_update", "record_tags_changed"]


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented(hook):
    guide = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    assert re.search(rf"^### `{hook}\(", guide, re.MULTILINE), f"docs/plugins.md has no section for {hook}"
    assert getattr(hookspecs, hook).__doc__, f"{hook} has no docstring"


def test_hookspec_version_is_documented():
    guide = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    assert f'HOOKSPEC_VERSION = "{hookspecs.HOOKSPEC_VERSION}"' in guide


def _keywords(node, out: set) -> set:
    """Every keyword used in a schema (property names under properties/$defs are names, not keywords)."""
    if isinstance(node, dict):
        for key, value in node.items():
            out.add(key)
            if key in ("properties", "$defs"):
                for sub in value.values():
                    _keywords(sub, out)
            elif key not in ("enum", "const", "required", "description", "title"):
                _keywords(value, out)
    elif isinstance(node, list):
        for item in node:
            _keywords(item, out)
    return out


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=[p.name for p in SCHEMA_FILES])
def test_schemas_use_only_keywords_the_fast_check_reads_alike(path):
    from crmkit.metadata.schemas import PORTABLE_KEYWORDS

    used = _keywords(json.loads(path.read_text(encoding="utf-8")), set())
    assert used <= PORTABLE_KEYWORDS, used - PORTABLE_KEYWORDS


def _edits(document: dict):
    """Ways to break a document in one place: (path, key, action) with action
    'add' (an unknown key), 'delete', or a replacement value of another type."""
    stack = [()]
    while stack:
        path = stack.pop()
        node = document
        for step in path:
            node = node[step]
        if isinstance(node, dict):
            yield path, "zz_unknown", "add"
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            for replacement in (None, 7, "x", ["x"], {"x": 1}, True, -1, "Bad Name"):
                if replacement != value:
                    yield path, key, ("replace", replacement)
            if isinstance(node, dict):
                yield path, key, "delete"
            if isinstance(value, (dict, list)):
                stack.append((*path, key))


def _apply(document: dict, path: tuple, key, action) -> dict:
    import copy

    broken = copy.deepcopy(document)
    target = broken
    for step in path:
        target = target[step]
    if action == "add":
        target[key] = 1
    elif action == "delete":
        del target[key]
    else:
        target[key] = action[1]
    return broken


def test_fast_check_agrees_with_jsonschema_on_the_sample_config_and_its_mutations():
    """The fast check decides alone whether a document is valid, so it must
    agree with jsonschema: on the sample config and on a seeded sample of
    one-place breakages of it."""
    import random

    from crmkit.metadata.loader import load_directory
    from crmkit.metadata.schemas import fast_check, validator

    rng = random.Random(2026)
    checked = 0
    for doc in load_directory(ROOT / "sample_configs" / "retail_crm", []):
        edits = list(_edits(doc.data))
        cases = [doc.data] + [_apply(doc.data, *edit) for edit in rng.sample(edits, min(len(edits), 60))]
        for case in cases:
            valid = not any(True for _ in validator(doc.kind).iter_errors(case))
            assert fast_check(doc.kind)(case) == valid, (doc.file, case)
            checked += 1
    assert checked > 1_000
