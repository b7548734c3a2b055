"""Config load scaling: ``crmkit.loading.load_config`` on synthetic configs of 20 and
200 entities x 30 fields (bench/synthetic.py), each load in a fresh Python
process (nothing cached: compiled JSON Schemas, lazy imports), median of
several runs. Imports of crmkit itself are not counted; the one-off work that
``load`` does the first time (compiling the schemas) is, since a server pays it
at every start.

Each process then loads the same config a second time: that warm time leaves
out the one-off work and shows how the cost grows with the config alone.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from . import synthetic

SIZES = (20, 200)
TARGET_RATIO = 10.0
TARGET_SECONDS = 2.0

CHILD = r"""
import json, sys, time
import crmkit.loading
from crmkit.metadata.checker import builder

# Stage timers: reading and parsing the files, and JSON Schema validation;
# the rest of load() is the semantic checks and building the spec.
spent = {"parse": 0.0, "schema": 0.0}

def timed(stage, function):
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[stage] += time.perf_counter() - started
    return wrapper

crmkit.loading.load_directory = timed("parse", crmkit.loading.load_directory)
builder.check_structure = timed("schema", builder.check_structure)  # where build_spec calls it

def load():
    spent.update(parse=0.0, schema=0.0)
    started = time.perf_counter()
    spec, _pm, _types = crmkit.loading.load_config(sys.argv[1])
    total = time.perf_counter() - started
    return spec, {"total": total, "parse": spent["parse"], "schema": spent["schema"],
                  "rest": total - spent["parse"] - spent["schema"]}

spec, cold = load()
out = {"cold": cold, "entities": len(spec.entities), "fields": sum(len(e.user_fields) for e in spec.entities.values())}
if sys.argv[2] == "warm":
    out["warm"] = load()[1]
print(json.dumps(out))
"""


def _load_once(directory: Path, warm: bool) -> dict:
    completed = subprocess.run([sys.executable, "-c", CHILD, str(directory), "warm" if warm else "cold"],
                               capture_output=True, text=True, timeout=300)
    if completed.returncode != 0:
        raise RuntimeError(f"loading {directory} failed:\n{completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _median_stages(samples: list[dict]) -> dict:
    return {key: round(statistics.median(s[key] for s in samples), 3) for key in ("total", "parse", "schema", "rest")}


def run(*, runs: int, warm: bool = True, profile_functions: bool = False, log=print) -> dict:
    results: dict = {"runs": runs, "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="crmkit-bench-config-") as tmp:
        directories = {n: synthetic.generate(Path(tmp) / f"entities_{n}", n) for n in SIZES}
        # Interleaved (20, 200, 20, 200, ...), so that a burst of other work on the
        # machine hits both sizes alike; the ratio is the median of the pairs' ratios.
        samples: dict[int, list[dict]] = {n: [] for n in SIZES}
        for _ in range(runs):
            for n, directory in directories.items():
                samples[n].append(_load_once(directory, warm))
        for n, directory in directories.items():
            size = sum(p.stat().st_size for p in directory.rglob("*.yaml"))
            cold = [s["cold"]["total"] for s in samples[n]]
            entry = {"entities": samples[n][0]["entities"], "fields": samples[n][0]["fields"], "yaml_bytes": size,
                     "cold_s": round(statistics.median(cold), 3), "cold_min_s": round(min(cold), 3),
                     "cold_max_s": round(max(cold), 3),
                     "cold_stages_s": _median_stages([s["cold"] for s in samples[n]])}
            message = (f"  {n:>3} entities x 30 fields ({size / 1024:,.0f} kB of YAML): load {entry['cold_s']:.3f} s "
                       f"in a fresh process (min {min(cold):.3f}, max {max(cold):.3f})")
            if warm:
                entry["warm_s"] = round(statistics.median(s["warm"]["total"] for s in samples[n]), 3)
                entry["warm_stages_s"] = _median_stages([s["warm"] for s in samples[n]])
                message += f"; second load {entry['warm_s']:.3f} s"
            stages = entry["cold_stages_s"]
            message += (f"\n      = YAML parsing {stages['parse']:.3f} s + JSON Schema {stages['schema']:.3f} s"
                        f" + checks and spec {stages['rest']:.3f} s")
            results["sizes"][str(n)] = entry
            log(message)
        small, big = results["sizes"][str(SIZES[0])], results["sizes"][str(SIZES[1])]
        pairs = [b["cold"]["total"] / a["cold"]["total"] for a, b in zip(samples[SIZES[0]], samples[SIZES[1]])]
        ratio = statistics.median(pairs)
        results.update(ratio=round(ratio, 2), ratio_min=round(min(pairs), 2), ratio_max=round(max(pairs), 2),
                       per_entity_ms={str(n): round(results["sizes"][str(n)]["cold_s"] / n * 1000, 1) for n in SIZES},
                       target_ratio=TARGET_RATIO, target_seconds=TARGET_SECONDS,
                       ok=ratio < TARGET_RATIO and big["cold_s"] < TARGET_SECONDS)
        if warm:
            results["warm_ratio"] = round(big["warm_s"] / small["warm_s"], 2)
        if profile_functions:
            results["profile"] = profile(directories[SIZES[-1]])
    return results


def profile(directory: Path, limit: int = 12) -> dict:
    """The functions with the most own time in a (warm) load of ``directory`` (cProfile)."""
    import cProfile
    import pstats

    import crmkit.loading

    crmkit.loading.load_config(directory)
    profiler = cProfile.Profile()
    profiler.enable()
    crmkit.loading.load_config(directory)
    profiler.disable()
    rows = []
    for (filename, line, function), (_cc, nc, tottime, cumtime, _callers) in pstats.Stats(profiler).stats.items():
        short = filename.split("/site-packages/", 1)[-1].split("/work/main/", 1)[-1]
        rows.append({"function": f"{short}:{line}({function})", "calls": nc, "own_s": round(tottime, 3),
                     "cumulative_s": round(cumtime, 3)})
    rows.sort(key=lambda r: r["own_s"], reverse=True)
    return {"top_own_time": rows[:limit]}
