"""Reading a config directory: YAML (1.2) and JSON files into documents.

Files are parsed quickly without position marks; the first time a problem needs
a line and column, the file is parsed again in round-trip mode, which keeps them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.constructor import RoundTripConstructor, SafeConstructor
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


class _SafeConstructor(SafeConstructor):
    pass


class _MarkedConstructor(RoundTripConstructor):
    pass


_SafeConstructor.add_constructor(
    "tag:yaml.org,2002:int", _keep_leading_zero_strings(SafeConstructor.construct_yaml_int)
)
_MarkedConstructor.add_constructor(
    "tag:yaml.org,2002:int", _keep_leading_zero_strings(RoundTripConstructor.construct_yaml_int)
)


def _yaml(typ: str) -> YAML:
    yaml = YAML(typ=typ, pure=True)
    yaml.Constructor = _SafeConstructor if typ == "safe" else _MarkedConstructor
    return yaml


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
                self._marked = list(_yaml("rt").load_all(self.source))[self.index]
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
    try:
        contents = list(_yaml("safe").load_all(source))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = exc.problem or exc.context or "syntax error"
        problems.append(Problem(display, line, col, f"invalid {'JSON' if path.suffix == '.json' else 'YAML'}: {what}"))
        return []
    except YAMLError as exc:
        problems.append(Problem(display, 1, 1, f"invalid YAML: {exc}"))
        return []
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
