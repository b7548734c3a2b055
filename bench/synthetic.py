"""Synthetic configs for the config-load benchmark: N entities x 30 fields.

Each entity has every kind of field (strings with patterns, enums with
labelled options, multi-enums, money, dates, a unique phone, an auto-number,
three refs to other entities, ...), a list layout, a form in sections with
visible_if conditions, an extra index, one-to-many relations back from the
entities that refer to it and a many-to-many relation. Beside the entities:
a workflow for every fifth entity, tags, saved views and roles naming every
entity and some of its fields, as a big real config would.
"""

from __future__ import annotations

from pathlib import Path

import yaml

WORDS = ["account", "asset", "branch", "campaign", "case", "channel", "coupon", "dealer", "delivery", "device",
         "event", "invoice", "lead", "member", "order", "partner", "payment", "project", "quote", "refund",
         "region_office", "return_note", "service", "shipment", "shop", "store_visit", "supplier", "survey",
         "task", "visit"]
STATUS = ["draft", "active", "on_hold", "done", "cancelled"]
STATUS_ZH = ["草稿", "进行中", "暂停", "完成", "已取消"]


def entity_names(count: int) -> list[str]:
    return [f"{WORDS[i % len(WORDS)]}_{i:03d}" for i in range(count)]


def _label(en: str, zh: str) -> dict:
    return {"en": en, "zh": zh}


def _entity(i: int, names: list[str], back_refs: dict[str, list[tuple[str, str]]]) -> dict:
    n = len(names)
    me = names[i]
    fields: dict = {
        "name": {"type": "string", "required": True, "max_length": 100, "label": _label("Name", "名称")},
        "code": {"type": "autonumber", "pattern": f"E{i:03d}{{YYYYMMDD}}{{seq:5}}", "label": _label("Number", "编号")},
        "status": {"type": "enum", "default": "draft", "label": _label("Status", "状态"),
                   "options": [{"value": v, "label": _label(v.replace("_", " ").title(), z)}
                               for v, z in zip(STATUS, STATUS_ZH)]},
        "category": {"type": "enum", "options": ["a", "b", "c", "d"], "label": _label("Category", "分类")},
        "labels": {"type": "multi_enum", "options": ["vip", "new", "risk", "partner", "online"],
                 "label": _label("Labels", "标记")},
        "mobile": {"type": "phone", "unique": True, "label": _label("Mobile", "手机")},
        "email": {"type": "email", "label": _label("Email", "邮箱")},
        "website": {"type": "url", "label": _label("Website", "网站")},
        "region": {"type": "region", "label": _label("Region", "省市区")},
        "address": {"type": "string", "max_length": 200, "label": _label("Address", "地址")},
        "amount": {"type": "money", "min": 0, "default": 0, "label": _label("Amount", "金额")},
        "quantity": {"type": "integer", "min": 0, "max": 100000, "label": _label("Quantity", "数量")},
        "rate": {"type": "decimal", "precision": 10, "scale": 4, "label": _label("Rate", "比率")},
        "active": {"type": "boolean", "default": True, "label": _label("Active", "启用")},
        "start_on": {"type": "date", "label": _label("Start", "开始日期")},
        "end_on": {"type": "date", "label": _label("End", "结束日期")},
        "happened_at": {"type": "datetime", "index": True, "label": _label("Happened at", "发生时间")},
        "notes": {"type": "text", "max_length": 2000, "label": _label("Notes", "备注")},
        "extra": {"type": "json", "label": _label("Extra data", "扩展数据")},
        "credit_code": {"type": "string", "max_length": 18,
                        "pattern": r"^[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}$",
                        "label": _label("Credit code", "信用代码")},
    }
    refs = {"parent": (i - 1) % n, "owner_unit": (i * 7 + 3) % n, "related": (i + n // 2 + 1) % n}
    for fname, target in refs.items():
        fields[fname] = {"type": "ref", "to": names[target], "on_delete": "set_null",
                         "label": _label(fname.replace("_", " ").title(), "关联")}
        back_refs.setdefault(names[target], []).append((me, fname))
    k = 0
    while len(fields) < 30:
        k += 1
        kind = k % 3
        if kind == 0:
            fields[f"attr_{k}"] = {"type": "string", "max_length": 64, "label": _label(f"Attribute {k}", f"属性{k}")}
        elif kind == 1:
            fields[f"score_{k}"] = {"type": "integer", "min": 0, "max": 100, "default": 0,
                                    "label": _label(f"Score {k}", f"评分{k}")}
        else:
            fields[f"level_{k}"] = {"type": "enum", "options": ["low", "mid", "high"],
                                   "label": _label(f"Level {k}", f"级别{k}")}
    names_all = list(fields)
    return {
        "entity": me,
        "label": _label(me.replace("_", " ").title(), f"对象{i}"),
        "plural": _label(me.replace("_", " ").title() + "s", f"对象{i}"),
        "description": f"Synthetic entity number {i}.",
        "title": "name",
        "owned": i % 2 == 0,
        "fields": fields,
        "indexes": [{"fields": ["status", "happened_at"]}, {"fields": ["category", "region"]}],
        "list": {"columns": ["name", "code", "status", "amount", "happened_at", "parent"],
                 "sort": "-created_at" if i % 3 else "name", "search": ["name", "mobile", "email"]},
        "form": [
            {"section": _label("Basics", "基本信息"), "fields": names_all[:10]},
            {"section": _label("Details", "详细信息"), "visible_if": "status != 'draft'", "fields": names_all[10:20]},
            {"section": _label("More", "更多"), "visible_if": "amount > 1000 and category == 'a'", "columns": 3,
             "fields": names_all[20:]},
        ],
    }


def generate(root: Path, count: int) -> Path:
    """Write a config of ``count`` entities into ``root`` (which must be empty or absent)."""
    root = Path(root)
    (root / "entities").mkdir(parents=True, exist_ok=True)
    (root / "workflows").mkdir(exist_ok=True)
    names = entity_names(count)
    back_refs: dict[str, list[tuple[str, str]]] = {}
    docs = [_entity(i, names, back_refs) for i in range(count)]
    for i, doc in enumerate(docs):
        relations = {}
        for other, fname in back_refs.get(doc["entity"], ()):
            relations[f"{other}_by_{fname}"] = {"kind": "one_to_many", "entity": other, "field": fname}
        relations["linked"] = {"kind": "many_to_many", "entity": names[(i + 1) % count],
                               "label": _label("Linked", "关联对象")}
        doc["relations"] = relations
        _dump(root / "entities" / f"{doc['entity']}.yaml", doc)
    _dump(root / "app.yaml", {"app": f"synthetic_{count}", "label": _label(f"Synthetic {count}", "合成配置"),
                              "locales": ["zh", "en"], "timezone": "Asia/Shanghai"})
    for i in range(0, count, 5):
        _dump(root / "workflows" / f"{names[i]}_status.yaml", {
            "workflow": f"{names[i]}_status", "entity": names[i], "field": "status", "states": STATUS,
            "initial": "draft",
            "transitions": [
                {"name": "activate", "from": "draft", "to": "active"},
                {"name": "pause", "from": "active", "to": "on_hold"},
                {"name": "resume", "from": "on_hold", "to": "active"},
                {"name": "finish", "from": ["active", "on_hold"], "to": "done", "require": ["amount", "end_on"]},
                {"name": "cancel", "from": "*", "to": "cancelled"},
            ]})
    _dump(root / "tags.yaml", {"tags": {f"big_{name}": {"entity": name, "label": _label("Big", "大额"),
                                                         "rule": "amount > 10000", "use": "Big ones get a call."}
                                        for name in names}})
    views = {}
    for name in names:
        views[f"{name}_open"] = {"entity": name, "label": _label("Open", "进行中"), "filter": {"status": "active"},
                                 "sort": "-happened_at", "columns": ["name", "code", "amount", "happened_at"]}
        views[f"{name}_board"] = {"entity": name, "kind": "board", "group_by": "status",
                                  "columns": ["name", "amount", "parent"]}
    _dump(root / "views.yaml", {"views": views})
    _dump(root / "roles.yaml", {"roles": {
        "sales_rep": {"label": _label("Sales rep", "销售"),
                      "entities": {name: {"read": "own", "create": True, "update": "own"} for name in names},
                      "fields": {f"{name}.amount": "read" for name in names}},
        "manager": {"label": _label("Manager", "经理"), "entities": {"*": {"read": "all", "update": "team"}},
                    "fields": {f"{name}.credit_code": "masked" for name in names}},
        "auditor": {"label": _label("Auditor", "审计"), "entities": {name: {"read": "all"} for name in names}},
    }})
    return root


def _flow(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, sort_keys=False,
                          width=10**9).strip().removesuffix("...").strip()


def _dump(path: Path, data: dict) -> None:
    """Write YAML the way the sample configs are written: one line per field,
    relation, index or form section (flow mappings), block style above that."""
    lines = []
    for key, value in data.items():
        if isinstance(value, dict) and key in ("fields", "relations", "tags", "views", "roles"):
            lines.append(f"{key}:")
            for name, item in value.items():
                options = item.get("options") if isinstance(item, dict) else None
                if options and isinstance(options[0], dict):
                    lines.append(f"  {name}:")
                    for k, v in item.items():
                        if k == "options":
                            lines.append("    options:")
                            lines.extend(f"      - {_flow(o)}" for o in v)
                        else:
                            lines.append(f"    {k}: {_flow(v)}")
                elif key == "roles":
                    lines.append(f"  {name}:")
                    for k, v in item.items():
                        if k in ("entities", "fields"):
                            lines.append(f"    {k}:")
                            lines.extend(f"      {_flow(sub_key)}: {_flow(sub)}" for sub_key, sub in v.items())
                        else:
                            lines.append(f"    {k}: {_flow(v)}")
                else:
                    lines.append(f"  {name}: {_flow(item)}")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            lines.append(f"{key}:")
            lines.extend(f"  - {_flow(item)}" for item in value)
        elif isinstance(value, dict) and key == "list":
            lines.append(f"{key}:")
            lines.extend(f"  {k}: {_flow(v)}" for k, v in value.items())
        else:
            lines.append(f"{key}: {_flow(value)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
