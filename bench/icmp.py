"""Benchmark netmon's ICMP engine against fping on loopback targets.

    python bench/icmp.py --targets 10000 --count 3

Every target is a 127.x.y.z address (the kernel answers them all), so no packet leaves the host.
Both tools ping the same targets with the same count, per-target spacing and timeout; fping gets
the targets on stdin. Reported per tool: wall time, echoes/s, CPU seconds per 1,000 echoes
(netmon: RUSAGE_SELF around the ping phase only; fping: RUSAGE_CHILDREN) and echoes lost.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

from probes.icmp import IcmpEngine

MAX_TARGETS = 50_000
FPING_TIMEOUT = 600.0  # seconds, hard bound on the fping run


@dataclass(frozen=True)
class Run:
    tool: str
    wall: float
    cpu: float
    sent: int
    lost: int

    @property
    def rate(self) -> float:
        return self.sent / self.wall if self.wall else 0.0

    @property
    def cpu_per_1k(self) -> float:
        return self.cpu / self.sent * 1000 if self.sent else 0.0


def targets(n: int) -> list[str]:
    """n distinct loopback addresses from 127.16.0.1 upwards."""
    return [f"127.{16 + i // 65025}.{(i // 255) % 255}.{i % 255 + 1}" for i in range(n)]


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


async def run_netmon(addresses: list[str], args: argparse.Namespace) -> Run:
    rate = 1000.0 / args.interval if args.interval > 0 else None
    with IcmpEngine.open(args.mode, rate_limit=rate) as engine:
        queue: asyncio.Queue[str] = asyncio.Queue()
        for address in addresses:
            queue.put_nowait(address)
        sent = lost = 0

        async def worker() -> None:
            nonlocal sent, lost
            while not queue.empty():
                result = await engine.burst(
                    queue.get_nowait(), args.count, args.spacing, args.timeout
                )
                sent, lost = sent + result.sent, lost + result.lost

        workers = min(args.concurrency, len(addresses))
        cpu0, wall0 = cpu_seconds(resource.RUSAGE_SELF), time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(workers))), args.bound)
        wall, cpu = time.perf_counter() - wall0, cpu_seconds(resource.RUSAGE_SELF) - cpu0
        extra = f"late={engine.stats.late} foreign={engine.stats.foreign}"
    return Run(f"netmon ({engine.mode}, {extra})", wall, cpu, sent, lost)


def fping_command(args: argparse.Namespace) -> list[str]:
    ms = round(args.spacing * 1000)
    return [
        *["fping", "-C", str(args.count), "-q", "-t", str(round(args.timeout * 1000))],
        *["-p", str(max(ms, 1)), "-i", str(args.interval), "-f", "-"],
    ]


def run_fping(addresses: list[str], args: argparse.Namespace) -> Run:
    cpu0, wall0 = cpu_seconds(resource.RUSAGE_CHILDREN), time.perf_counter()
    proc = subprocess.run(
        fping_command(args),
        input="\n".join(addresses) + "\n",
        capture_output=True,
        text=True,
        timeout=FPING_TIMEOUT,
    )
    wall, cpu = time.perf_counter() - wall0, cpu_seconds(resource.RUSAGE_CHILDREN) - cpu0
    received = 0
    for line in proc.stderr.splitlines():  # "127.16.0.1 : 0.05 0.01 -"
        if " : " in line:
            received += sum(v != "-" for v in line.split(" : ", 1)[1].split())
    sent = len(addresses) * args.count
    return Run("fping", wall, cpu, sent, sent - received)


def report(runs: list[Run]) -> str:
    head = f"{'tool':<44} {'wall s':>8} {'echoes':>8} {'echo/s':>10} {'CPU s/1k':>9} {'lost':>6}"
    rows = [head, "-" * len(head)]
    for r in runs:
        rows.append(
            f"{r.tool:<44} {r.wall:8.3f} {r.sent:8d} {r.rate:10.0f} {r.cpu_per_1k:9.4f} {r.lost:6d}"
        )
    if len(runs) == 2 and runs[1].wall and runs[1].cpu:
        ours, theirs = runs
        wall, rate = ours.wall / theirs.wall, ours.rate / theirs.rate
        cpu = ours.cpu_per_1k / theirs.cpu_per_1k
        rows.append(f"netmon/fping: wall x{wall:.2f}, echo/s x{rate:.2f}, CPU/1k echoes x{cpu:.2f}")
    return "\n".join(rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--targets", type=int, default=1000, help=f"loopback targets (<= {MAX_TARGETS})")
    p.add_argument("--count", type=int, default=3, help="echoes per target")
    p.add_argument("--concurrency", type=int, default=1000, help="netmon bursts in flight")
    p.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for each reply")
    p.add_argument("--spacing", type=float, default=0.02, help="seconds between echoes of a target")
    p.add_argument(
        "--interval", type=int, default=0, help="fping -i ms; >0 also caps netmon at 1000/ms echo/s"
    )
    p.add_argument("--mode", default="auto", choices=["auto", "raw", "dgram"])
    p.add_argument("--skip-fping", action="store_true")
    args = p.parse_args(argv)
    if not 0 < args.targets <= MAX_TARGETS:
        p.error(f"--targets must be 1..{MAX_TARGETS}")
    if not 0 < args.count <= 100 or args.concurrency < 1 or args.timeout <= 0:
        p.error("need 1 <= --count <= 100, --concurrency >= 1 and --timeout > 0")
    args.bound = 60.0 + args.targets * args.count * (args.spacing + args.timeout)  # hard cap
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    addresses = targets(args.targets)
    runs = [asyncio.run(run_netmon(addresses, args))]
    if not args.skip_fping:
        if shutil.which("fping") is None:
            print("fping not found; netmon only", file=sys.stderr)
        else:
            runs.append(run_fping(addresses, args))
    print(
        f"{args.targets} loopback targets x {args.count} echoes, spacing {args.spacing}s, "
        f"timeout {args.timeout}s, netmon concurrency {args.concurrency}, fping -i {args.interval}"
    )
    print(report(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
