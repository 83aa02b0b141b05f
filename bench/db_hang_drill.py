"""Drills: the real ``netmon run`` on a PostgreSQL instance of its own that fails.

    .venv/bin/python -m bench.db_hang_drill [--hang 15] [--drill hang|kill|start-down|all]

Starts a private PostgreSQL (tests/pg_instance.py) and netmon on it probing 20 loopback
devices every second. Drills:

* ``hang``: SIGSTOP the database for ``--hang`` seconds, then SIGTERM netmon while it still
  hangs. Prints /healthz and a /history answer during the hang and how long the shutdown took.
* ``kill``: stop the database (pg_ctl), ``--hang`` seconds later SIGKILL netmon.
* ``start-down``: start netmon while the database is stopped; ``--hang`` seconds later start it.

Each ends with netmon (re)started on a running database and one table row: results netmon
said it took (``netmon_results_taken_total``, read just before the stop or kill, or before the
database returns), rows stored, lost = taken - stored, duplicates from (site, device, kind, ts),
and the seconds from the (re)start or the database's return until every one was stored.
Root and the Debian postgresql package needed. Loopback only.
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
from sqlalchemy.exc import ProgrammingError

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


def start(
    work: Path, url: str, port: int, ready: tuple[str, ...] = ("ok",)
) -> subprocess.Popen[bytes]:
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
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()["status"] in ready:
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


def stored(url: str) -> tuple[int, int]:
    """(rows, distinct (site, device, kind, ts)) in probe_result; (0, 0) before netmon has
    created it (start-down: the first write that gets through migrates)."""
    engine = create_engine(url)
    count = "SELECT COUNT(*), COUNT(DISTINCT (site_id, device, kind, ts)) FROM probe_result"
    try:
        with engine.connect() as conn:
            rows, distinct = conn.execute(text(count)).one()
    except ProgrammingError:
        return 0, 0
    finally:
        engine.dispose()
    return int(rows), int(distinct)


def settle(url: str, before: int, since: float) -> tuple[int, int, float]:
    """Wait (bounded: 60 s) until ``before`` rows are stored: (rows, duplicates, seconds)."""
    rows = distinct = 0
    for _ in range(600):
        rows, distinct = stored(url)
        if rows >= before:
            break
        time.sleep(0.1)
    return rows, rows - distinct, time.monotonic() - since


def hang(pg: PgInstance, work: Path, port: int, seconds: float) -> tuple[int, float, Running]:
    """SIGSTOP, then SIGTERM netmon during the hang: (results taken, when it was restarted)."""
    proc = start(work, pg.url, port)
    time.sleep(5)
    pg.freeze()
    time.sleep(seconds)
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
    restarted = time.monotonic()
    return before, restarted, start(work, pg.url, port)


def kill(pg: PgInstance, work: Path, port: int, seconds: float) -> tuple[int, float, Running]:
    """Stop the database, SIGKILL netmon ``seconds`` later, start both again."""
    proc = start(work, pg.url, port)
    time.sleep(5)
    pg.down()
    time.sleep(seconds)
    before = taken(port)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    pg.up()
    restarted = time.monotonic()
    return before, restarted, start(work, pg.url, port)


def start_down(pg: PgInstance, work: Path, port: int, seconds: float) -> tuple[int, float, Running]:
    """Start netmon while the database is stopped; start the database ``seconds`` later."""
    pg.down()
    proc = start(work, pg.url, port, ready=("degraded",))
    time.sleep(seconds)
    before = taken(port)
    pg.up()
    return before, time.monotonic(), proc


Running = subprocess.Popen[bytes]
DRILLS = {"hang": hang, "kill": kill, "start-down": start_down}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hang", type=float, default=15.0)
    ap.add_argument("--drill", choices=[*DRILLS, "all"], default="all")
    args = ap.parse_args()
    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("no PostgreSQL server binaries")
    table = []
    for name in DRILLS if args.drill == "all" else [args.drill]:
        table.append((name, *drill(bindir, name, args.hang)))
    print(f"\n{'drill':12} {'taken':>7} {'stored':>7} {'lost':>5} {'dups':>5} {'stored in':>10}")
    for name, before, rows, dups, secs in table:
        print(f"{name:12} {before:7d} {rows:7d} {max(0, before - rows):5d} {dups:5d} {secs:9.1f}s")


def drill(bindir: Path, name: str, seconds: float) -> tuple[int, int, int, float]:
    """One drill on a fresh instance and data folder: (taken, stored, duplicates, seconds)."""
    pg = PgInstance(bindir)
    work = Path(tempfile.mkdtemp(prefix=f"netmon-drill-{name}-"))
    inventory(work / "inv.yaml")
    port = 18000 + os.getpid() % 1000
    try:
        pg.start()
        before, since, proc = DRILLS[name](pg, work, port, seconds)
        rows, dups, secs = settle(pg.url, before, since)  # netmon running on a live database
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    finally:
        pg.stop()
    print(f"{name}: log {work / 'netmon.log'}")
    return before, rows, dups, secs


if __name__ == "__main__":
    main()
