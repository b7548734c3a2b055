"""The automation actions of assignment and the pool: ``assign`` and
``return_to_pool``.

They follow the automations' action protocol structurally (``name``,
``check``, ``run``, ``describe``; crmkit.automations owns the protocol and
wires these in), and write through the records service as the automation's
actor, in one transaction each, like every action.

    do:
      - assign: {strategy: least_loaded, role: service_rep}
      - return_to_pool: {}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .assignment import rule_from
from .database import write_transaction
from .metadata.spec import AppSpec, EntitySpec


def _entity(ctx: Any) -> EntitySpec:
    entity = ctx.entity
    return ctx.runtime.spec.entities[entity] if isinstance(entity, str) else entity


def _values(entity: EntitySpec, record: Mapping[str, Any]) -> dict[str, Any]:
    """The record by field name (the context holds stored values, by column)."""
    return {f.name: record.get(f.column, record.get(f.name)) for f in entity.fields.values()}


def _username(ctx: Any, user_id: int) -> str:
    users = ctx.runtime.tables.users
    with ctx.runtime.engine.connect() as conn:
        name = conn.execute(users.select().with_only_columns(users.c.username).where(users.c.id == user_id)).scalar()
    return f"{name} (user {user_id})" if name else f"user {user_id}"


class AssignAction:
    """``assign: {strategy: round_robin|least_loaded, role: R}`` (or ``team: T``,
    or both): the record's owner becomes the next candidate among the active
    users, sharing the turn with the entity's ``assignment`` block of the same
    role and team."""

    name = "assign"
    writes_record = True

    def check(self, args: Any, entity: EntitySpec | None, spec: AppSpec) -> list[str]:
        rule, problems = rule_from(args)
        if rule is not None and rule.role is not None and rule.role not in set(spec.roles) | {"admin"}:
            problems.append(f"assign names unknown role '{rule.role}'")
        if entity is not None and not entity.owned:
            problems.append(f"assign needs an owned entity; {entity.name} has no owners")
        return problems

    def run(self, ctx: Any, args: Any) -> str:
        if ctx.dry_run:
            return self.describe(ctx, args)
        rule, problems = rule_from(args)
        if rule is None:
            raise ValueError("; ".join(problems))
        entity = _entity(ctx)
        records = ctx.runtime.records
        with write_transaction(ctx.runtime.engine) as tx:
            key = getattr(ctx, "key", None)
            # At least once: a re-run of the same job must not hand the record to the next in turn again.
            if key and not ctx.runtime.jobs.claim_effect(f"assign:{key}"[:200], conn=tx):
                return "assigned already (the same run, again)"
            picked = records.assigner.pick(tx, entity, rule, [_values(entity, ctx.record)])[0]
            if picked is None:
                return f"no active user of {self._who(rule)}: owner unchanged"
            if picked.id == ctx.record.get("owner_id"):
                return f"assigned to {_username(ctx, picked.id)} (unchanged)"
            records.update(entity.name, ctx.record["id"], {"owner_id": picked.id}, ctx.actor, conn=tx)
        return f"assigned to {_username(ctx, picked.id)}"

    def describe(self, ctx: Any, args: Any) -> str:
        """Who the rule picks from, and who would be next (the turn is not moved)."""
        rule, problems = rule_from(args)
        if rule is None:
            return "; ".join(problems)
        entity = _entity(ctx)
        records = ctx.runtime.records
        with ctx.runtime.engine.connect() as conn:
            team = records.assigner.routed_team(entity, rule, _values(entity, ctx.record))
            candidates = records.assigner.candidates(conn, rule, team)
        if not candidates:
            return f"would leave the owner: no active user of {self._who(rule)}"
        return (f"would assign {rule.strategy.replace('_', '-')} among {len(candidates)} active user(s) of "
                f"{self._who(rule)}")

    def _who(self, rule: Any) -> str:
        parts = [f"role {rule.role}" if rule.role else "", f"team {rule.team}" if rule.team else ""]
        return " in ".join(p for p in parts if p)


class ReturnToPoolAction:
    """``return_to_pool``: the record loses its owner and goes back to its
    entity's pool (an owner change in its history; the former owner's
    cool-down starts)."""

    name = "return_to_pool"
    writes_record = True

    def check(self, args: Any, entity: EntitySpec | None, spec: AppSpec) -> list[str]:
        problems = []
        if args not in (None, {}, True):
            problems.append("return_to_pool takes no arguments (write return_to_pool: {})")
        if entity is not None and entity.pool is None:
            problems.append(f"return_to_pool needs a pool on {entity.name} (add pool: to entities/{entity.name})")
        return problems

    def run(self, ctx: Any, args: Any) -> str:
        if ctx.dry_run:
            return self.describe(ctx, args)
        entity = _entity(ctx)
        returned = ctx.runtime.records.pool.send_back(entity.name, ctx.record["id"], ctx.actor)
        return "returned to the pool" if returned else "in the pool already"

    def describe(self, ctx: Any, args: Any) -> str:
        if ctx.record.get("owner_id") is None:
            return "would do nothing: the record is in the pool already"
        return f"would return the record to the pool (taking it from {_username(ctx, ctx.record['owner_id'])})"
