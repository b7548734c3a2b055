"""The JSON Schemas of the metadata language, compiled once."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib.resources import files

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

BASE = "https://crmkit.dev/schemas/"
SCHEMA_FILES = {"app": "app.json", "entity": "entity.json", "roles": "roles.json",
                "workflow": "workflow.json", "tags": "tags.json", "automations": "automations.json",
                "views": "views.json"}


def load_schema(name: str) -> dict:
    return json.loads(files("crmkit.metadata").joinpath("schemas", name).read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def _registry() -> Registry:
    resources = []
    for name in ("common.json", *SCHEMA_FILES.values()):
        resources.append((BASE + name, Resource.from_contents(load_schema(name))))
    return Registry().with_resources(resources)


@lru_cache(maxsize=None)
def validator(kind: str) -> Draft202012Validator:
    schema = load_schema(SCHEMA_FILES[kind])
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=_registry())
