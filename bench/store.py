"""Store throughput: netmon's batched writer and history reader vs plain DB-API on one schema.

    .venv/bin/python bench/store.py --rows 300000                       # SQLite file in /tmp
    .venv/bin/python bench/store.py --rows 300000 --url postgresql+psycopg://postgres@127.0.0.1/test

Writes N probe results through ``Store.add_result`` + ``flush`` (what the monitor does), then the
same rows with the driver's own ``executemany`` into the same table (the reference: no queue, no
SQLAlchemy); reads them back with ``Store.results_since`` (what a restart does to refill the
windows) and with a plain ``SELECT``. Prints rows/s and the ratios netmon/reference.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import text

from netmon.store import ProbeResultRow, Store
from probes.base import ProbeResult

COLUMNS = list(ProbeResultRow.values("s", "d", ProbeResult("icmp", True, 0.0)).keys())


def results(n: int) -> list[tuple[str, str, ProbeResult]]:
    rtts = (0.0011, 0.0012, 0.0013, 0.0014, 0.0015)
    return [(f"site-{i % 200}", f"ap-{i % 40}", ProbeResult("icmp", True, 1e9 + i, 4.1, 5, 5, rtts))
            for i in range(n)]  # fmt: skip


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def netmon_write(store: Store, rows: list[tuple[str, str, ProbeResult]]) -> None:
    for site, dev, r in rows:
        store.add_result(site, dev, r)
    store.flush()


def reference_write(store: Store, rows: list[tuple[str, str, ProbeResult]]) -> None:
    values = [ProbeResultRow.values(s, d, r) for s, d, r in rows]
    params = [tuple(v[c] for c in COLUMNS) for v in values]
    marks = ", ".join(["?" if store.url.startswith("sqlite") else "%s"] * len(COLUMNS))
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        for i in range(0, len(params), 5000):
            cur.executemany(
                f"INSERT INTO probe_result ({', '.join(COLUMNS)}) VALUES ({marks})",
                params[i : i + 5000],
            )
        raw.commit()
    finally:
        raw.close()


def reference_read(store: Store) -> int:
    with store.engine.connect() as conn:
        return len(conn.execute(text("SELECT * FROM probe_result WHERE ts >= 0 ORDER BY id")).all())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--url", help="SQLAlchemy URL (default: a fresh SQLite file)")
    args = ap.parse_args()
    if not 0 < args.rows <= 5_000_000:
        raise SystemExit("--rows must be 1..5,000,000")
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        store = Store(url)
        store.migrate()
        with store.engine.begin() as conn:
            conn.execute(text("DELETE FROM probe_result"))
        rows = results(args.rows)
        w_netmon = timed(lambda: netmon_write(store, rows))
        r_netmon = timed(lambda: sum(1 for _ in store.results_since(0)))
        with store.engine.begin() as conn:
            conn.execute(text("DELETE FROM probe_result"))
        w_ref = timed(lambda: reference_write(store, rows))
        r_ref = timed(lambda: reference_read(store))
        with store.engine.begin() as conn:
            conn.execute(text("DELETE FROM probe_result"))
        store.close()
    n = args.rows
    print(f"{n} probe results, {store.safe_url.split(':')[0]}")
    print(f"{'':32} {'netmon':>12} {'reference':>12} {'netmon/ref':>11}")
    print(
        f"{'write rows/s':32} {n / w_netmon:12.0f} {n / w_ref:12.0f} {w_netmon / w_ref:10.2f}x time"
    )
    print(
        f"{'read rows/s (refill at start-up)':32} {n / r_netmon:12.0f} {n / r_ref:12.0f} {r_netmon / r_ref:10.2f}x time"
    )


if __name__ == "__main__":
    main()
