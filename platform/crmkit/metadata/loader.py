"""Reading a config directory: YAML (1.2) and JSON files into documents.

A YAML file is parsed once, by libyaml, into a node graph that keeps every
line and column (the positions of problems come from it). Before anything is
built from the graph it is held to limits, so that checking a config takes
bounded time and memory whatever its files hold: the file's size, how deep
values nest, how far aliases expand (a "billion laughs" is refused before it
is built), and every key must be a name, that is text.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .problems import Problem, shown

#: Top-level keys that say what a document is, in the order they are tried.
#: A workflow document also names its ``entity``, so ``workflow`` is tried first.
DOCUMENT_KINDS = ("app", "workflow", "entity", "roles", "tags", "automations", "views")
CONFIG_SUFFIXES = (".yaml", ".yml", ".json")
#: Limits every config file is held to. The sample's largest file has 12 kB,
#: 7 levels and 2,000 values; a config a hundred times bigger stays inside them.
MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_DEPTH = 32
MAX_VALUES = 250_000
#: ruamel.yaml words syntax errors better than libyaml but is pure Python:
#: it parses a broken file again only when the file is this small.
MAX_REPARSE_BYTES = 256 * 1024
_LEADING_ZERO_INT = re.compile(r"^[+-]?0[0-9_]+$")
_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_MERGE = "tag:yaml.org,2002:merge"
_VALUE = "tag:yaml.org,2002:value"


# ---------------------------------------------------------------- the YAML 1.2 reference
# ruamel.yaml reads YAML 1.2; the fast parse below is held to agree with it
# (tests/test_config.py), and it words syntax errors for admins.

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
# integers, ``0138`` stays a string; no sexagesimal numbers.

_FastBase: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _FastLoader(_FastBase):
    #: Its own resolvers (YAML 1.2 core schema, below), not PyYAML's YAML 1.1 ones.
    yaml_implicit_resolvers: dict = {}


def _implicit(tag: str, pattern: str, first: str | list[str]) -> None:
    _FastLoader.add_implicit_resolver(tag, re.compile(pattern, re.X), list(first))


_implicit("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF")
_implicit(_INT, r"^(?:[-+]?[0-9][0-9_]*|0o[0-7_]+|0x[0-9a-fA-F_]+)$", "-+0123456789")
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
_implicit(_MERGE, r"^(?:<<)$", "<")


def _construct_int(loader, node):
    value = loader.construct_scalar(node)
    if _LEADING_ZERO_INT.match(value):
        return value
    return int(value.replace("_", ""), 0)


def _is_text_key(node: Node) -> bool:
    """Whether a key node is read as text (a quoted or plain string, or a
    number with a leading zero, which stays a string)."""
    if not isinstance(node, ScalarNode):
        return False
    return node.tag in (_STR, _VALUE) or node.tag == _INT and bool(_LEADING_ZERO_INT.match(node.value))


def _construct_mapping(loader, node, deep=False):
    """A dict of the mapping's text keys. Keys that are not text, and keys given
    twice, were reported when the graph was inspected; the first are left out,
    of the second the last value stays (so a key overrides what ``<<`` merged in)."""
    loader.flatten_mapping(node)
    mapping = {}
    for key_node, value_node in node.value:
        if _is_text_key(key_node):
            mapping[loader.construct_object(key_node, deep=deep)] = loader.construct_object(value_node, deep=deep)
    return mapping


def _construct_map(loader, node):
    data: dict = {}
    yield data
    data.update(_construct_mapping(loader, node))


_FastLoader.add_constructor(_INT, _construct_int)
_FastLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_FastLoader.construct_mapping = _construct_mapping


def parse_fast(source: str) -> list:
    """Every document of ``source`` (YAML 1.2 core schema, or JSON), unmarked.
    Mappings keep only their text keys; use ``load_file`` to hear about the others."""
    return [data for _node, data in _parse(source, "<string>", [])]


def _parse(source: str, display: str, problems: list[Problem]) -> Iterator[tuple[Node, Any]]:
    """(node graph, data) of each document of ``source`` that is within the limits.

    Raises yaml.YAMLError (and RecursionError, if libyaml is missing) for a
    file that is not YAML."""
    loader = _FastLoader(source)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            refusal, found = _inspect(node, display)
            problems.extend(found)
            if refusal is not None:
                problems.append(refusal)
                continue
            yield node, loader.construct_document(node)
    finally:
        loader.dispose()


def _children(node: Node) -> Iterator[Node]:
    if isinstance(node, MappingNode):
        for key, value in node.value:
            yield key
            yield value
    elif isinstance(node, SequenceNode):
        yield from node.value


def _inspect(root: Node, display: str) -> tuple[Problem | None, list[Problem]]:
    """(why the document is refused, or None; the problems with its keys).

    One walk over the graph, each node once: aliases make it a graph, not a
    tree, so the size of a node once expanded is remembered and added again
    where an alias repeats it. Its nesting is measured the same way."""

    def at(node: Node, message: str, hint: str = "") -> Problem:
        return Problem(display, node.start_mark.line + 1, node.start_mark.column + 1, message, hint)

    key_problems: list[Problem] = []
    size: dict[int, int] = {}  # id(node) -> values in it, aliases expanded
    height: dict[int, int] = {}  # id(node) -> levels of mappings and lists in it, aliases expanded
    walking: set[int] = set()
    expanded = 1
    aliased = False
    # The path being walked: (node, its children, [values so far, deepest child]).
    stack: list[tuple[Node, Iterator[Node], list[int]]] = [(root, _children(root), [1, 0])]
    walking.add(id(root))
    _check_keys(root, at, key_problems)
    while stack:
        node, children, totals = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            walking.discard(id(node))
            size[id(node)], height[id(node)] = totals[0], totals[1] + 1
            if stack:
                parent = stack[-1][2]
                parent[0] += totals[0]
                parent[1] = max(parent[1], totals[1] + 1)
            continue
        if id(child) in walking:
            return at(child, "an alias refers to a value that contains it: a document cannot contain itself"), []
        if id(child) in size:  # an alias of a value walked before
            aliased = True
            child_size, child_height = size[id(child)], height[id(child)]
        elif isinstance(child, ScalarNode):
            child_size, child_height = 1, 0
        else:
            if len(stack) >= MAX_DEPTH:
                return at(child, f"values are nested more than {MAX_DEPTH} levels deep"), []
            expanded += 1
            if expanded > MAX_VALUES:
                return at(child, _too_many(aliased)), []
            walking.add(id(child))
            stack.append((child, _children(child), [1, 0]))
            _check_keys(child, at, key_problems)
            continue
        if len(stack) + child_height > MAX_DEPTH:
            return at(child, f"values are nested more than {MAX_DEPTH} levels deep (aliases expanded)"), []
        expanded += child_size
        if expanded > MAX_VALUES:
            return at(child, _too_many(aliased)), []
        totals[0] += child_size
        totals[1] = max(totals[1], child_height)
    return None, key_problems


def _too_many(aliased: bool) -> str:
    if aliased:
        return f"aliases expand this document beyond {MAX_VALUES:,} values"
    return f"this document holds more than {MAX_VALUES:,} values"


def _check_keys(node: Node, at, problems: list[Problem]) -> None:
    """Every key of a mapping node is a name, and no key is given twice."""
    if not isinstance(node, MappingNode):
        return
    seen: dict[str, Node] = {}
    for key, _value in node.value:
        if key.tag == _MERGE:
            continue
        if not _is_text_key(key):
            problems.append(at(key, *_not_a_name(key)))
            continue
        first = seen.setdefault(key.value, key)
        if first is not key:
            problems.append(at(key, f"duplicate key '{shown(key.value)}'",
                               f"first at line {first.start_mark.line + 1}"))


def _not_a_name(key: Node) -> tuple[str, str]:
    """(message, hint) for a key that is not text."""
    if isinstance(key, MappingNode):
        return "a key must be a name, not a mapping", ""
    if isinstance(key, SequenceNode):
        return "a key must be a name, not a list", ""
    what = {"tag:yaml.org,2002:int": "a number", "tag:yaml.org,2002:float": "a number",
            "tag:yaml.org,2002:bool": "a boolean", "tag:yaml.org,2002:null": "empty",
            "tag:yaml.org,2002:timestamp": "a date"}.get(key.tag, f"tagged {shown(key.tag)}")
    if key.tag == "tag:yaml.org,2002:null":
        return "a key is missing: every key must be a name", ""
    return (f"key {shown(key.value)} is {what}, not a name",
            f"quote it if it is meant as text: '{shown(key.value)}'")


# ---------------------------------------------------------------- documents

@dataclass(eq=False)
class Document:
    """One document of a config file, with the means to locate a path in it."""

    kind: str
    data: dict
    file: str
    index: int = 0
    #: The file's text, used to find positions when there is no ``root`` (JSON).
    source: str = ""
    #: The node graph the data was built from: every node knows its line and column.
    root: Node | None = field(default=None, repr=False)
    _keys: dict[int, dict[str, tuple[Node, Node]]] = field(default_factory=dict, repr=False)

    def locate(self, path: tuple, key: bool = False) -> tuple[int, int]:
        """(line, column), 1-based, of the value at ``path`` (or of its key).

        Falls back to the nearest enclosing node that exists."""
        node = self._root()
        if node is None:
            return (1, 1)
        position = (node.start_mark.line + 1, node.start_mark.column + 1)
        for depth, step in enumerate(path):
            last = depth == len(path) - 1
            if isinstance(node, MappingNode) and isinstance(step, str):
                pair = self._pairs(node).get(step)
                if pair is None:
                    break
                mark = pair[0].start_mark if (key and last) else pair[1].start_mark
                node = pair[1]
            elif isinstance(node, SequenceNode) and isinstance(step, int) and 0 <= step < len(node.value):
                node = node.value[step]
                mark = node.start_mark
            else:
                break
            position = (mark.line + 1, mark.column + 1)
        return position

    def _root(self) -> Node | None:
        if self.root is None and self.source:
            try:  # JSON is YAML 1.2: libyaml finds its positions
                self.root = list(yaml.compose_all(self.source, Loader=_FastLoader))[self.index]
            except (yaml.YAMLError, IndexError, RecursionError):
                self.source = ""
        return self.root

    def _pairs(self, node: MappingNode) -> dict[str, tuple[Node, Node]]:
        """The mapping's (key, value) nodes by key; the last of a key wins, as in the data."""
        pairs = self._keys.get(id(node))
        if pairs is None:
            pairs = {k.value: (k, v) for k, v in node.value if _is_text_key(k)}
            self._keys[id(node)] = pairs
        return pairs


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


def _read(path: Path, display: str, problems: list[Problem]) -> str | None:
    """The file's text, or None (a problem said why). Never more than the limit
    is read, whatever the file is (a device or a pipe named *.yaml included)."""
    try:
        if not path.is_file():
            problems.append(Problem(display, 1, 1, "not a regular file"))
            return None
        with path.open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        problems.append(Problem(display, 1, 1, f"cannot read file: {exc.strerror}"))
        return None
    if len(raw) > MAX_FILE_BYTES:
        problems.append(Problem(display, 1, 1, f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB: "
                                "split it (one file per entity)"))
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        problems.append(Problem(display, line, column, f"not UTF-8 text ({exc.reason})"))
        return None


def load_file(path: Path, display: str, problems: list[Problem]) -> list[Document]:
    source = _read(path, display, problems)
    if source is None:
        return []
    if path.suffix == ".json":
        return _json_documents(source, display, problems)
    documents = []
    try:
        for index, (node, data) in enumerate(_parse(source, display, problems)):
            document = _document(data, display, problems, index=index, root=node)
            if document is not None:
                documents.append(document)
    except (yaml.YAMLError, ValueError, RecursionError) as fast_error:
        problems.append(_syntax_problem(source, display, fast_error))
        return []
    return documents


def _json_documents(source: str, display: str, problems: list[Problem]) -> list[Document]:
    try:
        data = json.loads(source)
    except json.JSONDecodeError as exc:
        problems.append(Problem(display, exc.lineno, exc.colno, f"invalid JSON: {shown(exc.msg)}"))
        return []
    except RecursionError:
        problems.append(Problem(display, 1, 1, f"values are nested more than {MAX_DEPTH} levels deep"))
        return []
    document = _document(data, display, problems, source=source)
    if document is None:
        return []
    path, refusal = _inspect_data(data)
    if refusal:
        problems.append(Problem(display, *document.locate(path), refusal))
        return []
    return [document]


def _inspect_data(data: Any) -> tuple[tuple, str]:
    """((path, why refused) of a JSON document beyond the limits, or ((), ""))."""
    count = 0
    stack: list[tuple[tuple, Any]] = [((), data)]
    while stack:
        path, value = stack.pop()
        count += 1
        if count > MAX_VALUES:
            return path, _too_many(False)
        if isinstance(value, dict | list):
            if len(path) >= MAX_DEPTH:
                return path, f"values are nested more than {MAX_DEPTH} levels deep"
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend((path + (step,), item) for step, item in items)
    return (), ""


def _syntax_problem(source: str, display: str, fast_error: Exception) -> Problem:
    """The problem with a file the fast parser rejected. ruamel.yaml parses a
    small file again for its clearer messages ("expected ',' or '}', but got ':'")."""
    error: Exception = fast_error
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    nested = isinstance(error, RecursionError) or "nesting depth" in str(getattr(error, "problem", ""))
    if nested:
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        return Problem(display, line, column, f"values are nested more than {MAX_DEPTH} levels deep")
    if len(source) <= MAX_REPARSE_BYTES:
        try:
            list(_marked_yaml().load_all(source))
        except (MarkedYAMLError, YAMLError, ValueError) as exc:
            error = exc
        except RecursionError:
            pass
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    if mark is None:
        return Problem(display, 1, 1, f"invalid YAML: {shown(str(error))}")
    what = getattr(error, "problem", None) or getattr(error, "context", None) or "syntax error"
    return Problem(display, mark.line + 1, mark.column + 1, f"invalid YAML: {shown(what)}")


def _document(data: Any, display: str, problems: list[Problem], **where: Any) -> Document | None:
    if data is None:
        return None
    kind = document_kind(data)
    if kind is None:
        what = "a mapping" if isinstance(data, dict) else f"a {type(data).__name__}"
        root = where.get("root")
        line, column = (root.start_mark.line + 1, root.start_mark.column + 1) if root is not None else (1, 1)
        problems.append(Problem(
            display, line, column,
            f"cannot tell what this document is: it is {what} without any of the keys "
            + ", ".join(DOCUMENT_KINDS),
        ))
        return None
    return Document(kind, data, display, **where)


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
