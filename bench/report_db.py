"""Database size and report latency, on SQLite and PostgreSQL (issue "Reports").

    .venv/bin/python -m bench.report_db [--sites 5000] [--days 365] [--sample-hours 1]
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/netmon_bench]

* raw results: 5,000 devices probed every 60 s for ``--sample-hours`` are written through the
  store's own write path (the journal off); the bytes per row measured on that sample give the
  size of 30 days (43,200 results per device), printed as a projection with the sample it
  comes from;
* rollups: ``--sites`` sites x ``--days`` days of site_day rows written through
  netmon.rollup.write_rows (the monitor's upsert), and their size;
* latency (median of 7, after one warm-up): one site's availability over a year
  (netmon.rollup.site_accounts over final rows, as GET /api/v1/sites/{id}/availability reads
  them) and every site's over 30 days (as GET /api/v1/availability).

The PostgreSQL database named by ``--postgres`` is dropped and created again (default: a
``netmon_bench`` database on the local server); pass ``--postgres ''`` to skip it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, text

from netmon.inventory.models import Site
from netmon.rollup import site_accounts, write_rows
from netmon.store import Store
from netmon.timeline import STATES
from probes.base import ProbeResult

TZ = ZoneInfo("Asia/Kolkata")
DEVICES = 5000
PER_DEVICE_30D = 30 * 1440
FIRST = dt.date(2025, 12, 1)


def size(store: Store) -> int:
    url = store.engine.url
    if url.get_backend_name() == "sqlite":
        path = Path(str(url.database))
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    with store.engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())


def results(store: Store, hours: float) -> tuple[int, int]:
    """Write ``hours`` of 60 s results for DEVICES devices; (rows, bytes they added)."""
    before, t0 = size(store), 1_780_000_000.0
    rows = 0
    for minute in range(int(hours * 60)):
        for d in range(DEVICES):
            ok = (d + minute) % 97 != 0
            rtts = (0.012, 0.013, 0.011) if ok else ()
            r = ProbeResult("icmp", ok, t0 + minute * 60 + d % 60, 0.25, 3, len(rtts), rtts,
                            "" if ok else "no reply to 3 echoes")  # fmt: skip
            store.add_result(f"site-{d // 20:04d}", f"dev-{d % 20:02d}", r)
        rows += store.flush()
    return rows, size(store) - before


def sites(n: int) -> list[Site]:
    return [Site(id=f"site-{i:04d}", name=f"Site {i}", district=f"District {i % 24}", type="chc")
            for i in range(n)]  # fmt: skip


def rollups(store: Store, all_sites: list[Site], days: int) -> tuple[int, int, float]:
    before, started = size(store), time.perf_counter()
    rolled_at = time.time()
    n = 0
    for k in range(days):
        day = (FIRST + dt.timedelta(days=k)).isoformat()
        rows = [{"site_id": s.id, "day": day, "district": s.district, "type": s.type,
                 **dict.fromkeys(STATES, 0.0), "fully_functional": 80000.0, "down": 6400.0,
                 "rolled_at": rolled_at} for s in all_sites]  # fmt: skip
        n += write_rows(store, rows)
    return n, size(store) - before, time.perf_counter() - started


def median_ms(fn: Callable[[], object], runs: int = 7) -> float:
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def bench(url: str, args: argparse.Namespace) -> list[str]:
    store = Store(url)
    store.migrate()
    rows, grew = results(store, args.sample_hours)
    per_row = grew / rows
    projected = per_row * DEVICES * PER_DEVICE_30D
    all_sites = sites(args.sites)
    n, rollup_bytes, took = rollups(store, all_sites, args.days)
    start = dt.datetime.combine(FIRST, dt.time(), TZ).timestamp()
    year = start + args.days * 86400
    one = median_ms(lambda: site_accounts(store, all_sites[:1], TZ, start, year))
    month = median_ms(lambda: site_accounts(store, all_sites, TZ, year - 30 * 86400, year), 3)
    store.close()
    backend = url.split(":", 1)[0].split("+")[0]
    mb = 1 << 20
    return [
        f"| {backend} | {rows:,} results: {per_row:.0f} B/row | {projected / 2**30:.2f} GiB "
        f"| {n:,} site days: {rollup_bytes / mb:.0f} MiB (written in {took:.0f} s) "
        f"| {(projected + rollup_bytes) / 2**30:.2f} GiB | {one:.1f} ms | {month:.0f} ms |"
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sites", type=int, default=5000)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--sample-hours", type=float, default=1.0)
    default_pg = "postgresql+psycopg://postgres@127.0.0.1:5432/netmon_bench"
    p.add_argument("--postgres", default=os.environ.get("NETMON_BENCH_POSTGRES", default_pg))
    args = p.parse_args()
    lines = ["| backend | raw sample | 30 days x 5,000 devices (projected) | rollups | total "
             f"| 1 site x {args.days} d | {args.sites:,} sites x 30 d |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        lines += bench(f"sqlite:///{tmp}/bench.db", args)
    if args.postgres:
        admin, name = args.postgres.rsplit("/", 1)
        engine = create_engine(f"{admin}/postgres", isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        lines += bench(args.postgres, args)
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        engine.dispose()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
