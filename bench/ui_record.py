"""The record page (/app/<entity>/<id>) against the JSON API's GET of the
same record, in the same run, in-process (Flask test client, API token):
target: the page costs at most 2 × the GET.

The data is the sample retail CRM seeded with demo data (``crmkit seed``:
customers with contacts, opportunities, orders, follow-ups...), in a fresh
SQLite file. Timed for the admin (scope all) and for the sales rep who owns
the record (scope own: every "may they?" of the page is a scoped query), on a
customer (nine related lists, a timeline, sharing) and an opportunity (a
workflow: the moves and their reasons). The page and the GET alternate; the
ratio is of the medians, with its min–max over the quarters of the
repetitions. The fragments the page loads afterwards (the timeline, a
related list) are timed too, for the record.

    python -m bench.ui_record [--quick] [--size N] [--repetitions N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

TARGET = 2.0
SAMPLE = Path(__file__).resolve().parent.parent / "sample_configs" / "retail_crm"
PAGE = {"Accept": "text/html"}
FRAGMENT = {"Accept": "text/html", "HX-Request": "true"}


def _ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 3)


def _timed(client, url: str, headers: dict | None = None) -> float:
    started = time.perf_counter()
    response = client.get(url, headers=headers or {})
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"GET {url}: {response.status_code} {response.get_data(as_text=True)[:300]}")
    return elapsed


def compare(client, page_url: str, api_url: str, repetitions: int, extra: dict[str, str]) -> dict:
    for _ in range(20):
        _timed(client, page_url, PAGE), _timed(client, api_url)
    page, api = [], []
    for n in range(repetitions):
        if n % 2:  # alternate which goes first
            api.append(_timed(client, api_url))
            page.append(_timed(client, page_url, PAGE))
        else:
            page.append(_timed(client, page_url, PAGE))
            api.append(_timed(client, api_url))
    quarter = max(1, repetitions // 4)
    parts = [statistics.median(page[i:i + quarter]) / statistics.median(api[i:i + quarter])
             for i in range(0, repetitions - quarter + 1, quarter)]
    ratio = statistics.median(page) / statistics.median(api)
    fragments = {}
    for name, url in extra.items():
        times = [_timed(client, url, FRAGMENT) for _ in range(max(10, repetitions // 4))]
        fragments[name] = _ms(times)
    return {"page_ms": _ms(page), "api_ms": _ms(api), "ratio": round(ratio, 3), "ratio_min": round(min(parts), 3),
            "ratio_max": round(max(parts), 3), "fragments_ms": fragments, "target": TARGET, "ok": ratio <= TARGET}


def run(work_dir: Path, *, size: int, repetitions: int, log=print) -> dict:
    from crmkit.app import create_app
    from crmkit.permissions import SYSTEM
    from crmkit.seed import demo_org, seed
    from crmkit.settings import from_environment

    # No job threads: the seed's automation runs are done before the timing, not during it.
    settings = from_environment({"CRMKIT_DATABASE_URL": f"sqlite:///{work_dir / 'ui_record.sqlite3'}",
                                 "CRMKIT_INSTANCE": str(work_dir / "instance"), "CRMKIT_JOBS_WORKERS": "0"})
    app = create_app(SAMPLE, settings)
    rt = app.extensions["crmkit"]
    try:
        started = time.perf_counter()
        org = demo_org(rt)
        admin = rt.directory.create_user({"username": "bench_admin", "roles": ["admin"]}, SYSTEM)
        seed(rt, size=size, org=org)
        ran = rt.jobs.run_pending()
        log(f"  seeded {size} customers and ran their {ran} automation jobs in {time.perf_counter() - started:.1f} s")
        customers, opportunities, activities = (rt.tables.entities[n] for n in ("customer", "opportunity", "activity"))
        with rt.engine.connect() as conn:  # the busiest customer of a rep, and an open opportunity of theirs
            customer_id, owner = conn.execute(
                sa.select(customers.c.id, customers.c.owner_id)
                .join(activities, activities.c.customer_id == customers.c.id)
                .group_by(customers.c.id, customers.c.owner_id).order_by(sa.func.count().desc()).limit(1)).one()
            opportunity_id = conn.execute(
                sa.select(opportunities.c.id).where(opportunities.c.owner_id == owner,
                                                    opportunities.c.stage.in_(("qualification", "proposal")))
                .limit(1)).scalar()
        results: dict = {"size": size, "repetitions": repetitions}
        for who, user_id in (("admin", admin["id"]), ("owner rep", owner)):
            client = app.test_client()
            client.environ_base["HTTP_AUTHORIZATION"] = "Bearer " + rt.directory.create_token(user_id, "bench",
                                                                                              SYSTEM).token
            # For context, not a floor: the home page is the shell (top bar, menu) and its widgets
            # (due follow-ups, newest records, shared with me: a read per entity), against the same GET.
            shell = compare(client, "/app/", f"/api/v1/customer/{customer_id}", repetitions, {})
            results[f"{who}: home page (/app/)"] = {**shell, "target": None, "ok": True}
            log(f"  {who:9} {'home /app/':11} page {shell['page_ms']:.2f} ms, GET {shell['api_ms']:.2f} ms: "
                f"ratio {shell['ratio']:.2f} ({shell['ratio_min']:.2f}–{shell['ratio_max']:.2f}): "
                "the shell and the home widgets' reads")
            records = [("customer", customer_id)] + ([("opportunity", opportunity_id)] if opportunity_id else [])
            for entity, record_id in records:
                base = f"/app/{entity}/{record_id}"
                first_relation = next(iter(rt.spec.entities[entity].relations), None)
                extra = {"timeline": f"{base}/timeline"}
                if first_relation:
                    extra[f"related {first_relation}"] = f"{base}/related/{first_relation}"
                found = compare(client, base, f"/api/v1/{entity}/{record_id}", repetitions, extra)
                results[f"{who}: {entity}"] = found
                fragments = ", ".join(f"{k} {v:.2f} ms" for k, v in found["fragments_ms"].items())
                log(f"  {who:9} {entity:11} page {found['page_ms']:.2f} ms, GET {found['api_ms']:.2f} ms: "
                    f"ratio {found['ratio']:.2f} ({found['ratio_min']:.2f}–{found['ratio_max']:.2f}), "
                    f"target ≤ {TARGET} {'ok' if found['ok'] else 'MISSED'}; fragments: {fragments}")
        return results
    finally:
        rt.engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ui_record", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer customers and repetitions")
    parser.add_argument("--size", type=int, help="demo customers to seed (200; quick: 50)")
    parser.add_argument("--repetitions", type=int, help="timed requests of each kind (400; quick: 100)")
    args = parser.parse_args(argv)
    size = args.size or (50 if args.quick else 200)
    repetitions = args.repetitions or (100 if args.quick else 400)
    print("record page against the API's GET of the same record (in-process)")
    with tempfile.TemporaryDirectory() as work:
        results = run(Path(work), size=size, repetitions=repetitions)
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "ui_record.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    missed = [k for k, v in results.items() if isinstance(v, dict) and not v["ok"]]
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
