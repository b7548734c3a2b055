"""Data scopes: the same list page read by three users of the sales
organisation (see dataset.py), each against the admin's page in the same run.

- admin (scope all): no predicate, the reference;
- rep_01, a sales_rep (own): ``owner_id = me OR id IN (shared with me)``;
- sales_director, a sales_manager (team_tree) over sales and its five groups:
  ``owner_id = me OR team_id IN (recursive CTE of teams) OR id IN (shared)``.

Two pages: the default list (limit 50, the configured sort ``-created_at``)
and a filtered and sorted one (``level=...&sort=-created_at&limit=50``, like
the list benchmark). Measured in-process (requests straight into the WSGI app,
the three users interleaved), as the query builder's SQL alone, and over HTTP
(gunicorn + wrk, alternating rounds). Each figure is a cost ratio to the
admin's (time per request, or the admin's requests/s over the user's): the
target is at most 1.3.

Also shown: the SQLite query plan of each statement (does the scope use the
owner_id / team_id index, does the page need a sort), and, for the scoped
statements, what each part costs (the statement without the share subquery,
without its ORDER BY) and how the same statements do on a scratch copy of the
database with a composite index (owner_id, created_at, id) and
(team_id, created_at, id), and with ANALYZE statistics.
"""

from __future__ import annotations

import itertools
import sqlite3
import statistics
import time
from pathlib import Path

import sqlalchemy as sa

from . import api, dataset
from .servers import Server, run_wrk

TARGET = 1.3
ACTORS = {"admin": "all", "rep_01": "own", "sales_director": "team_tree"}
LEVELS = ("bronze", "silver", "gold", "platinum")
PAGES = {"page": "default page (limit 50)", "filtered": "filtered+sorted (level, -created_at)"}
LUA = r"""
local levels = {"bronze", "silver", "gold", "platinum"}
local headers = {["Authorization"] = "Bearer __TOKEN__"}
request = function()
  if __FILTERED__ then
    return wrk.format("GET", "/api/v1/customer?level=" .. levels[math.random(1, 4)] .. "&sort=-created_at&limit=50",
                      headers)
  end
  return wrk.format("GET", "/api/v1/customer?limit=50", headers)
end
"""
#: Scratch-copy experiments: (name, SQL run on the copy before timing).
WHAT_IF = (
    ("as built", ()),
    ("+ ANALYZE again", ("ANALYZE",)),
)


def page_args(page: str, n: int) -> list[tuple[str, str]]:
    if page == "page":
        return [("limit", "50")]
    return [("level", LEVELS[n % len(LEVELS)]), ("sort", "-created_at"), ("limit", "50")]


def page_path(page: str, n: int) -> str:
    return "/api/v1/customer?" + "&".join(f"{k}={v}" for k, v in page_args(page, n))


def run(db_path: Path, tokens: dict[str, str], *, repetitions: int, http: api.Settings | None, work_dir: Path,
        log=print) -> dict:
    from crmkit.app import create_app
    from crmkit.settings import from_environment

    settings = from_environment({"CRMKIT_DATABASE_URL": dataset.database_url(db_path),
                                 "CRMKIT_INSTANCE": str(work_dir / "instance")})
    app = create_app(dataset.CONFIG_DIR, settings)
    rt = app.extensions["crmkit"]
    actors = {name: rt.directory.actor(rt.directory.user(name)) for name in ACTORS}
    results: dict = {"actors": {name: {"scope": scope, "visible": _visible(app, tokens[name])}
                                for name, scope in ACTORS.items()}}
    log("  visible customers: " + ", ".join(f"{name} ({scope}) {results['actors'][name]['visible']:,}"
                                           for name, scope in ACTORS.items()))
    _check_pages(app, rt, actors, tokens)

    results["plans"] = {page: {name: _plan(rt, actor, page) for name, actor in actors.items()} for page in PAGES}
    for page, plans in results["plans"].items():
        for name, plan in plans.items():
            flags = [("scope uses index " + ", ".join(plan["scope_indexes"])) if plan["scope_indexes"] else
                     ("no scope" if name == "admin" else "scope uses NO owner/team index"),
                     "SORTS in a temp B-tree" if plan["sorts"] else "reads in index order"]
            log(f"  plan, {PAGES[page]}, {name}: {'; '.join(flags)}")
            for line in plan["lines"]:
                log(f"      {line}")

    results["in_process"] = {}
    results["sql"] = {}
    for page in PAGES:
        results["in_process"][page] = _in_process(app, tokens, page, repetitions)
        results["sql"][page] = _sql_alone(rt, actors, page, repetitions)
        for kind in ("in_process", "sql"):
            r = results[kind][page]
            log(f"  {PAGES[page]:<38} {'in-process' if kind == 'in_process' else 'SQL alone':<10} " +
                "  ".join(f"{name} {r[name]['ms']:6.2f} ms" + ("" if name == "admin" else
                                                               f" ({r[name]['ratio']:.2f}x)") for name in ACTORS))
    results["parts"] = {page: {name: _parts(rt, actor, page, repetitions // 2)
                               for name, actor in actors.items() if name != "admin"} for page in PAGES}
    results["what_if"] = _what_if(db_path, rt, actors, work_dir, max(20, repetitions // 4), log)
    rt.engine.dispose()
    if http is not None:
        results["http"] = _http(db_path, tokens, http, work_dir, log)
    results["target"] = TARGET
    results["ok"] = all(r[name]["ratio"] <= TARGET for kind in ("in_process", "http") for r in
                        results.get(kind, {}).values() for name in ACTORS if name != "admin")
    return results


# ------------------------------------------------------------------ checks


def _visible(app, token: str) -> int:
    status, body = api._call(app, api._environ("get", "/api/v1/customer?limit=1&count=true", None, token))
    if status != 200:
        raise RuntimeError(f"count: {status} {body[:300]!r}")
    import json

    return json.loads(body)["count"]


def _check_pages(app, rt, actors, tokens) -> None:
    """Each user's page holds only what their scope allows, in the list's order."""
    import json

    teams = rt.tables.teams
    with rt.engine.connect() as conn:
        tree = set(conn.execute(sa.select(teams.c.id).where(sa.or_(teams.c.name == "sales",
                                                                    teams.c.name.like("sales\\_%", escape="\\"))))
                   .scalars())
    for name, actor in actors.items():
        for page in PAGES:
            status, body = api._call(app, api._environ("get", page_path(page, 2), None, tokens[name]))
            rows = json.loads(body)["data"] if status == 200 else None
            if not rows or len(rows) != 50:
                raise RuntimeError(f"{name}'s {page}: {status} {body[:300]!r}")
            keys = [(r["created_at"], r["id"]) for r in rows]
            if keys != sorted(keys, reverse=True):
                raise RuntimeError(f"{name}'s {page} is not sorted by -created_at")
            if name == "rep_01" and any(r["owner_id"] != actor.id for r in rows):
                raise RuntimeError("the rep sees customers of others")
            if name == "sales_director" and any(r["team_id"] not in tree and r["owner_id"] != actor.id for r in rows):
                raise RuntimeError("the director sees customers outside sales")


# ------------------------------------------------------------------ plans


def _statement(rt, actor, page: str, n: int = 2, order: bool = True) -> tuple[sa.Select, dict]:
    """The statement the query builder runs for the page and its parameters
    (the ORDER BY can be left out, to see what it costs). A user with no
    records shared with them gets no share subquery."""
    entity = rt.spec.entities["customer"]
    request = rt.queries.parse_list(entity, page_args(page, n), rt.permissions.of(actor))
    with rt.engine.connect() as conn:
        query, params = rt.queries.page_statement(conn, entity, request, actor=actor)
    return (query if order else query.order_by(None)), params


def _compiled(rt, query: sa.Select, params: dict) -> tuple[str, tuple]:
    """The statement as SQLite runs it: text and positional parameters."""
    compiled = query.compile(dialect=rt.engine.dialect)
    values = compiled.construct_params(params)
    return str(compiled), tuple(values[name] for name in compiled.positiontup)


def _plan(rt, actor, page: str) -> dict:
    sql, params = _compiled(rt, *_statement(rt, actor, page))
    with rt.engine.connect() as conn:
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params).all()
    lines = _plan_lines(rows)
    indexes = sorted({word for line in lines for word in line.replace("(", " ").split()
                      if word.startswith("ix_customer_") and ("owner" in word or "team" in word)})
    return {"lines": lines, "scope_indexes": indexes, "sorts": any("TEMP B-TREE FOR ORDER BY" in x for x in lines)}


def _plan_lines(rows) -> list[str]:
    depth = {0: -1}
    lines = []
    for node, parent, _unused, detail in rows:
        depth[node] = depth.get(parent, -1) + 1
        lines.append("  " * depth[node] + detail)
    return lines


# ------------------------------------------------------------------ timing


def _quarters(actor_times: list[float], admin_times: list[float]) -> tuple[float, float]:
    quarter = max(1, len(actor_times) // 4)
    parts = [statistics.median(actor_times[i:i + quarter]) / statistics.median(admin_times[i:i + quarter])
             for i in range(0, len(actor_times) - quarter + 1, quarter)]
    return min(parts), max(parts)


def _summary(samples: dict[str, list[float]]) -> dict:
    admin = statistics.median(samples["admin"])
    out = {}
    for name, values in samples.items():
        entry = {"ms": round(statistics.median(values) * 1000, 3)}
        if name != "admin":
            low, high = _quarters(values, samples["admin"])
            entry.update(ratio=round(statistics.median(values) / admin, 3), ratio_min=round(low, 3),
                         ratio_max=round(high, 3))
        out[name] = entry
    return out


def _in_process(app, tokens, page: str, repetitions: int) -> dict:
    """Whole requests straight into the WSGI app (parse_list, page, dump, JSON),
    the three users in turn, the order rotating."""
    samples: dict[str, list[float]] = {name: [] for name in ACTORS}
    names = list(ACTORS)
    for n in range(20 + repetitions):
        for name in names[n % 3:] + names[:n % 3]:
            environ = api._environ("get", page_path(page, n), None, tokens[name])
            started = time.perf_counter()
            status, body = api._call(app, environ)
            elapsed = time.perf_counter() - started
            if status != 200:
                raise RuntimeError(f"{name} GET {page_path(page, n)}: {status} {body[:300]!r}")
            if n >= 20:
                samples[name].append(elapsed)
    return _summary(samples)


def _sql_alone(rt, actors, page: str, repetitions: int) -> dict:
    """The query builder alone: parse_list and page, no HTTP, no JSON."""
    entity = rt.spec.entities["customer"]
    samples: dict[str, list[float]] = {name: [] for name in ACTORS}
    names = list(ACTORS)
    with rt.engine.connect() as conn:
        for n in range(20 + repetitions):
            for name in names[n % 3:] + names[:n % 3]:
                actor = actors[name]
                started = time.perf_counter()
                request = rt.queries.parse_list(entity, page_args(page, n), rt.permissions.of(actor))
                rt.queries.page(conn, entity, request, actor=actor)
                elapsed = time.perf_counter() - started
                if n >= 20:
                    samples[name].append(elapsed)
            conn.rollback()
    return _summary(samples)


def _timed_sql(conn, sql: str, params: tuple, repetitions: int) -> float:
    for _ in range(3):
        conn.exec_driver_sql(sql, params).all()
    times = []
    for _ in range(repetitions):
        started = time.perf_counter()
        conn.exec_driver_sql(sql, params).all()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 3)


def _parts(rt, actor, page: str, repetitions: int) -> dict:
    """What each part of a scoped statement costs (ms, SQL alone): as built,
    without ORDER BY, and how many rows the scope lets through."""
    variants = {"as built": _statement(rt, actor, page), "without ORDER BY": _statement(rt, actor, page, order=False)}
    out = {}
    with rt.engine.connect() as conn:
        for label, (query, params) in variants.items():
            out[label] = _timed_sql(conn, *_compiled(rt, query, params), repetitions)
        query, params = _statement(rt, actor, page, order=False)
        counted = sa.select(sa.func.count()).select_from(query.limit(None).subquery())
        out["rows in scope"] = conn.exec_driver_sql(*_compiled(rt, counted, params)).scalar_one()
    return out


def _what_if(db_path: Path, rt, actors, work_dir: Path, repetitions: int, log) -> dict:
    """The same statements on a scratch copy of the database, with indexes or
    statistics the engine does not make (yet)."""
    statements = {(page, name): _compiled(rt, *_statement(rt, actor, page))
                  for page in PAGES for name, actor in actors.items()}
    out: dict = {}
    for label, setup in WHAT_IF:
        copy = work_dir / "what_if.sqlite3"
        dataset.remove_database(copy)
        source = sqlite3.connect(db_path)
        target = sqlite3.connect(copy)
        source.backup(target)
        source.close()
        for statement in setup:
            target.execute(statement)
        target.commit()
        entry: dict = {}
        for (page, name), (sql, params) in statements.items():
            plan = _plan_lines(target.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall())
            for _ in range(3):
                target.execute(sql, params).fetchall()
            times = []
            for _ in range(repetitions):
                started = time.perf_counter()
                target.execute(sql, params).fetchall()
                times.append(time.perf_counter() - started)
            key = f"{page} {name}"
            entry[key] = {"ms": round(statistics.median(times) * 1000, 3), "plan": plan}
        target.close()
        dataset.remove_database(copy)
        for page in PAGES:
            admin = entry[f"{page} admin"]["ms"]
            for key in (k for k in entry if k.startswith(page + " ")):
                entry[key]["ratio"] = round(entry[key]["ms"] / admin, 2)
        out[label] = entry
        log(f"  what if, {label}: " + "; ".join(f"{k} {v['ms']:.2f} ms ({v['ratio']:.1f}x)" for k, v in entry.items()))
    return out


# ------------------------------------------------------------------ HTTP


def _http(db_path: Path, tokens, settings: api.Settings, work_dir: Path, log) -> dict:
    """gunicorn (2 sync workers) and wrk, the three users in alternating order."""
    server = Server("generated", "crmkit.wsgi:app", {
        "CRMKIT_CONFIG": str(dataset.CONFIG_DIR), "CRMKIT_DATABASE_URL": dataset.database_url(db_path),
        "CRMKIT_INSTANCE": str(work_dir / "instance")}, work_dir / "scopes.log")
    runs = itertools.count(1)
    out: dict = {}
    try:
        server.start()
        for page in PAGES:
            def load(name: str, seconds: float, page: str = page):
                script = (LUA.replace("__TOKEN__", tokens[name])
                          .replace("__FILTERED__", "true" if page == "filtered" else "false"))
                return run_wrk(server.url, script, seconds=seconds, threads=settings.threads,
                               connections=settings.connections, seed=next(runs), work_dir=work_dir,
                               tag=f"scopes-{page}-{name}")

            for name in ACTORS:
                load(name, settings.warmup)
            rps: dict[str, list[float]] = {name: [] for name in ACTORS}
            errors = 0
            names = list(ACTORS)
            for round_no in range(settings.rounds):
                for name in names[round_no % 3:] + names[:round_no % 3]:
                    result = load(name, settings.seconds)
                    rps[name].append(result.rps)
                    errors += result.error_count
            entry: dict = {"errors": errors}
            for name in ACTORS:
                entry[name] = {"rps": round(statistics.median(rps[name]), 1)}
                if name != "admin":
                    ratios = [a / r for a, r in zip(rps["admin"], rps[name]) if r]
                    entry[name].update(ratio=round(statistics.median(ratios), 3), ratio_min=round(min(ratios), 3),
                                       ratio_max=round(max(ratios), 3))
            out[page] = entry
            log(f"  {PAGES[page]:<38} HTTP       " + "  ".join(
                f"{name} {entry[name]['rps']:6.0f} req/s"
                + ("" if name == "admin" else f" ({entry[name]['ratio']:.2f}x)")
                for name in ACTORS) + (f"  ({errors} errors)" if errors else ""))
    finally:
        server.stop()
    if "Traceback" in server.log_tail():
        log(f"  !! the server logged errors; see {server.log}")
    return out
