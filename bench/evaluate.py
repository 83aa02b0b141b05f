"""Evaluation cost, 5k to 50k devices: the full re-judge vs the incremental judge, same run.

    .venv/bin/python bench/evaluate.py                          # 5k, 10k, 20k, 50k devices
    .venv/bin/python bench/evaluate.py --sizes 5000 --seconds 30 # quick

No network at all: a synthetic inventory (sites of ``--site-size`` devices: a wan uplink, a
switch behind it, APs behind the switch) whose results are made up in memory. Steady state at
the real rate: every device gets one 5-echo result every 60 s (devices x 5 echoes / 60 s), at an
even phase, and the monitor evaluates every 5 s, as ``netmon run`` does. ``--down`` of the
devices never answer and ``--lossy`` lose an echo now and then, so verdicts carry reasons.

Per size: one monitor, its windows first filled with one policy window of results (``--window``,
default 10 minutes: the summaries cost the same whatever the window's length, since a window is
240 buckets and a histogram either way; a 24 h warm-up of 50k devices would fold 72 M results),
then ``--seconds`` of monitor time judged in full (``incremental = False`` and every window's
cached summary dropped before each evaluation: every device re-summarised and every site
re-judged at every evaluation, the judge before issue 10) and the next ``--seconds``
judged incrementally. The clock is the monitor's own (a fake clock stepped through the results),
so the figure is CPU seconds per second of monitor time (process CPU time around the fold and
evaluate calls only; making the results up is not counted). Both modes must end with the same
verdicts; the script says so.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from netmon.inventory import Device, Inventory, Policy, Site
from netmon.monitor import Monitor
from netmon.store import Store
from netmon.window import DeviceWindow
from probes.base import Engines, ProbeResult

INTERVAL = 60.0  # one probe per device a minute
EVALUATE_EVERY = 5.0
T0 = 1_800_000_000.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def inventory(devices: int, site_size: int, window: float) -> Inventory:
    sites = []
    for s in range((devices + site_size - 1) // site_size):
        n = min(site_size, devices - s * site_size)
        devs = [Device(name="wan-1", role="wan", address="127.0.0.1")]
        if n > 1:
            devs.append(Device(name="sw-1", role="switch", address="127.0.0.1", parent="wan-1"))
        devs += [Device(name=f"ap-{i}", role="ap", address="127.0.0.1", parent="sw-1")
                 for i in range(n - 2)]  # fmt: skip
        sites.append(Site(id=f"site-{s}", name=f"Site {s}", district="Ranchi", type="phc",
                          devices=devs))  # fmt: skip
    return Inventory(policy=Policy.model_validate({"window": f"{window:g}s"}), sites=sites)


@dataclass(frozen=True)
class Load:
    devices: list[tuple[str, str, float, str]]  # (site, device, phase in the minute, health)

    @classmethod
    def of(cls, inv: Inventory, down: float, lossy: float, rng: random.Random) -> Load:
        flat = [(s.id, d.name) for s in inv.sites for d in s.devices]
        out = []
        for i, (site, dev) in enumerate(flat):
            x = rng.random()
            health = "down" if x < down else "lossy" if x < down + lossy else "ok"
            out.append((site, dev, INTERVAL * i / len(flat), health))
        return cls(out)

    def between(
        self, start: float, end: float, rng: random.Random
    ) -> list[tuple[str, str, ProbeResult]]:
        """Every result started in [start, end) (one per device per minute)."""
        out = []
        for site, dev, phase, health in self.devices:
            first = start + (phase - start) % INTERVAL
            ts = first
            while ts < end:
                out.append((site, dev, _result(ts, health, rng)))
                ts += INTERVAL
        out.sort(key=lambda x: x[2].started_at)
        return out


def _result(ts: float, health: str, rng: random.Random) -> ProbeResult:
    if health == "down":
        return ProbeResult("icmp", False, ts, 5.0, 5, 0, (), "no reply to 5 echoes")
    got = 4 if health == "lossy" and rng.random() < 0.2 else 5
    rtts = tuple(rng.uniform(0.0008, 0.004) for _ in range(got))
    return ProbeResult("icmp", True, ts, 4.0 + max(rtts), 5, got, rtts)


def run_mode(
    m: Monitor, clock: Clock, load: Load, seconds: float, rng: random.Random
) -> tuple[float, float, int]:
    """Fold and evaluate ``seconds`` of monitor time; CPU seconds of each, and results folded."""
    fold_cpu = eval_cpu = 0.0
    n = 0
    start = clock.now
    while clock.now < start + seconds - 1e-9:
        batch = load.between(clock.now, clock.now + EVALUATE_EVERY, rng)  # not timed
        gc.collect()
        t = time.process_time()
        for site, dev, r in batch:
            m._fold(site, dev, r)  # what Monitor.record does besides queueing the store row
        t2 = time.process_time()
        if not m.incremental:
            _forget_summaries(m)  # the judge before issue 10 rebuilt every summary (untimed)
        clock.now += EVALUATE_EVERY
        t_eval = time.process_time()
        m.evaluate()
        t3 = time.process_time()
        fold_cpu, eval_cpu, n = fold_cpu + t2 - t, eval_cpu + t3 - t_eval, n + len(batch)
    return fold_cpu, eval_cpu, n


def _forget_summaries(m: Monitor) -> None:
    """Drop every window's cached summary and p95, so the full mode rebuilds them all."""
    for ev in m.evidence.values():
        window = getattr(ev, "polls", ev)
        assert isinstance(window, DeviceWindow)
        window._cached = None
        window._p95 = None


def bench(devices: int, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(devices)
    inv = inventory(devices, args.site_size, args.window)
    clock = Clock(T0)
    m = Monitor(inv, Store("sqlite://", max_pending=10_000), Engines(), clock)
    load = Load.of(inv, args.down, args.lossy, rng)
    wall = time.perf_counter()
    for site, dev, r in load.between(T0 - args.window, T0, rng):  # warm-up: one full window
        m._fold(site, dev, r)
    m.evaluate(full=True)
    m.incremental = False
    full_fold, full_eval, n = run_mode(m, clock, load, args.seconds, rng)
    full_verdicts = Counter(st.verdict.value for st in m.status.values())
    m.incremental = True
    inc_fold, inc_eval, n2 = run_mode(m, clock, load, args.seconds, rng)
    check = {k: (st.judgement, st.since) for k, st in m.status.items()}
    m.evaluate(full=True)  # a full re-judge now must agree with the incremental one
    same = check == {k: (st.judgement, st.since) for k, st in m.status.items()}
    return {
        "devices": devices, "sites": len(inv.sites), "results/s": n / args.seconds,
        "full_fold": full_fold / args.seconds, "full_eval": full_eval / args.seconds,
        "inc_fold": inc_fold / args.seconds, "inc_eval": inc_eval / args.seconds,
        "same": float(same), "wall": time.perf_counter() - wall,
        "verdicts": full_verdicts,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes", default="5000,10000,20000,50000", help="device counts")
    p.add_argument("--seconds", type=float, default=60.0, help="monitor seconds per mode")
    p.add_argument("--window", type=float, default=600.0, help="policy window, seconds")
    p.add_argument("--site-size", type=int, default=20, help="devices per site")
    p.add_argument("--down", type=float, default=0.01, help="share of devices down")
    p.add_argument("--lossy", type=float, default=0.02, help="share of devices losing echoes")
    args = p.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",") if x]
    if any(not 1 <= n <= 50_000 for n in sizes) or not 5 <= args.seconds <= 600:
        p.error("sizes must be 1..50000 devices and --seconds 5..600")
    print(f"steady state: 1 result/device/{INTERVAL:.0f} s, evaluate every {EVALUATE_EVERY:.0f} s, "
          f"{args.seconds:.0f} s of monitor time per mode, window {args.window:.0f} s, "
          f"{args.site_size} devices/site; CPU s per monitor second (fold + evaluate)")  # fmt: skip
    head = "| devices | sites | results/s | full: fold | full: evaluate | full: total | incremental: fold | incremental: evaluate | incremental: total | full / incremental | same verdicts |"
    print(head)
    print("|" + "---|" * head.count(" | ") + "---|")
    ok = True
    for n in sizes:
        r = bench(n, args)
        full, inc = r["full_fold"] + r["full_eval"], r["inc_fold"] + r["inc_eval"]
        ok = ok and bool(r["same"])
        print(f"| {n:,} | {int(r['sites']):,} | {r['results/s']:.0f} | {r['full_fold']:.4f} | "
              f"{r['full_eval']:.4f} | {full:.4f} | {r['inc_fold']:.4f} | {r['inc_eval']:.4f} | "
              f"{inc:.4f} | ×{full / inc:.1f} | {'yes' if r['same'] else 'NO'} |", flush=True)  # fmt: skip
        print(f"    ({r['wall']:.0f} s wall; verdicts {dict(r['verdicts'])})", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
