"""What automations cost a write: saving a record of an entity with 20
automations whose triggers do not match the write (``watched``) against the
same entity with none (``plain``), and the time a matching automation adds
by enqueueing its run in the write's transaction (``matched``, one
``{updated: matched, fields: [priority]}``). Creates and updates through the
records service in-process, interleaved write by write on one database (SQLite by
default; ``--database-url`` for PostgreSQL); medians of single writes.

    python -m bench.automations [--rounds 6] [--records 300] [--database-url URL]

Targets: watched ≤ 1.2 × plain (create and update); matched - plain ≤ 1 ms (update).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from .timing import Timings, orders

RATIO_TARGET = 1.2
ADDED_TARGET_MS = 1.0

FIELDS = """
  name: {type: string, required: true, max_length: 100}
  email: {type: email}
  status: {type: enum, options: [draft, open, won, lost], default: draft}
  priority: {type: integer}
  amount: {type: money}
  starts_on: {type: date}
  notes: {type: text}
  other: {type: string}
"""


def config(root: Path) -> Path:
    (root / "entities").mkdir(parents=True)
    (root / "automations").mkdir()
    (root / "app.yaml").write_text("app: automations_bench\n")
    for name in ("plain", "watched", "matched"):
        (root / "entities" / f"{name}.yaml").write_text(f"entity: {name}\nfields:" + FIELDS)
    (root / "tags.yaml").write_text("tags:\n  flagged: {entity: watched}\n")
    # 20 automations on watched, none of which a create or an update of name/priority matches.
    lines = ["automations:"]
    for i in range(10):
        lines.append(f"  other_{i}: {{trigger: {{updated: watched, fields: [other]}}, do: [{{set: {{notes: x{i}}}}}]}}")
    for i in range(5):
        lines.append(f"  gone_{i}: {{trigger: {{deleted: watched}}, do: [{{create: {{entity: plain, values: "
                     f"{{name: y{i}}}}}}}]}}")
    for i in range(5):
        lines.append(f"  flag_{i}: {{trigger: {{tag_added: flagged}}, do: [{{set: {{notes: z{i}}}}}]}}")
    lines.append("  prioritised: {trigger: {updated: matched, fields: [priority]}, do: [{set: {notes: p}}]}")
    (root / "automations" / "bench.yaml").write_text("\n".join(lines) + "\n")
    return root


def record(i: int) -> dict:
    return {"name": f"Deal {i}", "email": f"d{i}@example.com", "status": "open", "priority": 1 + i % 5,
            "amount": "199.90", "starts_on": "2026-01-05", "notes": "bench"}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.automations", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--records", type=int, default=300, help="records created and updated per round and entity")
    parser.add_argument("--database-url", help="default: an SQLite file in a temporary directory")
    args = parser.parse_args(argv)

    from crmkit.permissions import SYSTEM
    from crmkit.runtime import build
    from crmkit.settings import Settings

    entities = ("plain", "watched", "matched")
    timings = Timings()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        url = args.database_url or f"sqlite:///{root / 'automations.sqlite3'}"
        rt = build(config(root / "config"), Settings(database_url=url, instance_dir=root / "instance"))
        try:
            rt.migrate()
            # Interleaved write by write (the order turning each round), so that a busy
            # machine slows the three alike.
            for round_number, order in enumerate(orders(entities, args.rounds)):
                ids: dict[str, list[int]] = {entity: [] for entity in entities}
                for i in range(args.records):
                    for entity in order:
                        with timings.timer((entity, "create")):
                            ids[entity].append(rt.records.create(entity, record(i), SYSTEM)["id"])
                for i in range(args.records):
                    for entity in order:
                        with timings.timer((entity, "update")):
                            rt.records.update(entity, ids[entity][i], {"priority": 10 + round_number * 7 + i % 5,
                                                                       "name": f"Deal {i}!"}, SYSTEM)
            with rt.engine.connect() as conn:
                import sqlalchemy as sa

                jobs = conn.execute(sa.text("SELECT count(*) FROM crmkit_job")).scalar_one()
        finally:
            rt.engine.dispose()
    medians = {key: timings.median(key) for key in timings.seconds}
    result: dict = {}
    for action in ("create", "update"):
        plain, watched = medians[("plain", action)], medians[("watched", action)]
        ratio = watched / plain
        result[action] = {"plain_ms": round(plain * 1000, 3), "watched_ms": round(watched * 1000, 3),
                          "ratio": round(ratio, 3), "target": RATIO_TARGET, "met": ratio <= RATIO_TARGET}
        print(f"{action:6}  plain {plain * 1000:7.3f} ms  watched (20 automations, none matching) "
              f"{watched * 1000:7.3f} ms  ratio {ratio:.3f}  (target ≤ {RATIO_TARGET}) "
              f"{'ok' if ratio <= RATIO_TARGET else 'MISSED'}")
    added = (medians[("matched", "update")] - medians[("plain", "update")]) * 1000
    result["enqueue"] = {"plain_ms": round(medians[("plain", "update")] * 1000, 3),
                         "matched_ms": round(medians[("matched", "update")] * 1000, 3),
                         "added_ms": round(added, 3), "target_ms": ADDED_TARGET_MS, "met": added <= ADDED_TARGET_MS,
                         "jobs": jobs}
    print(f"update  plain {medians[('plain', 'update')] * 1000:7.3f} ms  matched (one run enqueued) "
          f"{medians[('matched', 'update')] * 1000:7.3f} ms  added {added:.3f} ms  (target ≤ {ADDED_TARGET_MS} ms) "
          f"{'ok' if added <= ADDED_TARGET_MS else 'MISSED'}; {jobs} runs enqueued")
    print(f"database: {url.split(':')[0]}; {args.rounds} rounds of {args.records} records per entity, "
          "interleaved; medians of single writes")
    return result


if __name__ == "__main__":
    main()
