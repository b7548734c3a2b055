"""The expression language's two compilers agree: Hypothesis writes
expressions of every kind (numbers exact to the cent, text, dates and
moments in three timezones, aggregates over relations, references, nulls
everywhere) and records to run them on, and each expression's SQL, run by
SQLite and by PostgreSQL, gives what the Python evaluator gives record by
record, and selects the records for which the condition holds."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import make_config
from crmkit import loading
from crmkit.database import create_engine
from crmkit.expressions import Context, SqlLoader, check, evaluate, holds, to_sql
from crmkit.tables import build_tables

UTC = dt.UTC

CONFIG = {
    "app.yaml": """
        app: agreement
        label: Agreement
    """,
    "entities/thing.yaml": """
        entity: thing
        label: Thing
        fields:
          n: {type: integer}
          m: {type: money}
          r: {type: decimal, precision: 9, scale: 3}
          s: {type: string, max_length: 40}
          e: {type: enum, options: [a, b, c]}
          k: {type: enum, options: [1, 2, 3]}
          b: {type: boolean}
          d: {type: date}
          t: {type: datetime}
          tags: {type: multi_enum, options: [x, y, z]}
          parent: {type: ref, to: thing, on_delete: set_null}
        relations:
          items: {kind: one_to_many, entity: item, field: thing}
          kids: {kind: one_to_many, entity: thing, field: parent}
          pals: {kind: many_to_many, entity: thing}
    """,
    "entities/item.yaml": """
        entity: item
        label: Item
        fields:
          thing: {type: ref, to: thing, on_delete: cascade}
          qty: {type: integer}
          amount: {type: money}
          at: {type: datetime}
          on: {type: date}
          kind: {type: enum, options: [p, q]}
          note: {type: string, max_length: 40}
    """,
}


@dataclass
class World:
    spec: Any
    tables: Any
    engine: sa.Engine


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[World]:
    spec, pm, types = loading.load_config(make_config(tmp_path / "config", CONFIG))
    tables = build_tables(spec, types, pm)
    engine = create_engine(database_url)
    tables.metadata.create_all(engine)
    yield World(spec, tables, engine)
    engine.dispose()


# ---------------------------------------------------------------- expressions

@dataclass(frozen=True)
class Frame:
    """The names an expression may use about one kind of record."""

    numbers: tuple[str, ...]
    texts: tuple[str, ...]
    enums: tuple[str, ...]
    dates: tuple[str, ...]
    moments: tuple[str, ...]
    flags: tuple[str, ...]
    aggregates: bool


THING = Frame(numbers=("n", "m", "r", "parent.n", "parent.m"), texts=("s", "parent.s"), enums=("e",),
              dates=("d", "parent.d"), moments=("t", "parent.t"), flags=("b", "parent.b"), aggregates=True)
ITEM = Frame(numbers=("qty", "amount", "thing.n", "thing.r"), texts=("note", "thing.s"), enums=("kind",),
             dates=("on",), moments=("at", "thing.t"), flags=("thing.b",), aggregates=False)
ALPHABET = "ab张 %_'\\"
Draw = Callable[[st.SearchStrategy[Any]], Any]


def quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


Form = Callable[[], str]


class Writer:
    """Writes expressions of each type about a frame's records; literal days
    and moments fall in ``window``, as the records' do."""

    def __init__(self, draw: Draw, window: tuple[dt.date, dt.date]) -> None:
        self.draw = draw
        self.window = window

    def local(self, moment: dt.datetime) -> str:
        """A moment as an admin writes it: local time, no offset."""
        return moment.astimezone(SHANGHAI).replace(tzinfo=None).isoformat(" ", "seconds")

    def pick(self, forms: list[tuple[int, Form]]) -> str:
        """One of the forms, by weight (the rarer constructs are weighted up)."""
        weighted = [form for weight, form in forms for _ in range(weight)]
        return self.draw(st.sampled_from(weighted))()

    def number(self, f: Frame, depth: int) -> str:
        """A number; products and quotients of plain numbers only, so that SQLite's
        scaled integers stay far from 64 bits."""
        forms: list[tuple[int, Form]] = [
            (3, lambda: self.draw(st.sampled_from(f.numbers))),
            (1, lambda: str(self.draw(st.integers(-20, 20)))),
            (1, lambda: format(self.draw(st.decimals(-100, 100, places=self.draw(st.integers(1, 3)))), "f")),
            (1, lambda: f"len({self.draw(st.sampled_from(f.texts))})"),
            (2, lambda: f"{self.draw(st.sampled_from(['year', 'month', 'day', 'weekday']))}"
                        f"({self.day_or_moment(f, 0)})"),
            (1, lambda: f"days_between({self.day_or_moment(f, 0)}, {self.day_or_moment(f, 0)})"),
        ]
        if f.aggregates:
            forms += [(1, lambda: "len(tags)"), (3, lambda: self.aggregate_number(depth))]
        if depth > 0:
            plain = lambda: self.number(f, 0)  # noqa: E731
            deeper = lambda: self.number(f, depth - 1)  # noqa: E731
            forms += [
                (3, lambda: f"({deeper()} {self.draw(st.sampled_from('+-'))} {deeper()})"),
                (3, lambda: f"({plain()} {self.draw(st.sampled_from('*/'))} {plain()})"),
                (1, lambda: f"-({deeper()})"),
                (1, lambda: f"abs({deeper()})"),
                (2, lambda: f"round({deeper()}, {self.draw(st.integers(0, 3))})"),
                (1, lambda: f"round({deeper()})"),
                (1, lambda: f"coalesce({deeper()}, {deeper()})"),
                (1, lambda: f"if({self.condition(f, depth - 1)}, {deeper()}, {deeper()})"),
            ]
        return self.pick(forms)

    def aggregate_number(self, depth: int) -> str:
        where = f" where {self.condition(ITEM, max(depth - 1, 0))}" if self.draw(st.booleans()) else ""
        return self.pick([
            (3, lambda: f"count(items{where})"),
            (4, lambda: f"{self.draw(st.sampled_from(['sum', 'avg', 'min', 'max']))}"
                        f"(items.{self.draw(st.sampled_from(['qty', 'amount', 'thing.r']))}{where})"),
            (1, lambda: f"count(kids{' where n > 0' if where else ''})"),
            (1, lambda: f"sum(pals.m{' where s is not null' if where else ''})"),
        ])

    def text(self, f: Frame, depth: int, enums: bool = True) -> str:
        """Text; ``enums``: enum fields among it (they cannot be ordered with < or >)."""
        forms: list[tuple[int, Form]] = [
            (3, lambda: self.draw(st.sampled_from(f.texts + (f.enums if enums else ())))),
            (2, lambda: quoted(self.draw(st.text(ALPHABET, max_size=4)))),
        ]
        if depth > 0:
            deeper = lambda: self.text(f, depth - 1, enums)  # noqa: E731
            forms += [
                (2, lambda: f"({deeper()} + {deeper()})"),
                (1, lambda: f"coalesce({deeper()}, {deeper()})"),
                (1, lambda: f"if({self.condition(f, depth - 1)}, {deeper()}, {deeper()})"),
            ]
        return self.pick(forms)

    def day(self, f: Frame, depth: int) -> str:
        forms: list[tuple[int, Form]] = [
            (3, lambda: self.draw(st.sampled_from(f.dates))),
            (1, lambda: "today()"),
            (2, lambda: f"date({self.draw(st.sampled_from(f.moments))})"),
        ]
        if depth > 0:
            deeper = lambda: self.day(f, depth - 1)  # noqa: E731
            forms += [
                (3, lambda: f"({deeper()} {self.draw(st.sampled_from('+-'))} {self.draw(st.integers(0, 400))}d)"),
                (1, lambda: f"coalesce({deeper()}, {deeper()})"),
            ]
            if f.aggregates:
                forms.append((2, lambda: f"max(items.on{' where qty > 0' if self.draw(st.booleans()) else ''})"))
        return self.pick(forms)

    def moment(self, f: Frame, depth: int) -> str:
        forms: list[tuple[int, Form]] = [(3, lambda: self.draw(st.sampled_from(f.moments))), (1, lambda: "now()")]
        if depth > 0:
            deeper = lambda: self.moment(f, depth - 1)  # noqa: E731
            duration = lambda: f"{self.draw(st.integers(0, 2000))}{self.draw(st.sampled_from('dhm'))}"  # noqa: E731
            forms += [
                (3, lambda: f"({deeper()} {self.draw(st.sampled_from('+-'))} {duration()})"),
                (1, lambda: f"coalesce({deeper()}, {deeper()})"),
            ]
            if f.aggregates:
                forms.append((2, lambda: f"{self.draw(st.sampled_from(['min', 'max']))}(items.at)"))
        return self.pick(forms)

    def day_or_moment(self, f: Frame, depth: int) -> str:
        return self.day(f, depth) if self.draw(st.booleans()) else self.moment(f, depth)

    def condition(self, f: Frame, depth: int) -> str:
        op = lambda: self.draw(st.sampled_from(["=", "==", "!=", "<>", "<", "<=", ">", ">="]))  # noqa: E731
        options = "abc" if f is THING else "pq"
        forms: list[tuple[int, Form]] = [
            (4, lambda: f"{self.number(f, depth)} {op()} {self.number(f, depth)}"),
            (2, lambda: f"{self.draw(st.sampled_from(f.texts))} {op()} {self.text(f, depth, enums=False)}"),
            (1, lambda: f"{self.draw(st.sampled_from(f.enums))} {self.draw(st.sampled_from(['=', '!=']))} "
                        f"{quoted(self.draw(st.sampled_from(options)))}"),
            (1, lambda: f"{self.draw(st.sampled_from(f.enums))} {self.draw(st.sampled_from(['in', 'not in']))} "
                        f"({', '.join(quoted(o) for o in self.draw(st.sets(st.sampled_from(options), min_size=1)))})"),
            (2, lambda: f"{self.text(f, depth)} {self.draw(st.sampled_from(['contains', 'startswith']))} "
                        f"{self.text(f, 0)}"),
            (2, lambda: f"{self.draw(st.sampled_from(f.texts))} like "
                        f"{quoted(self.draw(st.text(ALPHABET, max_size=4)).rstrip(chr(92)))}"),
            (3, lambda: f"{self.day(f, depth)} {op()} {self.day_or_moment(f, depth)}"),
        (1, lambda: f"{self.number(f, depth)} {self.draw(st.sampled_from(['between', 'not between']))} "
                    f"{self.number(f, 0)} and {self.number(f, 0)}"),
            (2, lambda: f"{self.moment(f, depth)} {op()} {self.moment(f, depth)}"),
            (3, lambda: f"{self.draw(st.sampled_from(f.moments + f.dates))} {op()} '{self.draw(days(self.window))}'"),
            (1, lambda: f"{self.draw(st.sampled_from(f.moments))} {op()} "
                        f"'{self.local(self.draw(moments(self.window)))}'"),
            (2, lambda: f"({self.value(f, depth)}) {self.draw(st.sampled_from(['is null', 'is not null']))}"),
            (1, lambda: self.draw(st.sampled_from(f.flags))),
            (1, lambda: self.draw(st.sampled_from(["true", "false", "null"]))),
        ]
        if f.aggregates:
            forms += [
                (1, lambda: f"tags contains {quoted(self.draw(st.sampled_from('xyz')))}"),
                (1, lambda: f"tags {self.draw(st.sampled_from(['is null', 'is not null']))}"),
                (1, lambda: f"k in ({', '.join(str(k) for k in self.draw(st.sets(st.integers(1, 3), min_size=1)))})"),
                (2, lambda: f"exists(items where {self.condition(ITEM, 0)})"),
                (1, lambda: "exists(items)"),
                (1, lambda: "exists(pals where e = 'a')"),
            ]
        if depth > 0:
            deeper = lambda: self.condition(f, depth - 1)  # noqa: E731
            forms += [
                (4, lambda: f"({deeper()} {self.draw(st.sampled_from(['and', 'or', 'AND']))} {deeper()})"),
                (2, lambda: f"not ({deeper()})"),
                (1, lambda: f"if({deeper()}, {deeper()}, {deeper()})"),
            ]
        return self.pick(forms)

    def boundary(self, f: Frame) -> str:
        op = self.draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">="]))
        moment = self.draw(st.sampled_from([*f.moments, f"date({f.moments[0]})"]))
        return self.pick([
            (2, lambda: f"{moment} {op} '{self.draw(days(self.window))}'"),
            (1, lambda: f"{moment} {op} today() {self.draw(st.sampled_from('+-'))} {self.draw(st.integers(0, 3))}d"),
            (1, lambda: f"{moment} {op} {self.draw(st.sampled_from(f.dates))}"),
        ])

    def value(self, f: Frame, depth: int) -> str:
        kinds: list[tuple[int, Form]] = [
            (3, lambda: self.number(f, depth)), (1, lambda: self.text(f, depth)), (1, lambda: self.day(f, depth)),
            (1, lambda: self.moment(f, depth)), (1, lambda: self.condition(f, depth)),
        ]
        return self.pick(kinds)


@st.composite
def expressions(draw: Draw, window: tuple[dt.date, dt.date] | None = None) -> tuple[str, str]:
    writer = Writer(draw, window or draw(st.sampled_from(WINDOWS)))
    depth = draw(st.sampled_from([0, 1, 1, 2, 2]))
    kind = draw(st.sampled_from(["condition", "condition", "value", "value", "day"]))
    if kind == "day":  # a moment against a day: where timezones and day boundaries meet
        return "condition", writer.boundary(THING)
    if kind == "condition":
        return "condition", writer.condition(THING, depth)
    return "value", writer.value(THING, depth)


# ---------------------------------------------------------------- records

def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


#: Records, literals and now() fall in one of these few days (a month's end,
#: a year's end, New York's clock changes), so that days meet in comparisons.
WINDOWS = [(dt.date(2026, 2, 27), dt.date(2026, 3, 2)), (dt.date(2026, 12, 30), dt.date(2027, 1, 2)),
           (dt.date(2026, 3, 7), dt.date(2026, 3, 9)), (dt.date(2026, 10, 31), dt.date(2026, 11, 2))]
SHANGHAI = ZoneInfo("Asia/Shanghai")


def days(window: tuple[dt.date, dt.date]) -> st.SearchStrategy[dt.date]:
    return st.one_of(st.dates(*window), st.dates(*window), st.dates(dt.date(2024, 6, 1), dt.date(2028, 6, 1)))


def near(day: dt.date, hour: int, nudge: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), UTC) + dt.timedelta(microseconds=nudge)


def moments(window: tuple[dt.date, dt.date]) -> st.SearchStrategy[dt.datetime]:
    first, last = (dt.datetime.combine(d, dt.time(), UTC) for d in window)
    return st.one_of(
        st.datetimes(first.replace(tzinfo=None), last.replace(tzinfo=None), timezones=st.just(UTC)),
        # around midnight in Shanghai (16:00 UTC) and New York (4:00, 5:00), and its clock changes (6:00, 7:00)
        st.builds(near, st.dates(*window), st.sampled_from([4, 5, 6, 7, 16]), st.integers(-2, 2)),
        st.datetimes(dt.datetime(2024, 6, 1), dt.datetime(2028, 6, 1), timezones=st.just(UTC)),
    )


def things(count: int, window: tuple[dt.date, dt.date]) -> st.SearchStrategy[list[dict[str, Any]]]:
    ids = st.integers(1, count)
    return st.lists(st.fixed_dictionaries({
        "n": maybe(st.integers(-100, 100)),
        "m": maybe(st.decimals(-1000, 1000, places=2)),
        "r": maybe(st.decimals(-100, 100, places=3)),
        "s": maybe(st.text(ALPHABET, max_size=5)),
        "e": maybe(st.sampled_from("abc")),
        "k": maybe(st.sampled_from([1, 2, 3])),
        "b": maybe(st.booleans()),
        "d": maybe(days(window)),
        "t": maybe(moments(window)),
        "tags": st.one_of(st.none(), st.lists(st.sampled_from("xyz"), unique=True, max_size=3)),
        "parent_id": maybe(ids),
        "deleted": st.sampled_from([False, False, False, True]),
    }), min_size=count, max_size=count)


def items(count: int, window: tuple[dt.date, dt.date]) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(st.fixed_dictionaries({
        "thing_id": st.integers(1, count),
        "qty": maybe(st.integers(-50, 50)),
        "amount": maybe(st.decimals(-500, 500, places=2)),
        "at": maybe(moments(window)),
        "on": maybe(days(window)),
        "kind": maybe(st.sampled_from("pq")),
        "note": maybe(st.text(ALPHABET, max_size=4)),
        "deleted": st.booleans(),
    }), max_size=6)


@st.composite
def worlds(draw: Draw) -> dict[str, Any]:
    count = draw(st.integers(1, 5))
    window = draw(st.sampled_from(WINDOWS))
    return {
        "things": draw(things(count, window)),
        "items": draw(items(count, window)),
        "pals": draw(st.sets(st.tuples(st.integers(1, count), st.integers(1, count)), max_size=4)),
        "expressions": draw(st.lists(expressions(window), min_size=4, max_size=10)),
        "context": Context.at(draw(st.sampled_from(["Asia/Shanghai", "America/New_York", "UTC"])),
                              now=draw(moments(window)), user_id=draw(maybe(st.integers(1, 3)))),
    }


# ---------------------------------------------------------------- the property

CREATED = dt.datetime(2026, 1, 1, tzinfo=UTC)


def store(conn: sa.Connection, world: World, data: dict[str, Any]) -> None:
    thing, item = world.tables.entities["thing"], world.tables.entities["item"]
    stamps = {"created_at": CREATED, "updated_at": CREATED}
    for number, row in enumerate(data["things"], 1):
        values = {k: v for k, v in row.items() if k not in ("deleted", "parent_id")}
        conn.execute(thing.insert().values(id=number, **stamps, **values,
                                           deleted_at=CREATED if row["deleted"] else None))
    for number, row in enumerate(data["things"], 1):  # parents after every thing exists
        conn.execute(thing.update().where(thing.c.id == number).values(parent_id=row["parent_id"]))
    for row in data["items"]:
        values = {k: v for k, v in row.items() if k != "deleted"}
        conn.execute(item.insert().values(**stamps, **values, deleted_at=CREATED if row["deleted"] else None))
    link = world.tables.links[("thing", "pals")]
    for left, right in data["pals"]:
        conn.execute(link.insert().values(left_id=left, right_id=right, created_at=CREATED))


def agree(conn: sa.Connection, world: World, data: dict[str, Any]) -> None:
    thing = world.tables.entities["thing"]
    dialect = world.engine.dialect.name
    context: Context = data["context"]
    live = thing.c.deleted_at.is_(None)
    records = [dict(r._mapping) for r in conn.execute(sa.select(thing).where(live).order_by(thing.c.id))]
    loader = SqlLoader(conn, world.tables)
    for want, text in data["expressions"]:
        checked = check(text, world.spec, "thing", want=want)  # type: ignore[arg-type]
        clause = to_sql(checked, world.tables, dialect=dialect, context=context)
        by_sql = {r[0]: r[1] for r in conn.execute(sa.select(thing.c.id, clause).where(live))}
        by_python = {r["id"]: evaluate(checked, r, context, loader) for r in records}
        assert by_sql == by_python, (text, str(clause.compile(world.engine)))
        if want == "condition":
            chosen = {r[0] for r in conn.execute(sa.select(thing.c.id).where(live, clause))}
            assert chosen == {r["id"] for r in records if holds(checked, r, context, loader)}, text


def test_sql_and_python_agree_on_generated_expressions_and_records(world: World) -> None:
    # Derandomized: the same examples in every run, so that CI is repeatable. Random
    # runs found a disagreement twice on loaded machines that did not come back in
    # reruns (see the closing note of issue 9): run with derandomize=False to hunt it.
    @settings(max_examples=100, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large])
    @given(worlds())
    def run(data: dict[str, Any]) -> None:
        with world.engine.connect() as conn:
            transaction = conn.begin()
            try:
                store(conn, world, data)
                agree(conn, world, data)
            finally:
                transaction.rollback()

    run()


def test_generated_expressions_cover_the_language() -> None:
    """The generator reaches every construct (a property test that never
    writes an aggregate proves nothing about aggregates)."""
    seen: set[str] = set()

    @settings(max_examples=1000, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(expressions())
    def collect(expression: tuple[str, str]) -> None:
        seen.add(expression[1])

    collect()
    text = " ".join(seen)
    for construct in ("count(items", "sum(items", "avg(items", "exists(items", "sum(pals", "count(kids",
                      "parent.", " / ", " * ", "round(", "coalesce(", "if(", "like ", "contains ", "startswith ",
                      " in (", "not in", "is null", "between", "weekday(", "days_between(", "today()", "now()", "date(",
                      "not (", " and ", " or ", "d)", "h)", "m)", "tags contains", "null"):
        assert construct in text, construct
