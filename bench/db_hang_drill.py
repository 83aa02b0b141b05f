"""Drill: the real ``netmon run`` on a PostgreSQL instance of its own that hangs (SIGSTOP).

    .venv/bin/python -m bench.db_hang_drill [--hang 15]

Starts a private PostgreSQL (tests/pg_instance.py), netmon on it probing 20 loopback devices
every second, SIGSTOPs the database for ``--hang`` seconds, then SIGTERMs netmon while it
still hangs. Prints /healthz and a /history answer during the hang, how long the shutdown
took, and, once the database is SIGCONTed and netmon started again (it loads its spill), the
rows stored against the results netmon says it took: lost = taken - stored, duplicates from
(site, device, kind, ts). Root and the Debian postgresql package needed. Loopback only.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from tests.pg_instance import PgInstance, find_bindir

ROOT = Path(__file__).resolve().parents[1]
SITES = 4
DEVICES = 5


def inventory(path: Path) -> None:
    lines = ["defaults: {interval: 1s, count: 1, timeout: 200ms, spacing: 10ms}", "sites:"]
    for s in range(SITES):
        lines += [f"  - {{id: s{s}, name: Site {s}, district: Ranchi, type: chc, devices: ["]
        devs = [f"{{name: d{d}, role: wan, address: 127.20.{s}.{d + 1}}}" for d in range(DEVICES)]
        lines += ["      " + ", ".join(devs) + "]}"]
    path.write_text("\n".join(lines) + "\n")


def start(work: Path, url: str, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETMON_")}
    env.update(NETMON_DATA_DIR=str(work), NETMON_LOG_LEVEL="info")
    cmd = [sys.executable, "-m", "netmon.cli", "run", "--config", str(work / "inv.yaml"),
           "--port", str(port), "--database-url", url]  # fmt: skip
    log = (work / "netmon.log").open("ab")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    for _ in range(300):  # bounded: 30 s
        if proc.poll() is not None:
            break
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()["status"] == "ok":
                return proc
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"netmon did not start: see {work / 'netmon.log'}")


def taken(port: int) -> int:
    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return sum(int(float(line.split()[-1])) for line in body.splitlines()
               if line.startswith("netmon_results_taken_total"))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hang", type=float, default=15.0)
    args = ap.parse_args()
    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("no PostgreSQL server binaries")
    pg = PgInstance(bindir)
    work = Path(tempfile.mkdtemp(prefix="netmon-drill-"))
    inventory(work / "inv.yaml")
    port = 18000 + os.getpid() % 1000
    try:
        pg.start()
        proc = start(work, pg.url, port)
        time.sleep(5)
        pg.freeze()
        t0 = time.monotonic()
        time.sleep(args.hang)
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=60).json()
        print("healthz during hang:", health["status"], "store:", health["store"])
        t = time.monotonic()
        r = httpx.get(f"http://127.0.0.1:{port}/api/v1/sites/s0/history", timeout=60)
        print(f"history during hang: {r.status_code} {r.headers['content-type']}"
              f" in {time.monotonic() - t:.1f} s")  # fmt: skip
        before = taken(port)
        t = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(120)
        print(f"SIGTERM during hang: exit {rc} after {time.monotonic() - t:.1f} s")
        pg.thaw()
        print(f"database hung {time.monotonic() - t0:.1f} s in all")
        proc = start(work, pg.url, port)  # loads the spill
        t = time.monotonic()
        engine = create_engine(pg.url)
        count = "SELECT COUNT(*), COUNT(DISTINCT (site_id, device, kind, ts)) FROM probe_result"
        for _ in range(100):  # bounded: 10 s
            with engine.connect() as conn:
                rows, distinct = conn.execute(text(count)).one()
            if rows >= before:
                break
            time.sleep(0.1)
        print(f"after restart: {rows} rows ({rows - distinct} duplicates) for {before} results"
              f" taken before SIGTERM (lost: {max(0, before - rows)}); written"
              f" {time.monotonic() - t:.1f} s after the restart")  # fmt: skip
        engine.dispose()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    finally:
        pg.stop()
    print("log:", work / "netmon.log")


if __name__ == "__main__":
    main()
