"""Restart time at 5,000 devices x 24 h: verdicts served from the snapshot vs the full re-read.

    .venv/bin/python bench/restart.py                                # 5,000 devices x 24 h
    .venv/bin/python bench/restart.py --devices 1000 --hours 4       # quick

Builds a SQLite store of ``--hours`` of ICMP results, one per device a minute (7.2 M rows at
5,000 x 24 h), with bulk inserts: sites of 5 loopback devices (wan, switch, 3 APs), RTTs around
20 ms +-10 %, 0.1 % of probes lost, 1 % of the devices down for an hour or two. Then it times the
real ``netmon run`` (the default 24 h window), from its start until ``GET /api/v1/sites`` lists
a verdict for every site, three times on that store:

1. reference: no snapshot file yet, so the full re-read and re-fold of the window (what every
   restart did before). This run takes a periodic snapshot ``--every`` seconds after it is
   ready, probes ``--crash-after`` seconds more, and is killed (SIGKILL: no snapshot at stop);
2. after that crash: the periodic snapshot restored, the rows stored after its cut folded;
   this run too takes a periodic snapshot, then is stopped (SIGTERM writes one more);
3. after that clean stop: the snapshot alone.

Prints, per run, seconds to verdicts served, CPU seconds of the netmon process tree by then
(utime+stime from /proc, children included), what the run logged about its load, and the
ratio to the reference; then the snapshot's size and how long taking it held the server's loop
(from the runs' logs). Probing is real (ICMP to 127.0.0.0/8 only). Bounded: every wait has a
deadline (``--timeout`` per run), and only the processes this script started are stopped.
``--keep DIR`` builds the store in DIR and keeps it; ``--reuse`` with it skips the build (the
store's history then ends when it was built, plus what earlier runs probed).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from netmon.snapshot import FILE_NAME  # noqa: E402
from netmon.store import Store  # noqa: E402
from probes.base import jitter_of  # noqa: E402

PER_SITE = 5
INTERVAL = 60.0
TICKS = os.sysconf("SC_CLK_TCK")
COLUMNS = ("site_id", "device", "kind", "ts", "duration", "ok", "sent", "received", "rtt_min",
           "rtt_avg", "rtt_max", "jitter", "rtts", "reason", "extra")  # fmt: skip


def inventory_yaml(devices: int) -> str:
    out = ["state: Bench", "defaults: {interval: 60s, count: 5, timeout: 1s, spacing: 1s}",
           "sites:"]  # fmt: skip
    for s in range(devices // PER_SITE):
        a = f"127.{s // 250 + 1}.{s % 250}"
        out += [f"  - id: site-{s:05d}", f"    name: Site {s}", f"    district: D{s % 24:02d}",
                "    type: chc", "    devices:",
                f"      - {{name: wan-1, role: wan, address: {a}.1}}",
                f"      - {{name: sw-1, role: switch, address: {a}.2, parent: wan-1}}"]  # fmt: skip
        out += [f"      - {{name: ap-{i}, role: ap, address: {a}.{i + 10}, parent: sw-1}}"
                for i in range(1, PER_SITE - 1)]  # fmt: skip
    return "\n".join(out) + "\n"


def _rtt_pool(rng: random.Random, n: int = 2000) -> list[tuple[float, float, float, float, str]]:
    """(min, avg, max, jitter, JSON) of 5 RTTs around 20 ms +-10 %: rows pick from these."""
    pool = []
    for _ in range(n):
        rtts = [round(max(0.001, rng.gauss(0.02, 0.002)), 7) for _ in range(5)]
        pool.append((min(rtts), sum(rtts) / 5, max(rtts), jitter_of(rtts) or 0.0,
                     json.dumps(rtts)))  # fmt: skip
    return pool


def build_store(db: Path, devices: int, hours: float, end: float) -> int:
    """``hours`` of one result per device a minute up to ``end``, in time order: rows written."""
    store = Store(f"sqlite:///{db}")
    store.migrate()  # the schema and its version, as netmon makes them
    store.close()
    rng = random.Random(1)
    pool = _rtt_pool(rng)
    names = [(f"site-{s:05d}", d) for s in range(devices // PER_SITE)
             for d in ["wan-1", "sw-1"] + [f"ap-{i}" for i in range(1, PER_SITE - 1)]]  # fmt: skip
    phase = [rng.uniform(0, INTERVAL) for _ in names]
    steps = int(hours * 3600 / INTERVAL)
    start = end - steps * INTERVAL
    outage = {i: (start + rng.uniform(0, steps * INTERVAL), rng.uniform(3600, 7200))
              for i in rng.sample(range(len(names)), max(1, len(names) // 100))}  # fmt: skip
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("DROP INDEX IF EXISTS ix_probe_result_ts")
    conn.execute("DROP INDEX IF EXISTS ix_probe_result_site_device_ts")
    sql = (
        f"INSERT INTO probe_result ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    )
    lost = (0, 5, 0, None, None, None, None, "[]", "no reply to 5 echoes", "")
    for k in range(steps):
        rows = []
        for i, (site, dev) in enumerate(names):
            ts = start + k * INTERVAL + phase[i]
            o = outage.get(i)
            if (o is not None and o[0] <= ts < o[0] + o[1]) or rng.random() < 0.001:
                rows.append((site, dev, "icmp", ts, 5.0, *lost))
            else:
                lo, avg, hi, jit, text = pool[rng.randrange(len(pool))]
                rows.append((site, dev, "icmp", ts, 4.02, 1, 5, 5, lo, avg, hi, jit, text, "", ""))
        conn.executemany(sql, rows)
    conn.commit()
    conn.execute("CREATE INDEX ix_probe_result_ts ON probe_result (ts)")
    conn.execute(
        "CREATE INDEX ix_probe_result_site_device_ts ON probe_result (site_id, device, ts)"
    )
    conn.commit()
    conn.close()
    return steps * len(names)


@dataclass
class Served:
    seconds: float  # from start to every site's verdict listed
    cpu: float  # CPU seconds of the netmon process tree by then
    verdicts: Counter[str]
    log: str
    scrape: tuple[float, int] | None = None  # the first /metrics answer: when, site series


SCRAPE_HEADERS = {"X-Prometheus-Scrape-Timeout-Seconds": "10", "Accept": "text/plain"}


def tree_cpu(root: int) -> float:
    """utime+stime of ``root`` and every live descendant, plus their reaped children's."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        stats[int(entry.name)] = (int(fields[1]), ticks / TICKS)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, (0, 0.0))[1]
        todo += [p for p, (ppid, _) in stats.items() if ppid == pid]
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Run:
    """One ``netmon run`` on the bench's store, its log in the work folder."""

    def __init__(self, work: Path, name: str, every: float) -> None:
        self.port = free_port()
        self.log_path = work / f"{name}.log"
        env = {**os.environ, "NETMON_DATA_DIR": str(work), "NETMON_LOG_LEVEL": "info",
               "NETMON_SNAPSHOT_EVERY": f"{every:g}", "NETMON_RETENTION_DAYS": "0"}  # fmt: skip
        cmd = [sys.executable, "-m", "netmon.cli", "run", "--config", str(work / "inventory.yaml"),
               "--port", str(self.port)]  # fmt: skip
        self.started = time.monotonic()
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.scrape: tuple[float, int] | None = None
        self._scraper = threading.Thread(target=self._first_scrape, daemon=True)
        self._scraper.start()

    def _first_scrape(self, timeout: float = 60.0) -> None:
        """Scrape /metrics as Prometheus does (its timeout header) from the start, until the
        server answers once: when, and how many site verdict series that answer had."""
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/metrics", headers=SCRAPE_HEADERS
        )
        while time.monotonic() < self.started + timeout and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(req, timeout=15) as r:
                    body = r.read().decode()
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)  # not listening yet
                continue
            sites = sum(line.startswith("netmon_site_verdict{") for line in body.splitlines())
            self.scrape = (time.monotonic() - self.started, sites)
            return

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def until_served(self, sites: int, timeout: float) -> Served:
        """Poll the API (every 50 ms, bounded) until it lists a verdict for every site."""
        url = f"http://127.0.0.1:{self.port}/api/v1/sites"
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"netmon exited ({self.proc.returncode}):\n{self.log()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=10) as r:
                    data = json.load(r)["data"]
                if len(data) == sites:
                    took, cpu = time.monotonic() - self.started, tree_cpu(self.proc.pid)
                    self._scraper.join(60)
                    verdicts = Counter(s["verdict"] for s in data)
                    return Served(took, cpu, verdicts, self.log(), self.scrape)
            except (urllib.error.URLError, OSError, ValueError, KeyError):
                pass  # not listening yet, or 503 loading
            time.sleep(0.05)
        raise SystemExit(f"no verdicts within {timeout:.0f} s:\n{self.log()[-3000:]}")

    def wait_log(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.log())
            if found:
                return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.5)
        raise SystemExit(f"{pattern!r} not logged within {timeout:.0f} s:\n{self.log()[-3000:]}")

    def stop(self, sig: signal.Signals, timeout: float = 120.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


SNAPSHOT_LINE = (r"snapshot of (\d+) evidence objects written to \S+: ([\d.]+) MB, ([\d.]+) s on "
                 r"the loop \(at most (\d+) ms at once\), ([\d.]+) s writing")  # fmt: skip
LOAD_LINE = r"(restored .*|no snapshot at .*|refilled windows with .*)"


def describe(served: Served) -> str:
    lines = re.findall(LOAD_LINE, served.log)
    return "; ".join(line.split(": re-reading")[0] for line in lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=5000, help="devices (sites of 5), <= 20,000")
    ap.add_argument("--hours", type=float, default=24.0, help="hours of history, <= 24")
    ap.add_argument("--every", type=float, default=30.0, help="run 1's snapshot period, s")
    ap.add_argument("--crash-after", type=float, default=60.0,
                    help="seconds run 1 probes after its snapshot before it is killed")  # fmt: skip
    ap.add_argument("--timeout", type=float, default=900.0, help="bound on each run, s")
    ap.add_argument("--keep", type=Path, help="build the store in this folder and keep it")
    ap.add_argument("--reuse", action="store_true", help="with --keep: use the store there")
    args = ap.parse_args()
    if not (PER_SITE <= args.devices <= 20_000 and 0 < args.hours <= 24 and args.every >= 5
            and 0 <= args.crash_after <= 600 and 10 <= args.timeout <= 3600):  # fmt: skip
        ap.error("--devices 5..20000, --hours 0..24, --every >= 5, --crash-after 0..600")
    with tempfile.TemporaryDirectory(prefix="netmon-restart-") as tmp:
        bench(args.keep or Path(tmp), args)


def bench(work: Path, args: argparse.Namespace) -> None:
    work.mkdir(parents=True, exist_ok=True)
    sites = args.devices // PER_SITE
    (work / "inventory.yaml").write_text(inventory_yaml(args.devices))
    (work / FILE_NAME).unlink(missing_ok=True)
    db = work / "netmon.db"
    started = time.monotonic()
    if args.reuse and args.keep and db.is_file():
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT COUNT(*) FROM probe_result").fetchone()[0]
    else:
        db.unlink(missing_ok=True)
        rows = build_store(db, sites * PER_SITE, args.hours, time.time())
    print(f"store: {rows:,} results ({sites * PER_SITE:,} devices x {args.hours:g} h), "
          f"{db.stat().st_size / 1e9:.2f} GB, ready in {time.monotonic() - started:.0f} s; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")  # fmt: skip
    results: list[tuple[str, Served]] = []
    runs: list[Run] = []
    try:
        first = Run(work, "1-reference", args.every)
        runs.append(first)
        results.append(("1 full re-read (no snapshot)", first.until_served(sites, args.timeout)))
        periodic = first.wait_log(SNAPSHOT_LINE, args.every + args.timeout)
        time.sleep(args.crash_after)
        first.stop(signal.SIGKILL)
        second = Run(work, "2-after-crash", args.every)
        runs.append(second)
        results.append(("2 snapshot + rows after it", second.until_served(sites, args.timeout)))
        restored = second.wait_log(SNAPSHOT_LINE, args.every + args.timeout)
        second.stop(signal.SIGTERM)
        at_stop = re.findall(SNAPSHOT_LINE, second.log())[-1]
        third = Run(work, "3-after-stop", 300.0)
        runs.append(third)
        results.append(("3 snapshot of a clean stop", third.until_served(sites, args.timeout)))
        third.stop(signal.SIGTERM)
    finally:
        for run in runs:
            run.stop(signal.SIGKILL)
    report(results, [("run 1, periodic (after the full re-read)", periodic.groups()),
                     ("run 2, periodic (after a restore)", restored.groups()),
                     ("run 2, at its stop", at_stop)])  # fmt: skip


def report(results: list[tuple[str, Served]], snapshots: list[tuple[str, tuple[str, ...]]]) -> None:
    ref = results[0][1]
    print(f"{'run':32} {'served':>9} {'CPU':>8} {'ratio':>7}  verdicts")
    for label, s in results:
        verdicts = ", ".join(f"{v} {n}" for v, n in sorted(s.verdicts.items()))
        print(
            f"{label:32} {s.seconds:8.2f}s {s.cpu:7.2f}s {s.seconds / ref.seconds:6.3f}x  {verdicts}"
        )
    for label, s in results:
        print(f"  {label}: {describe(s)}")
        if s.scrape is not None:  # verdict series: one per site and verdict value
            print(f"    first /metrics answer (as Prometheus asks) after {s.scrape[0]:.2f} s: "
                  f"{s.scrape[1] // 5} of {sum(s.verdicts.values())} sites' verdict series")  # fmt: skip
    for label, (n, mb, loop, step, write) in snapshots:
        print(f"snapshot {label}: {n} evidence objects, {mb} MB; {loop} s pickling on the "
              f"server's loop, at most {step} ms at once; {write} s writing (a worker thread)")  # fmt: skip
    best = min(s.seconds for _, s in results[1:])
    print(f"restart from a snapshot: {best:.2f}-{max(s.seconds for _, s in results[1:]):.2f} s "
          f"vs {ref.seconds:.2f} s re-reading the window: x{ref.seconds / best:.1f} faster")  # fmt: skip


if __name__ == "__main__":
    main()
