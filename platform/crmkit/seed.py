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
as each user shows their role's window onto the same data.
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


def credit_code(rng: random.Random, districts: list[str]) -> str:
    """A 统一社会信用代码 with a correct check character (GB 32100-2015)."""
    body = rng.choice(["91", "92", "93"]) + rng.choice(districts or ["110101"])
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
        self.regions_by_level: dict[str, list[str]] = {}
        self.used_mobiles: set[str] = set()
        self.used: dict[tuple[str, str], set] = defaultdict(set)
        self.counters: dict[str, int] = defaultdict(int)

    def region_codes(self, level: str) -> list[str]:
        """Codes to draw from at ``level``: each district's ancestor there, so that
        populous provinces come up as often as they have districts."""
        if level not in self.regions_by_level:
            depth = regions.LEVELS.index(level)
            self.regions_by_level[level] = [chain[min(depth, len(chain) - 1)].code
                                            for chain in map(regions.path, self.districts)]
        return self.regions_by_level[level]

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

    def maker(self, entity: EntitySpec, f: FieldSpec, ids: dict[str, list[int]]) -> Callable[[], Any]:
        """A function making values for field ``f``: the choice of how is made
        once per field, not once per value (a seed makes millions of them)."""
        rng = self.rng
        if f.type == "ref":
            pool = ids.get(f.to) or []
            if f.to == entity.name or not pool:
                return lambda: None
            return lambda: rng.choice(pool)
        if f.type in ("string", "text"):
            return self.text_maker(entity, f)
        if f.type == "phone":
            return self.mobile
        if f.type == "email":
            names = [self.faker.user_name() for _ in range(500)]
            domains = ["qq.com", "163.com", "example.cn"]
            return lambda: f"{rng.choice(names)}{rng.randrange(10**6)}@{rng.choice(domains)}"
        if f.type == "url":
            return lambda: f"https://www.example.cn/{rng.randrange(10**6)}"
        if f.type == "region":
            codes = self.region_codes(f.level or "district")
            return lambda: rng.choice(codes)
        if f.type == "enum":
            options = f.option_values
            return lambda: rng.choice(options)
        if f.type == "multi_enum":
            options = list(f.option_values)
            most = min(3, len(options))
            return lambda: rng.sample(options, k=rng.randint(0, most))
        if f.type in ("money", "decimal"):
            low = int(Decimal(str(f.min)) * 100) if f.min is not None else 0
            highs = ([int(Decimal(str(f.max)) * 100)] if f.max is not None
                     else [low + cents for cents in (20000, 80000, 300000, 2000000)])
            exponent = Decimal(1).scaleb(-(2 if f.type == "money" else (4 if f.scale is None else f.scale)))
            return lambda: (Decimal(rng.randint(low, rng.choice(highs))) / 100).quantize(exponent)
        if f.type == "integer":
            low = int(f.min) if f.min is not None else 0
            high = int(f.max) if f.max is not None else low + 100
            return lambda: rng.randint(low, high)
        if f.type == "boolean":
            return lambda: rng.random() < 0.3
        if f.type == "date":
            if "birth" in f.name:
                return lambda: self.today - dt.timedelta(days=rng.randint(18 * 365, 70 * 365))
            return lambda: (self.moment() + dt.timedelta(days=rng.randint(0, 120))).date()
        if f.type == "datetime":
            return self.moment
        if f.type == "json":
            return dict
        return lambda: None

    def text_maker(self, entity: EntitySpec, f: FieldSpec) -> Callable[[], str | None]:
        """Texts for a string or text field, by what its name says it holds."""
        rng, name, ename = self.rng, f.name, entity.name
        choice = rng.choice
        if f.pattern:
            if "credit" in name or "tax" in name:
                return lambda: credit_code(rng, self.districts)
            return lambda: None
        if name in ("name", "contact_name", "full_name"):
            if ename == "product":
                sizes = ["250g", "500g", "1kg", "30粒", "60片", "礼盒装"]
                return lambda: f"{choice(PRODUCT_WORDS)} {choice(sizes)}"
            if ename == "product_category":
                return lambda: CATEGORY_WORDS[self.next_count(ename) % len(CATEGORY_WORDS)]
            if ename == "campaign":
                return lambda: f"{choice(['2025', '2026'])} {choice(CAMPAIGN_WORDS)}"
            if ename in ("opportunity", "contract"):
                kinds = ["采购项目", "年度合作", "门店供货"]
                return lambda: f"{choice(self.companies)}{choice(kinds)}"
            return lambda: choice(self.people)
        if "company" in name or name in ("title", "invoice_title"):
            return lambda: choice(self.companies)
        if "address" in name or "street" in name:
            return lambda: choice(self.streets)
        if name in ("bank", "bank_name"):
            banks = ["中国工商银行", "中国建设银行", "招商银行", "中国银行", "交通银行"]
            return lambda: choice(banks)
        if "account" in name:
            return lambda: f"{rng.randrange(10**15, 10**16)}"
        if "subject" in name:
            subjects = ["物流太慢", "商品破损", "发票未收到", "会员积分有误", "咨询产品用法", "退换货申请"]
            return lambda: choice(subjects)
        if f.type == "text" or name in ("notes", "content", "description", "remark"):
            return lambda: choice(self.sentences)
        length = max(1, min(f.max_length or 255, 30))
        short = [sentence[:length] for sentence in self.sentences]
        return lambda: choice(short)

    def next_count(self, key: str) -> int:
        """0, 1, 2, ... for ``key``."""
        self.counters[key] += 1
        return self.counters[key] - 1


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
    wanted = [(name, display, role, team, superior, password) for name, display, role, team, superior in DEMO_USERS
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


def _order(spec) -> list[EntitySpec]:
    """Entities so that every ref target comes before its referrers (cycles broken arbitrarily)."""
    done: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in done or name in visiting:
            return
        visiting.add(name)
        for f in spec.entities[name].user_fields:
            if f.type == "ref" and f.to != name and f.to in spec.entities:  # not the platform's users or teams
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
    ``progress(entity, count, seconds)`` is called after each entity. Owned
    records go to the users of ``org`` (by default the demo organisation,
    made first if missing)."""
    if if_empty and not is_empty(rt):
        return None
    if org is None:
        org = demo_org(rt, random_seed=random_seed)
    with paused_gc():  # collected once after each entity instead
        return _seed(rt, size, random_seed, today, progress, org)


def _owner_source(entity: EntitySpec, org: DemoOrg, owners: dict[str, dict[int, int]]) -> str | None:
    """The ref field whose record's owner also owns a new ``entity`` record: a
    rep's opportunity is for the rep's own customer. None: owners drawn at random."""
    pool = org.pool(entity.name)
    for f in entity.user_fields:
        if f.type == "ref" and f.to != entity.name and f.to in owners and org.pool(f.to) == pool:
            return f.name
    return None


def _seed(rt: Runtime, size: int, random_seed: int, today: dt.date | None,
          progress: Callable[[str, int, float], None] | None, org: DemoOrg) -> dict[str, int]:
    gen = _Generator(rt, random_seed, today or dt.date.today())
    # Owners come from a generator of their own: the records' values stay the same whoever owns them.
    owner_rng = random.Random(random_seed + 1)
    ids: dict[str, list[int]] = {}
    #: owned entity -> record id -> owner id, for the entities made so far
    owners: dict[str, dict[int, int]] = {}
    counts: dict[str, int] = {}
    every_user = [uid for uid, _roles in org.users.values()]
    teams = [team["id"] for team in rt.directory.teams()]
    for entity in _order(rt.spec):
        total = _count(entity, size)
        started = time.perf_counter()
        created: list[int] = []
        pool = org.pool(entity.name) if entity.owned else ()
        source = _owner_source(entity, org, owners) if pool else None
        source_owners = owners[entity.fields[source].to] if source else {}
        # Refs to the platform's users go to the demo users whose work the records are.
        people = {"user": list(org.pool(entity.name)) or every_user, "team": teams}
        makers = []
        for f in entity.user_fields:
            if f.type == "autonumber":
                continue
            distinct = f.unique and f.type in ("string", "text", "email", "url")
            # Real data has gaps: optional fields (not refs) are left empty one time in ten.
            gaps = not f.required and f.type != "ref"
            makers.append((f, gen.maker(entity, f, {**ids, **people}), distinct, gaps))
        chance = gen.rng.random
        for start in range(0, total, CHUNK):
            batch = []
            for _ in range(min(CHUNK, total - start)):
                record = {}
                for f, make, distinct, gaps in makers:
                    if gaps and chance() < 0.1:
                        continue
                    value = make()
                    if value is None:
                        if not f.required:
                            continue
                        value = f.default
                    if distinct and value is not None:
                        value = gen.distinct(entity, f, value)
                    if value is not None:
                        record[f.name] = value
                if pool:
                    owner = source_owners.get(record.get(source)) if source else None
                    record["owner_id"] = owner if owner is not None else owner_rng.choice(pool)
                batch.append(record)
            rows = rt.records.create_many(entity.name, batch, SYSTEM)
            created.extend(row["id"] for row in rows)
            if pool:
                owners.setdefault(entity.name, {}).update((row["id"], row["owner_id"]) for row in rows)
        ids[entity.name] = created
        counts[entity.name] = len(created)
        gc.collect()
        if progress is not None:
            progress(entity.name, len(created), time.perf_counter() - started)
    rt.analyze()  # the planner should know the new data's shape
    return counts

