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

from .problems import MAX_MESSAGE, Problem, shown

#: Top-level keys that say what a document is, in the order they are tried.
#: A workflow document also names its ``entity``, so ``workflow`` is tried first.
DOCUMENT_KINDS = ("app", "workflow", "entity", "roles", "tags", "automations", "views", "templates")
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


def _construct_timestamp(loader, node):
    """A date or datetime; one that does not exist (2026-02-31) is a problem at its place."""
    try:
        return yaml.constructor.SafeConstructor.construct_yaml_timestamp(loader, node)
    except ValueError as exc:
        raise yaml.constructor.ConstructorError(None, None, f"{node.value} is not a date ({exc})",
                                                node.start_mark) from None


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
_FastLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)
_FastLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_FastLoader.construct_mapping = _construct_mapping


def parse_fast(source: str) -> list:
    """Every document of ``source`` (YAML 1.2 core schema, or JSON), unmarked.
    Mappings keep only their text keys; use ``load_file`` to hear about the others."""
    return [data for _node, data, _sound in _parse(source, "<string>", [])]


def _parse(source: str, display: str, problems: list[Problem]) -> Iterator[tuple[Node, Any, bool]]:
    """(node graph, data, sound) of each document of ``source`` within the limits;
    ``sound`` is false when a key of the document was no name or given twice.

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
            if refusal is not None:  # not built; it still declares the names at its top
                problems.append(refusal)
                yield node, _top_level_names(node), False
                continue
            yield node, loader.construct_document(node), not found
    finally:
        loader.dispose()


def _top_level_names(node: Node) -> dict[str, str]:
    """The plain text pairs at the top of a document (``entity: customer``)."""
    if not isinstance(node, MappingNode):
        return {}
    return {key.value: value.value for key, value in node.value
            if _is_text_key(key) and isinstance(value, ScalarNode) and value.tag == _STR}


class _Refused(Exception):
    """A document beyond the limits, at ``node``."""

    def __init__(self, node: Node, message: str) -> None:
        super().__init__(message)
        self.node, self.message = node, message


def _inspect(root: Node, display: str) -> tuple[Problem | None, list[Problem]]:
    """(why the document is refused, or None; the problems with its keys).

    One walk over the graph, each node once: aliases make it a graph, not a
    tree, so the size of a node once expanded is remembered and counted again
    where an alias repeats it; its height likewise. The walk goes no deeper
    than MAX_DEPTH, so its recursion is bounded too."""
    key_problems: list[Problem] = []
    measured: dict[int, tuple[int, int]] = {}  # id(node) -> (values in it, levels in it), aliases expanded
    walking: set[int] = set()
    state = {"left": MAX_VALUES, "aliased": False}

    def spend(count: int, node: Node) -> None:
        state["left"] -= count
        if state["left"] < 0:
            raise _Refused(node, f"aliases expand this document beyond {MAX_VALUES:,} values" if state["aliased"]
                           else f"this document holds more than {MAX_VALUES:,} values")

    def walk(node: Node, depth: int) -> tuple[int, int]:
        known = measured.get(id(node))
        if known is not None:  # an alias of a value walked before
            state["aliased"] = True
            if depth + known[1] - 1 > MAX_DEPTH:
                raise _Refused(node, f"values are nested more than {MAX_DEPTH} levels deep (aliases expanded)")
            spend(known[0], node)
            return known
        if id(node) in walking:
            raise _Refused(node, "an alias refers to a value that contains it: a document cannot contain itself")
        if depth > MAX_DEPTH:
            raise _Refused(node, f"values are nested more than {MAX_DEPTH} levels deep")
        walking.add(id(node))
        if isinstance(node, MappingNode):
            _check_keys(node, display, key_problems)
            children = [part for pair in node.value for part in pair]
        else:
            children = node.value
        size, height = 1, 0
        scalars = 0
        for child in children:
            if isinstance(child, ScalarNode):
                scalars += 1
            else:
                child_size, child_height = walk(child, depth + 1)
                size += child_size
                height = max(height, child_height)
        spend(1 + scalars, node)
        walking.discard(id(node))
        measured[id(node)] = result = (size + scalars, height + 1)
        return result

    if isinstance(root, ScalarNode):
        return None, []
    try:
        walk(root, 1)
    except _Refused as refused:
        mark = refused.node.start_mark
        return Problem(display, mark.line + 1, mark.column + 1, refused.message), []
    return None, key_problems


def _check_keys(node: MappingNode, display: str, problems: list[Problem]) -> None:
    """Every key of a mapping node is a name, and no key is given twice."""
    seen: dict[str, Node] = {}
    for key, _value in node.value:
        if key.tag == _MERGE:
            continue
        if not _is_text_key(key):
            message, hint = _not_a_name(key)
            problems.append(Problem(display, key.start_mark.line + 1, key.start_mark.column + 1, message, hint))
            continue
        first = seen.setdefault(key.value, key)
        if first is not key:
            problems.append(Problem(display, key.start_mark.line + 1, key.start_mark.column + 1,
                                    f"duplicate key '{shown(key.value)}'",
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
    #: False when the loader found a key that is no name, or a key given twice:
    #: the document declares its names but is checked no further (a key left
    #: out would only make second problems out of the first).
    sound: bool = True
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

    def locate_text(self, path: tuple, line: int, column: int) -> tuple[int, int]:
        """(line, column), 1-based, of a place in the text at ``path`` (an
        expression), given as the line and column within that text: where an
        expression's error points in the file. Exact for a text on one line,
        plain or quoted, and for a literal block (``|``); a folded text points
        into its first line."""
        node, parent_key = self._root(), None
        if node is None:
            return (1, 1)
        for step in path:
            if isinstance(node, MappingNode) and isinstance(step, str) and step in self._pairs(node):
                parent_key, node = self._pairs(node)[step]
            elif isinstance(node, SequenceNode) and isinstance(step, int) and 0 <= step < len(node.value):
                node = node.value[step]
            else:
                return self.locate(path)
        start = node.start_mark
        if not isinstance(node, ScalarNode):
            return (start.line + 1, start.column + 1)
        if node.style == "|":  # a literal block: its lines are the text's, indented under the key
            indent = (parent_key.start_mark.column if parent_key is not None else start.column) + 2
            return (start.line + 1 + line, indent + column)
        quoted = 1 if node.style in ("'", '"') else 0
        if line == 1 and start.line == node.end_mark.line:
            return (start.line + 1, start.column + 1 + quoted + column - 1)
        return (start.line + 1, start.column + 1 + quoted)

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
        for index, (node, data, sound) in enumerate(_parse(source, display, problems)):
            document = _document(data, display, problems, index=index, root=node, sound=sound)
            if document is not None:
                documents.append(document)
    except (yaml.YAMLError, ValueError, RecursionError) as fast_error:
        problems.append(_syntax_problem(source, display, fast_error))
        return _declared_before_error(source, display)
    return documents


def _declared_before_error(source: str, display: str) -> list[Document]:
    """A file with a syntax error still declares what its first lines name
    (``entity: customer``): a broken document, so that the one mistake is
    not reported again wherever the name is used."""
    names: dict[str, str] = {}
    depth, key = 0, None
    try:
        for event in yaml.parse(source, Loader=_FastLoader):
            if isinstance(event, yaml.DocumentEndEvent):
                break
            if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                depth, key = depth + 1, None
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                depth, key = depth - 1, None
            elif isinstance(event, yaml.AliasEvent):
                key = None
            elif isinstance(event, yaml.ScalarEvent) and depth == 1:
                if key is None:
                    key = event.value
                else:
                    names[key], key = event.value, None
    except (yaml.YAMLError, ValueError, RecursionError):
        pass
    kind = document_kind(names)
    return [Document(kind, {kind: names[kind]}, display, sound=False)] if kind else []


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
            return path, f"this document holds more than {MAX_VALUES:,} values"
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
    if isinstance(error, yaml.reader.ReaderError):  # a character YAML does not allow: its offset, no mark
        offset = error.position
        if _FastBase is not yaml.SafeLoader:  # libyaml counts the bytes of UTF-8
            offset = len(source.encode("utf-8")[:offset].decode("utf-8", "ignore"))
        before = source[:offset]
        line, column = before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1
        character = error.character if isinstance(error.character, int) else 0
        return Problem(display, line, column, f"invalid YAML: character {character:#06x} "
                       "is not allowed (binary data or a control character)")
    if isinstance(error, yaml.constructor.ConstructorError) and error.problem_mark is not None:
        # Well-formed, but a value cannot be built (a date that does not exist, an unknown tag).
        mark = error.problem_mark
        return Problem(display, mark.line + 1, mark.column + 1, shown(error.problem, MAX_MESSAGE))
    if len(source) <= MAX_REPARSE_BYTES:
        try:
            list(_marked_yaml().load_all(source))
        except (MarkedYAMLError, YAMLError, ValueError) as exc:
            error = exc
        except RecursionError:
            pass
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    if mark is None:
        return Problem(display, 1, 1, f"invalid YAML: {shown(str(error), MAX_MESSAGE)}")
    what = getattr(error, "problem", None) or getattr(error, "context", None) or "syntax error"
    return Problem(display, mark.line + 1, mark.column + 1, f"invalid YAML: {shown(what, MAX_MESSAGE)}")


def _document(data: Any, display: str, problems: list[Problem], **where: Any) -> Document | None:
    if data is None:
        return None
    kind = document_kind(data)
    if kind is None and not where.get("sound", True):
        return None  # its problem was reported: no second one
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
