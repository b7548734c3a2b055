"""Safe migrations: compare the spec's tables with the database (Alembic), show
the plan, apply what is additive, refuse what loses data unless told, and then
back the data up first."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import produce_migrations
from alembic.migration import MigrationContext
from alembic.operations import Operations, ops

from .tables import SCHEMA_TABLE, Tables

ADDITIVE = (ops.CreateTableOp, ops.AddColumnOp, ops.CreateIndexOp, ops.CreateForeignKeyOp,
            ops.CreateUniqueConstraintOp)


class MigrationRefused(Exception):
    """Pending changes would lose data and --allow-data-loss was not given."""


@dataclass
class Change:
    table: str
    description: str
    destructive: bool
    operation: object
    #: columns whose values the change may lose (for the backup); empty = whole table
    columns: tuple[str, ...] = ()


@dataclass
class MigrationPlan:
    changes: list[Change] = field(default_factory=list)

    @property
    def destructive(self) -> list[Change]:
        return [c for c in self.changes if c.destructive]

    @property
    def empty(self) -> bool:
        return not self.changes

    def describe(self) -> str:
        if self.empty:
            return "The database matches the config: nothing to do."
        lines = []
        for change in self.changes:
            mark = "!" if change.destructive else "+"
            lines.append(f"  {mark} {change.description}")
        if self.destructive:
            lines.append("")
            lines.append(f"{len(self.destructive)} change(s) marked ! can lose data; they are applied only with "
                         "--allow-data-loss, after a backup of the affected data.")
        return "\n".join(lines)


def _registered_tables(conn: sa.Connection) -> set[str]:
    inspector = sa.inspect(conn)
    if not inspector.has_table(SCHEMA_TABLE):
        return set()
    return {row[0] for row in conn.execute(sa.text(f"SELECT table_name FROM {SCHEMA_TABLE}"))}


def _widening(old: sa.types.TypeEngine, new: sa.types.TypeEngine) -> bool:
    """True when every value of the old type fits the new one."""
    old_cls, new_cls = type(old), type(new)
    if isinstance(old, sa.String) and isinstance(new, sa.String):
        if isinstance(new, sa.Text) or new.length is None:
            return True
        return old.length is not None and not isinstance(old, sa.Text) and new.length >= old.length
    if isinstance(old, sa.Integer) and isinstance(new, sa.BigInteger):
        return True
    if isinstance(old, sa.Numeric) and isinstance(new, sa.Numeric):
        return (new.precision or 0) >= (old.precision or 0) and (new.scale or 0) >= (old.scale or 0)
    return old_cls is new_cls


def plan(engine: sa.Engine, tables: Tables) -> MigrationPlan:
    with engine.connect() as conn:
        registered = _registered_tables(conn)
        wanted = set(tables.metadata.tables)

        def include_name(name, type_, parent_names):
            if type_ == "table":
                return name in wanted or name in registered
            return True

        context = MigrationContext.configure(conn, opts={
            "compare_type": True, "include_name": include_name, "render_as_batch": True,
        })
        upgrade = produce_migrations(context, tables.metadata).upgrade_ops
    result = MigrationPlan()
    for op in upgrade.ops:
        _classify(op, result, conn.dialect.name)
    return result


def _classify(op, result: MigrationPlan, dialect: str) -> None:
    if isinstance(op, ops.ModifyTableOps):
        for sub in op.ops:
            _classify_table_op(op.table_name, sub, result, dialect)
    elif isinstance(op, ops.CreateTableOp):
        result.changes.append(Change(op.table_name, f"add table {op.table_name}", False, op))
    elif isinstance(op, ops.DropTableOp):
        result.changes.append(Change(op.table_name, f"remove table {op.table_name} (its data)", True, op))
    else:
        _classify_table_op(getattr(op, "table_name", "?"), op, result, dialect)


def _classify_table_op(table: str, op, result: MigrationPlan, dialect: str) -> None:
    if isinstance(op, ops.AddColumnOp):
        result.changes.append(Change(table, f"add column {table}.{op.column.name} ({op.column.type})", False, op))
    elif isinstance(op, ops.DropColumnOp):
        result.changes.append(Change(table, f"remove column {table}.{op.column_name} (its data)", True, op,
                                     (op.column_name,)))
    elif isinstance(op, ops.CreateIndexOp):
        unique = "unique " if op.unique else ""
        result.changes.append(Change(table, f"add {unique}index {op.index_name} on {table}", False, op))
    elif isinstance(op, ops.DropIndexOp):
        result.changes.append(Change(table, f"remove index {op.index_name} on {table}", False, op))
    elif isinstance(op, ops.AlterColumnOp):
        if op.modify_type is not None:
            old = op.existing_type
            widening = old is not None and _widening(old, op.modify_type)
            verb = "widen" if widening else "change (narrowing)"
            result.changes.append(Change(table, f"{verb} type of {table}.{op.column_name}: {old} -> {op.modify_type}",
                                         not widening, op, (op.column_name,)))
        elif op.modify_nullable is not None:
            result.changes.append(Change(table, f"make {table}.{op.column_name} "
                                         f"{'nullable' if op.modify_nullable else 'required'}", not op.modify_nullable,
                                         op, (op.column_name,)))
    elif isinstance(op, (ops.CreateForeignKeyOp, ops.CreateUniqueConstraintOp)):
        result.changes.append(Change(table, f"add constraint on {table}", False, op))
    elif isinstance(op, (ops.DropConstraintOp,)):
        result.changes.append(Change(table, f"remove constraint {op.constraint_name} on {table}", False, op))
    else:
        result.changes.append(Change(table, f"{type(op).__name__} on {table}", True, op))


def apply(engine: sa.Engine, tables: Tables, migration: MigrationPlan, *, allow_data_loss: bool = False,
          backup_dir: Path | None = None, database_file: str | None = None) -> Path | None:
    """Apply the plan; returns the backup folder when one was written."""
    if migration.destructive and not allow_data_loss:
        raise MigrationRefused(migration.describe())
    backup = None
    if migration.destructive:
        backup = _backup(engine, migration, backup_dir or Path("backups"), database_file)
    with engine.connect() as conn:
        with conn.begin():
            context = MigrationContext.configure(conn, opts={"render_as_batch": True})
            operations = Operations(context)
            by_table: dict[str, list[Change]] = {}
            for change in migration.changes:
                by_table.setdefault(change.table, []).append(change)
            created = [c.table for c in migration.changes if isinstance(c.operation, ops.CreateTableOp)]
            for change in migration.changes:
                if isinstance(change.operation, ops.CreateTableOp):
                    operations.invoke(change.operation)
            if conn.dialect.supports_alter:
                # CREATE TABLE leaves out foreign keys in a cycle (use_alter): add them once all tables exist.
                for name in created:
                    table_ = tables.metadata.tables.get(name)
                    for constraint in table_.foreign_key_constraints if table_ is not None else ():
                        if constraint.use_alter:
                            conn.execute(sa.schema.AddConstraint(constraint))
            for table, changes in by_table.items():
                rest = [c for c in changes if not isinstance(c.operation, (ops.CreateTableOp, ops.DropTableOp))]
                if not rest:
                    continue
                for change in rest:
                    _fit_narrowed_strings(conn, change)
                simple = all(isinstance(c.operation, (ops.AddColumnOp, ops.CreateIndexOp, ops.DropIndexOp))
                             for c in rest)
                if simple or conn.dialect.name != "sqlite":
                    for change in rest:
                        _invoke(operations, change.operation)
                else:
                    with operations.batch_alter_table(table, recreate="always") as batch:
                        for change in rest:
                            batch.invoke(change.operation)
            for change in migration.changes:
                if isinstance(change.operation, ops.DropTableOp):
                    operations.invoke(change.operation)
            _register_tables(conn, tables)
    return backup


def _fit_narrowed_strings(conn: sa.Connection, change: Change) -> None:
    """Cut values longer than a narrowed string column (the backup keeps them
    whole), so the change behaves the same everywhere: PostgreSQL would refuse
    the new type, SQLite would keep values longer than the config allows."""
    op = change.operation
    new, old = getattr(op, "modify_type", None), getattr(op, "existing_type", None)
    if not (isinstance(op, ops.AlterColumnOp) and change.destructive and isinstance(new, sa.String)
            and isinstance(old, sa.String) and new.length):
        return
    column = sa.column(op.column_name)
    conn.execute(sa.table(op.table_name, column).update()
                 .where(sa.func.length(column) > new.length)
                 .values({op.column_name: sa.func.substr(column, 1, new.length)}))


def _invoke(operations: Operations, op) -> None:
    if isinstance(op, ops.CreateIndexOp):
        op.if_not_exists = True
    operations.invoke(op)


def _register_tables(conn: sa.Connection, tables: Tables) -> None:
    registry = tables.schema_registry
    known = {row[0] for row in conn.execute(sa.select(registry.c.table_name))}
    now = dt.datetime.now(dt.UTC)
    rows = [{"table_name": name, "entity": name.split("__")[0], "created_at": now}
            for name in tables.metadata.tables if name not in known and not name.startswith("crmkit_")]
    if rows:
        conn.execute(registry.insert(), rows)
    wanted = set(tables.metadata.tables)
    gone = [name for name in known if name not in wanted]
    if gone:
        conn.execute(registry.delete().where(registry.c.table_name.in_(gone)))


def _backup(engine: sa.Engine, migration: MigrationPlan, root: Path, database_file: str | None) -> Path:
    """Write the data the destructive changes touch as JSON lines (and, on SQLite, a copy of the file)."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    folder = Path(root) / f"migration-{stamp}"
    folder.mkdir(parents=True, exist_ok=True)
    if database_file and Path(database_file).exists():
        # VACUUM cannot run inside a transaction, and a SQLAlchemy connection
        # always begins one: use the driver's connection (in autocommit mode).
        raw = engine.raw_connection()
        try:
            raw.driver_connection.execute("VACUUM INTO ?", (str(folder / "database.sqlite3"),))
        finally:
            raw.close()
    with engine.connect() as conn:
        for change in migration.destructive:
            table = sa.Table(change.table, sa.MetaData(), autoload_with=conn)
            columns = [table.c.id] if "id" in table.c else []
            columns += [table.c[c] for c in change.columns if c in table.c] if change.columns else list(table.c)
            target = folder / f"{change.table}{'.' + '.'.join(change.columns) if change.columns else ''}.jsonl"
            with target.open("w", encoding="utf-8") as out:
                for row in conn.execute(sa.select(*columns)):
                    out.write(json.dumps(dict(row._mapping), default=str, ensure_ascii=False) + "\n")
        (folder / "PLAN.txt").write_text(migration.describe() + "\n", encoding="utf-8")
    return folder
