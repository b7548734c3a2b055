"""The JSON Schemas of the metadata language, compiled once.

Two validators per document kind: ``fast_check`` (fastjsonschema compiles the
schema, every ``$ref`` inlined, to plain Python) says only valid or not and is
what a good config pays; ``validator`` (jsonschema, 2020-12) runs only on a
document the fast check rejected, to report every problem with its path.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache, lru_cache
from importlib.resources import files

import fastjsonschema
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

BASE = "https://crmkit.dev/schemas/"
SCHEMA_FILES = {"app": "app.json", "entity": "entity.json", "roles": "roles.json",
                "workflow": "workflow.json", "tags": "tags.json", "automations": "automations.json",
                "views": "views.json", "templates": "templates.json"}
#: Keywords the fast check understands exactly as 2020-12 does (draft 7's
#: meaning is the same for these); tests/test_packaging.py holds the schemas to it.
PORTABLE_KEYWORDS = frozenset({
    "$schema", "$id", "$ref", "$defs", "title", "description", "type", "enum", "const", "properties",
    "additionalProperties", "required", "items", "minItems", "maxItems", "minimum", "maximum", "pattern",
    "minLength", "maxLength", "oneOf", "anyOf", "propertyNames", "minProperties", "maxProperties",
})


def load_schema(name: str) -> dict:
    return json.loads(files("crmkit.metadata").joinpath("schemas", name).read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def _registry() -> Registry:
    resources = []
    for name in ("common.json", *SCHEMA_FILES.values()):
        resources.append((BASE + name, Resource.from_contents(load_schema(name))))
    return Registry().with_resources(resources)


@cache
def validator(kind: str) -> Draft202012Validator:
    schema = load_schema(SCHEMA_FILES[kind])
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=_registry())


def inline_refs(schema: dict) -> dict:
    """``schema`` with every ``$ref`` replaced by the definition it points to
    (refs go to the schema's own ``$defs`` or to common.json's); descriptions,
    titles and ids dropped."""
    common = load_schema("common.json")

    def resolve(ref: str, document: dict) -> tuple[dict, dict]:
        """(definition, the document it is in)."""
        name, _, pointer = ref.partition("#")
        if name not in ("", "common.json"):
            raise ValueError(f"unsupported $ref {ref!r}: refs go to '#/...' or 'common.json#/...'")
        base = common if name else document
        node = base
        for step in pointer.strip("/").split("/"):
            node = node[step]
        return node, base

    def walk(node, document: dict):
        if isinstance(node, list):
            return [walk(v, document) for v in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            definition, base = resolve(node["$ref"], document)
            siblings = {k: v for k, v in node.items() if k not in ("$ref", "description", "title")}
            return {**walk(definition, base), **walk(siblings, document)}
        return {k: ({name: walk(sub, document) for name, sub in v.items()} if k == "properties"
                    else walk(v, document))
                for k, v in node.items() if k not in ("description", "title", "$id", "$schema", "$defs")}

    return walk(schema, schema)


@cache
def fast_check(kind: str) -> Callable[[object], bool]:
    """A function telling whether a document of ``kind`` is valid (no details)."""
    compiled = fastjsonschema.compile(inline_refs(load_schema(SCHEMA_FILES[kind])))

    def check(document: object) -> bool:
        try:
            compiled(document)
        except fastjsonschema.JsonSchemaException:
            return False
        return True

    return check
