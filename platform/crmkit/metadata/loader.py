"""Reading a config directory: YAML (1.2) and JSON files into documents.

Files are parsed quickly without position marks; the first time a problem needs
a line and column, the file is parsed again in round-trip mode, which keeps them.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from .problems import Problem

#: Top-level keys that say what a document is, in the order they are tried.
#: A workflow document also names its ``entity``, so ``workflow`` is tried first.
DOCUMENT_KINDS = ("app", "workflow", "entity", "roles", "tags", "automations", "views")
CONFIG_SUFFIXES = (".yaml", ".yml", ".json")
_LEADING_ZERO_INT = re.compile(r"^[+-]?0[0-9_]+$")


def _keep_leading_zero_strings(base):
    """YAML 1.2 reads ``0138`` as the integer 138; admins mean a code or a number
    with a leading zero (an area code, a mobile), so such scalars stay strings."""

    def construct(constructor, node):
        if _LEADING_ZERO_INT.match(node.value):
            return node.value
        return base(constructor, node)

    return construct


class _MarkedConstructor(RoundTripConstructor):
    pass


_MarkedConstructor.add_constructor(
    "tag:yaml.org,2002:int", _keep_leading_zero_strings(RoundTripConstructor.construct_yaml_int)
)


def _marked_yaml() -> YAML:
    """ruamel.yaml in round-trip mode: slower, but every node knows its line and column."""
    marked = YAML(typ="rt", pure=True)
    marked.Constructor = _MarkedConstructor
    return marked


# ---------------------------------------------------------------- fast parse
# The fast parse is PyYAML's libyaml-backed loader, taught YAML 1.2's core
# schema (the same one ruamel.yaml reads): only true/false are booleans, so
# ``yes``, ``no``, ``on`` and ``off`` stay strings; ``0o17`` and ``0x1f`` are
# integers, ``0138`` stays a string; no sexagesimal numbers. A key given twice
# in one mapping is an error, as it is for ruamel.yaml.

_FastBase = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _FastLoader(_FastBase):
    #: Its own resolvers (YAML 1.2 core schema, below), not PyYAML's YAML 1.1 ones.
    yaml_implicit_resolvers: dict = {}


def _implicit(tag: str, pattern: str, first: str) -> None:
    _FastLoader.add_implicit_resolver(tag, re.compile(pattern, re.X), list(first))


_implicit("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF")
_implicit("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9][0-9_]*|0o[0-7_]+|0x[0-9a-fA-F_]+)$", "-+0123456789")
_implicit("tag:yaml.org,2002:float", r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", "-+0123456789.")
_implicit("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""])
_implicit("tag:yaml.org,2002:timestamp", r"""^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]
    |[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?
    (?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?
    (?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$""", "0123456789")
_implicit("tag:yaml.org,2002:merge", r"^(?:<<)$", "<")


def _construct_int(loader, node):
    value = loader.construct_scalar(node)
    if _LEADING_ZERO_INT.match(value):
        return value
    return int(value.replace("_", ""), 0)


def _construct_mapping(loader, node, deep=False):
    loader.flatten_mapping(node)
    mapping = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in mapping
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                "found an unhashable key", key_node.start_mark) from None
        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f'found duplicate key "{key}"', key_node.start_mark)
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


def _construct_map(loader, node):
    data = {}
    yield data
    data.update(_construct_mapping(loader, node))


_FastLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_FastLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_FastLoader.construct_mapping = _construct_mapping


def parse_fast(source: str) -> list:
    """Every document of ``source`` (YAML 1.2 core schema, or JSON), unmarked."""
    return list(yaml.load_all(source, Loader=_FastLoader))


@dataclass(eq=False)
class Document:
    """One document of a config file, with the means to locate a path in it."""

    kind: str
    data: dict
    file: str
    index: int = 0
    source: str = ""
    _marked: Any = field(default=None, repr=False)

    def locate(self, path: tuple, key: bool = False) -> tuple[int, int]:
        """(line, column), 1-based, of the value at ``path`` (or of its key).

        Falls back to the nearest enclosing node that exists."""
        if not self.source:
            return (1, 1)
        if self._marked is None:
            try:
                self._marked = list(_marked_yaml().load_all(self.source))[self.index]
            except Exception:  # the fast parse succeeded, so this is unexpected
                self._marked = {}
        node = self._marked
        position = (1, 1)
        for depth, step in enumerate(path):
            last = depth == len(path) - 1
            lc = getattr(node, "lc", None)
            try:
                if isinstance(node, dict) and step in node:
                    if lc is not None:
                        line, col = lc.key(step) if (key and last) else lc.value(step)
                        position = (line + 1, col + 1)
                    node = node[step]
                elif isinstance(node, list) and isinstance(step, int) and step < len(node):
                    if lc is not None:
                        line, col = lc.item(step)
                        position = (line + 1, col + 1)
                    node = node[step]
                else:
                    break
            except (KeyError, TypeError, IndexError):
                break
        return position


def document_kind(data: Any) -> str | None:
    if isinstance(data, dict):
        for kind in DOCUMENT_KINDS:
            if kind in data:
                return kind
    return None


def config_files(root: Path) -> list[Path]:
    """Every config file under ``root``, in a stable order; hidden files skipped."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        for name in sorted(filenames):
            if name.endswith(CONFIG_SUFFIXES) and not name.startswith("."):
                found.append(Path(dirpath) / name)
    return found


def load_file(path: Path, display: str, problems: list[Problem]) -> list[Document]:
    try:
        source = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        problems.append(Problem(display, 1, 1, f"not UTF-8 text ({exc.reason})"))
        return []
    except OSError as exc:
        problems.append(Problem(display, 1, 1, f"cannot read file: {exc.strerror}"))
        return []
    if path.suffix == ".json":
        try:
            contents = [json.loads(source)]
        except json.JSONDecodeError as exc:
            problems.append(Problem(display, exc.lineno, exc.colno, f"invalid JSON: {exc.msg}"))
            return []
        return _documents(contents, display, source, problems)
    try:
        contents = parse_fast(source)
    except (yaml.YAMLError, ValueError) as fast_error:
        problems.append(_syntax_problem(source, display, fast_error))
        return []
    return _documents(contents, display, source, problems)


def _syntax_problem(source: str, display: str, fast_error: Exception) -> Problem:
    """The problem with a file the fast parser rejected. ruamel.yaml parses it
    again for its clearer messages ("expected ',' or '}', but got ':'")."""
    error: Exception = fast_error
    try:
        list(_marked_yaml().load_all(source))
    except (MarkedYAMLError, YAMLError, ValueError) as exc:
        error = exc
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    if mark is None:
        return Problem(display, 1, 1, f"invalid YAML: {error}")
    what = getattr(error, "problem", None) or getattr(error, "context", None) or "syntax error"
    return Problem(display, mark.line + 1, mark.column + 1, f"invalid YAML: {what}")


def _documents(contents: list, display: str, source: str, problems: list[Problem]) -> list[Document]:
    documents = []
    for index, data in enumerate(contents):
        if data is None:
            continue
        kind = document_kind(data)
        if kind is None:
            what = "a mapping" if isinstance(data, dict) else f"a {type(data).__name__}"
            problems.append(Problem(
                display, 1, 1,
                f"cannot tell what this document is: it is {what} without any of the keys "
                + ", ".join(DOCUMENT_KINDS),
            ))
            continue
        documents.append(Document(kind, data, display, index, source))
    return documents


def load_directory(root: Path, problems: list[Problem], prefix: str = "") -> list[Document]:
    """Every document of every config file under ``root``."""
    root = Path(root)
    if not root.is_dir():
        problems.append(Problem(str(root), 1, 1, "config directory not found"))
        return []
    documents = []
    for path in config_files(root):
        display = prefix + str(path.relative_to(root))
        documents.extend(load_file(path, display, problems))
    return documents
