"""Realistic demo data for any config: Chinese names, mobiles, companies, regions.

Values are chosen by field type, and by field name where a name says more
(``name`` of a customer is a person, of a product a product). Records are made
in reference order and written through the records service in bulk, as the
system. The same seed and anchor date give the same data.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from faker import Faker

from . import regions
from .metadata.spec import EntitySpec, FieldSpec
from .records import SYSTEM
from .runtime import Runtime
from .sqltypes import UTC

CHUNK = 2000
#: Records per customer, by entity name; entities not named get SIZE_DEFAULT.
PER_CUSTOMER = {"customer": 1.0, "order": 2.0, "order_line": 4.0, "activity": 1.5, "contact": 0.6,
                "opportunity": 0.3, "contract": 0.15, "receivable_plan": 0.3, "payment": 0.2,
                "invoice": 0.12, "ticket": 0.2, "feedback": 0.1, "return_visit": 0.1, "lead": 0.5}
SIZE_DEFAULT = 0.1
FIXED = {"product_category": 12, "product": 120, "campaign": 24}
PRODUCT_WORDS = ["有机咖啡豆", "挂耳咖啡", "高钙奶粉", "益生菌", "维生素C片", "燕麦片", "蜂蜜", "坚果礼盒",
                 "婴儿纸尿裤", "保湿面霜", "洗发水", "电动牙刷", "蓝牙耳机", "运动水杯", "茶叶礼盒", "钙片"]
CATEGORY_WORDS = ["咖啡", "母婴", "保健品", "美妆", "个护", "数码", "食品", "饮料", "家居", "茶叶", "礼盒", "运动"]
CAMPAIGN_WORDS = ["双十一大促", "618年中庆", "会员日", "新品发布", "周年庆", "春节年货节", "开学季", "直播专场"]
MOBILE_PREFIXES = ["130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "155",
                   "156", "157", "158", "159", "166", "176", "177", "180", "181", "182", "185", "186", "187",
                   "188", "189", "191", "198", "199"]
CREDIT_CODE_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
CREDIT_CODE_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]


def credit_code(rng: random.Random) -> str:
    """A 统一社会信用代码 with a correct check character (GB 32100-2015)."""
    body = rng.choice(["91", "92", "93"]) + rng.choice(regions.all_codes("district") or ["110101"])
    body += "".join(rng.choice(CREDIT_CODE_CHARS) for _ in range(9))
    total = sum(CREDIT_CODE_CHARS.index(c) * w for c, w in zip(body, CREDIT_CODE_WEIGHTS))
    return body + CREDIT_CODE_CHARS[(31 - total % 31) % 31]


class _Generator:
    def __init__(self, rt: Runtime, random_seed: int, today: dt.date) -> None:
        self.rt = rt
        self.rng = random.Random(random_seed)
        self.faker = Faker("zh_CN")
        self.faker.seed_instance(random_seed)
        self.today = today
        self.now = dt.datetime.combine(today, dt.time(18, 0), tzinfo=UTC)
        self.people = [self.faker.name() for _ in range(3000)]
        self.companies = [self.faker.company() for _ in range(800)]
        self.streets = [self.faker.street_address() for _ in range(800)]
        self.sentences = [self.faker.sentence(nb_words=12) for _ in range(600)]
        self.districts = regions.all_codes("district")
        self.used_mobiles: set[str] = set()
        self.used: dict[tuple[str, str], set] = defaultdict(set)
        self.counters: dict[str, int] = defaultdict(int)

    def mobile(self) -> str:
        while True:
            number = self.rng.choice(MOBILE_PREFIXES) + f"{self.rng.randrange(10**8):08d}"
            if number not in self.used_mobiles:
                self.used_mobiles.add(number)
                return number

    def distinct(self, entity: EntitySpec, f: FieldSpec, value: Any) -> Any:
        """A unique field's value made distinct within its entity (a pool of
        sample texts repeats) by a numbered suffix that keeps it valid."""
        used = self.used[(entity.name, f.name)]
        value = str(value).strip()  # as the field type will store it
        candidate, n = value, 1
        while candidate in used:
            n += 1
            suffix = f"-{n}"
            if f.type == "email":
                local, _, domain = str(value).rpartition("@")
                candidate = f"{local}{suffix}@{domain}"
            else:
                text = str(value)
                candidate = text[: max(1, (f.max_length or 255) - len(suffix))] + suffix
        used.add(candidate)
        return candidate

    def moment(self, days_back: int = 720) -> dt.datetime:
        seconds = self.rng.randrange(days_back * 86400)
        return self.now - dt.timedelta(seconds=seconds)

    def value(self, entity: EntitySpec, f: FieldSpec, ids: dict[str, list[int]]) -> Any:
        rng, name = self.rng, f.name
        if f.type == "ref":
            pool = ids.get(f.to) or []
            if f.to == entity.name or not pool:
                return None
            return rng.choice(pool)
        if f.type in ("string", "text"):
            return self.text(entity, f)
        if f.type == "phone":
            return self.mobile()
        if f.type == "email":
            return f"{self.faker.user_name()}{rng.randrange(10**6)}@{rng.choice(['qq.com', '163.com', 'example.cn'])}"
        if f.type == "url":
            return f"https://www.example.cn/{rng.randrange(10**6)}"
        if f.type == "region":
            code = rng.choice(self.districts)
            level = regions.LEVELS.index(f.level or "district")
            return regions.path(code)[min(level, len(regions.path(code)) - 1)].code
        if f.type == "enum":
            return rng.choice(f.option_values)
        if f.type == "multi_enum":
            return rng.sample(list(f.option_values), k=rng.randint(0, min(3, len(f.option_values))))
        if f.type in ("money", "decimal"):
            low = Decimal(str(f.min)) if f.min is not None else Decimal(0)
            high = Decimal(str(f.max)) if f.max is not None else Decimal(rng.choice([200, 800, 3000, 20000]))
            scale = 2 if f.type == "money" else (4 if f.scale is None else f.scale)
            cents = rng.randint(int(low * 100), int(high * 100))
            return (Decimal(cents) / 100).quantize(Decimal(1).scaleb(-scale))
        if f.type == "integer":
            low = int(f.min) if f.min is not None else 0
            high = int(f.max) if f.max is not None else 100
            return rng.randint(low, high)
        if f.type == "boolean":
            return rng.random() < 0.3
        if f.type == "date":
            if "birth" in name:
                return self.today - dt.timedelta(days=rng.randint(18 * 365, 70 * 365))
            return (self.moment() + dt.timedelta(days=rng.randint(0, 120))).date()
        if f.type == "datetime":
            return self.moment()
        if f.type == "json":
            return {}
        return None

    def text(self, entity: EntitySpec, f: FieldSpec) -> str | None:
        rng, name, ename = self.rng, f.name, entity.name
        if f.pattern:
            if "credit" in name or "tax" in name:
                return credit_code(rng)
            return None
        if name in ("name", "contact_name", "full_name"):
            if ename == "product":
                return f"{rng.choice(PRODUCT_WORDS)} {rng.choice(['250g', '500g', '1kg', '30粒', '60片', '礼盒装'])}"
            if ename == "product_category":
                self.counters[ename] += 1
                return CATEGORY_WORDS[(self.counters[ename] - 1) % len(CATEGORY_WORDS)]
            if ename == "campaign":
                return f"{rng.choice(['2025', '2026'])} {rng.choice(CAMPAIGN_WORDS)}"
            if ename in ("opportunity", "contract"):
                return f"{rng.choice(self.companies)}{rng.choice(['采购项目', '年度合作', '门店供货'])}"
            return rng.choice(self.people)
        if "company" in name or name in ("title", "invoice_title"):
            return rng.choice(self.companies)
        if "address" in name or "street" in name:
            return rng.choice(self.streets)
        if name in ("bank", "bank_name"):
            return rng.choice(["中国工商银行", "中国建设银行", "招商银行", "中国银行", "交通银行"])
        if "account" in name:
            return "".join(rng.choice("0123456789") for _ in range(16))
        if "subject" in name:
            return rng.choice(["物流太慢", "商品破损", "发票未收到", "会员积分有误", "咨询产品用法", "退换货申请"])
        if f.type == "text" or name in ("notes", "content", "description", "remark"):
            return rng.choice(self.sentences)
        length = f.max_length or 255
        return rng.choice(self.sentences)[: max(1, min(length, 30))]


def _order(spec) -> list[EntitySpec]:
    """Entities so that every ref target comes before its referrers (cycles broken arbitrarily)."""
    done: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in done or name in visiting:
            return
        visiting.add(name)
        for f in spec.entities[name].user_fields:
            if f.type == "ref" and f.to != name:
                visit(f.to)
        visiting.discard(name)
        done.append(name)

    for name in spec.entities:
        visit(name)
    return [spec.entities[n] for n in done]


def _count(entity: EntitySpec, size: int) -> int:
    if entity.name in FIXED:
        return FIXED[entity.name]
    return max(1, int(size * PER_CUSTOMER.get(entity.name, SIZE_DEFAULT)))


def seed(rt: Runtime, *, size: int = 200, random_seed: int = 42, if_empty: bool = False,
         today: dt.date | None = None) -> dict[str, int] | None:
    """Create demo data; returns counts per entity (None when skipped by if_empty)."""
    if if_empty:
        with rt.engine.connect() as conn:
            for entity in rt.spec.entities.values():
                table = rt.tables.entities[entity.name]
                if conn.execute(sa.select(table.c.id).limit(1)).first() is not None:
                    return None
    gen = _Generator(rt, random_seed, today or dt.date.today())
    ids: dict[str, list[int]] = {}
    counts: dict[str, int] = {}
    for entity in _order(rt.spec):
        total = _count(entity, size)
        created: list[int] = []
        fields = [f for f in entity.user_fields if f.type != "autonumber"]
        for start in range(0, total, CHUNK):
            batch = []
            for _ in range(min(CHUNK, total - start)):
                record = {}
                for f in fields:
                    if not f.required and f.type != "ref" and gen.rng.random() < 0.1:
                        continue  # real data has gaps
                    value = gen.value(entity, f, ids)
                    if value is None and f.required:
                        value = f.default
                    if value is not None and f.unique and f.type in ("string", "text", "email", "url"):
                        value = gen.distinct(entity, f, value)
                    if value is not None:
                        record[f.name] = _jsonable(value, rt, f)
                batch.append(record)
            rows = rt.records.create_many(entity.name, batch, SYSTEM)
            created.extend(row["id"] for row in rows)
        ids[entity.name] = created
        counts[entity.name] = len(created)
    return counts


def _jsonable(value: Any, rt: Runtime, f: FieldSpec) -> Any:
    """Values as a client would send them, so the records service checks them as any input."""
    if isinstance(value, (dt.datetime, dt.date, Decimal)):
        return rt.field_types[f.type].dump(f, value)
    return value
