"""What approvals cost a save: an entity whose move needs approval
(``guarded``: the move's pending approvals lock its amount) against the same
entity whose move does not (``plain``), through the records service
in-process, in alternating rounds on the same database (SQLite by default;
``--database-url`` for PostgreSQL).

- update: a change of ``amount`` (a field an approval locks, so the lock is
  looked up) on records of which every tenth has an approval pending;
- ask: asking for the move (``guarded``: a pending approval of two steps, a
  superior and a role of two users, each approver's read access checked)
  against making the move (``plain``).

    python -m bench.approvals [--rounds 8] [--records 300] [--database-url URL]

Target: update ≤ 1.2 × plain (one indexed lookup added to a write). Asking
is reported without a target: it is a rare act of a person, and it does
several times a move's work (the approvers chosen and their read access
checked, three tables written, the approval read back for the answer).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from .timing import Timings, alternating

TARGETS: dict[str, float | None] = {"update": 1.2, "ask": None}

ENTITY = """entity: {name}
owned: true
fields:
  name: {{type: string, required: true}}
  amount: {{type: money}}
  discount: {{type: decimal, precision: 5, scale: 2}}
  note: {{type: string}}
  stage: {{type: enum, options: [draft, approved], default: draft}}
"""

WORKFLOW = """workflow: {name}_flow
entity: {name}
field: stage
states: [draft, approved]
transitions:
  - name: approve
    from: draft
    to: approved
    require: [amount]
{approval}"""

APPROVAL = """    approval:
      steps:
        - {superior: 1}
        - {role: manager, when: "amount > 100 or discount > 30"}
"""

ROLES = """roles:
  rep:
    entities: {"*": {read: own, create: true, update: own, transition: own}, user: {read: all}}
  manager:
    entities: {"*": {read: all, update: all, transition: all}, user: {read: all}}
"""


def config(root: Path) -> Path:
    (root / "entities").mkdir(parents=True)
    (root / "workflows").mkdir()
    (root / "app.yaml").write_text("app: approvals_bench\n")
    (root / "roles.yaml").write_text(ROLES)
    for name, approval in (("plain", ""), ("guarded", APPROVAL)):
        (root / "entities" / f"{name}.yaml").write_text(ENTITY.format(name=name))
        (root / "workflows" / f"{name}.yaml").write_text(WORKFLOW.format(name=name, approval=approval))
    return root


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.approvals", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--records", type=int, default=300, help="records per round and entity")
    parser.add_argument("--database-url", help="default: an SQLite file in a temporary directory")
    args = parser.parse_args(argv)

    from crmkit.approvals import ApprovalPending
    from crmkit.permissions import SYSTEM
    from crmkit.runtime import build
    from crmkit.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        url = args.database_url or f"sqlite:///{root / 'approvals.sqlite3'}"
        rt = build(config(root / "config"), Settings(database_url=url, instance_dir=root / "instance"))
        try:
            rt.migrate()
            directory = rt.directory
            directory.create_user({"username": "boss", "roles": ["manager"]}, SYSTEM)
            directory.create_user({"username": "boss2", "roles": ["manager"]}, SYSTEM)
            rep = directory.actor(directory.create_user({"username": "rep", "roles": ["rep"], "superior_id": "boss"},
                                                        SYSTEM))
            timings = Timings()
            for entity in alternating(("plain", "guarded"), args.rounds):
                ids = [rt.records.create(entity, {"name": f"deal {i}", "amount": "500.00"}, rep)["id"]
                       for i in range(args.records)]
                for record_id in ids[::10]:  # every tenth waits for approval (a plain one moves)
                    rt.records.transition(entity, record_id, "approve", {}, rep)
                rest = [record_id for i, record_id in enumerate(ids) if i % 10]
                with timings.timer((entity, "update"), per=len(rest)):
                    for i, record_id in enumerate(rest):
                        rt.records.update(entity, record_id, {"amount": f"{600 + i}.00"}, rep)
                with timings.timer((entity, "ask"), per=len(rest)):
                    for record_id in rest:
                        answer = rt.records.transition(entity, record_id, "approve", {}, rep)
                        assert isinstance(answer, ApprovalPending) == (entity == "guarded")
        finally:
            rt.engine.dispose()
    result = {}
    for action, target in TARGETS.items():
        plain, guarded = timings.median(("plain", action)), timings.median(("guarded", action))
        ratio = guarded / plain
        met = target is None or ratio <= target
        result[action] = {"plain_ms": round(plain * 1000, 3), "guarded_ms": round(guarded * 1000, 3),
                          "ratio": round(ratio, 2), "target": target, "met": met}
        what = "update of a locked field" if action == "update" else "ask for the move (approval) / move"
        verdict = "(no target)" if target is None else f"(target ≤ {target}) {'ok' if met else 'MISSED'}"
        print(f"{what:36} plain {plain * 1000:7.3f} ms  guarded {guarded * 1000:7.3f} ms  ratio {ratio:.2f}  "
              f"{verdict}")
    print(f"database: {url.split(':')[0]}; {args.rounds} alternating rounds of {args.records} records; medians")
    return result


if __name__ == "__main__":
    main()
