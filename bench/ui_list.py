"""The list screen against the JSON API for the same page: ``/app/customer``
(50 rows, 10 columns: enum labels, a region's names, money, a moment in the
app's timezone, formatted for people, with the screen's filters, tabs and bulk
bar) against ``/api/v1/customer`` with the same list arguments, both
in-process (straight into the WSGI app, with the admin's API token), the two
requests interleaved, the order alternating. Target: the page costs at most
1.3 × the JSON call.

    python -m bench --only ui_list             # inside the full harness (its database)
    python -m bench.ui_list [--customers N]    # alone, on a fresh database of N customers (20,000)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from . import api, dataset

TARGET = 1.3
COLUMNS = ("name", "mobile", "email", "gender", "level", "region", "city", "total_spent", "points", "last_order_at")
ARGS = f"fields={','.join(COLUMNS)}&sort=-created_at&limit=50"
PATHS = {"html": f"/app/customer?{ARGS}", "json": f"/api/v1/customer?{ARGS}"}


def run(db_path: Path, *, repetitions: int, token: str, work_dir: Path, log=print) -> dict:
    from crmkit.app import create_app
    from crmkit.settings import from_environment

    settings = from_environment({"CRMKIT_DATABASE_URL": dataset.database_url(db_path),
                                 "CRMKIT_INSTANCE": str(work_dir / "instance")})
    app = create_app(dataset.CONFIG_DIR, settings)
    try:
        html_rows = _check(app, token)
        samples: dict[str, list[float]] = {"html": [], "json": [], "fragment": []}
        kinds = ("html", "json", "fragment")
        for n in range(20 + repetitions):
            for kind in kinds[n % 3:] + kinds[:n % 3]:
                environ = _environ(kind, token)
                started = time.perf_counter()
                status, body = api._call(app, environ)
                elapsed = time.perf_counter() - started
                if status != 200:
                    raise RuntimeError(f"GET {PATHS[kind]}: {status} {body[:300]!r}")
                if n >= 20:
                    samples[kind].append(elapsed)
        ratios = [h / j for h, j in zip(samples["html"], samples["json"])]
        quarter = max(1, len(ratios) // 4)
        parts = [statistics.median(ratios[i:i + quarter]) for i in range(0, len(ratios) - quarter + 1, quarter)]
        html_ms = statistics.median(samples["html"]) * 1000
        json_ms = statistics.median(samples["json"]) * 1000
        fragment_ms = statistics.median(samples["fragment"]) * 1000
        ratio = html_ms / json_ms
        result = {"html_ms": round(html_ms, 3), "json_ms": round(json_ms, 3), "ratio": round(ratio, 3),
                  "fragment_ms": round(fragment_ms, 3), "fragment_ratio": round(fragment_ms / json_ms, 3),
                  "ratio_min": round(min(parts), 3), "ratio_max": round(max(parts), 3), "rows": html_rows,
                  "columns": len(COLUMNS), "target": TARGET, "ok": ratio <= TARGET, "repetitions": repetitions,
                  "paths": PATHS}
        log(f"  list page {html_ms:.2f} ms, JSON {json_ms:.2f} ms: ratio {ratio:.2f} "
            f"({min(parts):.2f}-{max(parts):.2f}), target <= {TARGET}; the htmx fragment of the results "
            f"(search, sort, next page) {fragment_ms:.2f} ms: {fragment_ms / json_ms:.2f} x the JSON call")
        return result
    finally:
        app.extensions["crmkit"].engine.dispose()


def _environ(kind: str, token: str) -> dict:
    """The request of one kind: the page, its htmx fragment (as htmx asks for it), the JSON call."""
    if kind != "fragment":
        return api._environ("get", PATHS[kind], None, token)
    from werkzeug.test import EnvironBuilder

    builder = EnvironBuilder(path=PATHS["html"], headers={"Authorization": f"Bearer {token}", "HX-Request": "true",
                                                          "HX-Target": "list-results"})
    try:
        return builder.get_environ()
    finally:
        builder.close()


def _check(app, token: str) -> int:
    """Both answer the same page: the same records, in the same order."""
    import json
    import re

    _status, body = api._call(app, api._environ("get", PATHS["json"], None, token))
    ids = [row["id"] for row in json.loads(body)["data"]]
    _status, page = api._call(app, api._environ("get", PATHS["html"], None, token))
    shown = [int(i) for i in re.findall(rb'<td><a id="r\d+" href="/app/customer/(\d+)">', page)]
    if ids != shown or len(ids) != 50:
        raise RuntimeError(f"the list page and the API disagree: {shown[:5]}... vs {ids[:5]}...")
    return len(ids)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ui_list", description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--repetitions", type=int, default=400)
    args = parser.parse_args(argv)
    work_dir = Path(tempfile.mkdtemp(prefix="crmkit-bench-"))
    dataset.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    db_path = dataset.RESULTS_DIR / "ui_list.sqlite3"
    try:
        facts = dataset.create(db_path, args.customers)
        print("[list page vs JSON] in-process, interleaved")
        result = run(db_path, repetitions=args.repetitions, token=facts["tokens"]["admin"], work_dir=work_dir)
    finally:
        dataset.remove_database(db_path)
        import shutil

        shutil.rmtree(work_dir, ignore_errors=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
