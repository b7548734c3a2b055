"""Saving a record with rules against saving it without: an entity with 10
validation rules and 5 formulas (``ruled``) and the same entity with none
(``plain``, the same fields, the formulas' fields as plain columns), created
and updated through the records service in-process, in alternating rounds on
the same database (SQLite by default; ``--database-url`` for PostgreSQL).

    python -m bench.rules [--rounds 8] [--records 400] [--database-url URL]

Target: ruled ≤ 1.3 × plain, for a create and for an update.
"""

from __future__ import annotations

import argparse
import tempfile
from decimal import Decimal
from pathlib import Path

from .timing import Timings, alternating

TARGET = 1.3

FIELDS = """
  name: {type: string, required: true, max_length: 100}
  email: {type: email}
  status: {type: enum, options: [draft, open, won, lost], default: draft}
  priority: {type: integer}
  quantity: {type: integer, required: true}
  unit_price: {type: money, required: true}
  discount: {type: money}
  starts_on: {type: date}
  ends_on: {type: date}
  notes: {type: text}
"""

FORMULAS = {
    "subtotal": ("money", "quantity * unit_price"),
    "tax": ("money", "round(quantity * unit_price * 0.06, 2)"),
    "total": ("money", "subtotal + tax - coalesce(discount, 0)"),
    "days": ("integer", "days_between(starts_on, ends_on)"),
    "size": ("string", "if(total > 1000, 'big', 'small')"),
}

RULES = [
    "ends_on >= starts_on",
    "quantity > 0",
    "unit_price >= 0",
    "discount is null or discount <= unit_price * quantity",
    "len(name) <= 80",
    "status in ('draft', 'open', 'won', 'lost')",
    "email is null or email contains '@'",
    "priority is null or priority between 1 and 5",
    "not (status = 'won' and quantity = 0)",
    "starts_on >= '2020-01-01'",
]


def config(root: Path) -> Path:
    (root / "entities").mkdir(parents=True)
    (root / "app.yaml").write_text("app: rules_bench\n")
    plain = "entity: plain\nfields:" + FIELDS + "".join(f"  {name}: {{type: {kind}}}\n"
                                                        for name, (kind, _) in FORMULAS.items())
    ruled = ("entity: ruled\nfields:" + FIELDS
             + "".join(f'  {name}: {{type: {kind}, formula: "{text}"}}\n' for name, (kind, text) in FORMULAS.items())
             + "validate:\n" + "".join(f'  - {{rule: "{rule}", message: rule {i}}}\n' for i, rule in enumerate(RULES)))
    (root / "entities" / "plain.yaml").write_text(plain)
    (root / "entities" / "ruled.yaml").write_text(ruled)
    return root


def record(i: int, plain: bool) -> dict:
    data = {"name": f"Deal {i}", "email": f"d{i}@example.com", "status": "open", "priority": 1 + i % 5,
            "quantity": 1 + i % 7, "unit_price": "199.90", "discount": "5.00", "starts_on": "2026-01-05",
            "ends_on": "2026-03-01", "notes": "bench"}
    if plain:  # what the formulas would store, given by the writer
        subtotal = (1 + i % 7) * Decimal("199.90")
        tax = (subtotal * Decimal("0.06")).quantize(Decimal("0.01"))
        total = subtotal + tax - Decimal("5.00")
        data.update(subtotal=str(subtotal), tax=str(tax), total=str(total), days=55,
                    size="big" if total > 1000 else "small")
    return data


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.rules", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--records", type=int, default=400, help="records created and updated per round and entity")
    parser.add_argument("--database-url", help="default: an SQLite file in a temporary directory")
    args = parser.parse_args(argv)

    from crmkit.permissions import SYSTEM
    from crmkit.runtime import build
    from crmkit.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        url = args.database_url or f"sqlite:///{root / 'rules.sqlite3'}"
        rt = build(config(root / "config"), Settings(database_url=url, instance_dir=root / "instance"))
        try:
            rt.migrate()
            timings = Timings()
            for entity in alternating(("plain", "ruled"), args.rounds):
                plain = entity == "plain"
                with timings.timer((entity, "create"), per=args.records):
                    ids = [rt.records.create(entity, record(i, plain), SYSTEM)["id"] for i in range(args.records)]
                with timings.timer((entity, "update"), per=args.records):
                    for i, record_id in enumerate(ids):
                        change = {"quantity": 2 + i % 5}
                        if plain:
                            change["subtotal"] = str((2 + i % 5) * Decimal("199.90"))
                        rt.records.update(entity, record_id, change, SYSTEM)
        finally:
            rt.engine.dispose()
    result = {}
    for action in ("create", "update"):
        plain, ruled = timings.median(("plain", action)), timings.median(("ruled", action))
        ratio = ruled / plain
        result[action] = {"plain_ms": round(plain * 1000, 3), "ruled_ms": round(ruled * 1000, 3),
                          "ratio": round(ratio, 2), "target": TARGET, "met": ratio <= TARGET}
        print(f"{action:6}  plain {plain * 1000:7.3f} ms  ruled (10 rules, 5 formulas) {ruled * 1000:7.3f} ms  "
              f"ratio {ratio:.2f}  (target ≤ {TARGET}) {'ok' if ratio <= TARGET else 'MISSED'}")
    print(f"database: {url.split(':')[0]}; {args.rounds} alternating rounds of {args.records} records; medians")
    return result


if __name__ == "__main__":
    main()
