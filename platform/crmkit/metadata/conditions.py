"""The config's expressions, compiled at check time.

Every expression an entity or a workflow writes (a field's ``formula``,
``required_if``, ``visible_if`` and ``readonly_if``, the entity's ``validate``
rules, a form section's ``visible_if``, a transition's ``when``) is parsed and
checked against the whole spec here, once the spec's names are known. A
mistake is a config problem located in the file, inside the expression's text
(``entities/order.yaml:14:31: order has no field 'quantiy' (did you mean
'quantity'?)``). The compiled expressions hang on the typed specs
(FieldSpec.formula, TransitionSpec.condition ...), which crmkit.rules and
crmkit.workflows apply.

The system evaluates these expressions (integrity rules, not a user's
question): they are checked without an access and read every field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from ..expressions import ExpressionError, check
from ..expressions import tree as t
from ..expressions.tree import Kind
from ..fieldtypes import DecimalType, MoneyType
from .loader import Document
from .problems import Problem, ProblemList
from .spec import AppSpec, EntitySpec, FieldSpec, SectionSpec, TransitionSpec, ValidationSpec, WorkflowSpec

#: The field keys that hold an expression.
FIELD_RULES = ("formula", "required_if", "visible_if", "readonly_if")
#: What a formula may compute, by the type of its field.
FORMULA_TYPES = {"string": "text", "text": "text", "integer": "an integer", "decimal": "a number",
                 "money": "a number", "boolean": "a condition (true or false)", "date": "a date",
                 "datetime": "a datetime"}
_SCALES = {"decimal": DecimalType(), "money": MoneyType()}


def compile_rules(spec: AppSpec, entity_docs: Mapping[str, Document], workflow_docs: list[Document],
                  problems: ProblemList) -> AppSpec | None:
    """The spec with its expressions compiled; None when one has problems
    (each reported)."""
    before = len(problems.problems)
    compiler = _Compiler(spec, problems)
    entities = {name: compiler.entity(entity, entity_docs[name]) if name in entity_docs else entity
                for name, entity in spec.entities.items()}
    flows = {doc.data["workflow"]: doc for doc in workflow_docs}
    workflows = tuple(compiler.workflow(flow, flows[flow.name]) if flow.name in flows else flow
                      for flow in spec.workflows)
    compiler.cycles(entities, entity_docs)
    if len(problems.problems) > before:
        return None
    return dataclasses.replace(spec, entities=MappingProxyType(entities), workflows=workflows)


class _Compiler:
    def __init__(self, spec: AppSpec, problems: ProblemList) -> None:
        self.spec = spec
        self.problems = problems

    def compile(self, doc: Document, path: tuple, text: str, entity: str, want: str = "condition"
                ) -> t.Checked | None:
        try:
            return check(text, self.spec, entity, want=want)  # type: ignore[arg-type]
        except ExpressionError as error:
            line, column = doc.locate_text(path, error.line, error.column)
            self.problems.add_problem(Problem(doc.file, line, column, error.message, error.hint))
            return None

    # -------------------------------------------------------------- entities

    def entity(self, entity: EntitySpec, doc: Document) -> EntitySpec:
        raw_fields = doc.data["fields"]
        fields = dict(entity.fields)
        for name, f in entity.fields.items():
            raw = raw_fields.get(name)
            if isinstance(raw, dict) and any(key in raw for key in FIELD_RULES):
                fields[name] = self.field(entity, f, raw, doc)
        rules = []
        for i, raw in enumerate(doc.data.get("validate", ())):
            checked = self.compile(doc, ("validate", i, "rule"), raw["rule"], entity.name)
            if checked is not None:
                rules.append(ValidationSpec(checked, _label(raw["message"]), own_fields(checked)))
        form = []
        for i, section in enumerate(entity.form):
            if section.visible_if is not None:
                section = dataclasses.replace(section, condition=self.compile(
                    doc, ("form", i, "visible_if"), section.visible_if, entity.name))
            form.append(section)
        return dataclasses.replace(entity, fields=MappingProxyType(fields), validate=tuple(rules),
                                   form=tuple[SectionSpec, ...](form))

    def field(self, entity: EntitySpec, f: FieldSpec, raw: dict[str, Any], doc: Document) -> FieldSpec:
        path = ("fields", f.name)
        compiled: dict[str, Any] = {}
        for key in ("required_if", "visible_if", "readonly_if"):
            if key in raw:
                compiled[key] = self.compile(doc, path + (key,), raw[key], entity.name)
        if "required_if" in raw and f.required:
            self.problems.add(doc, path + ("required_if",), "the field is required already (required: true)",
                              key=True)
        if "formula" in raw:
            for key in ("default", "required", "readonly", "required_if", "readonly_if"):
                if key in raw:
                    self.problems.add(doc, path + (key,), f"'{key}' does not apply to a formula field: "
                                      "its value is computed", key=True)
            compiled["formula"] = self.formula(entity, f, raw["formula"], doc, path + ("formula",))
            compiled["readonly"] = True
        if f.required and compiled.get("visible_if") is not None:
            # Required where it shows: hidden by its condition, a field is not required.
            compiled.update(required=False, required_if=compiled["visible_if"])
        return dataclasses.replace(f, **compiled)

    def formula(self, entity: EntitySpec, f: FieldSpec, text: str, doc: Document, path: tuple) -> t.Checked | None:
        wanted = FORMULA_TYPES.get(f.type)
        if wanted is None:
            self.problems.add(doc, path, f"a {f.type} field cannot have a formula",
                              f"formulas compute {', '.join(sorted(FORMULA_TYPES))} fields", key=True)
            return None
        checked = self.compile(doc, path, text, entity.name, want="value")
        if checked is None:
            return None
        kind = checked.type.kind
        fits = {"text": checked.type.textual, "an integer": kind is Kind.INTEGER,
                "a number": checked.type.numeric, "a condition (true or false)": kind is Kind.BOOLEAN,
                "a date": kind is Kind.DATE, "a datetime": kind is Kind.DATETIME}[wanted]
        if not fits:
            hint = "round(x) and a decimal field keep places; count() counts" if wanted == "an integer" else ""
            line, column = doc.locate_text(path, 1, 1)
            message = f"the formula of {f.type} field '{f.name}' must compute {wanted}, not {_a(checked.type)}"
            self.problems.add_problem(Problem(doc.file, line, column, message, hint))
            return None
        if f.type in _SCALES:
            return stored_as(checked, _SCALES[f.type].scale(f))
        return checked

    # -------------------------------------------------------------- workflows

    def workflow(self, flow: WorkflowSpec, doc: Document) -> WorkflowSpec:
        if flow.entity not in self.spec.entities:
            return flow
        moves: list[TransitionSpec] = []
        for i, move in enumerate(flow.transitions):
            if move.when is not None:
                move = dataclasses.replace(move, condition=self.compile(
                    doc, ("transitions", i, "when"), move.when, flow.entity))
            if move.approval is not None:
                steps = tuple(dataclasses.replace(step, condition=self.compile(
                    doc, ("transitions", i, "approval", "steps", k, "when"), step.when, flow.entity))
                    if step.when is not None else step for k, step in enumerate(move.approval.steps))
                move = dataclasses.replace(move, approval=dataclasses.replace(move.approval, steps=steps))
            moves.append(move)
        return dataclasses.replace(flow, transitions=tuple(moves))

    # -------------------------------------------------------------- cycles

    def cycles(self, entities: Mapping[str, EntitySpec], docs: Mapping[str, Document]) -> None:
        """Formulas that depend on each other in a cycle (through rollups and
        refs too) could never be computed: each is reported."""
        formulas = {(e.name, f.name): f.formula for e in entities.values() for f in e.fields.values()
                    if f.formula is not None}
        depends = {key: sorted(read for read in checked.reads if read in formulas)
                   for key, checked in formulas.items() if checked is not None}
        reported: set[tuple[str, str]] = set()
        for start in sorted(depends):
            cycle = _cycle_from(start, depends)
            if cycle is None or start in reported:
                continue
            reported.update(cycle)
            shown = " → ".join(f"{e}.{n}" for e, n in [*cycle, cycle[0]])
            for entity, name in cycle:
                if entity in docs:
                    self.problems.add(docs[entity], ("fields", name, "formula"),
                                      f"formulas depend on each other in a cycle: {shown}")


def _cycle_from(start: tuple[str, str], depends: Mapping[tuple[str, str], list[tuple[str, str]]]
                ) -> list[tuple[str, str]] | None:
    """A cycle through ``start``, if there is one (depth first)."""
    stack: list[tuple[tuple[str, str], list[tuple[str, str]]]] = [(start, [start])]
    seen: set[tuple[str, str]] = set()
    while stack:
        node, trail = stack.pop()
        for nxt in depends.get(node, ()):
            if nxt == start:
                return trail
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*trail, nxt]))
    return None


def formula_order(entity: EntitySpec) -> list[FieldSpec]:
    """The entity's formula fields, each after those of the entity it reads."""
    formulas = {f.name: f for f in entity.fields.values() if f.formula is not None}
    done: list[FieldSpec] = []

    def visit(name: str, trail: frozenset[str]) -> None:
        f = formulas[name]
        if f in done or name in trail:
            return
        formula = f.formula
        assert formula is not None
        for read_entity, read in sorted(formula.reads):
            if read_entity == entity.name and read in formulas:
                visit(read, trail | {name})
        done.append(f)

    for name in formulas:
        visit(name, frozenset())
    return done


def stored_as(checked: t.Checked, scale: int) -> t.Checked:
    """A numeric formula shaped to a column with ``scale`` places: rounded half
    away from zero when it has more, widened when it has fewer, so that SQL
    and Python compute the stored value alike."""
    root = checked.root
    if root.type.scale > scale:
        places = t.Const(type=t.INTEGER, span=root.span, value=scale)
        root = t.Call(type=t.decimal(scale), span=root.span, name="round", args=(root, places))
    elif root.type.kind is Kind.INTEGER or root.type.scale < scale:
        one = t.Const(type=t.decimal(scale - root.type.scale), span=root.span, value=Decimal(1))
        root = t.Arith(type=t.decimal(scale), span=root.span, op="*", left=root, right=one)
    return dataclasses.replace(checked, root=root, cache={})


def own_fields(checked: t.Checked) -> tuple[str, ...]:
    """The record's own fields an expression reads (a ref it follows counts as
    its own), in the order written: the fields an error about it names."""
    found: dict[str, None] = {}
    for node in sorted(t.walk(checked.root), key=lambda n: n.span[0]):
        if isinstance(node, t.Field) and node.frame == 0:
            found[node.path.fields[0].name] = None
    return tuple(found)


def _label(value: Any) -> Mapping[str, str]:
    if isinstance(value, str):
        return MappingProxyType({"en": value, "zh": value})
    return MappingProxyType(dict(value))


def _a(type_: t.Type) -> str:
    text = str(type_)
    return ("an " if text[0] in "aeiou" else "a ") + text
