"""Re-judging a site's history from late results (netmon.history): CPU per cut length.

    .venv/bin/python bench/history.py                       # 10 min, 1 h, 24 h cuts of a 30-device site
    .venv/bin/python bench/history.py --devices 200 --hours 0.5 2

No network: one site of ``--devices`` (a wan uplink, a switch, APs) with one result per device
a minute stored in a SQLite file for the policy window before the cut and the cut itself (the
store as a replayed outbox leaves it), then :meth:`netmon.history.Rejudger.rewrite` over the cut,
timed as the process's CPU (the read of the stored results, the shadow monitor's folds and
judgements every 5 s, the rewrite of the stretch's changes). Bounded: at most 1,000 devices and
48 h per cut.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from evaluate import T0, Clock, Load, inventory  # noqa: E402

from netmon.monitor import Monitor  # noqa: E402
from netmon.store import Store  # noqa: E402
from probes.base import Engines  # noqa: E402

WINDOW = 3600.0  # the policy window (the default is 1 h)


def measure(devices: int, hours: float, workdir: Path) -> tuple[float, float, int, int]:
    """(CPU s, wall s, results read, changes written) of one re-judge of an ``hours`` cut."""
    inv = inventory(devices, devices, WINDOW)
    rng = random.Random(7)
    load = Load.of(inv, down=0.05, lossy=0.1, rng=rng)
    store = Store(f"sqlite:///{workdir / f'h{devices}-{hours:g}.db'}")
    store.migrate()
    cut_from, cut_to = T0, T0 + hours * 3600
    results = load.between(cut_from - WINDOW, cut_to, rng)
    for site, dev, r in results:
        store.add_result(site, dev, r)
    store.flush()
    clock = Clock(cut_to + 15)
    monitor = Monitor(inv, store, Engines(), clock)
    monitor.last_evaluation = clock.now
    t, w = time.process_time(), time.perf_counter()
    ok = asyncio.run(monitor.history.rewrite(inv.sites[0].id, cut_from))
    cpu, wall = time.process_time() - t, time.perf_counter() - w
    assert ok, "the re-judge did not run"
    changes = len(store.verdict_history(inv.sites[0].id, limit=100_000))
    store.close()
    return cpu, wall, len(results), changes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--devices", type=int, default=30)
    ap.add_argument("--hours", type=float, nargs="+", default=[1 / 6, 1.0, 24.0])
    args = ap.parse_args()
    if not 3 <= args.devices <= 1000 or not all(0 < h <= 48 for h in args.hours):
        ap.error("need 3 <= --devices <= 1000 and 0 < --hours <= 48")
    print(f"one site of {args.devices} devices, 1 result/device/60 s, policy window 1 h, "
          f"5 % of devices down and 10 % lossy; the stretch re-judged every 5 s")  # fmt: skip
    print("| cut | results read (cut + window) | changes | CPU s | wall s | CPU ms per cut hour |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for hours in args.hours:
            cpu, wall, n, changes = measure(args.devices, hours, Path(tmp))
            print(f"| {hours * 60:g} min | {n:,} | {changes} | {cpu:.3f} | {wall:.3f} "
                  f"| {1000 * cpu / hours:.0f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
