"""The structural check: a document against its kind's JSON Schema, each
error said for people (where, what, and what was meant)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jsonschema.exceptions import ValidationError, best_match

from ..loader import Document
from ..problems import MAX_MESSAGE, ProblemList, did_you_mean, shown
from ..schemas import fast_check, validator


def _structural_message(error: ValidationError) -> tuple[str, str, bool]:
    """(message, hint, point at key?) for a schema error, in words for admins."""
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    if error.validator == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        extras = [k for k in error.instance if k not in allowed] if isinstance(error.instance, dict) else []
        extra = extras[0] if extras else "?"
        return f"unknown key '{shown(extra)}'", did_you_mean(extra, allowed), True
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return f"missing required key '{missing}'", "", False
    if error.validator in ("oneOf", "anyOf") and error.context:
        if _is_label_schema(schema):
            others = [k for k in error.instance if k not in ("en", "zh")] if isinstance(error.instance, dict) else []
            if others:
                return (f"a label is a string or a mapping with keys en and zh, not '{shown(others[0])}'",
                        did_you_mean(others[0], ("en", "zh")), False)
            return "a label is a string or a mapping with keys en and zh", "", False
        # The branches whose type matched say what is wrong (e.g. a string not among an enum's values).
        typed = [e for e in error.context if e.validator != "type"]
        message, hint, _ = _structural_message(best_match(typed or error.context))
        return message, hint, False
    if error.validator == "pattern" and schema.get("pattern", "").startswith("^[a-z]"):
        return (f"'{shown(error.instance)}' is not a valid name: use snake_case "
                "(lower-case letters, digits and underscores, starting with a letter)"), "", False
    if error.validator == "enum":
        options = [str(option) for option in schema.get("enum", ())]
        return (f"'{shown(error.instance)}' is not one of {', '.join(options)}",
                did_you_mean(error.instance, options), False)
    if error.validator == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        article = "an" if str(expected)[:1] in "aeiou" else "a"
        return f"expected {article} {expected}, got {_json_type(error.instance)}", "", False
    if error.validator == "propertyNames":
        return _structural_message(best_match(error.context))[0] if error.context else error.message, "", True
    if error.validator in _TOO_MANY:
        return f"more than {error.validator_value} {_TOO_MANY[error.validator]}", "", False
    return shown(error.message, MAX_MESSAGE), "", False


_TOO_MANY = {"maxLength": "characters", "maxItems": "items", "maxProperties": "entries"}


def _is_label_schema(schema: Any) -> bool:
    """The shared label schema: a string, or a mapping of en/zh."""
    branches = schema.get("oneOf", ()) if isinstance(schema, dict) else ()
    return any(isinstance(b, dict) and set(b.get("properties", {})) == {"en", "zh"} for b in branches)


def _json_type(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "nothing"}.get(type(value), type(value).__name__)


def _names_a_key(error: ValidationError) -> bool:
    """Whether the error is about a mapping's key (propertyNames), not a value."""
    steps = list(error.relative_schema_path)
    if "propertyNames" not in steps:
        return False
    after = steps[len(steps) - steps[::-1].index("propertyNames"):]
    return not any(step in ("properties", "additionalProperties", "items") for step in after)


def check_structure(doc: Document, problems: ProblemList) -> bool:
    if fast_check(doc.kind)(doc.data):
        return True
    before = len(problems.problems)
    for error in validator(doc.kind).iter_errors(doc.data):
        if problems.full(doc.file):  # the rest would not be listed: no need to find them
            problems.unlisted(doc.file)
            break
        message, hint, at_key = _structural_message(error)
        path = tuple(error.absolute_path)
        if _names_a_key(error):
            # A key broke the mapping's rule for names: point at that key, not at the mapping.
            path, at_key = path + (error.instance,), True
            if error.validator == "enum" and error.schema.get("title"):
                message = f"unknown {error.schema['title']} '{shown(error.instance)}'"
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = error.schema.get("properties", {})
            extras = [k for k in error.instance if k not in allowed]
            for extra in extras:
                problems.add(doc, path + (extra,), f"unknown key '{shown(extra)}'", did_you_mean(extra, allowed),
                             key=True)
            continue
        problems.add(doc, path, message, hint, key=at_key)
    return len(problems.problems) == before
