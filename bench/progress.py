"""Rollout progress and grouped availability over a year of rollups, through the API
(issue "Reports": GET /api/v1/progress over 5,000 sites x 365 days, goal < 200 ms; one site's
availability over a year, goal < 50 ms).

    .venv/bin/python -m bench.progress [--sites 5000] [--days 365] [--skip-old]
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/netmon_bench]

On SQLite (a temporary file) and PostgreSQL (a schema ``bench_progress`` made in the database
named, which must exist, and dropped after; ``--postgres ''`` skips it): ``--sites`` sites in
24 districts, ``--days`` days of final site_day rows (random seconds: about half the site days
fully functional) written through netmon.rollup.write_rows (PostgreSQL then ANALYZEd), then,
in-process through the ASGI app (routing, validation, JSON included; wall time and this
process's CPU from /proc):

* ``GET /api/v1/progress?by=district`` over every day: **cold, no start-up build** (the first
  request of a fresh app that builds the index itself), the **start-up build** of a fresh app
  (netmon.api.app.warm_up, what ``netmon serve`` runs beside the server) and the **first
  request after it**, **warm** (median of 7), and **after a roll** (2 x sites rows rolled
  again, as the monitor does each minute, then one request);
* ``GET /api/v1/availability?by=district`` over the last 30 days (median of 3, warm);
* ``GET /api/v1/sites/{id}/availability`` over the year (median of 7, warm);
* ``GET /api/v1/progress`` from the first day to now with today as netmon leaves it (covered
  since midnight, a verdict change per site, one site in five down for a while, its site_day
  row not final): the **first** request (today accounted for every site), then the **next**
  ones (median of 7), each after the coverage up to now and 50 sites' changes were stored (as
  the minutes go: netmon.progress_index.Today adds only the time since and re-accounts those
  sites); then the one site's availability to now; then a fresh app's start-up build (which
  accounts today too) and its first request to now;
* unless ``--skip-old``: the old computation of the year's rows (netmon.rollup.site_accounts
  + netmon.progress), once, and the check that the API answered exactly its rows; the old
  computation of the 30 days' availability (site_accounts + total per site).

The year ends yesterday (``--days`` days before today).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import random
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import create_engine, func, insert, select, text

from bench.procstat import ProcessTree
from exporters.prometheus import make_registry
from netmon.api import create_app
from netmon.api.app import warm_up
from netmon.api.routes.availability import total
from netmon.errors import StoreError
from netmon.inventory.models import Inventory, Rollout, Site
from netmon.monitor import Monitor
from netmon.progress import good_days, progress_rows
from netmon.rollup import SLOT, CoverageRow, Rollups, site_accounts, write_rows
from netmon.store import Store, VerdictChangeRow
from netmon.timeline import STATES, day_bounds, days
from probes.base import Engines

TZ = ZoneInfo("Asia/Kolkata")
SCHEMA = "bench_progress"  # made in the --postgres database and dropped after
FIRST = dt.date(2025, 12, 1)  # main() sets it to ``--days`` days before today


def inventory(n: int, days_: int) -> Inventory:
    rng = random.Random(5)
    sites = [Site(id=f"site-{i:04d}", name=f"Site {i}", district=f"District {i % 24:02d}",
                  type=rng.choice(["chc", "district_hospital", "phc"]),
                  commissioned=FIRST + dt.timedelta(days=rng.randrange(days_)) if i % 3 else None)
             for i in range(n)]  # fmt: skip
    rollout = Rollout(start=FIRST, deadline=FIRST + dt.timedelta(days=90))
    return Inventory(state="Jharkhand", rollout=rollout, sites=sites)


def day_rows(sites: list[Site], day: dt.date, rolled_at: float, rng: random.Random) -> list[Any]:
    rows = []
    for s in sites:
        ff = rng.choice([86400.0, 84000.0, 82080.0, 80000.0, 43200.0, 0.0])
        rows.append({"site_id": s.id, "day": day.isoformat(), "district": s.district,
                     "type": s.type, **dict.fromkeys(STATES, 0.0), "fully_functional": ff,
                     "degraded": (86400.0 - ff) / 2, "down": (86400.0 - ff) / 2,
                     "rolled_at": rolled_at})  # fmt: skip
    return rows


def fill(store: Store, sites: list[Site], n_days: int) -> float:
    rng, started = random.Random(7), time.perf_counter()
    for k in range(n_days):
        write_rows(store, day_rows(sites, FIRST + dt.timedelta(days=k), time.time(), rng))
    return time.perf_counter() - started


async def timed(fn: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    """(wall ms, CPU ms of this process) of one call."""
    tree = ProcessTree(os.getpid())
    cpu, t = tree.sample(), time.perf_counter()
    await fn()
    return (time.perf_counter() - t) * 1000, (tree.sample() - cpu) * 1000


def old_progress(store: Store, inv: Inventory, lo: float, hi: float) -> list[Any]:
    accounts = site_accounts(store, inv.sites, TZ, lo, hi)
    shown = [d for d, _a, _b in days(lo, hi, TZ)]
    good = good_days(accounts, inv.report.day_threshold)
    return progress_rows(inv.sites, lambda s: s.district, good, shown, inv.rollout)


def old_availability(store: Store, inv: Inventory, lo: float, hi: float) -> dict[str, Any]:
    return {i: total(d) for i, d in site_accounts(store, inv.sites, TZ, lo, hi).items()}


async def requests(
    store: Store, inv: Inventory, n_days: int, old: bool = True
) -> dict[str, tuple[float, float]]:
    monitor = Monitor(inv, store, Engines())
    monitor.rollups, monitor.ready = Rollups(TZ), True
    lo = day_bounds(FIRST, TZ)[0]
    hi = day_bounds(FIRST + dt.timedelta(days=n_days - 1), TZ)[1]
    progress = {"from": iso(lo), "to": iso(hi), "by": "district"}
    out: dict[str, tuple[float, float]] = {}
    async with client(create_app(monitor, make_registry(monitor, "bench", "raw"))) as get:
        out["progress cold, no start-up build"] = await timed(
            lambda: get("/api/v1/progress", progress)
        )
    app = create_app(monitor, make_registry(monitor, "bench", "raw"))  # a fresh start
    out["start-up build (warm_up, netmon serve)"] = await timed(lambda: warm_up(app))
    async with client(app) as get:
        out["progress, first request after it"] = await timed(
            lambda: get("/api/v1/progress", progress)
        )
        out |= await warm(store, inv, get, n_days)
    year = ANSWERS["/api/v1/progress"]
    app = create_app(monitor, make_registry(monitor, "bench", "raw"))  # a start, today as left
    out["start-up build, today too"] = await timed(lambda: warm_up(app))
    async with client(app) as get:
        later(store, inv.sites, time.time(), random.Random(99))
        to_now = {"from": iso(lo), "by": "district"}
        out["progress to now, first after it"] = await timed(
            lambda: get("/api/v1/progress", to_now)
        )
    ANSWERS["/api/v1/progress"] = year
    if not old:
        return out
    # the old computation, timed, gives the same rows (after the roll: as they are now)
    found: list[Any] = []
    try:
        out["progress, old path"] = await timed(
            lambda: asyncio.to_thread(lambda: found.extend(old_progress(store, inv, lo, hi)))
        )
    except StoreError as exc:  # the store's 12 s deadline: the API would answer 503
        print(f"  progress, old path: {exc}", flush=True)
        return out
    assert [{**vars_of(r), "day": r.day.isoformat()} for r in found] == ANSWERS["/api/v1/progress"]
    print("  progress: the API's rows equal the old path's", flush=True)
    return out


ANSWERS: dict[str, Any] = {}  # the last answer of each path (the year's progress: after a roll)
Get = Callable[[str, dict[str, str]], Awaitable[None]]


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, TZ).isoformat()


@contextlib.asynccontextmanager
async def client(app: Any) -> AsyncIterator[Get]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as c:

        async def get(url: str, params: dict[str, str]) -> None:
            r = await c.get(url, params=params)
            assert r.status_code == 200, r.text
            ANSWERS[url] = r.json().get("data")

        yield get


async def warm(
    store: Store, inv: Inventory, get: Get, n_days: int
) -> dict[str, tuple[float, float]]:
    """The requests after the start-up build: the year warm, after a roll, availability (30
    days by district; one site over the year), then to now with today as netmon leaves it."""
    lo = day_bounds(FIRST, TZ)[0]
    last = FIRST + dt.timedelta(days=n_days - 1)
    hi = day_bounds(last, TZ)[1]
    progress = {"from": iso(lo), "to": iso(hi), "by": "district"}
    out = {"progress warm": _median([await timed(lambda: get("/api/v1/progress", progress))
                                     for _ in range(7)])}  # fmt: skip
    rng = random.Random(9)
    for day in (last - dt.timedelta(days=1), last):
        write_rows(store, day_rows(inv.sites, day, time.time(), rng))
    out["progress after a roll"] = await timed(lambda: get("/api/v1/progress", progress))
    year = ANSWERS["/api/v1/progress"]
    month = {"from": iso(hi - 30 * 86400), "to": iso(hi), "by": "district"}
    avail = [await timed(lambda: get("/api/v1/availability", month)) for _ in range(4)]
    out["availability 30 d warm"] = _median(avail[1:])
    site = f"/api/v1/sites/{inv.sites[0].id}/availability"
    one = [await timed(lambda: get(site, {"from": iso(lo), "to": iso(hi)})) for _ in range(8)]
    out["1 site's availability, a year"] = _median(one[1:])
    today(store, inv.sites, time.time())
    to_now = {"from": iso(lo), "by": "district"}
    out["progress to now, first (today: all)"] = await timed(
        lambda: get("/api/v1/progress", to_now)
    )
    runs = []
    for k in range(7):  # as the minutes go: coverage on, a few sites judged anew
        later(store, inv.sites, time.time(), random.Random(k))
        runs.append(await timed(lambda: get("/api/v1/progress", to_now)))
    out["progress to now, next (median of 7)"] = _median(runs)
    one = [await timed(lambda: get(site, {"from": iso(lo)})) for _ in range(8)]
    out["1 site's availability, to now"] = _median(one[1:])
    ANSWERS["/api/v1/progress"] = year
    return out


def today(store: Store, sites: list[Site], now: float) -> None:
    """Today as netmon leaves it: covered since midnight, each site judged fully functional
    before it and one in five down for a while since, its site_day row rolled a minute ago."""
    rng, midnight = random.Random(11), day_bounds(dt.datetime.fromtimestamp(now, TZ).date(), TZ)[0]
    slots = [{"slot": s} for s in range(int(midnight), int(now), SLOT)]
    changes = [{"site_id": s.id, "verdict": "fully_functional", "since": midnight - 7200,
                "changed_at": midnight - 7200, "reasons": "[]"} for s in sites]  # fmt: skip
    for s in sites[::5]:
        cut = rng.uniform(midnight, now - 60)
        changes += [{"site_id": s.id, "verdict": "down", "since": cut, "changed_at": cut + 30,
                     "reasons": "[]"}, {"site_id": s.id, "verdict": "fully_functional",
                     "since": cut + 40, "changed_at": cut + 40, "reasons": "[]"}]  # fmt: skip
    with store.engine.begin() as conn:
        for table, rows in ((CoverageRow, slots), (VerdictChangeRow, changes)):
            for i in range(0, len(rows), 5000):
                conn.execute(insert(table.__table__), rows[i : i + 5000])  # type: ignore[attr-defined]
    write_rows(store, day_rows(sites, dt.datetime.fromtimestamp(now, TZ).date(), now - 60, rng))


def later(store: Store, sites: list[Site], now: float, rng: random.Random) -> None:
    """Between two requests: the coverage slots up to now (as netmon.monitor.cover writes
    them) and 50 sites judged anew (a change each, stored)."""
    midnight = day_bounds(dt.datetime.fromtimestamp(now, TZ).date(), TZ)[0]
    with store.engine.connect() as conn:
        top = conn.execute(select(func.max(CoverageRow.slot))).scalar() or int(midnight)  # type: ignore[arg-type]
    slots = [{"slot": s} for s in range(int(top) + SLOT, int(now) // SLOT * SLOT + 1, SLOT)]
    changes = [{"site_id": s.id, "verdict": rng.choice(["degraded", "fully_functional"]),
                "since": now - rng.uniform(0, 30), "changed_at": now, "reasons": "[]"}
               for s in rng.sample(sites, 50)]  # fmt: skip
    with store.engine.begin() as conn:
        if slots:
            conn.execute(insert(CoverageRow.__table__), slots)  # type: ignore[attr-defined]
        conn.execute(insert(VerdictChangeRow.__table__), changes)  # type: ignore[attr-defined]


def vars_of(row: Any) -> dict[str, Any]:
    return {k: getattr(row, k) for k in row.__slots__}


def _median(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


async def old_paths(store: Store, inv: Inventory, n_days: int) -> dict[str, Any]:
    hi = day_bounds(FIRST + dt.timedelta(days=n_days - 1), TZ)[1]
    out = {}
    try:
        avail = [await timed(lambda: asyncio.to_thread(old_availability, store, inv,
                                                       hi - 30 * 86400, hi)) for _ in range(3)]  # fmt: skip
    except StoreError as exc:
        print(f"  availability, old path: {exc}", flush=True)
        return out
    out["availability 30 d, old path"] = _median(avail)
    return out


def bench(url: str, args: argparse.Namespace) -> list[str]:
    store = Store(url)
    store.migrate()
    inv = inventory(args.sites, args.days)
    took = fill(store, inv.sites, args.days)
    if store.engine.dialect.name == "postgresql":  # as autovacuum would after such a load
        with store.engine.begin() as conn:
            conn.execute(text("ANALYZE site_day"))
    found = asyncio.run(requests(store, inv, args.days, not args.skip_old))
    if not args.skip_old:
        found |= asyncio.run(old_paths(store, inv, args.days))
    store.close()
    backend = url.split(":", 1)[0].split("+")[0]
    lines = [f"{backend}: {args.sites:,} sites x {args.days} days written in {took:.0f} s"]
    lines += [f"  {name:40s} {wall:9.1f} ms wall {cpu:9.1f} ms CPU"
              for name, (wall, cpu) in found.items()]  # fmt: skip
    print("\n".join(lines), flush=True)
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sites", type=int, default=5000)
    p.add_argument("--days", type=int, default=365)
    p.add_argument(
        "--skip-old",
        action="store_true",
        help="leave out the old computations (and the check of the API's rows against them)",
    )
    default_pg = "postgresql+psycopg://postgres@127.0.0.1:5432/netmon_bench"
    p.add_argument("--postgres", default=os.environ.get("NETMON_BENCH_POSTGRES", default_pg))
    args = p.parse_args()
    global FIRST
    FIRST = dt.datetime.now(TZ).date() - dt.timedelta(days=args.days)
    with tempfile.TemporaryDirectory() as tmp:
        bench(f"sqlite:///{tmp}/bench.db", args)
    if args.postgres:  # a schema of its own in that database, dropped after
        engine = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE'))
            conn.execute(text(f'CREATE SCHEMA "{SCHEMA}"'))
        sep = "&" if "?" in args.postgres else "?"
        try:
            bench(f"{args.postgres}{sep}options=-csearch_path%3D{SCHEMA}", args)
        finally:
            with engine.connect() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE'))
            engine.dispose()


if __name__ == "__main__":
    main()
