"""The metadata reference (metadata/reference.md), generated from the JSON Schemas.

Run ``python -m crmkit.metadata.reference > metadata/reference.md``; a test
fails when the committed page differs or when a key has no description.
"""

from __future__ import annotations

from collections.abc import Iterator

from .schemas import SCHEMA_FILES, load_schema
from .spec import RESERVED_ENTITY_NAMES

INTRO = """# Metadata reference

Generated from the JSON Schemas in `metadata/schemas/` by
`python -m crmkit.metadata.reference`; do not edit by hand.

A config directory holds YAML (1.2) or JSON files, in any folder layout. Each
document says what it is by its first key: `app`, `entity`, `roles`,
`workflow`, `tags`, `automations`, `views` or `templates`. A file may hold several YAML
documents separated by `---`. `crmkit check CONFIG` reports every problem as
`file:line:column: message`.

Labels are a plain string or `{en: ..., zh: ...}`. Names are snake_case, and
every key is a name: a key that YAML reads as a number, a boolean, a date or
null (`1:`, `true:`, `~:`) is an error (quote it to make it text), and so is a
key given twice.
Anchors and aliases (`&columns`, `*columns`, `<<: *base`) may repeat a part of
a document. Every file is held to limits, so that checking any config takes
bounded time: at most 2 MB, values nested at most 32 levels deep, and at most
250,000 values in a document once its aliases are expanded.
"""

FIELD_TYPES = """## Field types

| type | stored as | JSON value | options |
|---|---|---|---|
| `string` | VARCHAR(max_length, default 255) | string | max_length, min_length, pattern |
| `text` | TEXT | string | max_length, min_length |
| `integer` | BIGINT | integer | min, max |
| `decimal` | NUMERIC(precision, scale) (scaled integer on SQLite) | string `"12.3400"` | precision (18), scale (4), min, max |
| `money` | NUMERIC(18, 2) (integer fen on SQLite), never a float | string `"1280.00"` | currency (CNY), min, max |
| `boolean` | BOOLEAN | true/false | |
| `date` | DATE | `"2026-01-31"` | min, max, default `today` |
| `datetime` | timestamp, UTC | `"2026-01-31T01:30:00Z"`; input without offset is read in the app's timezone | default `now` |
| `email` | VARCHAR(254) | string, domain lower-cased | |
| `phone` | VARCHAR(24) | mobile `13812345678` (spaces, dashes and +86 removed) or landline `010-12345678`, 400/800 numbers | mobile_only |
| `url` | VARCHAR(2048) | http(s) URL | |
| `enum` | VARCHAR / INTEGER | one option value | options |
| `multi_enum` | JSON list | list of option values | options |
| `ref` | INTEGER `<name>_id`, indexed, foreign key | id of the referred record | to (an entity, or `user` / `team`), on_delete (restrict, set_null, cascade) |
| `json` | JSON (JSONB on PostgreSQL) | any JSON, at most 64 KiB | |
| `region` | CHAR(6) | 6-digit administrative code (`440106` = 广东省广州市天河区); names at `/api/v1/regions` | level (province, city, district) |
| `autonumber` | VARCHAR(64), set on create | string like `HT20261123000001` | pattern: literal text, `{YYYY}` `{YY}` `{MM}` `{DD}` `{YYYYMMDD}` `{YYYYMM}` `{YYMMDD}` `{YYMM}`, and one `{seq}` or `{seq:N}`; the sequence restarts when the date part changes |

A `ref` to `user` or `team` points at the platform's own users or teams (an
engineer, an approver, a desk): `{type: ref, to: user}`. Its column has a
foreign key to the user (team) table; a write must name an active user (or a
team) that the writer's roles let them read (`user: {read: ...}`); filters take
the id (`engineer=7`, `engineer__in=7,9`) or a field of the user through the
ref (`engineer.team_id=3`, `engineer.username=wang`: id, username,
display_name, email, mobile, active, team_id, superior_id; of a team: id, name,
label, parent_id), among the users the caller may read. Users and teams are
disabled, never deleted, so such a ref has no `on_delete`.

Every entity also has the system fields `id`, `version`, `created_at`,
`updated_at`, `created_by`, `updated_by` (and `owner_id`, `team_id` when
`owned: true`); these names, `owner`, `team` and the list parameters `limit`,
`cursor`, `sort`, `fields`, `count`, `q`, `tag` are reserved.
"""


AUTOMATIONS = """### Automations: triggers, actions, runs

```yaml
automations:
  big_order:
    trigger: {updated: order, fields: [paid_amount]}
    when: "paid_amount >= 5000"
    do:
      - tag: big_order
      - create: {entity: activity, values: {customer: "= customer", subject: Thank them, content: "= 'Paid ' + order_no"}}
  at_risk_customers:
    trigger: {schedule: "0 3 * * *"}
    entity: customer
    when: "lifecycle = 'maturity' and last_order_at < now() - 180d"
    do: [{set: {lifecycle: at_risk}}]
```

| trigger | fires |
|---|---|
| `{created: E}` / `{deleted: E}` | a record of E was created / went to the recycle bin (where its actions cannot change it: `set`, `tag`, `untag`, `transition`, `assign`, `return_to_pool` are refused) |
| `{updated: E}` / `{updated: E, fields: [a, b]}` | a record of E changed (with `fields`: one of them changed) |
| `{transition: W}` / `{transition: W.MOVE}` | any move of workflow W / that move, by anyone (an automation's too) |
| `{approval_requested: W}` / `{approval_requested: W.MOVE}` | a step of the approval of a move of W (one with `approval`) opened: the first when the move is requested, each later one when the step before it is approved |
| `{approval_decided: W}` / `{approval_decided: W.MOVE, outcome: rejected}` | that approval was approved (the move is made) or rejected (with `outcome`: only that one) |
| `{tag_added: T}` / `{tag_removed: T}` | tag T went on / off a record, by hand, by an automation or by its rule |
| `{schedule: "CRON"}` | at each tick (app timezone); with `entity:`, once for every record for which `when` holds |
| `{time: "3d before contract.end_date"}` | once per record and value of the field, when the moment comes (swept every 5 minutes; a moment more than 7 days past does not fire); a changed value arms it again |

A matching write enqueues the run in its own transaction (a rolled-back write
runs nothing); the run reads the record again, evaluates `when`, then runs
the actions in order as the system, audited as `automation NAME`, through the
records service (validation, workflow rules and guards hold). The first
failing action stops the run. A write made by a run triggers further runs one
level deeper; at depth 5 the chain stops (an automation triggering itself, a
cycle) with an error in the run log.

| action | arguments | does |
|---|---|---|
| `set` | `{field: value, ...}` | updates the record (not a workflow's state field: use `transition`) |
| `create` | `{entity: E, values: {field: value}}` | creates a record of E (owned by the trigger record's owner) |
| `tag` / `untag` | `TAG` | puts a manual tag on the record / takes it off |
| `transition` | `MOVE` | makes the workflow move (its required fields and `when` must hold) |

A value is a literal (`level: gold`), or an expression in the language when
it starts with `=` (`"= today() + 3d"`, `"= amount * 0.9"`, `"= customer"`),
evaluated on the trigger record. Plugins add actions (`send`, `notify`,
`webhook`, `assign`, ... through `crmkit_automation_actions`); an unknown action
is a check error listing the known ones.

Every run is logged (automation, record, trigger, depth, the condition's
value, each action's result, the error): `GET /api/v1/automations/runs`
(admins: every run, filters `automation=`, `entity=`, `record_id=`,
`status=ok|failed|skipped|stopped`; others: `entity=E&record_id=N` of a
record they may read) and on the record's timeline.
`crmkit automations test NAME --record ID CONFIG` shows the condition's value
and what each action would do, writing nothing.
"""


MESSAGING = """
## Templates, channels and the messaging actions

A template (`templates` documents) is sandboxed Jinja. Its variables are the
record's fields (`{{ amount }}`), paths through its references
(`{{ contract.customer.name }}`), the owner and team (`{{ owner }}`,
`{{ owner.display_name }}`, `owner.email`, `owner.mobile`, `owner.username`;
`{{ team }}`), `{{ recipient.name }}` and, for an approval trigger,
`{{ approval.outcome }}` (approved / rejected: 已通过 / 已驳回 in Chinese),
`{{ approval.comment }}` (the decider's), `{{ approval.step }}` (the step's
label), `{{ approval.requester }}`, `{{ approval.decided_by }}`,
`{{ approval.transition }}` (the move's label), `{{ approval.workflow }}`
(empty text for other triggers). Each value is text formatted as the
screens show it: money with its currency (¥1,280.00), dates and moments in the
app's timezone (2026年11月30日 / Nov 30, 2026), enum options by their label,
in the message's language; a reference on its own is the title of the record
it points at. `crmkit check` reports a variable the entity does not have (for
a template with `entity`; otherwise each automation that sends it checks it
against its own entity), a syntax error and an unknown channel, at file:line.

**Channels.** `email` (SMTP: `CRMKIT_SMTP_URL` or `CRMKIT_SMTP_HOST`…, see the
README), `sms` and `wechat` (WeCom): a signed JSON POST to
`CRMKIT_SMS_GATEWAY_URL` / `CRMKIT_WECHAT_GATEWAY_URL`, and `in_app` (a
notification under the bell of the screens, in each reader's language). A
plugin adds or replaces a channel with the `crmkit_channels` hook
(docs/plugins.md). A channel with no server or gateway records each message
as "not sent: no gateway"; `crmkit check` and start-up warn once. Every
message, webhook call and notification is kept in the messages log
(`GET /api/v1/messages?entity=E&record_id=N`: for readers of the record,
with addresses masked and a text shown only when they see every field its
template reads; an admin sees all).

**Recipients** (`to`, one or a list): `owner`; `superior` (the owner's
superior); `{role: R}` (every active user with the role); `{user: FIELD}`
(a ref-to-user field, or `owner_id`, `created_by`); `record` (the record
itself, at its email or phone field); `approvers` (the users who may decide
the step an `approval_requested` trigger opened; for other triggers those
who have yet to decide the open step of the record's pending approvals);
`requester` (who asked for the approval, for an approval trigger); a ref path (`customer`,
`contract.customer`: that record's email field for email, its phone field
(`mobile` first) for SMS and WeChat). Default: `owner`. Inactive users
receive nothing; a recipient without an address is skipped and named in the
run log.

**Approval notifications** come without config: each approver of a step
that opens gets an in-app notification linking to the approvals queue
(`/app/approvals`), the requester one when the approval is approved or
rejected (with the comment), in each reader's language; a move whose
`approval` has `remind_after: 24h` reminds the approvers of a step still
undecided after each such period (swept every 5 minutes, once per period).
Mail and other channels: an automation with an approval trigger and
`send: {template: T, to: approvers}`.

**Actions** (in an automation's `do`):

| action | arguments | what it does |
|---|---|---|
| `send` | `{template: T, to: ..., channel: C, language: zh}` | renders T for the record and sends it on its channel (`channel`, if given, must be T's) to each recipient, in `language` (default: the app's first locale) |
| `notify` | `{to: ..., template: T}` or `{to: ..., title: LABEL, body: LABEL}` | an in-app notification for each user recipient (an `in_app` template, or a title and body written in place, as templates) |
| `webhook` | `{url: URL, method: POST, timeout: 10}` | sends `{app, automation, entity, record, delivery, sent_at}` as JSON (`record`: every stored field, as the API's admin view dumps it) with `X-Crmkit-Signature: sha256=HMAC-SHA256(body, CRMKIT_WEBHOOK_SECRET)` and `X-Crmkit-Delivery: KEY`; PUT and PATCH too |

Each delivery has an effect key (the action run's key, the channel and the
address): a job run again sends only what was not sent. A failed delivery (an
SMTP error, a gateway or webhook that does not answer 2xx) is recorded as
failed and makes the action fail after the others were sent, so the job
queue retries it; a webhook receiver should drop a `X-Crmkit-Delivery` it has
seen (a crash between its answer and our record of it sends once more).
"""


ASSIGNMENT_AND_POOL = """## Assignment and the customer pool (公海)

Who owns a new record, three ways; use the simplest that says the rule:

| you want | write | where |
|---|---|---|
| every new record nobody named an owner for goes to the next of a role or team | `assignment: {strategy: round_robin, role: sales_rep}` | the entity |
| the same, but by a condition, on a later event, or on a schedule (a ticket untouched for 4 h goes to the least-loaded service rep) | `- assign: {strategy: least_loaded, role: service_rep}` | an automation's `do` |
| records wait unowned until a rep takes them; idle ones come back | `pool: {claim_limit: 50, cooldown_days: 7, return_after_days: 30, return_when: ...}` | the entity |

Candidates are the *active* users of the role (and/or of the team, with the
teams below it); `round_robin` keeps its turn in the database per entity, role
and team (`crmkit_assignment_turns`, row-locked in the write's transaction, so
concurrent creates never pick the same user), `least_loaded` counts the live
records each candidate owns. `route: {field: region, teams: {'31': sales_east,
'44': sales_south}}` first narrows the candidates to the team the record's
region (longest code prefix) or other field value (exact) names. The block
applies only to records created without `owner_id`, and by default not to a
creator who is a candidate (`keep_own`). An import with `owner_id` keeps it.

A pool: records of the entity with no owner. Who sees and claims them: every
user whose roles may read and update the entity in some scope (their read
scope becomes e.g. `own+pool` in `GET /api/v1/me/permissions`). `POST
/api/v1/<entity>/<id>/claim` (a "Claim" button on the record page and the
list) makes the caller the owner, unless it has one (409 `not_in_pool`), they
own `claim_limit` records of the entity already (409 `claim_limit`), or they
released or lost this record within `cooldown_days` (409 `cooldown`); of two
concurrent claims exactly one wins. `POST /api/v1/<entity>/<id>/release` gives
a record back (its owner, or whoever may assign it); `PATCH` with `"owner_id":
null` (needs assign) and `POST` with `"owner_id": null` (create into the pool)
do too. Records whose `return_when` holds, owned at least `return_after_days`
since their owner got them, return on schedule (the `pool.return` job, daily;
`crmkit pool return [ENTITY] CONFIG` runs it now, `--dry-run` counts). Every
move is an owner change in the record's history (a scheduled return's actor
is `pool return`); automations have `return_to_pool` too.
"""


def _type_text(schema: dict) -> str:
    if "$ref" in schema:
        target = schema["$ref"].split("/")[-1]
        return {"identifier": "name", "label": "label", "field": "field"}.get(target, target)
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if "oneOf" in schema:
        return " or ".join(_type_text(s) for s in schema["oneOf"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array":
        return f"list of {_type_text(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema and isinstance(schema["additionalProperties"], dict):
        return "mapping"
    return kind or "any"


def _rows(schema: dict, prefix: str = "") -> Iterator[tuple[str, str, bool, str]]:
    required = set(schema.get("required", ()))
    for key, sub in schema.get("properties", {}).items():
        yield (prefix + key, _type_text(sub), key in required, sub.get("description", ""))
        yield from _rows(sub, prefix + key + ".")
        items = sub.get("items")
        if isinstance(items, dict) and "properties" in items:
            yield from _rows(items, prefix + key + "[].")
        extra = sub.get("additionalProperties")
        if isinstance(extra, dict) and "properties" in extra:
            yield from _rows(extra, prefix + key + ".<name>.")


def undocumented() -> list[str]:
    """Keys without a description, as schema:path; the reference promises none."""
    missing = []
    for filename in SCHEMA_FILES.values():
        schema = load_schema(filename)
        for path, _type, _required, description in _rows(schema):
            if not description.strip():
                missing.append(f"{filename}:{path}")
        for path, _type, _required, description in _rows(schema.get("$defs", {}).get("field", {}), "fields.<name>."):
            if not description.strip():
                missing.append(f"{filename}:{path}")
    return missing


def render() -> str:
    out = [INTRO]
    for kind, filename in SCHEMA_FILES.items():
        schema = load_schema(filename)
        out.append(f"## `{kind}` documents ({filename})\n")
        out.append(schema.get("description", "") + "\n")
        out.append("| key | type | required | meaning |\n|---|---|---|---|")
        for path, type_text, required, description in _rows(schema):
            if path == "fields":
                continue
            out.append(f"| `{path}` | {type_text} | {'yes' if required else ''} | {description} |")
        field = schema.get("$defs", {}).get("field")
        if field:
            out.append("")
            out.append("### Field keys (`fields.<name>.…`)\n")
            out.append("| key | type | required | meaning |\n|---|---|---|---|")
            for path, type_text, required, description in _rows(field):
                out.append(f"| `{path}` | {type_text} | {'yes' if required else ''} | {description} |")
        out.append("")
        if kind == "automations":
            out.append(AUTOMATIONS)
    out.append(FIELD_TYPES)
    names = ", ".join(f"`{n}`" for n in sorted(RESERVED_ENTITY_NAMES))
    out.append(f"Entity names are the first part of their URLs (`/app/<entity>`, `/api/v1/<entity>`), so the "
               f"names of the platform's own pages and tables are reserved: {names}, and any name starting "
               f"with `crmkit`.\n")

    out.append(MESSAGING)
    out.append(ASSIGNMENT_AND_POOL)
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")
