"""The rules of the config's entities, applied to every write: formulas,
rollups, conditional fields and validation rules (crmkit.metadata.conditions
compiles them at check time; the expression language computes them).

The records service calls these through its record hooks (this module is an
internal plugin), inside the write's transaction:

- before a create or an update: ``readonly_if`` (on the record as stored: an
  update may not change a field while its condition holds; the system's
  writes may), the formulas (the record's own, in dependency order; a rollup
  is computed on create and kept as stored on an update of its own record),
  ``visible_if`` (a field hidden by its condition is stored empty: its value
  is cleared, and it is not required), ``required_if``, then the ``validate``
  rules on the record as it will be stored. Problems answer 422.
- after a create, an update, a delete or a restore: the rollups over the
  written entity, on the records they belong to (a line's order; both the old
  and the new one when its ref moves), set-based: ``UPDATE ... SET total =
  (SELECT sum(...) ...) WHERE id IN (...)``, then the formulas that read them,
  and onwards (a customer's totals over orders whose total changed).

Rules are the system's: they read every field, whatever the writer may see.
A formula's stored value changes without a new version or an audit entry of
the record it is stored on (it follows from other records' audited writes).

:func:`field_states` gives the screens the same compiled conditions for a
form: which fields show, are required and are read-only, for values and an
access. :class:`Recompute` rebuilds stored formulas set-based (``crmkit
recompute``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from .errors import ValidationFailed
from .expressions import Context, SqlLoader, evaluate, to_sql
from .expressions import tree as t
from .expressions.tree import Checked
from .hookspecs import hookimpl
from .metadata.conditions import formula_order, own_fields
from .metadata.spec import AppSpec, EntitySpec, FieldSpec, ValidationSpec, label_text
from .tables import Tables

if TYPE_CHECKING:
    from .permissions import EntityAccess
    from .records import RecordEvent

UTC = dt.UTC


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def _has_clock(checked: Checked) -> bool:
    """Whether an expression reads the clock or the user (its SQL binds them per run)."""
    return any(isinstance(n, (t.Now, t.Today, t.Me)) for n in t.walk(checked.root))


def _aggregates(checked: Checked) -> list[t.Aggregate]:
    return [n for n in t.walk(checked.root) if isinstance(n, t.Aggregate)]


@dataclass(frozen=True)
class Rollup:
    """Formulas of ``owner`` that aggregate over one relation to ``child``:
    what to compute again when a child record is written."""

    owner: str
    relation: t.Relation
    #: The owner's formula fields that aggregate over the relation.
    fields: tuple[FieldSpec, ...]
    #: The child's own fields those aggregates read (a change to another does not matter).
    reads: frozenset[str]


@dataclass(frozen=True)
class Lookup:
    """Formulas of ``owner`` that read through its ref ``via`` (``customer.level``):
    what to compute again when a referenced record changes."""

    owner: str
    via: FieldSpec
    fields: tuple[FieldSpec, ...]
    #: The referenced entity's fields they read.
    reads: frozenset[str]


@dataclass
class EntityRules:
    """One entity's compiled rules, sorted for applying."""

    entity: EntitySpec
    #: Formula fields in dependency order.
    formulas: list[FieldSpec] = field(default_factory=list)
    #: The ones without an aggregate: computed on every write of the record.
    row_formulas: list[FieldSpec] = field(default_factory=list)
    visible_if: list[FieldSpec] = field(default_factory=list)
    required_if: list[FieldSpec] = field(default_factory=list)
    readonly_if: list[FieldSpec] = field(default_factory=list)
    validate: tuple[ValidationSpec, ...] = ()
    #: Whether anything applies before a write (most entities: nothing).
    active: bool = False
    #: Whether any rule reads another record (then a loader is made for the write).
    reads_rows: bool = False

    @classmethod
    def of(cls, entity: EntitySpec) -> EntityRules:
        rules = cls(entity, formulas=formula_order(entity), validate=entity.validate)
        for f in entity.user_fields:
            if f.visible_if is not None:
                rules.visible_if.append(f)
            if f.required_if is not None:
                rules.required_if.append(f)
            if f.readonly_if is not None:
                rules.readonly_if.append(f)
        rules.row_formulas = [f for f in rules.formulas if f.formula is not None and not _aggregates(f.formula)]
        checks: list[Checked] = [rule.rule for rule in rules.validate]
        for f in entity.user_fields:
            checks.extend(c for c in (f.formula, f.visible_if, f.required_if, f.readonly_if) if c is not None)
        rules.active = bool(checks)
        rules.reads_rows = any(c.needs_rows for c in checks)
        return rules


class RecordRules:
    """The rules of every entity of a spec, applied to writes (see the module)."""

    def __init__(self, spec: AppSpec, tables: Tables) -> None:
        self.spec = spec
        self.tables = tables
        self.timezone = ZoneInfo(spec.timezone)
        #: Told of the formulas a rollup changed (connection, entity, ids, field
        #: names): what reads them, such as rule tags, is evaluated again.
        self.listeners: list[Callable[[sa.Connection, str, list[int], set[str]], None]] = []
        self.entities = {name: EntityRules.of(entity) for name, entity in spec.entities.items()}
        #: child entity -> the rollups over it
        self.rollups: dict[str, list[Rollup]] = {}
        for entity in spec.entities.values():
            by_relation: dict[str, tuple[t.Relation, list[FieldSpec], set[str]]] = {}
            for f in self.entities[entity.name].formulas:
                assert f.formula is not None
                for node in _aggregates(f.formula):
                    relation, fields, reads = by_relation.setdefault(node.relation.spec.name,
                                                                     (node.relation, [], set()))
                    if f not in fields:
                        fields.append(f)
                    reads.update(n.path.fields[0].name for n in t.walk(node)
                                 if isinstance(n, t.Field) and n.frame == 1)
            for relation, fields, reads in by_relation.values():
                self.rollups.setdefault(relation.entity, []).append(
                    Rollup(entity.name, relation, tuple(fields), frozenset(reads)))
        #: referenced entity -> the formulas reading through a ref to it
        self.lookups: dict[str, list[Lookup]] = {}
        for entity in spec.entities.values():
            through: dict[str, tuple[FieldSpec, list[FieldSpec], set[str]]] = {}
            for f in self.entities[entity.name].formulas:
                assert f.formula is not None
                for part in t.walk(f.formula.root):
                    if isinstance(part, t.Field) and part.frame == 0 and part.path.hops:
                        hop = part.path.hops[0]
                        via, fields, names = through.setdefault(hop.name, (hop, [], set()))
                        if f not in fields:
                            fields.append(f)
                        names.add(part.path.fields[1].name)
            for via, fields, names in through.values():
                if via.to is not None and via.to in spec.entities:
                    self.lookups.setdefault(via.to, []).append(
                        Lookup(entity.name, via, tuple(fields), frozenset(names)))
        self._statements: dict[tuple[str, str, tuple[str, ...]], sa.Update] = {}

    def context(self, user_id: int | None = None) -> Context:
        return Context(self.timezone, dt.datetime.now(UTC), user_id)

    # -------------------------------------------------------------- before a write

    def before_create(self, event: RecordEvent) -> None:
        rules = self.entities[event.entity.name]
        if not rules.active:
            return
        loader = SqlLoader(event.conn, self.tables) if rules.reads_rows else None
        context = self.context(event.actor.id)
        visible = _visible(event)
        errors: dict[int, dict[str, Any]] = {}
        for index, row in enumerate(event.rows):
            # A new record's rollups are over no related records yet: computed all the same.
            problems = self.apply(rules, row, row, None, context, loader, rules.formulas, visible)
            if problems:
                errors[index] = problems
        if errors:
            raise _failed(errors, single=len(event.rows) == 1)

    def before_update(self, event: RecordEvent) -> None:
        rules = self.entities[event.entity.name]
        if not rules.active:
            return
        entity, changes, old = event.entity, event.rows[0], event.old[0]
        stored = {f.name: old[f.column] for f in entity.fields.values()}
        loader = SqlLoader(event.conn, self.tables) if rules.reads_rows else None
        context = self.context(event.actor.id)
        problems: dict[str, Any] = {}
        visible = _visible(event)
        if not event.actor.system:
            for f in rules.readonly_if:
                assert f.readonly_if is not None
                if (f.name in changes and changes[f.name] != stored[f.name]
                        and evaluate(f.readonly_if, stored, context, loader) is True):
                    problems[f.name] = ["is read-only " + _why("while", f.readonly_if, visible)]
        for f in rules.formulas:  # a rollup stays as stored (the system may have sent one)
            if f.name in changes and f not in rules.row_formulas:
                del changes[f.name]
        merged = {**stored, **changes}
        problems.update(self.apply(rules, merged, changes, stored, context, loader, rules.row_formulas, visible))
        if problems:
            raise _failed({0: problems}, single=True)

    def apply(self, rules: EntityRules, record: dict[str, Any], changes: dict[str, Any],
              stored: Mapping[str, Any] | None, context: Context, loader: SqlLoader | None,
              formulas: Sequence[FieldSpec], visible: frozenset[str] | None = None) -> dict[str, Any]:
        """Formulas, visibility, required_if and validation on ``record`` (every
        field by name); what is to be written goes into ``changes`` (the same
        dict on create). Returns the problems by field, as the writer may
        learn them (``visible``: the fields they may see; None: all): a rule
        is enforced whatever it reads, but an error names no field hidden
        from them, nor the text of a rule that reads one."""
        system = Context(context.timezone, context.now, None)  # a stored value does not depend on the writer
        self.compute(record, changes, stored, formulas, system, loader)
        cleared = False
        for f in rules.visible_if:
            assert f.visible_if is not None
            if record.get(f.name) is not None and evaluate(f.visible_if, record, context, loader) is not True:
                record[f.name] = changes[f.name] = None
                cleared = True
        if cleared and formulas:
            self.compute(record, changes, stored, formulas, system, loader)
        problems: dict[str, Any] = {}
        for f in rules.required_if:
            assert f.required_if is not None
            if (_empty(record.get(f.name)) and evaluate(f.required_if, record, context, loader) is True
                    and (f.visible_if is None or evaluate(f.visible_if, record, context, loader) is True)):
                problems[f.name] = ["is required " + _why("when", f.required_if, visible)]
        failed = []
        for rule in rules.validate:
            if evaluate(rule.rule, record, context, loader) is False:
                shown = [name for name in rule.fields if visible is None or name in visible]
                text = rule.rule.text if len(shown) == len(rule.fields) else None
                failed.append({"rule": text, "message": dict(rule.message), "fields": shown})
                for name in shown or ("_record",):
                    problems.setdefault(name, []).append(label_text(rule.message, "en", rule.rule.text))
        if failed:
            problems["_rules"] = failed
        return problems

    def compute(self, record: dict[str, Any], changes: dict[str, Any], stored: Mapping[str, Any] | None,
                formulas: Sequence[FieldSpec], context: Context, loader: SqlLoader | None) -> None:
        for f in formulas:
            assert f.formula is not None
            value = evaluate(f.formula, record, context, loader)
            record[f.name] = value
            if stored is None or stored.get(f.name) != value:
                changes[f.name] = value
            else:
                changes.pop(f.name, None)

    # -------------------------------------------------------------- after a write

    def after_write(self, event: RecordEvent) -> None:
        """Keep the rollups over the written records current."""
        entity = event.entity
        touched: dict[tuple[str, str], tuple[Rollup, set[int]]] = {}  # (owner, relation) -> owner ids
        if event.action == "update" and event.changes:
            for changes, record in zip(event.changes, event.records):
                for rollup in self._own_relations(entity.name, changes):
                    key = (rollup.owner, rollup.relation.spec.name)
                    touched.setdefault(key, (rollup, set()))[1].add(record["id"])
        for rollup in self.rollups.get(entity.name, ()):
            ids = self._owners(event, rollup)
            if ids:
                key = (rollup.owner, rollup.relation.spec.name)
                touched.setdefault(key, (rollup, set()))[1].update(ids)
        for rollup, ids in touched.values():
            self.refresh(event.conn, rollup.owner, ids, rollup.fields)
        if event.action != "create":  # nothing refers to a new record yet
            for lookup in self.lookups.get(entity.name, ()):
                ids = {r["id"] for r, c in zip(event.records or event.old, event.changes or [{}] * len(event.old))
                       if event.action != "update" or lookup.reads & c.keys()}
                self._refresh_referrers(event.conn, lookup, ids)

    def _refresh_referrers(self, conn: sa.Connection, lookup: Lookup, ids: set[int] | list[int]) -> None:
        if not ids:
            return
        table = self.tables.entities[lookup.owner]
        owners = set(conn.execute(sa.select(table.c.id).where(table.c[lookup.via.column].in_(sorted(ids)),
                                                              table.c.deleted_at.is_(None))).scalars())
        self.refresh(conn, lookup.owner, owners, lookup.fields)

    def _own_relations(self, entity: str, changes: Mapping[str, Any]) -> list[Rollup]:
        """The rollups of ``entity`` over many-to-many relations whose links changed."""
        relations = self.spec.entities[entity].relations
        return [rollup for name in changes if name in relations
                for rollup in self.rollups.get(relations[name].entity, ())
                if rollup.owner == entity and rollup.relation.spec.name == name]

    def _owners(self, event: RecordEvent, rollup: Rollup) -> set[int]:
        """The records of ``rollup.owner`` whose rollup the event changes."""
        relation = rollup.relation
        if event.action == "update":
            moved_or_read = []
            for changes, record, old in zip(event.changes, event.records, event.old):
                if relation.back is not None and relation.back.name in changes:
                    moved_or_read += [old[relation.back.column], record[relation.back.column]]
                elif rollup.reads & changes.keys():
                    moved_or_read.append(record["id"] if relation.back is None else record[relation.back.column])
            ids = {i for i in moved_or_read if i is not None}
        else:
            records = event.records if event.action == "create" else event.old
            found = (r["id"] if relation.back is None else r[relation.back.column] for r in records)
            ids = {i for i in found if i is not None}
        if relation.back is None and ids:  # many-to-many: the owners linked to these records
            link = self.tables.links[(relation.owner, relation.spec.name)]
            owner_column, other_column = list(link.c)[0], list(link.c)[1]
            ids = set(event.conn.execute(sa.select(owner_column).where(other_column.in_(ids))).scalars())
        return ids

    def refresh(self, conn: sa.Connection, entity: str, ids: Iterable[int], fields: Iterable[FieldSpec]) -> None:
        """Compute ``fields`` of these records again, then the formulas that
        read them, then the rollups over this entity that read any of them."""
        ids = sorted(ids)
        if not ids:
            return
        changed = self._update(conn, entity, fields, ids)
        for listener in self.listeners:
            listener(conn, entity, ids, changed)
        for rollup in self.rollups.get(entity, ()):
            if not rollup.reads & changed:
                continue
            back = rollup.relation.back
            table = self.tables.entities[entity]
            if back is not None:
                owners = set(conn.execute(sa.select(table.c[back.column]).where(table.c.id.in_(ids))).scalars())
            else:
                link = self.tables.links[(rollup.relation.owner, rollup.relation.spec.name)]
                owners = set(conn.execute(sa.select(list(link.c)[0]).where(list(link.c)[1].in_(ids))).scalars())
            owners.discard(None)
            self.refresh(conn, rollup.owner, owners, rollup.fields)
        for lookup in self.lookups.get(entity, ()):
            if lookup.reads & changed:
                self._refresh_referrers(conn, lookup, ids)

    def _update(self, conn: sa.Connection, entity: str, fields: Iterable[FieldSpec], ids: list[int] | None
                ) -> set[str]:
        """UPDATE the fields (and the formulas that read them) of the records
        with ``ids`` (None: every live record); the names of the fields updated."""
        wanted = {f.name for f in fields}
        rules = self.entities[entity]
        ordered: list[FieldSpec] = []
        for f in rules.formulas:
            assert f.formula is not None
            if f.name in wanted or any(e == entity and n in wanted for e, n in f.formula.reads):
                wanted.add(f.name)
                ordered.append(f)
        # One statement per step: a formula reading another of the same record goes after it.
        steps: list[list[FieldSpec]] = []
        for f in ordered:
            assert f.formula is not None
            reads_earlier = steps and any(e == entity and n in {g.name for g in steps[-1]}
                                          for e, n in f.formula.reads)
            if not steps or reads_earlier:
                steps.append([f])
            else:
                steps[-1].append(f)
        context = self.context()
        for step in steps:
            conn.execute(self._statement(conn.dialect.name, entity, step, ids is not None, context),
                         {"ids": ids} if ids is not None else {})
        return wanted

    def _statement(self, dialect: str, entity: str, fields: list[FieldSpec], some: bool, context: Context
                   ) -> sa.Update:
        key = (dialect, entity, tuple(f.name for f in fields) + (("",) if some else ()))
        found = self._statements.get(key)
        if found is not None:
            return found
        table = self.tables.entities[entity]
        values = {}
        for f in fields:
            assert f.formula is not None
            values[f.column] = to_sql(f.formula, self.tables, dialect=dialect, context=context)
        statement = table.update().where(table.c.deleted_at.is_(None)).values(values)
        if some:
            statement = statement.where(table.c.id.in_(sa.bindparam("ids", expanding=True)))
        if not any(_has_clock(f.formula) for f in fields if f.formula is not None):
            self._statements[key] = statement  # the same SQL whenever it runs
        return statement

    # -------------------------------------------------------------- rebuilding

    def recompute(self, conn: sa.Connection, entity: str, field_name: str | None = None) -> list[str]:
        """Rebuild stored formulas over every live record, set-based: the
        entity's (or one of them), then whatever reads them elsewhere. Returns
        the fields rebuilt, as entity.field."""
        rules = self.entities[entity]
        fields = [f for f in rules.formulas if field_name is None or f.name == field_name]
        done: list[str] = []
        pending: list[tuple[str, list[FieldSpec]]] = [(entity, fields)]
        while pending:
            name, wanted = pending.pop(0)
            changed = self._update(conn, name, wanted, None)
            done += [f"{name}.{n}" for n in sorted(changed) if f"{name}.{n}" not in done]
            for rollup in self.rollups.get(name, ()):
                if rollup.reads & changed:
                    pending.append((rollup.owner, list(rollup.fields)))
            for lookup in self.lookups.get(name, ()):
                if lookup.reads & changed:
                    pending.append((lookup.owner, list(lookup.fields)))
        return done


def _visible(event: RecordEvent) -> frozenset[str] | None:
    """The fields of the written entity the writer may see (None: the system, all)."""
    if event.actor.system:
        return None
    return frozenset(event.service.access(event.actor, event.entity).visible)


def _why(word: str, condition: Checked, visible: frozenset[str] | None) -> str:
    """' when <condition>', unless the condition reads a field hidden from the writer."""
    if visible is None or all(name in visible for name in own_fields(condition)):
        return f"{word} {condition.text}"
    return "now"


def _failed(errors: dict[int, dict[str, Any]], *, single: bool) -> ValidationFailed:
    """The 422 of rules a write breaks: the first rule's message (or the first
    field's), with the problems by field (``_rules``: each broken rule, its
    message in every language and the fields it reads)."""
    first = next(iter(errors.values()))
    rules = first.get("_rules")
    if rules:
        message = rules[0]["message"].get("en") or rules[0]["rule"] or "the record breaks a rule"
    else:
        name, messages = next(iter(first.items()))
        message = f"{name} {messages[0]}"
    if single:
        return ValidationFailed(message, first, code="rule_failed")
    return ValidationFailed(f"{len(errors)} record(s) break the entity's rules: {message}",
                            {str(index): problems for index, problems in sorted(errors.items())}, code="rule_failed")


# ------------------------------------------------------------------ for the screens

@dataclass(frozen=True)
class FieldState:
    visible: bool
    required: bool
    readonly: bool


def field_states(rules: RecordRules, entity: str, values: Mapping[str, Any], access: EntityAccess | None = None,
                 *, stored: bool = False, loader: SqlLoader | None = None,
                 judged: Callable[[Checked], bool] | None = None, user_id: int | None = None
                 ) -> dict[str, FieldState]:
    """For a form: each field of ``entity`` the access may see, whether it shows,
    must be filled and may be changed, for these values (field name -> value;
    ``stored``: they are the record as stored, so ``readonly_if`` applies).
    The same compiled conditions the records service enforces; ``loader`` for
    conditions that read other records. Formulas are read-only; fields the
    role may not write are read-only, fields it may not see are left out.
    ``judged``: whether a condition may be evaluated here (a screen leaves
    out those reading what its user may not read: such a field shows, is not
    required and not read-only by its condition; the server still enforces it)."""
    entity_spec = rules.spec.entities[entity]
    context = rules.context(user_id)

    def holds(condition: Checked | None, unknown: bool) -> bool:
        if condition is None or (judged is not None and not judged(condition)):
            return unknown
        return evaluate(condition, values, context, loader) is True

    states = {}
    for f in entity_spec.user_fields:
        if access is not None and f.name not in access.visible:
            continue
        visible = holds(f.visible_if, True)
        required = visible and (f.required or holds(f.required_if, False))
        readonly = (f.readonly or f.formula is not None or f.type == "autonumber"
                    or (access is not None and f.name not in access.writable)
                    or (stored and holds(f.readonly_if, False)))
        states[f.name] = FieldState(visible, required, readonly)
    return states


def sections_shown(rules: RecordRules, entity: str, values: Mapping[str, Any],
                   loader: SqlLoader | None = None, *, judged: Callable[[Checked], bool] | None = None,
                   user_id: int | None = None) -> list[bool]:
    """For a form: whether each section of the entity's layout shows for these
    values (its ``visible_if``; a layout, not a rule the server enforces;
    ``judged`` as for :func:`field_states`: a section whose condition may not
    be judged shows)."""
    context = rules.context(user_id)
    return [section.condition is None or (judged is not None and not judged(section.condition))
            or evaluate(section.condition, values, context, loader) is True
            for section in rules.spec.entities[entity].form]


# ------------------------------------------------------------------ the record hooks

@hookimpl(trylast=True)
def record_before_create(event: RecordEvent) -> None:
    event.service.rules.before_create(event)


@hookimpl(trylast=True)
def record_before_update(event: RecordEvent) -> None:
    event.service.rules.before_update(event)


@hookimpl
def record_after_create(event: RecordEvent) -> None:
    event.service.rules.after_write(event)


@hookimpl
def record_after_update(event: RecordEvent) -> None:
    event.service.rules.after_write(event)


@hookimpl
def record_after_delete(event: RecordEvent) -> None:
    event.service.rules.after_write(event)
