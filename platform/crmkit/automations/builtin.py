"""The built-in actions: ``set``, ``create``, ``tag``, ``untag`` and
``transition``. Each writes through the records service (or tagging's API)
as the automation's system actor, so validation, workflow rules and the
audit trail hold as for any write. ``set`` and ``create`` claim the step's
key in their write's transaction, so a run retried after a crash does not
create twice (or add twice, for ``score: "= score + 1"``); tags are
idempotent, and a move cannot be made twice from the same state.

A value in ``set`` and ``create`` is a literal (``level: gold``), or an
expression in the language when it starts with ``=`` (``follow_up_on: "=
today() + 3d"``, ``amount: "= total * 0.1"``), evaluated on the trigger's
record."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..approvals import ApprovalPending
from ..database import write_transaction
from ..expressions import Context, ExpressionError, Kind, SqlLoader, check, evaluate
from ..fieldtypes import BUILTIN_TYPES, FieldValueError
from ..metadata.problems import did_you_mean, shown
from ..metadata.spec import AppSpec, EntitySpec, FieldSpec
from .actions import ActionContext

if TYPE_CHECKING:
    from ..runtime import Runtime

#: A value that starts with this is an expression (as in a spreadsheet).
EXPRESSION = "="
_TYPES = {t.name: t for t in BUILTIN_TYPES}
#: What an expression may compute for a field of each type.
_FITS: dict[str, tuple[Kind, ...]] = {
    "integer": (Kind.INTEGER,), "decimal": (Kind.INTEGER, Kind.DECIMAL), "money": (Kind.INTEGER, Kind.DECIMAL),
    "boolean": (Kind.BOOLEAN,), "date": (Kind.DATE,), "datetime": (Kind.DATETIME, Kind.DATE),
    "enum": (Kind.ENUM, Kind.TEXT, Kind.INTEGER), "multi_enum": (Kind.MULTI_ENUM,), "ref": (Kind.REF, Kind.INTEGER),
}
_TEXT_TYPES = ("string", "text", "email", "phone", "url", "region")


def is_expression(value: Any) -> bool:
    return isinstance(value, str) and value.lstrip().startswith(EXPRESSION)


def expression_text(value: str) -> str:
    return value.lstrip()[len(EXPRESSION):].strip()


def _workflow_of(spec: AppSpec, entity: str, field_name: str) -> str | None:
    return next((wf.name for wf in spec.workflows if wf.entity == entity and wf.field == field_name), None)


def check_values(values: Any, target: EntitySpec, source: EntitySpec | None, spec: AppSpec, what: str
                 ) -> list[str]:
    """Problems of ``{field: value}`` written to a ``target`` record, whose
    expressions are about the ``source`` record."""
    if not isinstance(values, Mapping) or not values:
        return [f"{what} takes a mapping of {target.name}'s fields to values"]
    problems = []
    for name, value in values.items():
        f = target.fields.get(name)
        if name == "owner_id" and target.owned:
            f = target.fields["owner_id"]
        elif f is None or f.system:
            hint = did_you_mean(name, [n for n, x in target.fields.items() if not x.system])
            problems.append(f"{target.name} has no field '{shown(name)}'" + (f" ({hint})" if hint else ""))
            continue
        if f.formula is not None:
            problems.append(f"{target.name}.{name} is computed by its formula: it cannot be set")
            continue
        workflow = _workflow_of(spec, target.name, name)
        if workflow is not None:
            problems.append(f"{target.name}.{name} is the state of workflow '{workflow}': "
                            "use the transition action to move it")
            continue
        if is_expression(value):
            problems.extend(_check_expression(expression_text(value), f, target, source, spec))
        elif value is not None:
            problems.extend(_check_literal(f, target, value))
    return problems


def _check_expression(text: str, f: FieldSpec, target: EntitySpec, source: EntitySpec | None,
                      spec: AppSpec) -> list[str]:
    try:  # without a trigger record, only what reads no record (today(), now() + 1d)
        checked = check(text, spec, (source or target).name, want="value")
    except ExpressionError as exc:
        return [f"{target.name}.{f.name}: {exc.message}" + (f" ({exc.hint})" if exc.hint else "")
                + f" in '{shown(text)}'"]
    if source is None and (checked.reads or checked.relations):
        return [f"{target.name}.{f.name}: '{shown(text)}' reads a record's fields, and the trigger has no record"]
    kind = checked.type.kind
    if kind is Kind.NULL:
        return []
    fits = kind is Kind.TEXT if f.type in _TEXT_TYPES else kind in _FITS.get(f.type, (kind,))
    if f.type == "ref" and kind is Kind.REF and checked.type.to != f.to:
        fits = False
    if not fits:
        return [f"{target.name}.{f.name} is a {f.type} field; '{shown(text)}' computes {checked.type}"]
    return []


def _check_literal(f: FieldSpec, target: EntitySpec, value: Any) -> list[str]:
    ftype = _TYPES.get(f.type)
    if ftype is None or f.name == "owner_id":
        return []
    try:
        ftype.coerce(f, value)
    except (FieldValueError, ValueError) as exc:
        return [f"{target.name}.{f.name} {exc}: {shown(repr(value))}"]
    return []


def record_values(rt: Runtime, ctx: ActionContext, values: Mapping[str, Any], target: str | None = None
                  ) -> dict[str, Any]:
    """The values to write: literals as written, expressions evaluated on the
    trigger record (none: they read no record; checked against ``target``)."""
    out: dict[str, Any] = {}
    context: Context | None = None
    with rt.engine.connect() as conn:
        loader = SqlLoader(conn, rt.tables)
        for name, value in values.items():
            if not is_expression(value):
                out[name] = _plain(value)
                continue
            about = ctx.entity if ctx.record is not None else target
            if about is None:
                raise ValueError(f"{name}: an expression needs a record")
            checked = rt.automations.expression(about, expression_text(value))
            context = context or Context.at(rt.spec.timezone)
            out[name] = _jsonable(evaluate(checked, ctx.record or {}, context, loader))
    return out


def _plain(value: Any) -> Any:
    """Read-only config data as plain values (the records service takes dicts and lists)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    """An evaluated value as the records service takes input."""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, frozenset | set | tuple):
        return sorted(value)
    return value


def _shown(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{name}={shown(repr(value), 40)}" for name, value in values.items())


def _need_record(ctx: ActionContext, action: str) -> tuple[str, int]:
    if ctx.entity is None or ctx.record is None:
        raise ValueError(f"{action} needs a record: the trigger has none")
    return ctx.entity, int(ctx.record["id"])


def _entity_needed(entity: EntitySpec | None, action: str) -> list[str]:
    return [] if entity is not None else [f"{action} acts on the trigger's record: give the automation an entity"]


# ------------------------------------------------------------------ set

class SetAction:
    """``set: {field: value, ...}``: update the trigger record."""

    name = "set"
    writes_record = True

    def check(self, args: Any, entity: EntitySpec | None, spec: AppSpec) -> list[str]:
        if entity is None:
            return _entity_needed(entity, "set")
        return check_values(args, entity, entity, spec, "set")

    def run(self, ctx: ActionContext, args: Any) -> str:
        entity, record_id = _need_record(ctx, "set")
        values = record_values(ctx.runtime, ctx, args)
        with write_transaction(ctx.runtime.engine) as tx:
            if not ctx.runtime.jobs.claim_effect(ctx.key, conn=tx):
                return "set before (the run was retried)"
            ctx.runtime.records.update(entity, record_id, values, ctx.actor, conn=tx)
        return f"set {_shown(values)}"

    def describe(self, ctx: ActionContext, args: Any) -> str:
        entity, _ = _need_record(ctx, "set")
        values = record_values(ctx.runtime, ctx, args)
        spec = ctx.runtime.spec.entities[entity]
        parts = []
        assert ctx.record is not None
        for name, value in values.items():
            column = spec.fields[name].column if name in spec.fields else name
            old = ctx.record.get(column)
            parts.append(f"{name}: {shown(repr(_jsonable(old)), 40)} → {shown(repr(value), 40)}")
        return "would set " + "; ".join(parts)


# ------------------------------------------------------------------ create

class CreateAction:
    """``create: {entity: E, values: {field: value}}``: a new record; values
    may be expressions about the trigger record (``customer: "= id"``). An
    owned record created for an owned trigger record gets its owner."""

    name = "create"

    def check(self, args: Any, entity: EntitySpec | None, spec: AppSpec) -> list[str]:
        if not isinstance(args, Mapping) or not isinstance(args.get("entity"), str):
            return ["create takes {entity: ENTITY, values: {field: value}}"]
        extra = set(args) - {"entity", "values"}
        if extra:
            return [f"unknown key '{shown(sorted(extra)[0])}' of create (it takes entity and values)"]
        target = spec.entities.get(args["entity"])
        if target is None:
            hint = did_you_mean(args["entity"], spec.entities)
            return [f"create: unknown entity '{shown(args['entity'])}'" + (f" ({hint})" if hint else "")]
        values = args.get("values") or {}
        problems = check_values(values, target, entity, spec, "create values") if values else []
        for f in target.user_fields:
            if (f.required and f.default is None and f.formula is None and f.type != "autonumber"
                    and f.name not in values):
                problems.append(f"create {target.name}: required field '{f.name}' has no value")
        return problems

    def run(self, ctx: ActionContext, args: Any) -> str:
        target, values = self._values(ctx, args)
        with write_transaction(ctx.runtime.engine) as tx:  # once, even when the run is retried
            if not ctx.runtime.jobs.claim_effect(ctx.key, conn=tx):
                return f"created {target.name} before (the run was retried)"
            made = ctx.runtime.records.create(target.name, values, ctx.actor, conn=tx)
        return f"created {target.name} {made['id']}"

    def describe(self, ctx: ActionContext, args: Any) -> str:
        target, values = self._values(ctx, args)
        return f"would create {target.name} with {_shown(values)}"

    def _values(self, ctx: ActionContext, args: Any) -> tuple[EntitySpec, dict[str, Any]]:
        target = ctx.runtime.spec.entities[args["entity"]]
        values = record_values(ctx.runtime, ctx, args.get("values") or {}, target.name)
        owner = ctx.record.get("owner_id") if ctx.record is not None else None
        if target.owned and owner is not None and "owner_id" not in values:
            values["owner_id"] = owner
        return target, values


# ------------------------------------------------------------------ tags

class TagAction:
    """``tag: TAG`` / ``untag: TAG``: a manual tag of the trigger's entity, put
    on or taken off through tagging's API (history and tag triggers follow)."""

    writes_record = True

    def __init__(self, on: bool) -> None:
        self.on = on
        self.name = "tag" if on else "untag"

    def check(self, args: Any, entity: EntitySpec | None, spec: AppSpec) -> list[str]:
        if entity is None:
            return _entity_needed(entity, self.name)
        if not isinstance(args, str):
            return [f"{self.name} takes the name of a tag"]
        tag = spec.tags.get(args)
        if tag is None or tag.entity != entity.name:
            names = [t.name for t in spec.tags.values() if t.entity == entity.name]
            hint = did_you_mean(args, names) or (f"tags of {entity.name}: {', '.join(names)}" if names
                                                 else f"{entity.name} has no tags")
            return [f"{self.name}: unknown tag '{shown(args)}' of {entity.name} ({hint})"]
        if tag.rule is not None:
            return [f"{self.name}: '{args}' is set by its rule; only manual tags are put on and taken off"]
        return []

    def run(self, ctx: ActionContext, args: Any) -> str:
        entity, record_id = _need_record(ctx, self.name)
        tagging = ctx.runtime.records.tagging
        (tagging.add if self.on else tagging.remove)(entity, record_id, args, ctx.actor)
        return f"{'tagged' if self.on else 'untagged'} {args}"

    def describe(self, ctx: ActionContext, args: Any) -> str:
        _need_record(ctx, self.name)
        return f"would {'put tag' if self.on else 'take tag'} {args} {'on' if self.on else 'off'}"


# ------------------------------------------------------------------ transition

class TransitionAction:
    """``transition: MOVE``: make a workflow move of the trigger record (its
    guards hold: required fields, ``when``)."""

    name = "transition"
    writes_record = True

    def check(self, args: Any, entity: EntitySpec | None, spec: AppSpec) -> list[str]:
        if entity is None:
            return _entity_needed(entity, "transition")
        if not isinstance(args, str):
            return ["transition takes the name of a move"]
        moves = [m.name for wf in spec.workflows if wf.entity == entity.name for m in wf.transitions]
        if args not in moves:
            hint = did_you_mean(args, moves) or (f"moves of {entity.name}: {', '.join(moves)}" if moves
                                                 else f"{entity.name} has no workflow")
            return [f"transition: unknown move '{shown(args)}' of {entity.name} ({hint})"]
        return []

    def run(self, ctx: ActionContext, args: Any) -> str:
        entity, record_id = _need_record(ctx, "transition")
        record = ctx.runtime.records.transition(entity, record_id, args, {}, ctx.actor)
        if isinstance(record, ApprovalPending):  # a move that needs approval now waits for it
            return f"asked for '{args}': approval #{record.approval['id']} is pending"
        return f"moved by '{args}' to {self._state(ctx, entity, args, record)}"

    def describe(self, ctx: ActionContext, args: Any) -> str:
        entity, record_id = _need_record(ctx, "transition")
        moves = ctx.runtime.records.transitions(entity, record_id, ctx.actor)
        found = next((m for m in moves if m["name"] == args), None)
        if found is None:
            return f"would try '{args}', which does not start from the record's state"
        if not found["allowed"]:
            return f"would try '{args}' ({found['from']} → {found['to']}), refused now: {found['reason']}"
        return f"would move by '{args}': {found['from']} → {found['to']}"

    @staticmethod
    def _state(ctx: ActionContext, entity: str, move: str, record: Mapping[str, Any]) -> str:
        for wf in ctx.runtime.records.workflows.get(entity, ()):
            if wf.transition(move) is not None:
                return str(record.get(ctx.runtime.spec.entities[entity].fields[wf.field].column))
        return "?"


BUILTIN_ACTIONS = (SetAction(), CreateAction(), TagAction(True), TagAction(False), TransitionAction())

