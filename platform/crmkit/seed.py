"""Realistic demo data for any config: Chinese names, mobiles, companies, regions.

Values are chosen by field type, and by field name where a name says more
(``name`` of a customer is a person, of a product a product). Records are made
in reference order and written through the records service in bulk, as the
system. The same seed and anchor date give the same data.

Before the records, a demo organisation: a team tree and one user per role of
the config (those of the sample config: sales manager, two sales reps, service,
marketing, analyst, executive, finance), all with the demo password. Owned
records are spread over the users whose work they are (customers, contacts,
opportunities over the sales reps, tickets over service), so that logging in
as each user shows their role's window onto the same data. An entity with a
pool (公海) keeps about POOL_SHARE of its records without an owner, in the pool.
"""

from __future__ import annotations

import datetime as dt
import gc
import random
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from faker import Faker

from . import regions
from .errors import NotFound
from .gcpause import paused_gc
from .metadata.spec import EntitySpec, FieldSpec
from .permissions import SYSTEM
from .runtime import Runtime
from .sqltypes import UTC

CHUNK = 10000
#: The demo users' password unless CRMKIT_DEMO_PASSWORD says otherwise (a demo, not a secret).
DEMO_PASSWORD = "crmkit-demo"
#: The demo organisation: team name, label, parent.
DEMO_TEAMS = (("hq", "总部", None), ("sales", "销售部", "hq"), ("sales_east", "华东销售组", "sales"),
              ("sales_south", "华南销售组", "sales"), ("service", "客服部", "hq"), ("marketing", "市场部", "hq"),
              ("finance", "财务部", "hq"), ("analytics", "数据分析", "hq"))
#: Demo users: user name, display name, role, team, superior. A user whose role
#: the config does not define is left out (the admin comes from create-admin).
DEMO_USERS = (("executive", "高总", "executive", "hq", None),
              ("manager", "王经理", "sales_manager", "sales", "executive"),
              ("rep_east", "李华东", "sales_rep", "sales_east", "manager"),
              ("rep_south", "陈华南", "sales_rep", "sales_south", "manager"),
              ("service", "赵客服", "service_rep", "service", None),
              ("marketer", "孙市场", "marketer", "marketing", None),
              ("analyst", "周分析", "analyst", "analytics", None),
              ("finance", "钱财务", "finance", "finance", None))
#: The teams extra sales reps (seed --users N) are spread over.
EXTRA_REP_TEAMS = ("sales_east", "sales_south")
#: Whose work the records of an owned entity are, by role; entities not named are sales'.
OWNER_ROLES = {"ticket": ("service_rep",), "return_visit": ("service_rep",), "lead": ("marketer", "sales_rep")}
SALES_ROLES = ("sales_rep",)
#: The share of the records of an entity with a ``pool`` left without an owner, in the pool.
POOL_SHARE = 0.15
#: Records per customer, by entity name; entities not named get SIZE_DEFAULT.
#: A retail shop's book: most customers are people who buy about twice (two
#: lines an order) and get a follow-up; contracts, invoices and tickets are few.
PER_CUSTOMER = {"customer": 1.0, "order": 1.6, "order_line": 3.2, "activity": 1.0, "contact": 0.3,
                "opportunity": 0.1, "contract": 0.05, "receivable_plan": 0.1, "payment": 0.08,
                "invoice": 0.05, "ticket": 0.1, "feedback": 0.05, "return_visit": 0.05, "lead": 0.3}
SIZE_DEFAULT = 0.05
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


CREDIT_CODE_VALUES = {c: i for i, c in enumerate(CREDIT_CODE_CHARS)}


def credit_code(rng: random.Random, districts: list[str]) -> str:
    """A 统一社会信用代码 with a correct check character (GB 32100-2015)."""
    body = rng.choice(["91", "92", "93"]) + rng.choice(districts or ["110101"])
    body += "".join(rng.choices(CREDIT_CODE_CHARS, k=9))
    total = sum(CREDIT_CODE_VALUES[c] * w for c, w in zip(body, CREDIT_CODE_WEIGHTS))
    return body + CREDIT_CODE_CHARS[(31 - total % 31) % 31]


#: Date and date-time fields whose names say they may lie ahead (a due date, a
#: next follow-up); every other date is in the past.
AHEAD = ("due", "expected", "next", "end", "expire", "deadline", "planned", "remind")
#: Order statuses whose money was received (counted in a customer's total spent).
PAID = frozenset({"paid", "shipped", "completed"})
#: A WeChat ID: a letter, then 5 to 19 letters, digits, _ or -.
WECHAT_ID_LETTERS = "abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class Rollup:
    """A parent's field that sums up (or counts, or takes the latest of) its
    children: ``parent.field = how(child.of for child whose via is parent)``.
    Applied where the config has these entities and fields (the sample's)."""

    parent: str
    field: str
    child: str
    via: str
    how: str  # sum | count | max
    of: str | None = None
    when: Callable[[dict], bool] | None = None


ROLLUPS = (
    Rollup("order", "total", "order_line", "order", "sum", "amount"),
    Rollup("customer", "order_count", "order", "customer", "count", when=lambda record: record.get("status") in PAID),
    Rollup("customer", "total_spent", "order", "customer", "sum", "paid_amount"),
    Rollup("customer", "last_order_at", "order", "customer", "max", "ordered_at"),
    Rollup("receivable_plan", "paid_amount", "payment", "receivable_plan", "sum", "amount"),
    Rollup("contract", "received_amount", "payment", "contract", "sum", "amount"),
    Rollup("campaign", "actual_revenue", "order", "campaign", "sum", "paid_amount"),
    Rollup("campaign", "actual_revenue", "opportunity", "campaign", "sum", "amount",
           when=lambda record: record.get("stage") == "won"),
)


#: Children made with their parent, besides those of the rollups: (parent, child, via).
FAMILIES = (("contract", "receivable_plan", "contract"), ("receivable_plan", "payment", "receivable_plan"))


class _Generator:
    """Values for fields, a whole column at a time (a seed makes millions)."""

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
        self.latin = [self.faker.user_name() for _ in range(1000)]
        self.districts = regions.all_codes("district")
        self.regions_by_level: dict[str, list[str]] = {}
        self.used_mobiles: set[str] = set()
        self.used: dict[tuple[str, str], set] = defaultdict(set)

    def region_codes(self, level: str) -> list[str]:
        """Codes to draw from at ``level``: each district's ancestor there, so that
        populous provinces come up as often as they have districts."""
        if level not in self.regions_by_level:
            depth = regions.LEVELS.index(level)
            self.regions_by_level[level] = [chain[min(depth, len(chain) - 1)].code
                                            for chain in map(regions.path, self.districts)]
        return self.regions_by_level[level]

    def mobiles(self, n: int) -> list[str]:
        rng, used, made = self.rng, self.used_mobiles, []
        for prefix, rest in zip(rng.choices(MOBILE_PREFIXES, k=n), rng.choices(range(10**8), k=n)):
            number = f"{prefix}{rest:08d}"
            while number in used:
                number = f"{prefix}{rng.randrange(10**8):08d}"
            used.add(number)
            made.append(number)
        return made

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

    def moments(self, n: int, days_back: int = 720, days_ahead: int = 0) -> list[dt.datetime]:
        now, delta = self.now, dt.timedelta
        seconds = range(-days_back * 86400, days_ahead * 86400 + 1)
        return [now + delta(seconds=s) for s in self.rng.choices(seconds, k=n)]

    def column(self, entity: EntitySpec, f: FieldSpec, ids: dict[str, list[int]]) -> Callable[[int], list]:
        """A function making ``n`` values for field ``f``: the choice of how is
        made once per field, not once per value."""
        rng = self.rng
        if f.type == "ref":
            pool = ids.get(f.to or "") or []
            if f.to == entity.name or not pool:
                return lambda n: [None] * n
            return lambda n: rng.choices(pool, k=n)
        if f.type in ("string", "text"):
            return self.text_column(entity, f)
        if f.type == "phone":
            return self.mobiles
        if f.type == "email":
            domains = ["qq.com", "163.com", "example.cn"]
            return lambda n: [f"{name}{number}@{domain}" for name, number, domain in zip(
                rng.choices(self.latin, k=n), rng.choices(range(10**6), k=n), rng.choices(domains, k=n))]
        if f.type == "url":
            return lambda n: [f"https://www.example.cn/{number}" for number in rng.choices(range(10**6), k=n)]
        if f.type == "region":
            codes = self.region_codes(f.level or "district")
            return lambda n: rng.choices(codes, k=n)
        if f.type == "enum":
            options = list(f.option_values)
            return lambda n: rng.choices(options, k=n)
        if f.type == "multi_enum":
            options = list(f.option_values)
            most = min(3, len(options))
            return lambda n: [rng.sample(options, k=rng.randint(0, most)) for _ in range(n)]
        if f.type in ("money", "decimal"):
            low = int(Decimal(str(f.min)) * 100) if f.min is not None else 0
            highs = ([int(Decimal(str(f.max)) * 100)] if f.max is not None
                     else [low + cents for cents in (20000, 80000, 300000, 2000000)])
            scale = 2 if f.type == "money" else (4 if f.scale is None else f.scale)
            exponent = Decimal(1).scaleb(-scale)
            spans = [high - low + 1 for high in highs]
            draw = rng.random

            def amounts(n: int) -> list[Decimal]:
                cents = [low + int(draw() * span) for span in rng.choices(spans, k=n)]
                if scale == 2:
                    return [Decimal(c).scaleb(-2) for c in cents]  # exact, two digits after the point
                return [Decimal(c).scaleb(-2).quantize(exponent) for c in cents]

            return amounts
        if f.type == "integer":
            low = int(f.min) if f.min is not None else 0
            high = int(f.max) if f.max is not None else low + 100
            return lambda n: rng.choices(range(low, high + 1), k=n)
        if f.type == "boolean":
            return lambda n: rng.choices((True, False), cum_weights=(3, 10), k=n)
        if f.type in ("date", "datetime"):
            return self.date_column(f)
        if f.type == "json":
            return lambda n: [{} for _ in range(n)]
        return lambda n: [None] * n

    def date_column(self, f: FieldSpec) -> Callable[[int], list]:
        """Birthdays of adults (of babies, for a baby's), dates in the past but for
        the fields whose names say they lie ahead (a due date, a next follow-up)."""
        rng, today = self.rng, self.today
        if "birth" in f.name:
            years = (0, 6) if any(word in f.name for word in ("baby", "child", "kid")) else (18, 70)
            low, high = years[0] * 365 + 1, years[1] * 365 - 1
            dates = lambda n: [today - dt.timedelta(days=d) for d in rng.choices(range(low, high + 1), k=n)]  # noqa: E731
        else:
            ahead = 120 if any(word in f.name for word in AHEAD) else 0
            moments = lambda n: self.moments(n, days_ahead=ahead)  # noqa: E731
            if f.type == "datetime":
                return moments
            dates = lambda n: [moment.astimezone(UTC).date() for moment in moments(n)]  # noqa: E731
        if f.type == "datetime":
            return lambda n: [dt.datetime.combine(day, dt.time(9), tzinfo=UTC) for day in dates(n)]
        return dates

    def text_column(self, entity: EntitySpec, f: FieldSpec) -> Callable[[int], list]:
        """Texts for a string or text field, by what its name says it holds."""
        rng, name, ename = self.rng, f.name, entity.name

        def pool(values: list[str]) -> Callable[[int], list]:
            return lambda n: rng.choices(values, k=n)

        if f.pattern:
            if "credit" in name or "tax" in name:
                return lambda n: [credit_code(rng, self.districts) for _ in range(n)]
            return lambda n: [None] * n
        if "wechat" in name or "weixin" in name:
            return self.wechat_ids(f.max_length or 20)
        if name in ("name", "contact_name", "full_name"):
            if ename == "product":
                return pool([f"{word} {size}" for word in PRODUCT_WORDS
                             for size in ("250g", "500g", "1kg", "30粒", "60片", "礼盒装")])
            if ename == "product_category":
                return lambda n: [CATEGORY_WORDS[i % len(CATEGORY_WORDS)] for i in range(n)]
            if ename == "campaign":
                return pool([f"{year} {word}" for year in ("2025", "2026") for word in CAMPAIGN_WORDS])
            if ename in ("opportunity", "contract"):
                kinds = ("采购项目", "年度合作", "门店供货")
                return pool([f"{company}{kind}" for company in self.companies for kind in kinds])
            return pool(self.people)
        if "company" in name or name in ("title", "invoice_title"):
            return pool(self.companies)
        if "address" in name or "street" in name:
            return pool(self.streets)
        if name in ("bank", "bank_name"):
            return pool(["中国工商银行", "中国建设银行", "招商银行", "中国银行", "交通银行"])
        if "account" in name:
            return lambda n: [str(number) for number in rng.choices(range(10**15, 10**16), k=n)]
        if "subject" in name:
            return pool(["物流太慢", "商品破损", "发票未收到", "会员积分有误", "咨询产品用法", "退换货申请"])
        if f.type == "text" or name in ("notes", "content", "description", "remark"):
            return pool(self.sentences)
        length = max(1, min(f.max_length or 255, 30))
        return pool([sentence[:length] for sentence in self.sentences])

    def wechat_ids(self, longest: int) -> Callable[[int], list]:
        """WeChat IDs as WeChat allows them: a letter first, then 5 to 19 letters,
        digits, _ or - (a user name, often with a birth year or a number)."""
        rng, longest = self.rng, min(20, longest)

        def make(n: int) -> list[str]:
            made = []
            for base in rng.choices(self.latin, k=n):
                text = "".join(c for c in base.lower() if c.isascii() and (c.isalnum() or c in "_-"))
                if not text or not text[0].isalpha():
                    text = rng.choice(WECHAT_ID_LETTERS) + text
                text = (text + rng.choice(("", "_", "-")) + str(rng.randrange(10, 10**4)))[:longest]
                made.append(text + "x" * (6 - len(text)))
            return made

        return make


@dataclass
class DemoOrg:
    """The demo users, by role, for the seed to hand records to."""

    #: user name -> (id, roles), in the order made
    users: dict[str, tuple[int, tuple[str, ...]]] = field(default_factory=dict)
    #: user names made by this seed (the others existed and keep their password)
    created: list[str] = field(default_factory=list)
    #: user names of the extra sales reps (no password: see demo_org)
    extra: list[str] = field(default_factory=list)
    password: str = DEMO_PASSWORD

    def pool(self, entity: str) -> tuple[int, ...]:
        """The ids of the users who own records of ``entity`` (empty: nobody)."""
        for roles in (OWNER_ROLES.get(entity, SALES_ROLES), SALES_ROLES):
            ids = tuple(uid for uid, user_roles in self.users.values() if set(roles) & set(user_roles))
            if ids:
                return ids
        return ()


def demo_org(rt: Runtime, *, extra_reps: int = 0, password: str = DEMO_PASSWORD,
             random_seed: int = 42) -> DemoOrg:
    """Make the demo teams and users that are missing (existing ones are kept
    as they are). ``extra_reps`` more sales reps rep001, rep002, ... are spread
    over the sales teams, without a password: hashing one takes a good part of
    a second (Argon2, on purpose), too long for a benchmark's fifty; give them
    one with ``crmkit user set-password`` or an API token."""
    directory = rt.directory
    org = DemoOrg(password=password)
    for name, label, parent in DEMO_TEAMS:
        if _existing(directory.team, name) is None:
            directory.create_team({"name": name, "label": label, "parent_id": parent}, SYSTEM)
    roles = rt.permissions.roles
    wanted: list[tuple[str, str, str, str, str | None, str | None]] = [
        (name, display, role, team, superior, password) for name, display, role, team, superior in DEMO_USERS
        if role in roles]
    if "sales_rep" in roles:
        people = Faker("zh_CN")
        people.seed_instance(random_seed)
        width = max(3, len(str(extra_reps)))
        superior = "manager" if "sales_manager" in roles else None
        for i in range(1, extra_reps + 1):
            team = EXTRA_REP_TEAMS[(i - 1) % len(EXTRA_REP_TEAMS)]
            name = f"rep{i:0{width}d}"
            org.extra.append(name)
            wanted.append((name, people.name(), "sales_rep", team, superior, None))
    made = {w[0] for w in wanted}
    for name, display, role, team, superior, secret in wanted:
        user = _existing(directory.user, name)
        if user is None:
            if superior is not None and superior not in made and _existing(directory.user, superior) is None:
                superior = None
            user = directory.create_user({"username": name, "display_name": display, "roles": [role],
                                          "team_id": team, "superior_id": superior, "password": secret}, SYSTEM)
            org.created.append(name)
        if user["active"]:  # a disabled user can own nothing new
            org.users[name] = (user["id"], tuple(user["roles"] or ()))
    return org


def _existing(find: Callable[[str], Any], name: str) -> Any:
    try:
        return find(name)
    except NotFound:
        return None


def _rollups(spec) -> list[Rollup]:
    """The rollups whose entities and fields the config has."""
    entities = spec.entities
    found = []
    for rollup in ROLLUPS:
        parent, child = entities.get(rollup.parent), entities.get(rollup.child)
        if parent is None or child is None or rollup.field not in parent.fields:
            continue
        via = child.fields.get(rollup.via)
        if via is None or via.type != "ref" or via.to != rollup.parent:
            continue
        if rollup.of is not None and rollup.of not in child.fields:
            continue
        found.append(rollup)
    return found


def _families(spec, rollups: list[Rollup]) -> dict[str, list[tuple[str, str]]]:
    """parent -> [(child, via)]: children made with each chunk of their parents
    (an order's lines with the order), so that the parent's rolled-up fields are
    known before it is written. Only for a child whose ref to the parent is
    required, and parents that are not a fixed few (a campaign's revenue is
    rolled up at the end instead)."""
    families: dict[str, list[tuple[str, str]]] = {}
    placed: set[str] = set()
    for parent, child, via_name in FAMILIES:
        via = spec.entities[child].fields.get(via_name) if child in spec.entities else None
        if parent in spec.entities and via is not None and via.type == "ref" and via.to == parent:
            families.setdefault(parent, []).append((child, via_name))
            placed.add(child)
    for rollup in rollups:
        via = spec.entities[rollup.child].fields[rollup.via]
        if rollup.parent in FIXED or not via.required or rollup.child in placed:
            continue
        families.setdefault(rollup.parent, []).append((rollup.child, rollup.via))
        placed.add(rollup.child)
    return families


def _order(spec, families: dict[str, list[tuple[str, str]]]) -> list[EntitySpec]:
    """The entities made on their own (not as a family's children), so that every
    ref target comes before its referrers (cycles broken arbitrarily), a
    family's children's included."""
    done: list[str] = []
    visiting: set[str] = set()
    members = {child for children in families.values() for child, _via in children}

    def family(name: str) -> list[str]:
        return [name] + [m for child, _via in families.get(name, ()) for m in family(child)]

    def visit(name: str) -> None:
        if name in done or name in visiting:
            return
        visiting.add(name)
        group = family(name)
        for member in group:
            for f in spec.entities[member].user_fields:
                if f.type == "ref" and f.to not in group and f.to in spec.entities:  # not users or teams
                    visit(members_root(f.to))
        visiting.discard(name)
        done.append(name)

    def members_root(name: str) -> str:
        for parent, children in families.items():
            if any(child == name for child, _via in children):
                return members_root(parent)
        return name

    for name in spec.entities:
        visit(members_root(name))
    return [spec.entities[n] for n in done if n not in members]


def _count(entity: EntitySpec, size: int) -> int:
    if entity.name in FIXED:
        return FIXED[entity.name]
    return max(1, int(size * PER_CUSTOMER.get(entity.name, SIZE_DEFAULT)))


def is_empty(rt: Runtime) -> bool:
    """Whether no entity of the config has a record yet."""
    with rt.engine.connect() as conn:
        for entity in rt.spec.entities.values():
            table = rt.tables.entities[entity.name]
            if conn.execute(sa.select(table.c.id).limit(1)).first() is not None:
                return False
    return True


def seed(rt: Runtime, *, size: int = 200, random_seed: int = 42, if_empty: bool = False,
         today: dt.date | None = None, progress: Callable[[str, int, float], None] | None = None,
         org: DemoOrg | None = None) -> dict[str, int] | None:
    """Create demo data; returns counts per entity (None when skipped by if_empty).
    ``progress(entity, count, seconds)`` is called after each entity made on its
    own (with its family's children). Owned records go to the users of ``org``
    (by default the demo organisation, made first if missing)."""
    if if_empty and not is_empty(rt):
        return None
    if org is None:
        org = demo_org(rt, random_seed=random_seed)
    with paused_gc():  # collected once after each entity instead
        # What exists before the seed (the spec, the region table, Faker's
        # data) is not rescanned by those collections.
        gc.freeze()
        try:
            return _Seeder(rt, size, random_seed, today or dt.date.today(), org).run(progress)
        finally:
            gc.unfreeze()


@dataclass
class _Batch:
    """Records of one entity made together, before they are written; a family
    child's batch knows each record's parent (an index into the parent batch)."""

    entity: EntitySpec
    records: list[dict]
    parents: list[int] = field(default_factory=list)
    via: str | None = None
    children: list[_Batch] = field(default_factory=list)


class _Seeder:
    def __init__(self, rt: Runtime, size: int, random_seed: int, today: dt.date, org: DemoOrg) -> None:
        self.rt = rt
        self.spec = rt.spec
        self.size = size
        self.gen = _Generator(rt, random_seed, today)
        # Owners come from a generator of their own: the records' values stay the same whoever owns them.
        self.owner_rng = random.Random(random_seed + 1)
        # Which records of a pooled entity are left in the pool: a generator of its own too.
        self.pool_rng = random.Random(random_seed + 2)
        self.org = org
        self.rollups = _rollups(rt.spec)
        self.families = _families(rt.spec, self.rollups)
        self.ids: dict[str, list[int]] = {}
        #: owned entity -> record id -> owner id, for the entities made so far
        self.owners: dict[str, dict[int, int]] = {}
        #: the records of the fixed few (products: their names and prices go on order lines)
        self.kept: dict[str, dict[int, dict]] = {}
        #: rollups onto records written before their children: (rollup, parent id) -> value
        self.late: dict[tuple[Rollup, int], Any] = {}
        self.counts: dict[str, int] = defaultdict(int)
        self.columns: dict[str, list] = {}
        self.every_user: list[int] | None = None
        self.teams: list[int] = []

    def run(self, progress: Callable[[str, int, float], None] | None) -> dict[str, int]:
        for entity in _order(self.spec, self.families):
            started = time.perf_counter()
            total = _count(entity, self.size)
            for start in range(0, total, CHUNK):
                batch = self.make(entity, min(CHUNK, total - start), None, start)
                self.write(batch)
            gc.collect()
            if progress is not None:
                progress(entity.name, self.counts[entity.name], time.perf_counter() - started)
        self.write_late_rollups()
        self.rt.analyze()  # the planner should know the new data's shape
        return {entity.name: self.counts[entity.name] for entity in self.spec.entities.values()
                if entity.name in self.counts}

    # ---------------------------------------------------------------- making

    def make(self, entity: EntitySpec, n: int, parent: _Batch | None, offset: int, via: str | None = None) -> _Batch:
        """``n`` records of ``entity`` (as children of ``parent``'s records, through
        ``via``), with their families' children, rolled up and shaped."""
        batch = _Batch(entity, self.values(entity, n), via=via)
        if parent is not None and via is not None:
            # A part of its parent (a line of an order, an instalment of a contract; deleted with
            # it) comes at least once per parent; other children (a customer's orders) may not.
            part = entity.fields[via].on_delete == "cascade"
            batch.parents = _spread(self.gen.rng, len(parent.records), n, at_least_one=part)
        self.shape_before(batch, parent)
        for child_name, child_via in self.families.get(entity.name, ()):
            kind = self.spec.entities[child_name]
            # the children of this chunk: the share of the child's total that falls on these parents
            share = _share(_count(kind, self.size), _count(entity, self.size), offset, n)
            batch.children.append(self.make(kind, share, batch, offset, child_via))
        for descendant, parents in _descendants(batch):
            self.roll_up(batch, descendant, parents)
        self.shape_after(batch)
        if entity.owned:
            self.assign_owners(batch, parent)
            if entity.pool is not None:
                self.leave_in_pool(batch)
        return batch

    def values(self, entity: EntitySpec, n: int) -> list[dict]:
        gen, rng = self.gen, self.gen.rng
        records: list[dict] = [{} for _ in range(n)]
        for f in entity.user_fields:
            if f.type == "autonumber" or f.readonly and any(r.parent == entity.name and r.field == f.name
                                                              for r in self.rollups):
                continue
            values = gen.column(entity, f, {**self.ids, **self.people(entity)})(n)
            if not f.required and f.type != "ref" and f.default is None:
                # Real data has gaps: optional fields (not refs, nor those a default would fill) are
                # left empty one time in ten.
                for index in [i for i, gap in enumerate(rng.choices((True, False), cum_weights=(1, 10), k=n)) if gap]:
                    values[index] = None
            distinct = f.unique and f.type in ("string", "text", "email", "url")
            name, default = f.name, f.default
            for record, value in zip(records, values):
                if value is None:
                    if not f.required or default is None:
                        continue
                    value = default
                record[name] = gen.distinct(entity, f, value) if distinct else value
        return records

    def people(self, entity: EntitySpec) -> dict[str, list[int]]:
        """Ids for refs to the platform's users and teams: the demo users whose
        work the records are (else any of them), and every team."""
        if self.every_user is None:
            self.every_user = [uid for uid, _roles in self.org.users.values()]
            self.teams = [team["id"] for team in self.rt.directory.teams()]
        return {"user": list(self.org.pool(entity.name)) or self.every_user, "team": self.teams}

    def assign_owners(self, batch: _Batch, parent: _Batch | None) -> None:
        """A rep's opportunity is for the rep's own customer: an owned record
        takes the owner of the record it refers to, when that one's work is the
        same users'; otherwise an owner drawn from the users whose work it is."""
        pool = self.org.pool(batch.entity.name)
        if not pool:
            return
        source = None
        for f in batch.entity.user_fields:
            if f.type == "ref" and f.to != batch.entity.name and self.org.pool(f.to or "") == pool and (
                    f.to in self.owners or parent is not None and f.name == batch.via):
                source = f
                break
        choice = self.owner_rng.choice
        if source is not None and parent is not None and source.name == batch.via:
            for record, index in zip(batch.records, batch.parents):
                record["owner_id"] = parent.records[index].get("owner_id") or choice(pool)
            return
        known = self.owners.get(source.to or "", {}) if source is not None else {}
        for record in batch.records:
            owner = known.get(record.get(source.name) or 0) if source is not None else None
            record["owner_id"] = owner if owner is not None else choice(pool)

    def leave_in_pool(self, batch: _Batch) -> None:
        """About POOL_SHARE of the records without an owner: the pool (公海) has
        something in it for the demo (a rep sees it and may claim from it)."""
        for record in batch.records:
            if self.pool_rng.random() < POOL_SHARE:
                record["owner_id"] = None

    # ---------------------------------------------------------------- rolling up and shaping

    def roll_up(self, parent: _Batch, child: _Batch, parents: list[int]) -> None:
        """The rollups of ``parent``'s records over ``child``'s (its children, or
        further down: a contract's payments, through its receivable plans);
        ``parents[i]`` is the index of child record i's record in ``parent``."""
        for rollup in self.rollups:
            if rollup.parent != parent.entity.name or rollup.child != child.entity.name:
                continue
            totals: dict[int, Any] = {}
            for record, index in zip(child.records, parents):
                if rollup.when is not None and not rollup.when(record):
                    continue
                value = 1 if rollup.how == "count" else record.get(rollup.of or "")
                if value is None:
                    continue
                if index not in totals:
                    totals[index] = value
                elif rollup.how == "max":
                    totals[index] = max(totals[index], value)
                else:
                    totals[index] += value
            empty = 0 if rollup.how == "count" else (Decimal("0.00") if rollup.how == "sum" else None)
            for index, record in enumerate(parent.records):
                value = totals.get(index, empty)
                if value is not None:
                    record[rollup.field] = value

    def shape_before(self, batch: _Batch, parent: _Batch | None) -> None:
        """Values that follow from others of the same record, or of its parent,
        before its children are made (the sample config's conventions, by name)."""
        name, fields, records = batch.entity.name, batch.entity.fields, batch.records
        rng = self.gen.rng
        if "product" in fields and {"unit_price", "quantity"} <= set(fields):
            products = self.kept.get(fields["product"].to or "", {})
            for record in records:
                product = products.get(record.get("product") or 0)
                if product is not None:
                    record["product_name"] = product.get("name") if "product_name" in fields else None
                    record["unit_price"] = product.get("price") or record["unit_price"]
                record["quantity"] = rng.choice((1, 1, 1, 2, 2, 3))
                if "amount" in fields:
                    record["amount"] = record["quantity"] * record["unit_price"]
        if {"start_on", "end_on"} <= set(fields):
            for record in records:  # a contract ends after it starts
                start, end = record.get("start_on"), record.get("end_on")
                if start is not None and end is not None and end < start:
                    record["start_on"], record["end_on"] = end, start
        if {"discount", "approval_status"} <= set(fields):
            for record in records:  # a big discount is asked for approval
                if (record.get("discount") or 0) > 30 and record.get("approval_status", "draft") == "draft":
                    record["approval_status"] = "pending"
        if "stage" in fields and "lost_reason" in fields:
            for record in records:  # only a lost opportunity has a lost reason, and every lost one has one
                if record.get("stage") != "lost":
                    record.pop("lost_reason", None)
                elif not record.get("lost_reason"):
                    record["lost_reason"] = rng.choice(list(fields["lost_reason"].option_values))
                if "win_rate" in fields and record.get("stage") in ("won", "lost"):
                    record["win_rate"] = 100 if record["stage"] == "won" else 0
        if parent is not None and name == "receivable_plan" and "amount" in parent.entity.fields:
            _instalments(parent, batch, rng)
        if parent is not None and name == "payment" and "amount" in parent.entity.fields:
            for record, index in zip(records, batch.parents):  # a payment pays (part of) its plan
                due = parent.records[index].get("amount") or Decimal("0.00")
                record["amount"] = (due * rng.choice((1, 1, 1, Decimal("0.5")))).quantize(Decimal("0.01"))
        if parent is not None and "ordered_at" in fields and "member_since" in parent.entity.fields:
            for record, index in zip(records, batch.parents):  # a member orders after joining
                since = parent.records[index].get("member_since")
                if since is not None and record.get("ordered_at") and record["ordered_at"].date() < since:
                    record["ordered_at"] = dt.datetime.combine(since, record["ordered_at"].timetz())

    def shape_after(self, batch: _Batch) -> None:
        """Values that follow from the record's rolled-up ones."""
        fields, records, rng = batch.entity.fields, batch.records, self.gen.rng
        if {"total", "paid_amount", "status"} <= set(fields):
            for record in records:  # an order pays its total less a discount, once paid
                total = record.get("total") or Decimal("0.00")
                discount = (total * rng.choice((0, 0, 0, Decimal("0.05"), Decimal("0.1")))).quantize(Decimal("0.01"))
                if "discount_amount" in fields:
                    record["discount_amount"] = discount
                record["paid_amount"] = total - discount if record.get("status") in PAID else Decimal("0.00")
        if "paid_amount" in fields and "amount" in fields and "status" in fields:
            options = set(fields["status"].option_values)
            for record in records:  # a plan's status says how much of it was paid
                paid, due = record.get("paid_amount") or 0, record.get("amount") or 0
                status = "paid" if paid and paid >= due else "partial" if paid else "pending"
                if status in options:
                    record["status"] = status
        if "rfm_recency" in fields and "last_order_at" in fields:
            for record in records:
                _rfm(record, self.gen.now)

    # ---------------------------------------------------------------- writing

    def write(self, batch: _Batch, parent: _Batch | None = None, parent_ids: list[int] | None = None) -> None:
        if parent is not None and parent_ids is not None and batch.via is not None:
            via = batch.via
            for record, index in zip(batch.records, batch.parents):
                record[via] = parent_ids[index]
            _inherit(parent, batch)
        name = batch.entity.name
        stored: list[dict] = []
        for start in range(0, len(batch.records), CHUNK):
            stored += self.rt.records.create_many(name, batch.records[start:start + CHUNK], SYSTEM)
        ids = [row["id"] for row in stored]
        self.ids.setdefault(name, []).extend(ids)
        self.counts[name] += len(ids)
        if batch.entity.owned:
            self.owners.setdefault(name, {}).update((row["id"], row["owner_id"]) for row in stored)
        if name in FIXED:
            fields = batch.entity.fields
            self.kept[name] = {row["id"]: {f: row[fields[f].column] for f in fields} for row in stored}
        self.note_late_rollups(batch, stored)
        for child in batch.children:
            self.write(child, batch, ids)

    def note_late_rollups(self, batch: _Batch, stored: list[dict]) -> None:
        for rollup in self.rollups:
            if rollup.child != batch.entity.name or rollup.parent in self.families:
                continue
            column = batch.entity.fields[rollup.via].column
            for record, row in zip(batch.records, stored):
                parent_id = row[column]
                if parent_id is None or rollup.when is not None and not rollup.when(record):
                    continue
                value = 1 if rollup.how == "count" else record.get(rollup.of or "")
                if value is None:
                    continue
                key = (rollup, parent_id)
                before = self.late.get(key)
                self.late[key] = value if before is None else max(before, value) if rollup.how == "max" \
                    else before + value

    def write_late_rollups(self) -> None:
        """Rollups onto records written before their children (a campaign's
        revenue from its orders and won opportunities): one update each."""
        totals: dict[tuple[str, int], dict[str, Any]] = defaultdict(dict)
        for (rollup, parent_id), value in self.late.items():
            values = totals[(rollup.parent, parent_id)]
            values[rollup.field] = values.get(rollup.field, 0) + value if rollup.how != "max" else value
        for (entity, parent_id), values in totals.items():
            self.rt.records.update(entity, parent_id, values, SYSTEM)


def _share(child_total: int, parent_total: int, offset: int, n: int) -> int:
    """The children that fall on parents offset..offset+n of parent_total."""
    return child_total * (offset + n) // parent_total - child_total * offset // parent_total


def _spread(rng: random.Random, parents: int, children: int, *, at_least_one: bool) -> list[int]:
    """Which parent each child has, in parent order: at random, or (at_least_one,
    while there are enough) every parent one first and the rest at random."""
    first = list(range(parents)) if at_least_one and children >= parents else []
    return sorted(first + rng.choices(range(parents), k=children - len(first)))


def _descendants(batch: _Batch) -> list[tuple[_Batch, list[int]]]:
    """Every batch made under ``batch``, each with the index in ``batch`` of each of its records' ancestor."""
    found = []
    for child in batch.children:
        found.append((child, child.parents))
        found += [(grandchild, [child.parents[i] for i in parents]) for grandchild, parents in _descendants(child)]
    return found


def _inherit(parent: _Batch, child: _Batch) -> None:
    """A child's other refs agree with its parent's: a payment of a receivable
    plan is for the plan's contract."""
    shared = [(f.name, p.name) for f in child.entity.user_fields if f.type == "ref" and f.name != child.via
              for p in parent.entity.user_fields if p.type == "ref" and p.to == f.to]
    for name, parent_name in shared:
        for record, index in zip(child.records, child.parents):
            record[name] = parent.records[index].get(parent_name)


def _instalments(contract: _Batch, plans: _Batch, rng: random.Random) -> None:
    """A contract's receivable plans split its amount into instalments 1, 2, ...
    due a month apart."""
    by_contract: dict[int, list[dict]] = defaultdict(list)
    for record, index in zip(plans.records, plans.parents):
        by_contract[index].append(record)
    for index, records in by_contract.items():
        amount = contract.records[index].get("amount") or Decimal("0.00")
        part = (amount / len(records)).quantize(Decimal("0.01"))
        start = contract.records[index].get("signed_on") or dt.date.today()
        for number, record in enumerate(records, 1):
            record["instalment"] = number
            record["amount"] = part if number < len(records) else amount - part * (len(records) - 1)
            record["due_date"] = start + dt.timedelta(days=30 * number)


def _rfm(record: dict, now: dt.datetime) -> None:
    """Recency, frequency and monetary scores 1-5 from a customer's orders (none without)."""
    last = record.get("last_order_at")
    if not record.get("order_count") or last is None:
        for name in ("rfm_recency", "rfm_frequency", "rfm_monetary"):
            record.pop(name, None)
        return
    days = (now - last).days
    record["rfm_recency"] = 5 if days <= 30 else 4 if days <= 90 else 3 if days <= 180 else 2 if days <= 365 else 1
    record["rfm_frequency"] = min(5, record["order_count"])
    spent = record.get("total_spent") or 0
    record["rfm_monetary"] = 5 if spent >= 20000 else 4 if spent >= 8000 else 3 if spent >= 3000 else \
        2 if spent >= 1000 else 1
