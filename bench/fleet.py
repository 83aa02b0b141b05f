"""Scale out: one ``netmon serve`` taking results from ``netmon poll`` pollers on the same box.

    .venv/bin/python bench/fleet.py                                   # 50,000 devices, 2 pollers
    .venv/bin/python bench/fleet.py --devices 2000 --duration 60 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/netmon_bench_fleet

Runs the real commands as a user does: ``netmon token create`` (one ``poller`` token each),
``netmon serve`` over a generated inventory of ``--devices`` loopback devices (sites of
``--per-site``, ICMP only, ``--count`` echoes every ``--interval`` s; ``bench/netmon_live.py``),
and ``--pollers`` ``netmon poll`` processes, all on 127.0.0.1. Every address answers, so every
site that leaves fully_functional after the warm-up is a *false outage*: the figure that must be
0. Warm-up: until every site is judged fully functional and every site has a poller (bounded by
``--warmup-max``). Then, over ``--duration`` s: CPU of the server's and every poller's process
tree (from /proc, children included), results the server took (``netmon_poller_results_taken``)
and rows it wrote (``netmon_results_written``), and, in the same run, one fping cycle over the
same addresses with the same echo count spread over the interval (its CPU per echo beside the
pollers'). Bounded: at most 100,000 devices, 1 h measured; it stops only the PIDs it started.

``--servers 2`` runs two ``netmon serve`` on the one database (netmon.judging: one leads, both
fold every result), the pollers spread over them (poller i calls server i mod n): each
server's CPU, and the results it folded from the other's rows (``netmon_judge_results_tailed``).
``--port`` is the first server's port (the next ones follow); default: a free one.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
import netmon_live as live
from procstat import ProcessTree

ROOT = Path(__file__).resolve().parents[1]


def metric(port: int | list[int], name: str) -> float:
    """A metric's value, summed over its series (and over the servers, given several ports)."""
    total = 0.0
    for one in port if isinstance(port, list) else [port]:
        text = httpx.get(f"http://127.0.0.1:{one}/metrics", timeout=60).text
        total += sum(live.samples(text, name).values())
    return total


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "netmon.cli", *args], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip


def warm(port: int, sites: int, bound: float) -> bool:
    def ready() -> bool:
        try:
            s = httpx.get(f"http://127.0.0.1:{port}/api/v1/summary", timeout=30).json()
            return int(s.get("fully_functional", 0)) == sites
        except (httpx.HTTPError, ValueError):
            return False

    return live.wait_until(ready, bound, step=5.0)


def false_outages(port: int, after: float) -> int:
    """Verdict changes away from fully_functional since ``after`` (the change feed)."""
    path, bad = "/api/v1/changes?limit=1000", 0
    for _ in range(10_000):  # bounded: 10 M changes
        page = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=60).json()
        for c in page["items"]:
            at = datetime.fromisoformat(c["changed_at"]).timestamp()
            bad += at > after and c["verdict"] != "fully_functional"
        if not page["items"]:
            return bad
        path = page["next"]
    return bad


def fping_cycle(inv: live.LoopbackInventory, workdir: Path) -> tuple[float, int]:
    """One fping over every address, the same echoes spread over the interval: (CPU s, echoes)."""
    targets = workdir / "targets.txt"
    targets.write_text("\n".join(inv.addresses()) + "\n")
    per_echo_ms = max(0.1, inv.interval * 1000 / (inv.devices * inv.count))
    cmd = [live.FPING, "-q", "-c", str(inv.count), "-p", str(int(inv.spacing * 1000)),
           "-i", f"{per_echo_ms:.2f}", "-t", str(int(inv.timeout * 1000)), "-f", str(targets)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + inv.interval * 3 + 60
    while time.monotonic() < deadline:  # bounded: fping's own count, and this deadline
        pid, _status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = 0
            return usage.ru_utime + usage.ru_stime, inv.devices * inv.count
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("fping did not finish its cycle in time")


def run(args: argparse.Namespace) -> int:
    inv = live.LoopbackInventory(args.devices, args.per_site, args.interval, args.count,
                                 args.spacing, args.timeout)  # fmt: skip
    live.raise_open_files()
    work = Path(tempfile.mkdtemp(prefix="netmon-bench-fleet-"))
    (work / "inventory.yaml").write_text(inv.yaml())
    url = args.database_url or f"sqlite:///{work / 'netmon.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETMON_")}
    env.update(NETMON_SNAPSHOT_EVERY="0", NETMON_LOG_LEVEL="warning", NETMON_DATA_DIR=str(work))
    names = [f"poller-{i + 1}" for i in range(args.pollers)]
    for name in names:
        token = subprocess.run([sys.executable, "-m", "netmon.cli", "token", "create", "--name",
                                name, "--scope", "poller", "--database-url", url], cwd=ROOT,
                               env=env, capture_output=True, text=True, check=True).stdout  # fmt: skip
        (work / f"{name}.token").write_text(token)
    first = args.port or live.free_port()
    ports = [first + i for i in range(args.servers)]
    servers = ["server"] + [f"server-{i + 1}" for i in range(1, args.servers)]
    procs = {}
    for name, port in zip(servers, ports, strict=True):
        senv = {**env, "NETMON_DATA_DIR": str(work / name)}
        procs[name] = start(["serve", "--config", str(work / "inventory.yaml"), "--port",
                             str(port), "--database-url", url], senv, work / f"{name}.log")  # fmt: skip
        if len(ports) > 1 and port == first:  # the first leads: the others start as followers
            live.wait_until(lambda: _role(first) == "leader", 120.0, step=1.0)
    for i, name in enumerate(names):
        penv = {**env, "NETMON_DATA_DIR": str(work / name)}
        procs[name] = start(["poll", "--server", f"http://127.0.0.1:{ports[i % len(ports)]}",
                             "--token-file", str(work / f"{name}.token")], penv,
                            work / f"{name}.log")  # fmt: skip
    try:
        return measure(args, inv, work, ports, procs)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()


def _role(port: int) -> str | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json().get("judge")
    except (httpx.HTTPError, ValueError):
        return None


def measure(args: argparse.Namespace, inv: live.LoopbackInventory, work: Path, ports: list[int],
            procs: dict[str, subprocess.Popen[bytes]]) -> int:  # fmt: skip
    port = ports[0]
    print(f"{inv.describe()}; {args.pollers} pollers; {len(ports)} servers; "
          f"store {args.database_url or 'SQLite'}")  # fmt: skip
    if not warm(port, inv.sites, args.warmup_max):
        print(f"warm-up not reached in {args.warmup_max:g} s (logs in {work})")
        return 1
    trees = {name: ProcessTree(p.pid) for name, p in procs.items()}
    cpu0 = {n: t.sample() for n, t in trees.items()}
    taken0, written0, t0 = metric(ports, "netmon_poller_results_taken_total"), metric(
        ports, "netmon_results_written_total"), time.time()  # fmt: skip
    tailed0 = [metric(p, "netmon_judge_results_tailed_total") for p in ports]
    fping_cpu, fping_echoes = fping_cycle(inv, work) if not args.skip_fping else (0.0, 0)
    time.sleep(max(0.0, args.duration - (time.time() - t0)))
    seconds = time.time() - t0
    cpu = {n: t.sample() - cpu0[n] for n, t in trees.items()}
    taken = metric(ports, "netmon_poller_results_taken_total") - taken0
    written = metric(ports, "netmon_results_written_total") - written0
    tailed = [metric(p, "netmon_judge_results_tailed_total") - t for p, t in zip(ports, tailed0,
                                                                                 strict=True)]  # fmt: skip
    echoes = taken * inv.count
    outages = false_outages(port, t0)
    pollers = sum(v for n, v in cpu.items() if not n.startswith("server"))
    print(
        f"measured {seconds:.0f} s: {taken / seconds:,.0f} results/s taken, "
        f"{written / seconds:,.0f} rows/s written"
    )
    for (name, spent), folded in zip(((n, v) for n, v in cpu.items() if n.startswith("server")),
                                     tailed, strict=True):  # fmt: skip
        also = (
            f"; {folded / seconds:,.0f} results/s folded from the others' rows"
            if len(ports) > 1
            else ""
        )
        print(
            f"{name}  CPU {spent:.1f} s ({100 * spent / seconds:.1f} % of a core): "
            f"{1e6 * spent / max(taken, 1):.0f} µs per result (all servers' results){also}"
        )
    print(
        f"pollers CPU {pollers:.1f} s ({100 * pollers / seconds:.1f} % of a core): "
        f"{1e3 * pollers / max(echoes, 1):.3f} ms per 1k echoes ... "
        f"{1e6 * pollers / max(taken, 1):.0f} µs per result"
    )
    if fping_echoes:
        print(
            f"fping   CPU {fping_cpu:.1f} s for {fping_echoes:,} echoes: "
            f"{1e3 * fping_cpu / fping_echoes:.3f} ms per 1k echoes (one cycle, same run)"
        )
    print(f"false outages (sites leaving fully_functional): {outages}")
    return 1 if outages else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", type=int, default=50_000)
    p.add_argument("--per-site", type=int, default=10)
    p.add_argument("--pollers", type=int, default=2)
    p.add_argument("--interval", type=float, default=60.0)
    p.add_argument("--count", type=int, default=2)
    p.add_argument("--spacing", type=float, default=1.0)
    p.add_argument("--timeout", type=float, default=1.0)
    p.add_argument("--duration", type=float, default=120.0)
    p.add_argument("--warmup-max", type=float, default=900.0)
    p.add_argument("--database-url")
    p.add_argument("--skip-fping", action="store_true")
    p.add_argument("--servers", type=int, default=1)
    p.add_argument("--port", type=int, help="the first server's port (default: a free one)")
    args = p.parse_args(argv)
    if not (1 <= args.devices <= 100_000 and 1 <= args.pollers <= 8 and args.duration <= 3600):
        p.error("need 1 <= devices <= 100,000, 1 <= pollers <= 8, duration <= 3600 s")
    if not 1 <= args.servers <= 4 or (args.servers > 1 and not args.database_url):
        p.error("need 1 <= servers <= 4; more than one shares a --database-url (PostgreSQL)")
    return args


if __name__ == "__main__":
    sys.exit(run(parse_args()))
