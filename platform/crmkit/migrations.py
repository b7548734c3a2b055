"""Safe migrations: compare the spec's tables with the database (Alembic), show
the plan, apply what keeps every value, refuse what loses data unless told, and
then back the data up first.

One process migrates at a time (a lock in the database: several gunicorn
workers may boot at once), and a database is marked with the app it belongs
to, so another config never plans to drop its tables.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import produce_migrations
from alembic.migration import MigrationContext
from alembic.operations import Operations, ops

from .tables import APP_TABLE, SCHEMA_TABLE, Tables

NOTHING_TO_DO = "The database matches the config: nothing to do."
#: The first key of PostgreSQL's advisory lock for migrations ("crmk"); the
#: second is the schema's, so apps in different schemas do not wait for each other.
LOCK_KEY = 0x63726D6B
#: How long a process waits for another one's migration (SQLite), in milliseconds.
LOCK_WAIT_MS = 10 * 60 * 1000


class MigrationRefused(Exception):
    """The database was left as it was: changes that lose data are pending and
    --allow-data-loss was not given, or the database belongs to another app.

    ``waited``: another process held the migration lock first (and, when it
    saw the same plan, has reported the same refusal)."""

    def __init__(self, message: str, plan: MigrationPlan | None = None, *, waited: bool = False) -> None:
        super().__init__(message)
        self.plan = plan
        self.waited = waited


class DatabaseOfAnotherApp(MigrationRefused):
    """The database is marked with another app's name."""


@dataclass
class Conversion:
    """What a type change does to the stored values of one column.

    ``values``: primary key -> the value in the new type, for every value that
    converts (and, for a string cut to a shorter length, the cut value);
    ``failed``: values the new type cannot hold (cleared, after a backup)."""

    values: dict[tuple, Any] = field(default_factory=dict)
    failed: int = 0
    cut: int = 0

    @property
    def loses(self) -> bool:
        return bool(self.failed or self.cut)

    def describe(self) -> str:
        converting = len(self.values) - self.cut
        parts = [f"{_count(converting, 'value')} convert{'s' if converting == 1 else ''}"]
        if self.failed:
            parts.append(f"{self.failed} do{'es' if self.failed == 1 else ''} not (cleared after a backup)")
        if self.cut:
            parts.append(f"{self.cut} too long (cut after a backup)")
        return ", ".join(parts)


@dataclass
class Change:
    table: str
    description: str
    destructive: bool
    operation: Any
    #: columns whose values the change may lose (for the backup); empty = whole table
    columns: tuple[str, ...] = ()
    conversion: Conversion | None = None

    @property
    def entity(self) -> str:
        """What the change belongs to in a summary: the entity (a link table
        belongs to its owner), or "platform" for crmkit's own tables."""
        return "platform" if self.table.startswith("crmkit_") else self.table.split("__")[0]

    def detail(self) -> str:
        return self.description + (f": {self.conversion.describe()}" if self.conversion is not None else "")


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
        """Every change on a line of its own."""
        if self.empty:
            return NOTHING_TO_DO
        lines = [f"  {'!' if c.destructive else '+'} {c.detail()}" for c in self.changes]
        return "\n".join(lines + self._warning())

    def summary(self) -> str:
        """One line per entity (and one for the platform's tables)."""
        if self.empty:
            return NOTHING_TO_DO
        groups: dict[str, list[Change]] = {}
        for change in self.changes:
            groups.setdefault(change.entity, []).append(change)
        lines = [f"  {'!' if any(c.destructive for c in changes) else '+'} {entity}: {_summarise(entity, changes)}"
                 for entity, changes in groups.items()]
        return "\n".join(lines + self._warning())

    def _warning(self) -> list[str]:
        if not self.destructive:
            return []
        return ["", f"Marked !: {_count(len(self.destructive), 'change')} that can lose data, applied only "
                "with --allow-data-loss, after a backup of the affected data."]


def _count(n: int, noun: str) -> str:
    plural = noun + ("es" if noun.endswith(("x", "s")) else "s")
    return f"{n} {noun if n == 1 else plural}"


def _summarise(entity: str, changes: list[Change]) -> str:
    """The changes of one entity in a few words: 'new table, 14 columns, 5
    indexes', '2 columns added (a, b)', 'column age removed (its data)'."""
    created = {c.table: c.operation for c in changes if isinstance(c.operation, ops.CreateTableOp)}
    parts: list[str] = []
    if entity in created:
        columns = sum(isinstance(item, sa.Column) for item in created[entity].columns)
        indexes = sum(isinstance(c.operation, ops.CreateIndexOp) and c.table == entity for c in changes)
        parts.append(f"new table, {_count(columns, 'column')}, {_count(indexes, 'index')}")
    others = [name for name in created if name != entity]
    if others:
        parts.append(f"{_count(len(others), 'new table' if entity == 'platform' else 'new link table')}")
    dropped = {c.table for c in changes if isinstance(c.operation, ops.DropTableOp)}
    # A table created or removed says it all: not each of its indexes as well.
    rest = [c for c in changes if c.table not in created
            and (c.table not in dropped or isinstance(c.operation, ops.DropTableOp))]
    added = [c.operation.column.name for c in rest if isinstance(c.operation, ops.AddColumnOp)]
    if added:
        parts.append(f"{_count(len(added), 'column')} added ({', '.join(added)})")
    for kind, verb in ((ops.CreateIndexOp, "added"), (ops.DropIndexOp, "removed"),
                       ((ops.CreateForeignKeyOp, ops.CreateUniqueConstraintOp), "added"),
                       (ops.DropConstraintOp, "removed")):
        n = sum(isinstance(c.operation, kind) for c in rest)
        if n:
            noun = "index" if kind in (ops.CreateIndexOp, ops.DropIndexOp) else "constraint"
            parts.append(f"{_count(n, noun)} {verb}")
    for change in rest:
        op = change.operation
        if isinstance(op, ops.DropColumnOp):
            parts.append(f"column {op.column_name} removed (its data)")
        elif isinstance(op, ops.DropTableOp):
            parts.append(f"table {op.table_name} removed (its data)")
        elif isinstance(op, ops.AlterColumnOp) and op.modify_type is not None:
            note = f" ({change.conversion.describe()})" if change.conversion is not None else ""
            parts.append(f"{op.column_name}: {op.existing_type} -> {op.modify_type}{note}")
        elif isinstance(op, ops.AlterColumnOp):
            parts.append(f"{op.column_name} {'nullable' if op.modify_nullable else 'required'}")
        elif not isinstance(op, (ops.AddColumnOp, ops.CreateIndexOp, ops.DropIndexOp, ops.CreateForeignKeyOp,
                                 ops.CreateUniqueConstraintOp, ops.DropConstraintOp)):
            parts.append(change.description)
    return ", ".join(parts)


# ---------------------------------------------------------------- which app a database belongs to

def check_owner(conn: sa.Connection, app: str) -> None:
    """Refuse a database marked with another app's name (before any plan: the
    plan of one app against another's tables is to drop them all)."""
    if not sa.inspect(conn).has_table(APP_TABLE):
        return  # a new database, or one from before the mark: it gets the mark on its next migration
    names = list(conn.execute(sa.text(f"SELECT name FROM {APP_TABLE}")).scalars())
    others = [name for name in names if name != app]
    if others:
        raise DatabaseOfAnotherApp(
            f"this database belongs to the app '{others[0]}', not to '{app}' (the app: key of app.yaml); "
            f"nothing was changed. Give {app} a database of its own: leave CRMKIT_DATABASE_URL unset (each app "
            "then gets instance/<app>.sqlite3) or point it at another database.")


def _mark(conn: sa.Connection, tables: Tables, app: str) -> None:
    mark = tables.app_mark
    if conn.execute(sa.select(mark.c.name).where(mark.c.name == app)).first() is None:
        conn.execute(mark.insert().values(name=app, marked_at=dt.datetime.now(dt.UTC)))


# ---------------------------------------------------------------- the plan

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


def plan(conn: sa.Connection, tables: Tables, app: str) -> MigrationPlan:
    """What would change; a type change reads the column to count the values
    that convert. Refuses (DatabaseOfAnotherApp) another app's database."""
    check_owner(conn, app)
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
    for op in upgrade.ops if upgrade is not None else ():
        _classify(op, result, conn, tables)
    return result


def _classify(op, result: MigrationPlan, conn: sa.Connection, tables: Tables) -> None:
    if isinstance(op, ops.ModifyTableOps):
        for sub in op.ops:
            _classify_table_op(op.table_name, sub, result, conn, tables)
    elif isinstance(op, ops.CreateTableOp):
        result.changes.append(Change(op.table_name, f"add table {op.table_name}", False, op))
    elif isinstance(op, ops.DropTableOp):
        result.changes.append(Change(op.table_name, f"remove table {op.table_name} (its data)", True, op))
    else:
        _classify_table_op(getattr(op, "table_name", "?"), op, result, conn, tables)


def _classify_table_op(table: str, op, result: MigrationPlan, conn: sa.Connection, tables: Tables) -> None:
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
            old, new = op.existing_type, op.modify_type
            name = f"{table}.{op.column_name}"
            if old is not None and _widening(old, new):
                result.changes.append(Change(table, f"widen type of {name}: {old} -> {new}", False, op,
                                             (op.column_name,)))
                return
            conversion = _convert(conn, tables, table, op.column_name, old, new)
            narrowing = isinstance(old, sa.String) and isinstance(new, sa.String)
            verb = "change (narrowing) type" if narrowing else "change type"
            result.changes.append(Change(table, f"{verb} of {name}: {old} -> {new}", conversion.loses, op,
                                         (op.column_name,), conversion))
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


# ---------------------------------------------------------------- type changes: the values that convert

class _NoFit(ValueError):
    """The new type cannot hold this value without changing what it says."""


class _TooLong(_NoFit):
    def __init__(self, cut: str) -> None:
        super().__init__("too long")
        self.cut = cut


def _key_columns(tables: Tables, table: str) -> list[str]:
    target = tables.metadata.tables.get(table)
    if target is not None and target.primary_key.columns:
        return [c.name for c in target.primary_key.columns]
    return ["id"]


def _convert(conn: sa.Connection, tables: Tables, table: str, column: str, old: sa.types.TypeEngine | None,
             new: sa.types.TypeEngine) -> Conversion:
    """Read the column (in its old type) and convert each value to the new one,
    the same way on every database (SQLite would keep any text in an integer
    column, or CAST it to 0; PostgreSQL would refuse the whole change)."""
    keys = _key_columns(tables, table)
    source = sa.table(table, *(sa.column(k) for k in keys), sa.column(column, old or sa.types.NullType()))
    convert = _converter(new)
    result = Conversion()
    query = sa.select(*(source.c[k] for k in keys), source.c[column]).where(source.c[column].is_not(None))
    for row in conn.execute(query):
        key, value = tuple(row[:-1]), row[-1]
        try:
            result.values[key] = convert(value)
        except _TooLong as exc:
            result.values[key] = exc.cut
            result.cut += 1
        except _NoFit:
            result.failed += 1
    return result


def _converter(new: sa.types.TypeEngine) -> Callable[[Any], Any]:
    """value (as the old column gave it) -> the value in the new type; raises
    _NoFit when the new type cannot hold it exactly."""
    base = new.impl_instance if isinstance(new, sa.types.TypeDecorator) else new
    if isinstance(base, sa.Numeric) and not isinstance(base, sa.Float):
        precision = getattr(new, "precision", None) or base.precision or 18
        scale = getattr(new, "scale", None)
        return _to_decimal(precision, (base.scale or 0) if scale is None else scale)
    if isinstance(base, sa.Integer):
        return _to_integer(2 ** 63 if isinstance(base, sa.BigInteger) else 2 ** 31)
    if isinstance(base, sa.Boolean):
        return _to_boolean
    if isinstance(base, sa.DateTime):
        return _to_datetime
    if isinstance(base, sa.Date):
        return _to_date
    if isinstance(base, sa.JSON):
        return _to_json
    if isinstance(base, sa.String):
        return _to_text(None if isinstance(base, sa.Text) else base.length)
    return lambda value: value


_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")


def _to_integer(limit: int) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if isinstance(value, bool):
            number = int(value)
        elif isinstance(value, int):
            number = value
        elif isinstance(value, (Decimal, float)) and value == value and value == int(value):  # not NaN, no fraction
            number = int(value)
        elif isinstance(value, str) and len(value) < 40 and _INTEGER.fullmatch(value.strip()):
            number = int(value.strip())  # "007" stays text: as a number it would say 7
        else:
            raise _NoFit(value)
        if not -limit <= number < limit:
            raise _NoFit(value)
        return number

    return convert


def _to_decimal(precision: int, scale: int) -> Callable[[Any], Decimal]:
    quantum = Decimal(1).scaleb(-scale)

    def convert(value: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
            raise _NoFit(value)
        text = str(value).strip()
        if len(text) > 60:
            raise _NoFit(value)
        try:
            number = Decimal(text)
            if not number.is_finite() or number != number.quantize(quantum):
                raise _NoFit(value)  # it would be rounded
        except InvalidOperation:
            raise _NoFit(value) from None
        if number and number.adjusted() >= precision - scale:
            raise _NoFit(value)
        return number.quantize(quantum)

    return convert


def _to_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in (0, 1) and isinstance(value, int):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise _NoFit(value)


def _to_datetime(value: Any) -> dt.datetime:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise _NoFit(value) from None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(), tzinfo=dt.UTC)
    raise _NoFit(value)


def _to_date(value: Any) -> dt.date:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise _NoFit(value) from None
    if isinstance(value, dt.datetime):
        if value.time() != dt.time():
            raise _NoFit(value)  # the time of day would be lost
        return value.date()
    if isinstance(value, dt.date):
        return value
    raise _NoFit(value)


def _to_json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def _to_text(length: int | None) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if isinstance(value, str):
            text = value
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (dt.date, dt.datetime)):
            text = value.isoformat()
        elif isinstance(value, (list, dict)):
            text = json.dumps(value, ensure_ascii=False)
        else:
            text = str(value)
        if length is not None and len(text) > length:
            raise _TooLong(text[:length])
        return text

    return convert


# ---------------------------------------------------------------- applying

@contextmanager
def _migration_lock(engine: sa.Engine) -> Iterator[tuple[sa.Connection, bool]]:
    """A write transaction that only one process at a time holds for a
    migration: PostgreSQL's advisory lock (per schema), SQLite's database write
    lock (BEGIN IMMEDIATE). Yields (connection, whether another process held it first)."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            raw = conn.connection.driver_connection
            assert isinstance(raw, sqlite3.Connection)
            usual_wait = int(raw.execute("PRAGMA busy_timeout").fetchone()[0])
            conn.execution_options(crmkit_write=True)
            try:
                raw.execute("PRAGMA busy_timeout=0")  # first try without waiting, to know whether someone was first
                try:
                    transaction, waited = conn.begin(), False
                except sa.exc.OperationalError:
                    raw.execute(f"PRAGMA busy_timeout={LOCK_WAIT_MS}")  # a migration takes longer than a write
                    transaction, waited = conn.begin(), True
                with transaction:
                    yield conn, waited
            finally:
                raw.execute(f"PRAGMA busy_timeout={usual_wait}")
        else:
            with conn.begin():
                key = (LOCK_KEY, sa.func.hashtext(sa.func.current_schema()))
                waited = not conn.execute(sa.select(sa.func.pg_try_advisory_xact_lock(*key))).scalar()
                if waited:
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(*key)))
                yield conn, waited


def migrate(engine: sa.Engine, tables: Tables, app: str, *, allow_data_loss: bool = False,
            backup_dir: Path | None = None, database_file: str | None = None) -> tuple[MigrationPlan, Path | None]:
    """Plan and apply under the migration lock (what another process applied
    meanwhile is not planned again); returns the plan applied and the backup
    folder when one was written. Refuses (MigrationRefused) changes that lose
    data unless ``allow_data_loss``, and another app's database."""
    with _migration_lock(engine) as (conn, waited):
        try:
            migration = plan(conn, tables, app)
        except MigrationRefused as exc:
            exc.waited = waited
            raise
        if migration.destructive and not allow_data_loss:
            raise MigrationRefused(migration.describe(), migration, waited=waited)
        backup = None
        if migration.destructive:
            backup = _backup(conn, engine, migration, backup_dir or Path("backups"), database_file)
        _apply(conn, tables, migration)
        _register_tables(conn, tables)
        _mark(conn, tables, app)
    return migration, backup


def _apply(conn: sa.Connection, tables: Tables, migration: MigrationPlan) -> None:
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
        conversions = [c for c in rest if c.conversion is not None]
        for change in conversions:
            _clear(conn, change)
        simple = all(isinstance(c.operation, (ops.AddColumnOp, ops.CreateIndexOp, ops.DropIndexOp)) for c in rest)
        if simple or conn.dialect.name != "sqlite":
            for change in rest:
                _invoke(operations, change)
        else:
            with operations.batch_alter_table(table, recreate="always") as batch:
                for change in rest:
                    batch.invoke(change.operation)
        for change in conversions:
            _write_back(conn, tables, change)
    for change in migration.changes:
        if isinstance(change.operation, ops.DropTableOp):
            operations.invoke(change.operation)


def _clear(conn: sa.Connection, change: Change) -> None:
    """Empty a column before its type changes; the converted values are
    written back after (so no database casts them its own way)."""
    column = change.operation.column_name
    conn.execute(sa.table(change.table, sa.column(column)).update().values({column: None}))


def _write_back(conn: sa.Connection, tables: Tables, change: Change) -> None:
    assert change.conversion is not None
    if not change.conversion.values:
        return
    column = change.operation.column_name
    target = tables.metadata.tables[change.table]
    keys = _key_columns(tables, change.table)
    statement = (target.update()
                 .where(*(target.c[k] == sa.bindparam(f"_key{i}") for i, k in enumerate(keys)))
                 .values({column: sa.bindparam("_value", type_=target.c[column].type)}))
    rows = [{**{f"_key{i}": part for i, part in enumerate(key)}, "_value": value}
            for key, value in change.conversion.values.items()]
    for start in range(0, len(rows), 10_000):
        conn.execute(statement, rows[start:start + 10_000])


def _invoke(operations: Operations, change: Change) -> None:
    op = change.operation
    if isinstance(op, ops.CreateIndexOp):
        op.if_not_exists = True
    if change.conversion is not None:
        op.kw["postgresql_using"] = "NULL"  # emptied first (_clear); PostgreSQL has no cast for most changes
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


def _backup(conn: sa.Connection, engine: sa.Engine, migration: MigrationPlan, root: Path,
            database_file: str | None) -> Path:
    """Write the data the destructive changes touch as JSON lines (and, on SQLite, a copy of the file)."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    folder = Path(root) / f"migration-{stamp}"
    folder.mkdir(parents=True, exist_ok=True)
    if database_file and Path(database_file).exists():
        # VACUUM cannot run inside a transaction, and a SQLAlchemy connection
        # always begins one: use another driver connection (in autocommit mode).
        # It only reads, which the migration's write lock allows (WAL).
        raw = engine.raw_connection()
        try:
            driver = raw.driver_connection
            assert isinstance(driver, sqlite3.Connection)
            driver.execute("VACUUM INTO ?", (str(folder / "database.sqlite3"),))
        finally:
            raw.close()
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
