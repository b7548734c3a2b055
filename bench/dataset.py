"""The benchmark database: a fresh SQLite file with N realistic customers,
owned by the 50 users of a sales organisation.

The schema is made by crmkit itself (runtime build + migrate), so the tables,
indexes and column encodings are exactly the engine's; teams, users and API
tokens are made through the engine's directory; the customers are then written
with SQLAlchemy Core bulk inserts (set-up time does not count). Deterministic
for a given seed (except the tokens).

The organisation (see ORGANISATION): hq > sales > five regional sales groups.
The admin sits in hq; the sales director (a sales_manager) over sales; a
manager (sales_manager) per group, reporting to the director; 43 sales reps
(sales_rep) spread over the groups, reporting to their group's manager. Every
customer is owned by one of the 50 users, uniformly, and carries its owner's
team, as the records service stores it.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import time
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

BENCH_DIR = Path(__file__).resolve().parent
CONFIG_DIR = BENCH_DIR / "config"
RESULTS_DIR = BENCH_DIR / "results"
UTC = dt.UTC

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
GIVEN = ["伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
         "超", "秀兰", "霞", "平", "刚", "桂英", "建华", "文", "华", "红", "晓东", "子涵", "梓萱", "浩然", "欣怡",
         "宇轩", "雨桐", "一诺", "思远", "佳怡", "俊杰", "诗涵", "嘉懿"]
#: Seeded mobiles use these prefixes; the create benchmark uses 16x, so it never collides.
MOBILE_PREFIXES = ["130", "131", "132", "135", "136", "137", "138", "139", "150", "151", "152", "155", "158",
                   "159", "180", "181", "185", "186", "187", "188", "189"]
MAIL_DOMAINS = ["qq.com", "163.com", "126.com", "foxmail.com", "example.cn"]
NOTES = ["喜欢手冲咖啡，偏好浅烘焙", "周末常来门店，带孩子", "对价格敏感，关注会员日活动",
         "上次投诉物流慢，已补偿优惠券",
         "企业采购负责人，年底有团购需求", "要求开具增值税专用发票", "只接受微信联系，不要打电话", "老客户推荐而来",
         "生日在月初，提前寄送礼品", "VIP 客户，专属客服跟进"]
LEVELS = ["bronze", "bronze", "bronze", "silver", "silver", "gold", "platinum"]
GENDERS = ["male", "female", "unknown"]


def database_url(path: Path) -> str:
    return f"sqlite:///{path}"


def remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.unlink(f"{path}{suffix}")
        except FileNotFoundError:
            pass


GROUPS = ("east", "south", "north", "west", "central")
REPS = 43
#: The users the benchmarks act as (each gets an API token): the admin (scope
#: all), a sales rep (own) and the sales director (team_tree over all of sales).
ACTORS = ("admin", "rep_01", "sales_director")


def organisation(directory) -> list[tuple[int, int]]:
    """Teams and users (through the engine's directory, as the system); returns (user id, team id) of all 50."""
    from crmkit.permissions import SYSTEM

    def team(name: str, label: str, parent: int | None = None):
        return directory.create_team({"name": name, "label": label, "parent_id": parent}, SYSTEM)

    def user(**data):
        return directory.create_user(data, SYSTEM)

    hq = team("hq", "Headquarters")
    sales = team("sales", "Sales", hq["id"])
    people = [user(username="admin", roles=["admin"], team_id=hq["id"]),
              user(username="sales_director", roles=["sales_manager"], team_id=sales["id"], superior_id="admin")]
    groups = []
    for name in GROUPS:
        group = team(f"sales_{name}", f"Sales {name}", sales["id"])
        manager = user(username=f"manager_{name}", roles=["sales_manager"], team_id=group["id"],
                       superior_id="sales_director")
        groups.append((group, manager))
        people.append(manager)
    for n in range(1, REPS + 1):
        group, manager = groups[(n - 1) % len(groups)]
        people.append(user(username=f"rep_{n:02d}", roles=["sales_rep"], team_id=group["id"],
                           superior_id=manager["id"]))
    return [(p["id"], p["team_id"]) for p in people]


def create(path: Path, customers: int, seed: int = 20261123, log=print) -> dict:
    """Create (or re-create) the database at ``path``; returns facts about it,
    with ``tokens``: an API token for each of ACTORS (not to be written out)."""
    from crmkit import regions, runtime
    from crmkit.permissions import SYSTEM
    from crmkit.settings import from_environment

    remove_database(path)
    instance = path.parent / "instance"
    settings = from_environment({"CRMKIT_DATABASE_URL": database_url(path), "CRMKIT_INSTANCE": str(instance)})
    started = time.perf_counter()
    rt = runtime.build(CONFIG_DIR, settings)
    rt.migrate()
    table = rt.tables.entities["customer"]

    rng = random.Random(seed)
    owners = organisation(rt.directory)
    users = {name: rt.directory.user(name) for name in ACTORS}
    tokens = {name: rt.directory.create_token(user["id"], "bench", SYSTEM).token for name, user in users.items()}
    districts = regions.all_codes("district")
    city_of = {}
    for code in districts:
        chain = regions.path(code)
        city_of[code] = chain[-2].name if len(chain) >= 2 else chain[0].name
    now = dt.datetime.now(UTC).replace(microsecond=0)
    start = now - dt.timedelta(days=3 * 365)
    step = (now - start).total_seconds() / max(customers, 1)
    used_mobiles: set[str] = set()
    moment = start
    batch: list[dict] = []
    with rt.engine.begin() as conn:
        for i in range(customers):
            moment = moment + dt.timedelta(seconds=rng.uniform(0.2, 1.8) * step, microseconds=rng.randrange(10**6))
            while True:
                mobile = rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"
                if mobile not in used_mobiles:
                    used_mobiles.add(mobile)
                    break
            region = rng.choice(districts)
            last_order = None
            if rng.random() < 0.8:
                last_order = moment + dt.timedelta(seconds=rng.randrange(max(1, int((now - moment).total_seconds()))))
            owner, team = rng.choice(owners)
            row = {
                "version": 1, "created_at": moment, "updated_at": last_order or moment,
                "created_by": owner, "updated_by": owner, "owner_id": owner,
                "team_id": team,
                "name": rng.choice(SURNAMES) + rng.choice(GIVEN),
                "mobile": mobile,
                "email": (f"user{i}@{rng.choice(MAIL_DOMAINS)}" if rng.random() < 0.7 else None),
                "gender": rng.choice(GENDERS),
                "level": rng.choice(LEVELS),
                "region": region,
                "city": city_of[region],
                "total_spent": (Decimal(rng.randrange(0, 5_000_000)) / 100).quantize(Decimal("0.01")),
                "points": rng.randrange(0, 20_000),
                "birthday": (dt.date(1955, 1, 1) + dt.timedelta(days=rng.randrange(50 * 365))
                             if rng.random() < 0.85 else None),
                "last_order_at": last_order,
                "notes": rng.choice(NOTES) if rng.random() < 0.4 else None,
            }
            batch.append(row)
            if len(batch) == 5000:
                conn.execute(table.insert(), batch)
                batch = []
        if batch:
            conn.execute(table.insert(), batch)
    rt.analyze()  # as after any bulk load (crmkit seed and crmkit analyze do the same)
    with rt.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        count = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
    rt.engine.dispose()
    elapsed = time.perf_counter() - started
    shown = path.relative_to(BENCH_DIR.parent) if path.is_relative_to(BENCH_DIR.parent) else path
    log(f"  database: {count:,} customers owned by {len(owners)} users in {shown} ({elapsed:.1f} s set-up, not timed)")
    return {"path": str(path), "customers": count, "users": len(owners), "setup_seconds": round(elapsed, 2),
            "actors": {name: {"id": u["id"], "team_id": u["team_id"], "roles": list(u["roles"])}
                       for name, u in users.items()},
            "tokens": tokens}
