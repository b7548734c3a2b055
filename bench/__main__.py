"""``python -m bench [--quick] [--only NAME ...] [--profile] [--strict]``

Runs crmkit's benchmarks, each against its reference in the same run, prints a
table and writes bench/results/latest.json. Names for --only (repeatable or
comma-separated): api (= get, list, create, patch), get, list, create, patch,
deep_page, scopes, config_load, fab, ui_list, and the in-process benchmarks
rules, tags, ui_record, jobs, automations, approvals, pool, sweeps (each also
runs alone, with more options: ``python -m bench.NAME --help``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import (
    api,
    approvals,
    automations,
    config_load,
    dataset,
    deep_page,
    fab,
    jobs,
    pool,
    rules,
    scopes,
    sweeps,
    tags,
    ui_list,
    ui_record,
)
from .servers import wrk_available


def _ui_record(quick: bool) -> dict:
    with tempfile.TemporaryDirectory() as work:
        return ui_record.run(Path(work), size=50 if quick else 200, repetitions=100 if quick else 400)


def _jobs(quick: bool) -> dict:
    redis_url = os.environ.get("CRMKIT_REDIS_URL")  # the Redis path only where there is a Redis to use
    return jobs.measure(1000 if quick else 5000, None, redis_url or "", None if redis_url else "inprocess")


#: The in-process benchmarks, on their own databases (SQLite in a temporary
#: directory): a title, and how to run them quick or full.
IN_PROCESS = {
    "rules": ("records with 10 rules and 5 formulas / none",
              lambda quick: rules.main(["--rounds", "3", "--records", "100"] if quick else [])),
    "tags": ("rule tag refresh and a list by tag / hand-written SQL and a list by enum",
             lambda quick: tags.main(["--customers", "20000", "--rounds", "3"] if quick else [])),
    "ui_record": ("the record page / the API's GET of the record", _ui_record),
    "jobs": ("jobs per second / a hand-written queue (Redis too with CRMKIT_REDIS_URL)", _jobs),
    "automations": ("writes watched by 20 automations / none",
                    lambda quick: automations.main(["--rounds", "3", "--records", "100"] if quick else [])),
    "approvals": ("a save of a record under approval / none",
                  lambda quick: approvals.main(["--rounds", "3", "--records", "100"] if quick else [])),
    "pool": ("the customer pool's list, return and claim / references",
             lambda quick: pool.main(["--customers", "10000", "--rounds", "2"] if quick else [])),
    "sweeps": ("a scheduled tick over every record / a hand-written INSERT ... SELECT",
               lambda quick: sweeps.main(["--records", "20000"] if quick else ["--records", "1000000"])),
}

GROUPS = {"api": set(api.ENDPOINTS), "deep_page": {"deep_page"}, "scopes": {"scopes"}, "config_load": {"config_load"},
          "fab": {"fab"}, "ui_list": {"ui_list"}, **{name: {name} for name in IN_PROCESS}}
NAMES = set(api.ENDPOINTS) | {"api", "deep_page", "scopes", "config_load", "fab", "ui_list"} | set(IN_PROCESS)
NOTE = ("Note: these run on noisy shared machines (here {cpus} CPUs, shared by wrk, the servers and anything "
        "else running);\nabsolute numbers move from run to run: the ratios, measured in the same run, are what count.")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[1])
    parser.add_argument("--quick", action="store_true", help="a smaller, shorter run (under 3 minutes)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only these benchmarks: " + ", ".join(sorted(NAMES)))
    parser.add_argument("--profile", action="store_true",
                        help="cProfile every generated endpoint in-process (done anyway for those below target)")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when a target is missed")
    parser.add_argument("--customers", type=int, default=100_000, help="size of the benchmark database (100000)")
    parser.add_argument("--keep-db", action="store_true", help="keep bench/results/bench.sqlite3 afterwards")
    parser.add_argument("--seconds", type=float, help="wrk duration of each measured run")
    parser.add_argument("--rounds", type=int, help="A/B rounds per endpoint")
    args = parser.parse_args(argv)
    only: set[str] = set()
    for item in args.only:
        for name in filter(None, (part.strip() for part in item.split(","))):
            if name not in NAMES:
                parser.error(f"unknown benchmark '{name}'; choose from: {', '.join(sorted(NAMES))}")
            only |= GROUPS.get(name, {name})
    args.selected = only or set(api.ENDPOINTS) | {"deep_page", "scopes", "config_load", "fab", "ui_list"} | set(
        IN_PROCESS)
    return args


def machine() -> dict:
    def version(package: str) -> str | None:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as get

        try:
            return get(package)
        except PackageNotFoundError:
            return None

    commit = None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=10).stdout.strip() or None
    except OSError:
        pass
    wrk = None
    if wrk_available():
        out = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
        wrk = out.split("[")[0].strip() or None
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "wrk": wrk, "git_commit": commit,
            "packages": {p: version(p) for p in ("crmkit", "flask", "werkzeug", "sqlalchemy", "gunicorn", "jsonschema",
                                                  "ruamel.yaml")}}


def _fmt_rate(value: float) -> str:
    return f"{value:,.0f} req/s"


def table(results: dict) -> str:
    rows = [("benchmark", "generated", "reference", "ratio (min-max)", "target", "")]
    for endpoint in api.ENDPOINTS:
        r = results.get("api", {}).get("endpoints", {}).get(endpoint)
        if r:
            status = "ok" if r["ok"] else ("ERRORS" if r["errors"] else "BELOW")
            rows.append((f"API {r['title']}", _fmt_rate(r["generated_rps"]),
                         _fmt_rate(r["baseline_rps"]) + " (hand)",
                         f"{r['ratio']:.2f} ({r['ratio_min']:.2f}-{r['ratio_max']:.2f})", f">= {r['target']:.1f}",
                         status))
    for r in results.get("fab", {}).get("endpoints", {}).values():
        errors = sum(r["errors"].values())
        rows.append((f"vs FAB: {r['title']}", _fmt_rate(r["crmkit_rps"]), _fmt_rate(r["fab_rps"]) + " (FAB)",
                     f"{r['ratio']:.2f} ({r['ratio_min']:.2f}-{r['ratio_max']:.2f})", f">= {fab.AIM:.1f} (aim)",
                     "ERRORS" if errors else ("ok" if r["ratio"] >= fab.AIM else "BELOW")))
    d = results.get("deep_page")
    if d:
        rows.append((f"keyset page {d['depth']:,} deep / page 1", f"{d['deep_ms']:.2f} ms",
                     f"{d['page1_ms']:.2f} ms (page 1)",
                     f"{d['ratio']:.2f} ({d['ratio_min']:.2f}-{d['ratio_max']:.2f})", f"<= {d['target']:.1f}",
                     "ok" if d["ok"] else "ABOVE"))
        rows.append(("  same, SQL alone", f"{d['sql_deep_ms']:.2f} ms", f"{d['sql_page1_ms']:.2f} ms (page 1)",
                     f"{d['sql_ratio']:.2f}", "", ""))
    u = results.get("ui_list")
    if u:
        rows.append(("list page / JSON, same page", f"{u['html_ms']:.2f} ms", f"{u['json_ms']:.2f} ms (JSON)",
                     f"{u['ratio']:.2f} ({u['ratio_min']:.2f}-{u['ratio_max']:.2f})", f"<= {u['target']:.1f}",
                     "ok" if u["ok"] else "ABOVE"))
        rows.append(("  the htmx fragment of its results", f"{u['fragment_ms']:.2f} ms",
                     f"{u['json_ms']:.2f} ms (JSON)", f"{u['fragment_ratio']:.2f}", "", ""))
    s = results.get("scopes")
    if s:
        for page, title in scopes.PAGES.items():
            for name, scope in scopes.ACTORS.items():
                if name == "admin":
                    continue
                r = s["in_process"][page][name]
                admin = s["in_process"][page]["admin"]
                rows.append((f"{title}, {scope} / all", f"{r['ms']:.2f} ms", f"{admin['ms']:.2f} ms (admin)",
                             f"{r['ratio']:.2f} ({r['ratio_min']:.2f}-{r['ratio_max']:.2f})", f"<= {s['target']:.1f}",
                             "ok" if r["ratio"] <= s["target"] else "ABOVE"))
                q = s["sql"][page][name]
                rows.append(("  same, SQL alone", f"{q['ms']:.2f} ms",
                             f"{s['sql'][page]['admin']['ms']:.2f} ms (admin)",
                             f"{q['ratio']:.2f}", "", ""))
                h = s.get("http", {}).get(page)
                if h:
                    rows.append(("  same, HTTP (gunicorn + wrk)", _fmt_rate(h[name]["rps"]),
                                 _fmt_rate(h["admin"]["rps"]) + " (admin)",
                                 f"{h[name]['ratio']:.2f} ({h[name]['ratio_min']:.2f}-{h[name]['ratio_max']:.2f})",
                                 f"<= {s['target']:.1f}", "ok" if h[name]["ratio"] <= s["target"] else "ABOVE"))
    c = results.get("config_load")
    if c:
        big, small = c["sizes"]["200"], c["sizes"]["20"]
        status = "ok" if c["ok"] else ("SLOW" if big["cold_s"] >= c["target_seconds"] else "") + \
            (" NONLINEAR" if c["ratio"] >= c["target_ratio"] else "")
        rows.append(("config load 200 / 20 entities", f"{big['cold_s']:.2f} s", f"{small['cold_s']:.2f} s (20)",
                     f"{c['ratio']:.1f} ({c['ratio_min']:.1f}-{c['ratio_max']:.1f})",
                     f"< {c['target_ratio']:.0f}, < {c['target_seconds']:.0f} s", status.strip()))
        if "warm_ratio" in c:
            rows.append(("  same, second load in process", f"{big['warm_s']:.2f} s", f"{small['warm_s']:.2f} s (20)",
                         f"{c['warm_ratio']:.1f}", "", ""))
    for name in IN_PROCESS:
        for label, r in _ratios(results.get(name), name):
            met = r.get("met", r.get("ok"))
            target = r.get("target", r.get("target_per_s"))
            figures = [f"{_number(v)} {'/s' if k.endswith('_per_s') else k.rsplit('_', 1)[1]}" for k, v in r.items()
                       if isinstance(v, int | float) and not isinstance(v, bool) and k.endswith(("_ms", "_us", "_s"))]
            figures += ["", ""]
            rows.append((label, figures[0], figures[1], f"{r['ratio']:.2f}", "" if target is None else
                         (f">= {target:g}/s" if "target_per_s" in r else f"<= {target:g}"),
                         "" if met is None or target is None else "ok" if met else "MISSED"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) if i < 4
                               else cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if n == 0:
            lines.append("-" * len(lines[0]))
    inproc = results.get("api", {}).get("in_process")
    if inproc:
        lines.append("")
        lines.append("In-process cost per request (straight into each WSGI app, requests interleaved; "
                     "less noisy, same work):")
        for endpoint, r in inproc.items():
            lines.append(f"  {api.TITLES[endpoint]:<26} generated {r['generated_us']:7.0f} us   "
                         f"hand-written {r['baseline_us']:7.0f} us   ratio {r['ratio']:.2f}")
    return "\n".join(lines)


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _ratios(result: object, label: str):
    """(label, figures) of each measurement with a ratio in an in-process benchmark's result."""
    if not isinstance(result, dict):
        return
    if "ratio" in result:
        yield label, result
        return
    for key, value in result.items():
        yield from _ratios(value, f"{label} {key}")


def hot_spots(results: dict) -> str:
    lines = []
    for endpoint, r in results.get("api", {}).get("in_process", {}).items():
        if "profile" not in r:
            continue
        lines.append(f"Profile of the generated {api.TITLES[endpoint]} endpoint (us per request, in-process; "
                     "cProfile inflates small calls):")
        lines.append(f"  engine functions      {'cumul':>7} {'own':>6} {'calls':>6}")
        for row in r["profile"]["engine_cumulative"][:10]:
            lines.append(_profile_line(row))
        lines.append(f"  most own time         {'cumul':>7} {'own':>6} {'calls':>6}")
        for row in r["profile"]["own_time"][:8]:
            lines.append(_profile_line(row))
    c = results.get("config_load")
    if c and not c["ok"]:
        for n in ("20", "200"):
            s = c["sizes"][n]["cold_stages_s"]
            lines.append(f"Config load of {n} entities, by stage (fresh process): {s['total']:.2f} s = YAML parsing "
                         f"{s['parse']:.2f} s + JSON Schema validation {s['schema']:.2f} s + checks and spec "
                         f"{s['rest']:.2f} s")
        for row in c.get("profile", {}).get("top_own_time", [])[:10]:
            lines.append(f"  {row['own_s']:>7.3f} s own {row['cumulative_s']:>7.3f} s cumulative "
                         f"{row['calls']:>8} calls  {row['function']}")
    return "\n".join(lines)


def _profile_line(row: dict) -> str:
    return (f"    {row['function']:<60} {row['cumulative_us']:>7.0f} {row['own_us']:>6.0f} "
            f"{row['calls_per_request']:>6}")


def main(argv=None) -> int:
    args = parse_args(argv)
    quick = args.quick
    started = time.monotonic()
    info = machine()
    print(f"crmkit benchmarks ({'quick' if quick else 'full'} run), "
          f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, Python {info['python']}, SQLite {info['sqlite']}, "
          f"{info['cpus']} CPUs")
    print(NOTE.format(cpus=info["cpus"]))
    results: dict = {"mode": "quick" if quick else "full", "started": dt.datetime.now(dt.UTC).isoformat(),
                     "machine": info, "note": NOTE.format(cpus=info["cpus"]).replace("\n", " ")}
    endpoints = [e for e in api.ENDPOINTS if e in args.selected]
    if (endpoints or {"scopes", "fab"} & args.selected) and not wrk_available():
        print("bench: the API benchmarks need wrk (apt-get install -y wrk)", file=sys.stderr)
        return 2
    dataset.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix="crmkit-bench-"))
    failed = False
    try:
        if "config_load" in args.selected:
            print("\n[config load] synthetic configs, each load in a fresh process")
            results["config_load"] = config_load.run(runs=3 if quick else 5, warm=not quick,
                                                     profile_functions=args.profile)
        db_path = dataset.RESULTS_DIR / "bench.sqlite3"
        if endpoints or {"deep_page", "scopes", "fab", "ui_list"} & args.selected:
            print(f"\n[database] fresh SQLite database with {args.customers:,} customers")
            facts = dataset.create(db_path, args.customers)
            tokens = facts.pop("tokens")  # secrets of a throwaway database, kept out of the results
            results["database"] = facts
        if "deep_page" in args.selected:
            print("\n[deep page] keyset pagination through the generated API, in-process")
            depth = 2000 if args.customers >= 100_000 else max(2, args.customers // 50 - 1)
            results["deep_page"] = deep_page.run(db_path, depth=depth, repetitions=100 if quick else 400,
                                                 token=tokens["admin"], work_dir=work_dir)
        if "ui_list" in args.selected:
            print("\n[list page] /app/customer (50 rows, 10 columns) against the JSON API for the same page, "
                  "in-process")
            results["ui_list"] = ui_list.run(db_path, repetitions=100 if quick else 400, token=tokens["admin"],
                                             work_dir=work_dir)
        if "scopes" in args.selected:
            print("\n[data scopes] the list page of a rep (own) and the sales director (team_tree) against the admin's")
            results["scopes"] = scopes.run(
                db_path, tokens, repetitions=100 if quick else 400,
                http=api.Settings(seconds=args.seconds or (3 if quick else 4), warmup=1,
                                  rounds=args.rounds or (2 if quick else 6)),
                work_dir=work_dir)
        if endpoints:
            settings = api.Settings(seconds=args.seconds or (3 if quick else 4), warmup=1 if quick else 2,
                                    rounds=args.rounds or (2 if quick else 8))
            print(f"\n[API throughput] wrk -t{settings.threads} -c{settings.connections} -d{settings.seconds:g}s, "
                  f"{settings.rounds} alternating rounds per endpoint")
            results["api"] = api.run(db_path, args.customers, settings, token=tokens["admin"], only=set(endpoints),
                                     work_dir=work_dir)
            slow = {e for e, r in results["api"]["endpoints"].items() if not r["ok"]}
            print("\n[API in-process] per-request cost, straight into each WSGI app" +
                  (f"; profiling {', '.join(sorted(slow | (set(endpoints) if args.profile else set())))}"
                   if slow or args.profile else ""))
            results["api"]["in_process"] = api.in_process(
                db_path, args.customers, endpoints, 300 if quick else 1000, work_dir, token=tokens["admin"],
                profile=set(endpoints) if args.profile else slow)
            if not results["api"].get("same_answers", True):
                failed = True
            if any(r["errors"] for r in results["api"]["endpoints"].values()):
                failed = True
        if "fab" in args.selected:
            print(f"\n[vs Flask-AppBuilder {fab.FAB_VERSION}] the same customer table, both under gunicorn "
                  "(2 sync workers), wrk, bearer tokens")
            results["fab"] = fab.run(db_path, args.customers, crmkit_token=tokens["admin"],
                                     seconds=args.seconds or (3 if quick else 4), warmup=1 if quick else 2,
                                     rounds=args.rounds or (2 if quick else 6), work_dir=work_dir)
            if not results["fab"]["same_answers"]:
                failed = True
        for name, (title, run) in IN_PROCESS.items():
            if name in args.selected:
                print(f"\n[{name}] {title}, in-process")
                results[name] = run(quick)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
        if not args.keep_db:
            dataset.remove_database(dataset.RESULTS_DIR / "bench.sqlite3")
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    results_file = dataset.RESULTS_DIR / "latest.json"
    results_file.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    print("\n" + "=" * 100)
    print(table(results))
    spots = hot_spots(results)
    if spots:
        print("\n" + spots)
    print("\n" + NOTE.format(cpus=info["cpus"]))
    shown = results_file.relative_to(Path.cwd()) if results_file.is_relative_to(Path.cwd()) else results_file
    print(f"Results: {shown}"
          f" ({results['elapsed_s']:.0f} s in all)")
    missed = [name for name, ok in _verdicts(results) if not ok]
    if missed:
        print("Below target: " + ", ".join(missed))
    if failed:
        print("bench: some requests failed or the two apps answered differently (see above)", file=sys.stderr)
        return 1
    return 1 if args.strict and missed else 0


def _verdicts(results: dict):
    for r in results.get("api", {}).get("endpoints", {}).values():
        yield f"API {r['title']}", r["ok"]
    if "deep_page" in results:
        yield "deep keyset page", results["deep_page"]["ok"]
    if "scopes" in results:
        yield "data scopes", results["scopes"]["ok"]
    if "ui_list" in results:
        yield "list page", results["ui_list"]["ok"]
    if "config_load" in results:
        yield "config load", results["config_load"]["ok"]
    for r in results.get("fab", {}).get("endpoints", {}).values():
        yield f"vs FAB {r['title']} (aim)", r["ratio"] >= fab.AIM
    for name in IN_PROCESS:
        for label, r in _ratios(results.get(name), name):
            met = r.get("met", r.get("ok"))
            if met is not None and r.get("target", r.get("target_per_s")) is not None:
                yield label, met


if __name__ == "__main__":
    sys.exit(main())
