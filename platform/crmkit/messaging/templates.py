"""Message templates: which variables a template uses, whether the entity has
them, and the text it renders for one record in one language.

Templates are sandboxed Jinja (no attribute starting with ``_``, no unsafe
calls). Variables are the record's fields and paths through its references
(``{{ amount }}``, ``{{ contract.account.name }}``, ``{{ owner.display_name }}``);
each value is text formatted as the screens show it (crmkit.ui.display:
money, numbers, dates and moments in the app's timezone, enum labels in the
message's language). A reference on its own is the title of the record it
points at. ``recipient.name`` is who the message goes to; ``approval.*``
(APPROVAL_FIELDS) is the approval of an approval trigger (empty text otherwise).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from jinja2 import TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment

from ..metadata.problems import did_you_mean
from ..metadata.spec import AppSpec, EntitySpec, FieldSpec
from ..permissions import SYSTEM
from ..ui import display

#: The platform's users and teams, as a template reads them.
USER_FIELDS = ("display_name", "username", "email", "mobile")
TEAM_FIELDS = ("name", "label")
#: Variables every template has besides the record's fields.
RECIPIENT_FIELDS = ("name",)
#: What a template reads of the approval of an approval trigger (crmkit.approvals.ApprovalEvent.facts).
APPROVAL_FIELDS = ("outcome", "comment", "step", "requester", "decided_by", "transition", "workflow")
#: How far a path may follow references (contract.account.owner.display_name).
MAX_DEPTH = 5
#: Platform columns that point at users and teams, and the name a template uses for them.
DIRECTORY_ALIASES = {"owner": ("owner_id", "user"), "team": ("team_id", "team"),
                     "created_by": ("created_by", "user"), "updated_by": ("updated_by", "user")}

_ENV = SandboxedEnvironment(autoescape=False, keep_trailing_newline=False)


@lru_cache(maxsize=512)
def compiled(source: str) -> Any:
    """A template's compiled form (parsed once per text)."""
    return _ENV.from_string(source)


# ---------------------------------------------------------------- which variables

@dataclass(frozen=True)
class Variable:
    path: tuple[str, ...]
    line: int

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


def variables(source: str) -> list[Variable]:
    """Every variable path the template reads, with its line (raises
    TemplateSyntaxError for a template that is not Jinja)."""
    tree = _ENV.parse(source)
    roots = meta.find_undeclared_variables(tree)
    found: list[Variable] = []
    _walk(tree, roots, found)
    return found


def _chain(node: nodes.Node) -> tuple[str, ...] | None:
    if isinstance(node, nodes.Name):
        return (node.name,)
    if isinstance(node, nodes.Getattr):
        inner = _chain(node.node)
        return None if inner is None else inner + (node.attr,)
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        inner = _chain(node.node)
        return None if inner is None else inner + (node.arg.value,)
    return None


def _walk(node: nodes.Node, roots: set[str], found: list[Variable]) -> None:
    if isinstance(node, nodes.Name | nodes.Getattr | nodes.Getitem):
        chain = _chain(node)
        if chain is not None:
            if chain[0] in roots:
                found.append(Variable(chain, node.lineno))
            return
    for child in node.iter_child_nodes():
        _walk(child, roots, found)


# ---------------------------------------------------------------- checking a path

def _step_names(spec: AppSpec, entity: EntitySpec) -> list[str]:
    names = [f.name for f in entity.fields.values()]
    names += [alias for alias, (column, _) in DIRECTORY_ALIASES.items() if column in entity.fields]
    return names


def path_problem(spec: AppSpec, entity: EntitySpec, path: tuple[str, ...]) -> tuple[str, str] | None:
    """(message, hint) when the path is not a variable of the entity's records; None when it is."""
    dotted = ".".join(path)
    if path[0] == "recipient":
        if len(path) == 2 and path[1] in RECIPIENT_FIELDS or len(path) == 1:
            return None
        return f"unknown variable '{dotted}'", f"the recipient has: {', '.join(RECIPIENT_FIELDS)}"
    if path[0] == "approval" and "approval" not in entity.fields:
        if len(path) == 2 and path[1] in APPROVAL_FIELDS:
            return None
        return (f"unknown variable '{dotted}'",
                did_you_mean(path[-1], APPROVAL_FIELDS) or f"an approval has: {', '.join(APPROVAL_FIELDS)}")
    if len(path) > MAX_DEPTH + 1:
        return f"variable '{dotted}' follows more than {MAX_DEPTH} references", ""
    target: str = entity.name
    current: EntitySpec | None = entity
    for i, step in enumerate(path):
        where = ".".join(path[:i]) or target
        if current is None:  # a user or a team
            allowed = USER_FIELDS if target == "user" else TEAM_FIELDS
            if step not in allowed:
                return (f"unknown variable '{dotted}': a {target} has no '{step}'",
                        did_you_mean(step, allowed) or f"a {target} has: {', '.join(allowed)}")
            if i < len(path) - 1:
                return f"unknown variable '{dotted}': {where}.{step} is text, not a reference", ""
            return None
        field = _field_of(current, step)
        if field is None:
            return (f"unknown variable '{dotted}': {current.name} has no field '{step}'",
                    did_you_mean(step, _step_names(spec, current)))
        next_target = _target(field, step)
        if i < len(path) - 1:
            if next_target is None:
                return f"unknown variable '{dotted}': {current.name}.{step} is a {field.type}, not a reference", ""
            target = next_target
            current = spec.entities.get(next_target)
            if current is None and next_target not in ("user", "team"):
                return f"unknown variable '{dotted}': {next_target} is not an entity of the config", ""
    return None


def _field_of(entity: EntitySpec, name: str) -> FieldSpec | None:
    if name in DIRECTORY_ALIASES and DIRECTORY_ALIASES[name][0] in entity.fields and name not in entity.fields:
        return entity.fields[DIRECTORY_ALIASES[name][0]]
    return entity.fields.get(name)


def _target(field: FieldSpec, step: str) -> str | None:
    """The entity (or user, team) a field points at, if it is a reference."""
    if field.type == "ref":
        return field.to
    for alias, (column, target) in DIRECTORY_ALIASES.items():
        if field.name == column and step in (alias, column):
            return target
    return None


def readable_by(spec: AppSpec, entity: EntitySpec, path: tuple[str, ...], readable: Callable[[str], frozenset[str]]
                ) -> bool:
    """Whether a reader sees every field a variable path reads (``readable``:
    the fields of an entity, or of ``user``, whose true values they may read)."""
    if path[0] in ("recipient", "approval"):
        return True
    current: EntitySpec | None = entity
    target = entity.name
    for step in path:
        if current is None:  # a user or a team: names are for everyone, addresses for readers of users
            return step not in ("email", "mobile") or step in readable("user")
        field = _field_of(current, step)
        if field is None or field.name not in readable(current.name):
            return False
        next_target = _target(field, step)
        if next_target is None:
            return True
        target = next_target
        current = spec.entities.get(target)
    return True


def template_problems(spec: AppSpec, entity: EntitySpec, source: str) -> Iterator[tuple[int, str, str]]:
    """(line, message, hint) of each mistake of a template text about the entity's records."""
    try:
        found = variables(source)
    except TemplateSyntaxError as exc:
        yield exc.lineno or 1, f"template syntax error: {exc.message}", ""
        return
    seen: set[tuple[str, ...]] = set()
    for variable in found:
        if variable.path in seen:
            continue
        seen.add(variable.path)
        problem = path_problem(spec, entity, variable.path)
        if problem is not None:
            yield variable.line, problem[0], problem[1]


# ---------------------------------------------------------------- rendering

#: Reads one row of an entity (or "user", "team") by id, as the system.
RowReader = Callable[[str, int], Mapping[Any, Any] | None]


class RecordView:
    """A record as a template reads it: each field formatted as text, each
    reference another RecordView (read when first used); as text, its title."""

    __slots__ = ("_entity", "_fields", "_row", "_spec", "_read", "_language", "_cache")

    def __init__(self, spec: AppSpec, entity: str, row: Mapping[str, Any] | None, read: RowReader,
                 language: str) -> None:
        self._spec, self._entity, self._row, self._read, self._language = spec, entity, row, read, language
        self._cache: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._cache[name]
        except KeyError:
            value = self._cache[name] = self._value(name)
            return value

    def __str__(self) -> str:
        row = self._row
        if row is None:
            return ""
        if self._entity == "user":
            return str(row.get("display_name") or row.get("username") or "")
        if self._entity == "team":
            return str(row.get("label") or row.get("name") or "")
        entity = self._spec.entities[self._entity]
        title = entity.fields.get(entity.title)
        return self._format(title, row.get(title.column)) if title is not None else f"#{row.get('id')}"

    def _value(self, name: str) -> Any:
        row = self._row
        if self._entity in ("user", "team"):
            allowed = USER_FIELDS if self._entity == "user" else TEAM_FIELDS
            if name not in allowed:
                raise AttributeError(name)
            return "" if row is None else str(row.get(name) or "")
        entity = self._spec.entities[self._entity]
        field = _field_of(entity, name)
        if field is None:
            raise AttributeError(name)
        target = _target(field, name)
        value = None if row is None else row.get(field.column)
        if target is not None:
            related = self._read(target, value) if isinstance(value, int) else None
            return RecordView(self._spec, target, related, self._read, self._language)
        return self._format(field, value)

    def _format(self, field: FieldSpec, value: Any) -> str:
        return display.field_value(field, value, self._language, self._spec.timezone)


@dataclass(frozen=True)
class Recipient:
    """Who a message goes to: a user (user_id) or a record with an address."""

    name: str
    email: str | None = None
    mobile: str | None = None
    user_id: int | None = None
    username: str | None = None
    #: The record it is, when not a user: (entity, id).
    record: tuple[str, int] | None = None
    #: A user's chosen language (None: a record, or a user who never chose).
    language: str | None = None


def render(source: str, spec: AppSpec, entity: str, record: Mapping[str, Any] | None, read: RowReader,
           language: str, recipient: Recipient | None = None, approval: Mapping[str, Any] | None = None) -> str:
    """The text of a template for one record, in one language."""
    view = RecordView(spec, entity, record, read, language)
    context: dict[str, Any] = {"recipient": {"name": recipient.name if recipient else ""},
                               "approval": approval_variables(spec, approval, language)}
    entity_spec = spec.entities.get(entity)
    if entity_spec is not None:
        for name in _step_names(spec, entity_spec):
            context[name] = _Lazy(view, name)
    return compiled(source).render(context).strip()


def approval_variables(spec: AppSpec, approval: Mapping[str, Any] | None, language: str) -> dict[str, str]:
    """The ``approval.*`` of a template, as text in the message's language."""
    from ..metadata.spec import label_text

    found = dict.fromkeys(APPROVAL_FIELDS, "")
    if not approval:
        return found
    for name in ("comment", "requester", "decided_by", "workflow"):
        found[name] = str(approval.get(name) or "")
    step = approval.get("step")
    found["step"] = label_text(step, language, "") if isinstance(step, Mapping) and step else ""
    outcome = str(approval.get("outcome") or "")
    found["outcome"] = {"approved": "已通过", "rejected": "已驳回"}.get(outcome, outcome) if language == "zh" \
        else outcome
    move = next((m for wf in spec.workflows if wf.name == approval.get("workflow") for m in wf.transitions
                 if m.name == approval.get("transition")), None)
    found["transition"] = label_text(move.label, language, move.name) if move is not None else \
        str(approval.get("transition") or "")
    return found


class _Lazy:
    """A top-level variable, read only if the template uses it."""

    __slots__ = ("_view", "_name")

    def __init__(self, view: RecordView, name: str) -> None:
        self._view, self._name = view, name

    def _resolve(self) -> Any:
        return getattr(self._view, self._name)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._resolve(), name)

    def __str__(self) -> str:
        return str(self._resolve())

    def __bool__(self) -> bool:
        return bool(str(self._resolve()))


def row_reader(conn: sa.Connection, rt: Any) -> RowReader:
    """Reads rows of entities (through the query builder, as the system) and of users and teams."""
    cache: dict[tuple[str, int], Mapping[Any, Any] | None] = {}

    def read(target: str, record_id: int) -> Mapping[Any, Any] | None:
        key = (target, record_id)
        if key not in cache:
            if target == "user":
                table = rt.tables.users
                cache[key] = conn.execute(sa.select(table).where(table.c.id == record_id)).mappings().first()
            elif target == "team":
                table = rt.tables.teams
                cache[key] = conn.execute(sa.select(table).where(table.c.id == record_id)).mappings().first()
            elif target in rt.spec.entities:
                cache[key] = rt.queries.fetch(conn, rt.spec.entities[target], record_id, actor=SYSTEM)
            else:
                cache[key] = None
        return cache[key]

    return read

