"""crmkit against Flask-AppBuilder, measured from outside.

Flask-AppBuilder (FAB) generates a REST API from SQLAlchemy models, as crmkit
generates one from YAML. Both serve the benchmark's ``customer`` table of
100,000 rows (FAB a copy of the same database, with its own user tables), both
under gunicorn with 2 sync workers, both loaded by wrk with a bearer token
(crmkit: the admin's API token; FAB: a JWT from one login as its Admin), in
alternating rounds, for: get by id, a filtered and sorted page of 50, the same
page with its total count (FAB always counts), a page 2,000 deep (crmkit: by
cursor; FAB: by page number, OFFSET), create, and update (crmkit PATCH, FAB
PUT). The ratio is crmkit's requests/s over FAB's (median of the rounds).

FAB is installed into its own virtual environment under bench/results/
(not committed); bench/fab_app.py is the FAB app, written for this benchmark.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import sqlite3
import statistics
import subprocess
import sys
import urllib.request
from pathlib import Path

import sqlalchemy as sa

from . import dataset
from .servers import Server, WrkResult, run_wrk

FAB_VERSION = "5.3.0"
VENV = dataset.RESULTS_DIR / "fab-venv"
AIM = 3.0
DEPTH = 2000
LIMIT = 50
ENDPOINTS = ("get", "list", "list_count", "deep_page", "create", "update")
TITLES = {"get": "get by id", "list": "list 50, filtered+sorted", "list_count": "same, with its count",
          "deep_page": f"page {DEPTH:,} deep (50)", "create": "create", "update": "update"}

_RANDOM_BODY = r"""
local surnames = {"王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周"}
local given = {"伟", "芳", "娜", "秀英", "敏", "静", "子涵", "浩然", "欣怡", "宇轩"}
local places = {{"440106", "广州市"}, {"310104", "上海市"}, {"110105", "北京市"}, {"330106", "杭州市"}}
local levels = {"bronze", "silver", "gold", "platinum"}
local genders = {"male", "female", "unknown"}
local function body()
  counter = counter + 1
  local place = places[math.random(1, #places)]
  return string.format(
    '{"name":"%s%s","mobile":"16%d%08d","email":"fab%d_%d@example.cn","gender":"%s","level":"%s",' ..
    '"region":"%s","city":"%s","total_spent":__MONEY_FORMAT__,"points":%d,"birthday":"19%02d-%02d-%02d",' ..
    '"last_order_at":"2026-%02d-%02dT%02d:%02d:00+08:00","notes":"基准测试创建的客户，偏好线上下单"}',
    surnames[math.random(1, #surnames)], given[math.random(1, #given)], thread_id, __BASE__ + counter,
    thread_id, __BASE__ + counter, genders[math.random(1, 3)], levels[math.random(1, 4)], place[1], place[2],
    __MONEY_VALUES__, math.random(0, 20000), math.random(50, 99), math.random(1, 12),
    math.random(1, 28), math.random(1, 10), math.random(1, 28), math.random(0, 23), math.random(0, 59))
end
local function change()
  return string.format('{"level":"%s","points":%d,"last_order_at":"2026-%02d-%02dT%02d:%02d:%02d+08:00"}',
    levels[math.random(1, 4)], math.random(0, 50000), math.random(1, 10), math.random(1, 28),
    math.random(0, 23), math.random(0, 59), math.random(0, 59))
end
-- If-Match: * : crmkit's PATCH needs a version (428 without one); the load overwrites
-- random records whatever their version, as FAB's PUT does. FAB ignores the header.
local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer __TOKEN__", ["If-Match"] = "*"}
"""
#: (method, path) per app and endpoint; Lua expressions, ``L`` is a random level.
REQUESTS = {
    "crmkit": {
        "get": ('"GET"', '"/api/v1/customer/" .. math.random(1, __MAX_ID__)', "nil"),
        "list": ('"GET"', '"/api/v1/customer?level=" .. L .. "&sort=-created_at&limit=50"', "nil"),
        "list_count": ('"GET"', '"/api/v1/customer?level=" .. L .. "&sort=-created_at&limit=50&count=true"', "nil"),
        "deep_page": ('"GET"', '"/api/v1/customer?sort=-created_at&limit=50&cursor=__CURSOR__"', "nil"),
        "create": ('"POST"', '"/api/v1/customer"', "body()"),
        "update": ('"PATCH"', '"/api/v1/customer/" .. math.random(1, __MAX_ID__)', "change()"),
    },
    "fab": {
        "get": ('"GET"', '"/api/v1/customer/" .. math.random(1, __MAX_ID__)', "nil"),
        "list": ('"GET"', '"/api/v1/customer/?q=(filters:!((col:level,opr:eq,value:" .. L .. ")),'
                 'order_column:created_at,order_direction:desc,page:0,page_size:50)"', "nil"),
        "deep_page": ('"GET"', f'"/api/v1/customer/?q=(order_column:created_at,order_direction:desc,'
                      f'page:{DEPTH - 1},page_size:50)"', "nil"),
        "create": ('"POST"', '"/api/v1/customer/"', "body()"),
        "update": ('"PUT"', '"/api/v1/customer/" .. math.random(1, __MAX_ID__)', "change()"),
    },
}
REQUESTS["fab"]["list_count"] = REQUESTS["fab"]["list"]  # FAB's list always carries its count
MONEY = {"crmkit": ('"%d.%02d"', "math.random(0, 99999), math.random(0, 99)"),
         "fab": ("%d", "math.random(0, 9999999)")}


def script(app: str, endpoint: str, *, token: str, max_id: int, base: int, cursor: str) -> str:
    method, path, body = REQUESTS[app][endpoint]
    text = _RANDOM_BODY + f"""
request = function()
  local L = levels[math.random(1, 4)]
  return wrk.format({method}, {path}, headers, {body})
end
"""
    # crmkit takes money as a decimal string; FAB's model column is the stored integer of cents.
    money_format, money_values = MONEY[app]
    text = text.replace("__MONEY_FORMAT__", money_format).replace("__MONEY_VALUES__", money_values)
    return (text.replace("__TOKEN__", token).replace("__MAX_ID__", str(max_id)).replace("__BASE__", str(base))
            .replace("__CURSOR__", cursor))


# ------------------------------------------------------------------ set-up


def fab_python(log=print) -> str:
    """The Python of FAB's own virtual environment, made on first use."""
    python = VENV / "bin" / "python"
    marker = VENV / f".fab-{FAB_VERSION}"
    if not marker.exists():
        log(f"  installing Flask-AppBuilder {FAB_VERSION} and gunicorn into {VENV} (once)")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"Flask-AppBuilder=={FAB_VERSION}",
                        "gunicorn"], check=True)
        marker.touch()
    return str(python)


def copy_database(source: Path, target: Path) -> None:
    dataset.remove_database(target)
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


#: crmkit's indexes hold live records only (partial: ``WHERE deleted_at IS NULL``),
#: which serves queries that say so; FAB knows nothing of the recycle bin and
#: never does. Its copy of the table gets the plain indexes a FAB admin would
#: declare on the same columns (``index=True``), so neither app sorts what the
#: other reads in index order.
FAB_INDEXES = (("created_at", "id"), ("updated_at", "id"), ("last_order_at",), ("owner_id", "created_at", "id"),
               ("team_id", "created_at", "id"))


def index_for_fab(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        for columns in FAB_INDEXES:
            name = "fab_customer_" + "_".join(columns)
            conn.execute(f"CREATE INDEX IF NOT EXISTS {name} ON customer ({', '.join(columns)})")
        conn.execute("ANALYZE")


def deep_cursor(db_path: Path, work_dir: Path) -> tuple[str, list[int]]:
    """crmkit's cursor of the page DEPTH deep (sort -created_at), made with the
    engine's own encoder, and the ids that page must hold (found by OFFSET)."""
    from crmkit import runtime
    from crmkit.permissions import SYSTEM
    from crmkit.settings import from_environment

    settings = from_environment({"CRMKIT_DATABASE_URL": dataset.database_url(db_path),
                                 "CRMKIT_INSTANCE": str(work_dir / "instance")})
    rt = runtime.build(dataset.CONFIG_DIR, settings)
    entity = rt.spec.entities["customer"]
    table = rt.tables.entities["customer"]
    request = rt.queries.parse_list(entity, [("sort", "-created_at")], rt.permissions.of(SYSTEM))
    ordered = (sa.select(table).where(table.c.deleted_at.is_(None))
               .order_by(table.c.created_at.desc(), table.c.id.desc()))
    with rt.engine.connect() as conn:
        before = conn.execute(ordered.offset((DEPTH - 1) * LIMIT - 1).limit(1)).mappings().one()
        ids = list(conn.execute(sa.select(ordered.subquery().c.id).offset((DEPTH - 1) * LIMIT).limit(LIMIT))
                   .scalars())
    rt.engine.dispose()
    return rt.queries.encode_cursor(request.sort, before), ids


def _get(url: str, token: str) -> tuple[int, dict, int]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        data = response.read()
        return response.status, json.loads(data), len(data)


def login(url: str, password: str) -> str:
    body = json.dumps({"username": "admin", "password": password, "provider": "db", "refresh": False}).encode()
    request = urllib.request.Request(url + "/api/v1/security/login", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["access_token"]


def check_answers(crmkit: str, fab: str, tokens: dict[str, str], cursor: str, deep_ids: list[int]) -> dict:
    """Both apps answer the same questions with the same records; bytes of a page each."""
    problems = []
    record_id = 4242
    _, a, _ = _get(f"{crmkit}/api/v1/customer/{record_id}", tokens["crmkit"])
    _, b, _ = _get(f"{fab}/api/v1/customer/{record_id}", tokens["fab"])
    if (a["data"]["name"], a["data"]["mobile"]) != (b["result"]["name"], b["result"]["mobile"]):
        problems.append(f"get {record_id}: crmkit {a['data']['name']} / FAB {b['result']['name']}")
    path = ("/api/v1/customer/?q=(filters:!((col:level,opr:eq,value:gold)),order_column:created_at,"
            "order_direction:desc,page:0,page_size:50)")
    _, a, crmkit_bytes = _get(f"{crmkit}/api/v1/customer?level=gold&sort=-created_at&limit=50", tokens["crmkit"])
    _, b, fab_bytes = _get(fab + path, tokens["fab"])
    if [r["id"] for r in a["data"]] != b["ids"]:
        problems.append("filtered list: the two apps list different customers")
    _, d, _ = _get(f"{crmkit}/api/v1/customer?sort=-created_at&limit=50&cursor={cursor}", tokens["crmkit"])
    _, e, _ = _get(fab + REQUESTS["fab"]["deep_page"][1].strip('"'), tokens["fab"])
    if [r["id"] for r in d["data"]] != deep_ids or e["ids"] != deep_ids:
        problems.append("deep page: the apps do not show the page OFFSET says")
    slim = len(json.dumps({"count": b["count"], "ids": b["ids"], "result": b["result"]}, ensure_ascii=False).encode())
    return {"problems": problems, "page_bytes": {"crmkit": crmkit_bytes, "fab": fab_bytes, "fab_result_only": slim}}


# ------------------------------------------------------------------ the run


def run(db_path: Path, max_id: int, *, crmkit_token: str, seconds: float, warmup: float, rounds: int,
        work_dir: Path, threads: int = 2, connections: int = 8, only: set[str] | None = None, log=print) -> dict:
    python = fab_python(log)
    fab_db = dataset.RESULTS_DIR / "fab.sqlite3"
    copy_database(db_path, fab_db)
    index_for_fab(fab_db)
    password = secrets.token_urlsafe(16)
    fab_env = {"FAB_BENCH_DATABASE_URL": f"sqlite:///{fab_db.resolve()}",
               "FAB_BENCH_SECRET": secrets.token_urlsafe(32)}
    subprocess.run([python, "-m", "bench.fab_app", "setup", password], check=True, cwd=dataset.BENCH_DIR.parent,
                   env={**os.environ, **fab_env}, capture_output=True)
    cursor, deep_ids = deep_cursor(db_path, work_dir)
    servers = {
        "crmkit": Server("crmkit", "crmkit.wsgi:app", {
            "CRMKIT_CONFIG": str(dataset.CONFIG_DIR), "CRMKIT_DATABASE_URL": dataset.database_url(db_path),
            "CRMKIT_INSTANCE": str(work_dir / "instance")}, work_dir / "crmkit.log"),
        "fab": Server("fab", "bench.fab_app:app", fab_env, work_dir / "fab.log", python=python),
    }
    endpoints = [e for e in ENDPOINTS if not only or e in only]
    results: dict = {"fab_version": FAB_VERSION, "aim": AIM, "endpoints": {}}
    try:
        for server in servers.values():
            server.start()
        tokens = {"crmkit": crmkit_token, "fab": login(servers["fab"].url, password)}
        log(f"  servers: crmkit {servers['crmkit'].url}, FAB {servers['fab'].url} (gunicorn, 2 sync workers each)")
        checked = check_answers(servers["crmkit"].url, servers["fab"].url, tokens, cursor, deep_ids)
        results.update(same_answers=not checked["problems"], page_bytes=checked["page_bytes"])
        for problem in checked["problems"]:
            log(f"  !! {problem}")
        b = checked["page_bytes"]
        log(f"  bytes of the filtered page of 50: crmkit {b['crmkit']:,}, FAB {b['fab']:,} "
            f"(FAB's result, ids and count alone: {b['fab_result_only']:,})")
        runs = itertools.count(1)
        for endpoint in endpoints:
            results["endpoints"][endpoint] = _measure(endpoint, servers, tokens, max_id, cursor, runs, seconds,
                                                      warmup, rounds, threads, connections, work_dir, log)
    finally:
        for server in servers.values():
            server.stop()
    for server in servers.values():
        tail = server.log_tail()
        if "Traceback" in tail or "ERROR" in tail:
            log(f"  !! {server.name} server logged errors; see {server.log}")
    dataset.remove_database(fab_db)
    results["ok"] = all(r["ratio"] >= AIM for r in results["endpoints"].values())
    return results


def _measure(endpoint: str, servers: dict[str, Server], tokens: dict[str, str], max_id: int, cursor: str, runs,
             seconds: float, warmup: float, rounds: int, threads: int, connections: int, work_dir: Path,
             log) -> dict:
    series: dict[str, list[float]] = {"crmkit": [], "fab": []}
    details: dict[str, list[dict]] = {"crmkit": [], "fab": []}

    def load(app: str, duration: float) -> WrkResult:
        run = next(runs)
        text = script(app, endpoint, token=tokens[app], max_id=max_id, base=run * 1_000_000, cursor=cursor)
        return run_wrk(servers[app].url, text, seconds=duration, threads=threads, connections=connections,
                       seed=run, work_dir=work_dir, tag=f"fab-{endpoint}-{app}")

    order = ["crmkit", "fab"]
    for app in order:
        load(app, warmup)
    for round_no in range(rounds):
        for app in order if round_no % 2 == 0 else order[::-1]:
            result = load(app, seconds)
            series[app].append(result.rps)
            details[app].append({"rps": round(result.rps, 1), "requests": result.requests, "errors": result.errors,
                                 "latency_ms": result.latency_ms})
            flag = f"  ({result.error_count} errors)" if result.error_count else ""
            log(f"  {TITLES[endpoint]:<26} round {round_no + 1} {app:<7} {result.rps:8.0f} req/s{flag}")
    # A round in which FAB completed no request at all (every one slower than
    # the round) counts as the ratio of one request.
    ratios = [c / max(f, 1 / seconds) for c, f in zip(series["crmkit"], series["fab"], strict=True)]
    return {"title": TITLES[endpoint], "crmkit_rps": round(statistics.median(series["crmkit"]), 1),
            "fab_rps": round(statistics.median(series["fab"]), 1), "ratio": round(statistics.median(ratios), 2),
            "ratio_min": round(min(ratios), 2), "ratio_max": round(max(ratios), 2),
            "errors": {app: sum(d["errors"]["status"] + d["errors"]["timeouts"] for d in values)
                       for app, values in details.items()},
            "rounds": details}
