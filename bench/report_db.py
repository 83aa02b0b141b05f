"""Database size and report latency, on SQLite and PostgreSQL (issue "Reports").

    .venv/bin/python -m bench.report_db [--sites 5000] [--days 365] [--sample-hours 1]
        [--hour-days 1] [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/netmon_bench]

* raw results: 5,000 devices probed every 60 s (5 echoes, as the bundled example's defaults)
  for ``--sample-hours`` are written through the store's own write path (the journal off),
  then packed by netmon.compaction as the monitor does once they are old enough; the bytes
  per result measured raw and packed (after VACUUM: the space a steady state reuses) give the
  size of 30 days (43,200 results per device), printed as a projection with its sample. The
  data: per device a base RTT of 2-40 ms, each echo that +- gauss(0.5 ms), starts a minute
  apart with up to 20 ms of scheduling jitter (full float bits, as time.time() gives them),
  durations 4 s + the last RTT, 1 % failed probes;
* device hours: ``--hour-days`` days of device_hour rows for the 5,000 devices written through
  netmon.rollup.write_hours from a UTC midnight (so a day is one device_day row per device,
  as every day of a year is), projected to 365 days;
* site days: ``--sites`` sites x ``--days`` days of site_day rows written through
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
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

import netmon.maintenance  # noqa: F401  (its table, read by site_accounts, made by migrate)
from netmon.compaction import compact
from netmon.inventory.models import Site
from netmon.rollup import site_accounts, write_hours, write_rows
from netmon.store import Store
from netmon.timeline import STATES
from probes.base import ProbeResult

TZ = ZoneInfo("Asia/Kolkata")
DEVICES = 5000
PER_DEVICE_30D = 30 * 1440
FIRST = dt.date(2025, 12, 1)


def size(store: Store, vacuum: bool = False) -> int:
    """The database's bytes (SQLite: its files, WAL included; PostgreSQL: pg_database_size),
    after a VACUUM when asked (what pages deleted rows leave free is reused, not counted)."""
    url = store.engine.url
    if vacuum:
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            if url.get_backend_name() != "sqlite":
                conn.execute(text("SET statement_timeout = 0"))
            conn.execute(text("VACUUM" if url.get_backend_name() == "sqlite" else "VACUUM FULL"))
            if url.get_backend_name() != "sqlite":
                conn.execute(text("RESET statement_timeout"))
            if url.get_backend_name() == "sqlite":
                conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    if url.get_backend_name() == "sqlite":
        path = Path(str(url.database))
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    with store.engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())


T0 = 1_780_002_000.0  # a UTC hour: a one-hour sample packs one chunk per device
DAY0 = int(T0 // 86400 * 86400)  # a UTC midnight: a day of device hours is one device_day row


def results(store: Store, hours: float) -> tuple[int, int, int]:
    """Write ``hours`` of 60 s results for DEVICES devices, then pack them: (rows, bytes
    they added raw, bytes packed)."""
    rng = random.Random(12)
    base = [rng.uniform(0.002, 0.040) for _ in range(DEVICES)]
    before, rows = size(store, vacuum=True), 0
    for minute in range(int(hours * 60)):
        for d in range(DEVICES):
            ok = rng.random() >= 0.01
            rtts = tuple(max(1e-4, base[d] + rng.gauss(0, 0.0005)) for _ in range(5)) if ok else ()
            start = T0 + minute * 60 + d % 60 + rng.random() * 0.02
            r = ProbeResult("icmp", ok, start, 4.0 + (rtts[-1] if ok else 1.0), 5, len(rtts),
                            rtts, "" if ok else "no reply to 5 echoes")  # fmt: skip
            store.add_result(f"site-{d // 20:04d}", f"dev-{d % 20:02d}", r)
        rows += store.flush()
    raw = size(store, vacuum=True) - before
    compact(store, T0 + (hours + 2) * 3600, after_hours=0)
    return rows, raw, size(store, vacuum=True) - before


def hours_of(store: Store, days: float) -> tuple[int, int]:
    """Write ``days`` of device_hour rows for DEVICES devices: (rows, bytes they added)."""
    rng = random.Random(13)
    before, n = size(store, vacuum=True), 0
    for h in range(int(days * 24)):
        rows = []
        for d in range(DEVICES):
            failed = int(rng.random() < 0.05)
            avg = round(0.002 + (d % 40) / 1000 + rng.gauss(0, 0.0002), 7)  # as rolled
            rows.append({"site_id": f"site-{d // 20:04d}", "device": f"dev-{d % 20:02d}",
                         "kind": "icmp", "hour": DAY0 + h * 3600,
                         "probes": 60, "failed": failed, "sent": 300,
                         "received": 300 - 5 * failed, "rtt_min": round(avg - 0.001, 7),
                         "rtt_avg": avg, "rtt_max": round(avg + 0.001, 7),
                         "outage_seconds": 60.0 * failed})  # fmt: skip
        n += write_hours(store, rows)
    return n, size(store, vacuum=True) - before


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


TABLES = ("result_chunk", "device_day", "site_day")
BREAKDOWN = """
SELECT c.relname, i.relname, pg_relation_size(c.oid), coalesce(pg_relation_size(c.reltoastrelid), 0),
       coalesce(pg_relation_size(i.oid), 0), c.reltuples
FROM pg_class c LEFT JOIN pg_index x ON x.indrelid = c.oid LEFT JOIN pg_class i ON i.oid = x.indexrelid
WHERE c.relname = ANY(:names) ORDER BY c.relname, i.relname
"""


def breakdown(store: Store, sites: int) -> list[str]:
    """PostgreSQL: per table its heap, TOAST and each index in bytes per row, and the heap's
    free space (pgstattuple, where the server has it): where the bytes of a row go; and the
    total those sizes give for 30 days of chunks (a device-hour a row), a year of device days
    and of ``sites`` site days (a check on the projection from database sizes)."""
    if store.engine.url.get_backend_name() == "sqlite":
        return []
    out: dict[str, list[str]] = {}
    per_row: dict[str, float] = {}
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))
        for table, index, heap, toast, ix, rows in conn.execute(
            text(BREAKDOWN), {"names": list(TABLES)}
        ):
            n = max(float(rows), 1.0)
            if table not in out:
                per_row[table] = (heap + toast) / n
            per_row[table] += ix / n
            line = out.setdefault(
                table,
                [f"{table}: {int(rows):,} rows, heap {heap / n:.1f} B/row, TOAST {toast / n:.1f}"],
            )
            if index:
                line.append(f"{index} {ix / n:.1f}")
        try:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS pgstattuple"))
            for table in out:
                free, tup = conn.execute(
                    text(f"SELECT free_percent, tuple_percent FROM pgstattuple('{table}')")
                ).one()
                out[table].append(f"heap {tup:.1f} % tuples, {free:.1f} % free")
        except SQLAlchemyError:
            pass
    year = {"result_chunk": DEVICES * 30 * 24, "device_day": DEVICES * 365, "site_day": sites * 365}
    total = sum(per_row.get(t, 0.0) * n for t, n in year.items())
    return [
        "postgresql, B/row: " + "; ".join(", ".join(parts) for parts in out.values()),
        f"postgresql, from these relation sizes: 30 d of chunks {per_row.get('result_chunk', 0) * year['result_chunk'] / 1e9:.2f} GB "
        f"+ a year of device days {per_row.get('device_day', 0) * year['device_day'] / 1e9:.2f} GB "
        f"+ of site days {per_row.get('site_day', 0) * year['site_day'] / 1e9:.2f} GB = {total / 1e9:.2f} GB",
    ]


def bench(url: str, args: argparse.Namespace) -> tuple[list[str], list[str]]:
    store = Store(url)
    store.migrate()
    rows, raw, packed = results(store, args.sample_hours)
    month_raw, month = (
        raw / rows * DEVICES * PER_DEVICE_30D,
        packed / rows * DEVICES * PER_DEVICE_30D,
    )
    hour_rows, hour_bytes = hours_of(store, args.hour_days)
    year_hours = hour_bytes / hour_rows * DEVICES * 24 * 365
    all_sites = sites(args.sites)
    n, rollup_bytes, took = rollups(store, all_sites, args.days)
    start = dt.datetime.combine(FIRST, dt.time(), TZ).timestamp()
    year = start + args.days * 86400
    parts = breakdown(store, args.sites)
    one = median_ms(lambda: site_accounts(store, all_sites[:1], TZ, start, year))
    month_ms = median_ms(lambda: site_accounts(store, all_sites, TZ, year - 30 * 86400, year), 3)
    store.close()
    backend = url.split(":", 1)[0].split("+")[0]
    gib = 2**30
    total = month + year_hours + rollup_bytes / args.days * 365
    return [
        f"| {backend} | {rows:,} results: {raw / rows:.0f} B raw, {packed / rows:.1f} B packed "
        f"| {month_raw / gib:.2f} GiB raw, {month / gib:.2f} GiB packed "
        f"| {hour_rows:,} device hours: {hour_bytes / hour_rows:.0f} B/row, a year {year_hours / gib:.2f} GiB "
        f"| {n:,} site days: {rollup_bytes / 2**20:.0f} MiB (written in {took:.0f} s) "
        f"| {total / gib:.2f} GiB ({total / 1e9:.2f} GB) | {one:.1f} ms | {month_ms:.0f} ms |"
    ], parts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sites", type=int, default=5000)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--sample-hours", type=float, default=1.0)
    p.add_argument("--hour-days", type=float, default=1.0)
    default_pg = "postgresql+psycopg://postgres@127.0.0.1:5432/netmon_bench"
    p.add_argument("--postgres", default=os.environ.get("NETMON_BENCH_POSTGRES", default_pg))
    args = p.parse_args()
    lines = ["| backend | raw sample | 30 days x 5,000 devices (projected) | device hours "
             "(5,000 devices) | site days | total: 30 d packed + a year of hours and of days "
             f"| 1 site x {args.days} d | {args.sites:,} sites x 30 d |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        row, notes = bench(f"sqlite:///{tmp}/bench.db", args)
        lines += row
    if args.postgres:
        admin, name = args.postgres.rsplit("/", 1)
        engine = create_engine(f"{admin}/postgres", isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        row, more = bench(args.postgres, args)
        lines += row
        notes += more
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        engine.dispose()
    print("\n".join(lines + notes))


if __name__ == "__main__":
    main()
