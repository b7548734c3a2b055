"""crmkit-loyalty: an example plugin.

It contributes a metadata file (the ``points_transaction`` entity: points
earned or spent by a customer) and a hook that keeps ``customer.points`` equal
to the sum of the ledger, updating the customer through the records service in
the same transaction (so it is validated and audited like any change).
"""

from __future__ import annotations

from pathlib import Path

from crmkit.hookspecs import hookimpl
from crmkit.permissions import SYSTEM
from crmkit.records import RecordError

#: The version of crmkit's hook specifications this plugin is built for.
crmkit_hookspec = "1.4"

LEDGER = "points_transaction"


@hookimpl
def crmkit_metadata_dirs():
    return [str(Path(__file__).parent / "metadata")]


@hookimpl
def record_before_create(event):
    if event.entity.name != LEDGER:
        return
    for row in event.rows:
        if row.get("points") == 0:
            raise RecordError("a points transaction must earn or spend points", {"points": ["must not be 0"]})


@hookimpl
def record_after_create(event):
    if event.entity.name != LEDGER or "points" not in event.service.spec.entities["customer"].fields:
        return
    totals: dict[int, int] = {}
    for record in event.records:
        customer = record["customer_id"]
        totals[customer] = totals.get(customer, 0) + record["points"]
    for customer_id, delta in totals.items():
        current = event.service.queries.fetch(event.conn, event.service.spec.entities["customer"], customer_id,
                                              actor=SYSTEM)
        balance = (current["points"] or 0) + delta
        if balance < 0:
            raise RecordError(f"customer {customer_id} has only {current['points'] or 0} points",
                              {"points": ["not enough points"]})
        event.service.update("customer", customer_id, {"points": balance}, SYSTEM, conn=event.conn)
