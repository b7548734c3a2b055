"""API throughput: crmkit's generated API against the hand-written baseline.

Both are served by gunicorn (2 sync workers) on the same SQLite database and
loaded by wrk from a separate process, alternately (A B, then B A, ...), for:
get by id, a filtered and sorted page of 50, create, and PATCH. Every request
carries the admin's API token (``Authorization: Bearer``), which both apps look
up before anything else. Before the load, a check makes sure both answer the
same requests with the same JSON.
"""

from __future__ import annotations

import cProfile
import functools
import io
import itertools
import json
import pstats
import statistics
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from . import dataset
from .servers import Server, WrkResult, run_wrk

ENDPOINTS = ("get", "list", "create", "patch")
TITLES = {"get": "get by id", "list": "list 50, filtered+sorted", "create": "create", "patch": "PATCH"}
TARGET = 0.9

LUA = {
    "get": r"""
local headers = {["Authorization"] = "Bearer __TOKEN__"}
request = function()
  return wrk.format("GET", "/api/v1/customer/" .. math.random(1, __MAX_ID__), headers)
end
""",
    "list": r"""
local levels = {"bronze", "silver", "gold", "platinum"}
local headers = {["Authorization"] = "Bearer __TOKEN__"}
request = function()
  return wrk.format("GET", "/api/v1/customer?level=" .. levels[math.random(1, 4)] .. "&sort=-created_at&limit=50",
                    headers)
end
""",
    "create": r"""
local surnames = {"王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周"}
local given = {"伟", "芳", "娜", "秀英", "敏", "静", "子涵", "浩然", "欣怡", "宇轩"}
local places = {{"440106", "广州市"}, {"310104", "上海市"}, {"110105", "北京市"}, {"330106", "杭州市"},
                {"510107", "成都市"}, {"420106", "武汉市"}, {"320102", "南京市"}, {"440305", "深圳市"}}
local levels = {"bronze", "silver", "gold", "platinum"}
local genders = {"male", "female", "unknown"}
local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer __TOKEN__"}
request = function()
  counter = counter + 1
  local place = places[math.random(1, #places)]
  local body = string.format(
    '{"name":"%s%s","mobile":"16%d%08d","email":"bench%d_%d@example.cn","gender":"%s","level":"%s",' ..
    '"region":"%s","city":"%s","total_spent":"%d.%02d","points":%d,"birthday":"19%02d-%02d-%02d",' ..
    '"last_order_at":"2026-%02d-%02dT%02d:%02d:00+08:00","notes":"基准测试创建的客户，偏好线上下单"}',
    surnames[math.random(1, #surnames)], given[math.random(1, #given)], thread_id, __BASE__ + counter,
    thread_id, __BASE__ + counter, genders[math.random(1, 3)], levels[math.random(1, 4)], place[1], place[2],
    math.random(0, 99999), math.random(0, 99), math.random(0, 20000), math.random(50, 99), math.random(1, 12),
    math.random(1, 28), math.random(1, 10), math.random(1, 28), math.random(0, 23), math.random(0, 59))
  return wrk.format("POST", "/api/v1/customer", headers, body)
end
""",
    "patch": r"""
local levels = {"bronze", "silver", "gold", "platinum"}
local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer __TOKEN__", ["If-Match"] = "*"}
request = function()
  local body = string.format('{"level":"%s","points":%d,"last_order_at":"2026-%02d-%02dT%02d:%02d:%02d+08:00"}',
    levels[math.random(1, 4)], math.random(0, 50000), math.random(1, 10), math.random(1, 28),
    math.random(0, 23), math.random(0, 59), math.random(0, 59))
  return wrk.format("PATCH", "/api/v1/customer/" .. math.random(1, __MAX_ID__), headers, body)
end
""",
}


@dataclass
class Settings:
    seconds: float
    warmup: float
    rounds: int
    threads: int = 2
    connections: int = 8


def _request(method: str, url: str, body: dict | None = None, token: str | None = None,
             headers: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def check_same_answers(generated: str, baseline: str, max_id: int, token: str) -> list[str]:
    """Both apps answer the same requests the same way; returns the differences found."""
    problems = []
    for bad_token in (None, "crm_not-a-token"):
        a, b = (_request("GET", app + f"/api/v1/customer/{max_id // 3}", token=bad_token)
                for app in (generated, baseline))
        if a[0] != 401 or b[0] != 401 or a[1]["error"]["code"] != b[1]["error"]["code"]:
            problems.append(f"GET with token {bad_token!r}: generated {a} / baseline {b}")
    call = functools.partial(_request, token=token)
    for path in (f"/api/v1/customer/{max_id // 3}", "/api/v1/customer?level=gold&sort=-created_at&limit=50",
                 "/api/v1/customer/999999999"):
        a, b = call("GET", generated + path), call("GET", baseline + path)
        if a != b:
            problems.append(f"GET {path}: generated {a[0]} and baseline {b[0]} differ")
        elif path.startswith("/api/v1/customer?"):
            c, d = call("GET", generated + a[1]["next_url"]), call("GET", baseline + a[1]["next_url"])
            if c != d:
                problems.append("GET next page: generated and baseline differ")
    body = {"name": "核对", "mobile": "16900000001", "email": "check@example.cn", "gender": "female",
            "level": "gold", "region": "440106", "city": "广州市", "total_spent": "12.50", "points": 3,
            "birthday": "1990-02-03", "last_order_at": "2026-11-01T10:00:00+08:00", "notes": "核对"}
    a = call("POST", generated + "/api/v1/customer", body)
    b = call("POST", baseline + "/api/v1/customer", dict(body, mobile="16900000002"))
    volatile = {"id", "created_at", "updated_at", "mobile"}
    strip = lambda r: {k: v for k, v in r[1].get("data", {}).items() if k not in volatile}  # noqa: E731
    if a[0] != 201 or b[0] != 201 or strip(a) != strip(b):
        problems.append(f"POST: generated {a[0]} {strip(a)} / baseline {b[0]} {strip(b)}")
    patch = {"level": "platinum", "points": 42, "last_order_at": "2026-11-02T10:00:00+08:00"}
    for app, created in ((generated, a), (baseline, b)):
        url = f"{app}/api/v1/customer/{created[1]['data']['id']}"
        status, answer = call("PATCH", url, patch)
        if status != 428 or answer["error"]["code"] != "version_required":
            problems.append(f"PATCH without a version on {app}: {status} {answer}")
        status, answer = call("PATCH", url, dict(patch, version=1))
        if status != 200 or answer["data"]["version"] != 2 or answer["data"]["points"] != 42:
            problems.append(f"PATCH on {app}: {status} {answer}")
        status, answer = call("PATCH", url, dict(patch, points=43), headers={"If-Match": "*"})
        if status != 200 or answer["data"]["version"] != 3:
            problems.append(f"PATCH with If-Match: * on {app}: {status} {answer}")
    bad = call("POST", generated + "/api/v1/customer", {"name": None, "level": "diamond"})
    bad_b = call("POST", baseline + "/api/v1/customer", {"name": None, "level": "diamond"})
    if bad[0] != 422 or bad_b[0] != 422 or bad[1]["error"]["details"] != bad_b[1]["error"]["details"]:
        problems.append(f"invalid POST: generated {bad} / baseline {bad_b}")
    return problems


def run(db_path: Path, max_id: int, settings: Settings, *, token: str, only: set[str] | None, work_dir: Path,
        log=print) -> dict:
    """``token``: the API token both apps are called with (the admin's)."""
    url = dataset.database_url(db_path)
    generated = Server("generated", "crmkit.wsgi:app", {
        "CRMKIT_CONFIG": str(dataset.CONFIG_DIR), "CRMKIT_DATABASE_URL": url,
        "CRMKIT_INSTANCE": str(work_dir / "instance")}, work_dir / "generated.log")
    baseline = Server("baseline", "bench.baseline:app", {"BENCH_DATABASE_URL": url}, work_dir / "baseline.log")
    results: dict = {"settings": settings.__dict__, "endpoints": {}}
    endpoints = [e for e in ENDPOINTS if not only or e in only]
    try:
        generated.start()
        baseline.start()
        log(f"  servers: generated {generated.url}, baseline {baseline.url} (gunicorn, 2 sync workers each)")
        problems = check_same_answers(generated.url, baseline.url, max_id, token)
        results["same_answers"] = not problems
        for problem in problems:
            log(f"  !! answers differ: {problem}")
        runs = itertools.count(1)  # every wrk run gets its own seed and its own range of mobiles
        for endpoint in endpoints:
            results["endpoints"][endpoint] = _measure(endpoint, (generated, baseline), settings, max_id, token,
                                                      runs, work_dir, log)
    finally:
        generated.stop()
        baseline.stop()
    for server in (generated, baseline):
        tail = server.log_tail()
        if "Traceback" in tail or "ERROR" in tail:
            log(f"  !! {server.name} server logged errors; see {server.log}")
    return results


def _measure(endpoint: str, servers: tuple[Server, Server], settings: Settings, max_id: int, token: str, runs,
             work_dir: Path, log) -> dict:
    """Alternating wrk rounds on the two servers for one endpoint."""
    series: dict[str, list] = {"generated": [], "baseline": []}
    details: dict[str, list] = {"generated": [], "baseline": []}

    def load(server: Server, seconds: float) -> WrkResult:
        run = next(runs)
        script = (LUA[endpoint].replace("__MAX_ID__", str(max_id)).replace("__BASE__", str(run * 1_000_000))
                  .replace("__TOKEN__", token))
        return run_wrk(server.url, script, seconds=seconds, threads=settings.threads,
                       connections=settings.connections, seed=run, work_dir=work_dir, tag=f"{endpoint}-{server.name}")

    for server in servers:  # warm-up, not counted
        load(server, settings.warmup)
    for round_no in range(settings.rounds):
        for server in servers if round_no % 2 == 0 else reversed(servers):
            result = load(server, settings.seconds)
            series[server.name].append(result.rps)
            details[server.name].append({"rps": round(result.rps, 1), "requests": result.requests,
                                         "errors": result.errors, "latency_ms": result.latency_ms})
            flag = f"  ({result.error_count} errors)" if result.error_count else ""
            log(f"  {TITLES[endpoint]:<26} round {round_no + 1} {server.name:<9} {result.rps:8.0f} req/s{flag}")
    # Each round pairs two back-to-back runs; the median of the rounds' ratios
    # resists the bursts of other work on a shared machine.
    ratios = [g / b for g, b in zip(series["generated"], series["baseline"], strict=True) if b]
    ratio = statistics.median(ratios)
    errors = sum(d["errors"]["status"] + d["errors"]["timeouts"] for v in details.values() for d in v)
    return {
        "title": TITLES[endpoint],
        "generated_rps": round(statistics.median(series["generated"]), 1),
        "baseline_rps": round(statistics.median(series["baseline"]), 1),
        "ratio": round(ratio, 3), "ratio_min": round(min(ratios), 3), "ratio_max": round(max(ratios), 3),
        "target": TARGET, "ok": ratio >= TARGET and errors == 0, "errors": errors, "rounds": details,
    }


# ------------------------------------------------------------------ in-process cost and profile


def _apps(db_path: Path, work_dir: Path):
    """The two WSGI apps, built in this process."""
    from crmkit.app import create_app
    from crmkit.settings import from_environment

    from . import baseline as baseline_module

    url = dataset.database_url(db_path)
    settings = from_environment({"CRMKIT_DATABASE_URL": url, "CRMKIT_INSTANCE": str(work_dir / "instance")})
    return create_app(dataset.CONFIG_DIR, settings), baseline_module.create_app(url)


def _environ(method: str, path: str, body: dict | None, token: str) -> dict:
    from werkzeug.test import EnvironBuilder

    headers = {"Authorization": f"Bearer {token}"}
    if method == "patch":  # the load overwrites random records: whatever version is current
        headers["If-Match"] = "*"
    builder = EnvironBuilder(path=path, method=method.upper(), json=body, headers=headers)
    try:
        return builder.get_environ()
    finally:
        builder.close()


def _call(app, environ: dict) -> tuple[int, bytes]:
    """One request straight into the WSGI app, as gunicorn's worker makes it."""
    status: list[str] = []
    result = app(environ, lambda line, headers, exc_info=None: status.append(line))
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close:
            close()
    return int(status[0][:3]), body


def _calls(endpoint: str, max_id: int, rng, mobile_prefix: str = "168"):
    """An endless supply of (method, path, json) like the wrk scripts send."""
    levels = ["bronze", "silver", "gold", "platinum"]
    n = 0
    while True:
        n += 1
        if endpoint == "get":
            yield "get", f"/api/v1/customer/{rng.randint(1, max_id)}", None
        elif endpoint == "list":
            yield "get", f"/api/v1/customer?level={rng.choice(levels)}&sort=-created_at&limit=50", None
        elif endpoint == "create":
            yield "post", "/api/v1/customer", {
                "name": "王子涵", "mobile": f"{mobile_prefix}{n:08d}", "email": f"p{n}@example.cn",
                "gender": "female", "level": rng.choice(levels), "region": "440106", "city": "广州市",
                "total_spent": "88.00", "points": rng.randint(0, 999), "birthday": "1991-05-06",
                "last_order_at": "2026-10-01T09:00:00+08:00", "notes": "基准测试创建的客户，偏好线上下单"}
        else:
            yield "patch", f"/api/v1/customer/{rng.randint(1, max_id)}", {
                "level": rng.choice(levels), "points": rng.randint(0, 50000),
                "last_order_at": f"2026-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T10:00:00+08:00"}


def in_process(db_path: Path, max_id: int, endpoints, requests: int, work_dir: Path, *, token: str,
               profile: set[str], log=print) -> dict:
    """Per-request cost of each app in one process (requests built beforehand and
    called straight into the WSGI app: no HTTP, no gunicorn, no test client), and a
    cProfile of the generated app's endpoints named in ``profile``."""
    import random

    generated, base = _apps(db_path, work_dir)
    out: dict = {}
    warm_up = min(50, requests)
    for endpoint in endpoints:
        # Different random streams (a PATCH replayed with the values already stored
        # changes nothing), requests interleaved so that drift (WAL checkpoints,
        # the machine's other load) falls on both apps alike.
        apps = [("generated", generated, _calls(endpoint, max_id, random.Random(7), "168")),
                ("baseline", base, _calls(endpoint, max_id, random.Random(8), "167"))]
        samples: dict[str, list[float]] = {"generated": [], "baseline": []}
        for n in range(warm_up + requests):
            for name, app, calls in apps:
                method, path, body = next(calls)
                environ = _environ(method, path, body, token)
                started = time.perf_counter()
                status, answer = _call(app, environ)
                elapsed = time.perf_counter() - started
                if status >= 400:
                    raise RuntimeError(f"{name} {method.upper()} {path}: {status} {answer[:300]!r}")
                if n >= warm_up:
                    samples[name].append(elapsed)
        costs = {name: statistics.median(values) * 1e6 for name, values in samples.items()}
        entry = {"generated_us": round(costs["generated"], 1), "baseline_us": round(costs["baseline"], 1),
                 "ratio": round(costs["baseline"] / costs["generated"], 3)}
        if endpoint in profile:
            calls = _calls(endpoint, max_id, random.Random(11), "165")
            environs = [_environ(*next(calls), token) for _ in range(requests)]
            profiler = cProfile.Profile()
            profiler.enable()
            for environ in environs:
                _call(generated, environ)
            profiler.disable()
            entry["profile"] = _top(profiler, requests)
        out[endpoint] = entry
        log(f"  {TITLES[endpoint]:<26} in-process: generated {entry['generated_us']:7.0f} us, "
            f"baseline {entry['baseline_us']:7.0f} us per request (throughput ratio {entry['ratio']:.2f})")
    return out


def _top(profiler: cProfile.Profile, requests: int, limit: int = 15) -> dict:
    """Per request: the engine's own functions by cumulative time, and the
    functions (anywhere) with the most own time."""
    stats = pstats.Stats(profiler, stream=io.StringIO())
    rows = []
    for (filename, line, function), (_cc, nc, tottime, cumtime, _callers) in stats.stats.items():
        short = filename
        for marker in ("/site-packages/", "/platform/", "/lib/python3.11/", "/work/main/"):
            if marker in filename:
                short = filename.split(marker, 1)[1]
                break
        rows.append({"function": f"{short}:{line}({function})", "calls_per_request": round(nc / requests, 1),
                     "own_us": round(tottime / requests * 1e6, 1), "cumulative_us": round(cumtime / requests * 1e6, 1),
                     "engine": "/crmkit/" in filename or "/work/main/metadata/" in filename})
    engine = sorted((r for r in rows if r.pop("engine")), key=lambda r: r["cumulative_us"], reverse=True)
    own = sorted(rows, key=lambda r: r["own_us"], reverse=True)
    return {"engine_cumulative": engine[:limit], "own_time": own[:limit]}
