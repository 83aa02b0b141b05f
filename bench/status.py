"""How long the status board's pages take for 5,000 sites (issue 13: < 200 ms).

    .venv/bin/python -m bench.status [--sites 5000] [--runs 9]
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test_status]

Builds, through netmon's own write paths, a store with ``--sites`` sites over Jharkhand's 24
districts (~208 a district): 90 days of site_day rows per site (netmon.rollup.write_rows), and
for one site in 20 a 30-minute outage on one of those days (a ``down`` verdict change and the
``fully_functional`` one after it, and the coverage slots of that outage: the only coverage the
pages read); every site has a verdict in memory (a twentieth of them down now). Then, over
netmon's real app (``create_app``, in-process through httpx's ASGI transport), it asks for
the state page (/status) and one district's page (/status/district/Ranchi), in English and in
Hindi, and their JSON twins, and prints per page:

* **cold**: the first request, which reads the store (a page's reads are then kept a minute,
  netmon.status.reads), and the CPU seconds it took (this process, its reader threads
  included: less sensitive to a busy machine than the wall time);
* **warm**: the median of ``--runs`` requests after it (built and rendered from memory: what
  nearly every request costs), and the CPU seconds of this process per warm request, read from
  /proc (bench/procstat.py; the process has no children);
* **a minute later**: one request after the clock moved 61 s: served from the last read while
  a background task reads the store again (it is not timed; the bench waits 5 s for it);
* **first in a fresh process** (three times per page): the first request in a new Python
  process over the same store, as after a netmon start (one-time costs included: templates,
  SQL statement caches).

With ``--postgres`` the same runs on that server too, in a schema of its own (dropped after).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import create_engine, text

sys.path.insert(0, os.path.dirname(__file__))
from procstat import ProcessTree  # noqa: E402

from exporters.prometheus import make_registry  # noqa: E402
from netmon.api import create_app  # noqa: E402
from netmon.inventory import JHARKHAND_DISTRICTS, Inventory  # noqa: E402
from netmon.monitor import Monitor, SiteStatus  # noqa: E402
from netmon.rollup import SLOT, Rollups, write_rows  # noqa: E402
from netmon.store import Store, VerdictChange  # noqa: E402
from netmon.timeline import STATES  # noqa: E402
from netmon.verdict import Criterion, Judgement, Reason, Verdict  # noqa: E402
from probes.base import Engines  # noqa: E402

TZ = ZoneInfo("Asia/Kolkata")
TODAY = dt.date(2026, 12, 3)
NOW = dt.datetime.combine(TODAY, dt.time(10, 0), TZ).timestamp()
DAYS = 90


def inventory(n: int) -> Inventory:
    sites = [{"id": f"site-{i:05d}", "name": f"Community Health Centre {i}",
              "district": JHARKHAND_DISTRICTS[i % 24], "type": "chc",
              "devices": [{"name": "wan-1", "role": "wan", "address": f"127.{1 + i // 250}.{i % 250}.1"},
                          {"name": "ap-1", "role": "ap", "address": f"127.{1 + i // 250}.{i % 250}.2",
                           "parent": "wan-1"}]} for i in range(n)]  # fmt: skip
    start = TODAY - dt.timedelta(days=60)
    return Inventory.model_validate({"rollout": {"start": start, "deadline": TODAY + dt.timedelta(days=30)},
                                     "sites": sites})  # fmt: skip


def fill(store: Store, inv: Inventory) -> int:
    """90 days of site_day rows per site; an outage for one site in 20; returns the rows."""
    n = 0
    for k in range(DAYS):
        day = TODAY - dt.timedelta(days=DAYS - 1 - k)
        rows = []
        for i, s in enumerate(inv.sites):
            cut = i % 20 == 0 and i % DAYS == k
            secs = {**dict.fromkeys(STATES, 0.0), "fully_functional": 86400.0 - (1800 if cut else 0),
                    "down": 1800.0 if cut else 0.0}  # fmt: skip
            rows.append({"site_id": s.id, "day": day.isoformat(), "district": s.district,
                         "type": s.type, **secs, "rolled_at": NOW})  # fmt: skip
        n += write_rows(store, rows)
    for i, s in enumerate(inv.sites[::20]):
        day = TODAY - dt.timedelta(days=DAYS - 1 - (i * 20) % DAYS)
        t0 = dt.datetime.combine(day, dt.time(9, 0), TZ).timestamp()
        why = [{"criterion": "uplink_down", "message": "wan wan-1 unreachable", "device": "wan-1",
                "measured": 0.0, "threshold": None}]  # fmt: skip
        store.add_verdict_change(VerdictChange(s.id, "down", t0, why, at=t0 + 60))
        store.add_verdict_change(
            VerdictChange(s.id, "fully_functional", t0 + 1800, [], at=t0 + 1800)
        )
        for slot in range(int(t0), int(t0 + 1800), SLOT):
            store.add_coverage(slot)
        store.flush()
    return n


class Clock:
    now = NOW

    def __call__(self) -> float:
        return self.now


def monitor_over(store: Store, inv: Inventory) -> Monitor:
    m = Monitor(inv, store, Engines(), Clock())
    m.rollups = Rollups(TZ)
    for i, s in enumerate(inv.sites):
        down = i % 20 == 7
        reasons = (
            (Reason(Criterion.UPLINK_DOWN, "wan wan-1 unreachable", "wan-1", 600.0),)
            if down
            else ()
        )
        verdict = Verdict.DOWN if down else Verdict.FULLY_FUNCTIONAL
        m.status[s.id] = SiteStatus(s, Judgement(verdict, reasons), NOW - 600, NOW)
    m.ready = True
    return m


async def timed(
    client: httpx.AsyncClient, url: str, runs: int, clock: Clock
) -> tuple[float, float, float, float, float, int]:
    """(cold ms, its CPU ms (the reads' threads included), warm median ms, warm CPU ms per request, ms a minute later, bytes) of GET
    ``url``; a minute later the page is served from the last read while it is read again."""
    tree, times = ProcessTree(os.getpid()), []
    cpu0 = tree.sample()
    t = time.perf_counter()
    resp = await client.get(url)
    cold = (time.perf_counter() - t) * 1000
    cold_cpu = (tree.sample() - cpu0) * 1000
    assert resp.status_code == 200, (url, resp.status_code, resp.text[:300])
    cpu0 = tree.sample()
    for _ in range(runs):
        t = time.perf_counter()
        resp = await client.get(url)
        times.append((time.perf_counter() - t) * 1000)
    cpu = (tree.sample() - cpu0) * 1000 / runs
    clock.now += 61
    t = time.perf_counter()
    assert (await client.get(url)).status_code == 200
    later = (time.perf_counter() - t) * 1000
    await asyncio.sleep(5)  # let the read started by it finish before the app goes
    return cold, cold_cpu, statistics.median(times), cpu, later, len(resp.content)


async def pages(store: Store, inv: Inventory, runs: int, backend: str) -> list[str]:
    lines = []
    for url in ("/status?lang=en", "/status?lang=hi", "/status?format=json",
                "/status/district/Ranchi?lang=en", "/status/district/Ranchi?lang=hi",
                "/status/district/Ranchi?format=json"):  # fmt: skip
        m = monitor_over(store, inv)  # a fresh app per page: its first request is cold
        app = create_app(m, make_registry(m, "bench", "raw"))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as c:
            cold, cold_cpu, warm, cpu, later, size = await timed(c, url, runs, m.clock)  # type: ignore[arg-type]
        lines.append(f"| {backend} | `{url}` | {cold:.0f} ms | {cold_cpu:.0f} ms | {warm:.0f} ms | {cpu:.0f} ms "
                     f"| {later:.0f} ms | {size / 1024:.0f} KiB |")  # fmt: skip
    return lines


def run(url: str, args: argparse.Namespace, backend: str) -> list[str]:
    store = Store(url)
    store.migrate()
    inv = inventory(args.sites)
    t = time.perf_counter()
    rows = fill(store, inv)
    print(
        f"{backend}: {rows:,} site_day rows written in {time.perf_counter() - t:.0f} s", flush=True
    )
    try:
        lines = asyncio.run(pages(store, inv, args.runs, backend))
    finally:
        store.close()
    return lines + [
        first_in_process(url, args.sites, page, backend) for page in FIRST for _ in range(3)
    ]


FIRST = ("/status?lang=en", "/status/district/Ranchi?lang=en")


def first_in_process(url: str, sites: int, page: str, backend: str) -> str:
    """The first request of ``page`` in a fresh Python process over the filled store: what
    the first official after a netmon start waits for (imports done, nothing else warm)."""
    cmd = [
        sys.executable,
        "-m",
        "bench.status",
        "--sites",
        str(sites),
        "--once",
        page,
        "--url",
        url,
    ]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300, cwd=root)
    return f"| {backend} | `{page}`, first in a fresh process | {out.stdout.strip()} | | | | |"


async def once(url: str, sites: int, page: str) -> str:
    store = Store(url)
    store.migrate()  # the tables are there: this only marks the store readable
    m = monitor_over(store, inventory(sites))
    app = create_app(m, make_registry(m, "bench", "raw"))
    tree = ProcessTree(os.getpid())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as c:
        cpu0, t = tree.sample(), time.perf_counter()
        resp = await c.get(page)
        drawn = "<svg" in resp.text or 'class="day run' in resp.text  # the store was read
        assert resp.status_code == 200 and drawn, page
        wall, cpu = (time.perf_counter() - t) * 1000, (tree.sample() - cpu0) * 1000
    store.close()
    return f"{wall:.0f} ms | {cpu:.0f} ms"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sites", type=int, default=5000)
    p.add_argument("--runs", type=int, default=9)
    p.add_argument("--postgres", default="")
    p.add_argument("--once", help=argparse.SUPPRESS)  # first_in_process: the page
    p.add_argument("--url", help=argparse.SUPPRESS)  # ... and the filled store
    args = p.parse_args()
    if args.once:
        print(asyncio.run(once(args.url, args.sites, args.once)))
        return
    lines = [f"{args.sites:,} sites, {DAYS} days of site_day rows; one district: "
             f"{len([i for i in range(args.sites) if i % 24 == JHARKHAND_DISTRICTS.index('Ranchi')]):,} sites", "",
             "| store | page | cold (reads the store) | cold CPU | warm (median) | warm CPU / request "
             "| a minute later (reads again behind) | size |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        lines += run(f"sqlite:///{tmp}/bench.db", args, "SQLite")
    if args.postgres:
        schema = "bench_status"
        engine = create_engine(args.postgres)
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in args.postgres else "?"
        try:
            lines += run(
                f"{args.postgres}{sep}options=-csearch_path%3D{schema}", args, "PostgreSQL"
            )
        finally:
            with engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            engine.dispose()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
