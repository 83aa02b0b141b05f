"""/metrics scrape cost: the cached renderer vs the uncached collector, in the same run.

    .venv/bin/python bench/scrape.py                          # 2k, 5k, 20k devices
    .venv/bin/python bench/scrape.py --sizes 20000 --scrapes 10

Builds a Monitor over a synthetic inventory (sites of 20 devices: wan, router, switch, 17 APs;
24 districts), folds synthetic ICMP results into it (no network, no store writes: results go
through ``Monitor.record`` and the store queue is cleared), evaluates, then per size:

* old: ``prometheus_client.generate_latest`` over the registry (every family built and
  formatted from scratch: what /metrics did before the cache);
* new: ``NetmonRegistry.render`` (the cached renderer /metrics uses), text and OpenMetrics,
  with ``--changed`` (10 %) of the devices given a new result before each scrape (so each
  scrape re-renders that share: a 15 s scrape of 60 s probes changes ~25 %, see --changed);
* gzip (level 1, as /metrics) of the new body, and a one-district shard.

Prints median and max seconds per scrape, body bytes plain and gzip, series, and the ratio
old/new. Bounded: ``--scrapes`` per variant (default 5), sizes at most 50,000 devices.
"""

from __future__ import annotations

import argparse
import gzip
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client import generate_latest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from exporters.prometheus import NetmonRegistry, make_registry  # noqa: E402
from exporters.render import Scrape  # noqa: E402
from netmon.inventory import parse_inventory  # noqa: E402
from netmon.monitor import Monitor  # noqa: E402
from netmon.store import Store  # noqa: E402
from probes.base import Engines, ProbeResult  # noqa: E402

NOW = 1_800_000_000.0
PER_SITE = 20
DISTRICTS = 24


def inventory_yaml(devices: int) -> str:
    out = ["state: Bench", "defaults: {interval: 60s, count: 5, timeout: 1s, spacing: 1s}",
           "policy: {window: 1h}", "sites:"]  # fmt: skip
    for s in range(devices // PER_SITE):
        out += [f"  - id: site-{s:05d}", f"    name: Site {s}", f"    district: D{s % DISTRICTS:02d}",
                "    type: chc", "    devices:",
                f"      - {{name: wan-1, role: wan, address: 127.{s // 250 + 1}.{s % 250}.1}}",
                f"      - {{name: router-1, role: router, address: 127.{s // 250 + 1}.{s % 250}.2, parent: wan-1}}",
                f"      - {{name: sw-1, role: switch, address: 127.{s // 250 + 1}.{s % 250}.3, parent: router-1}}"]  # fmt: skip
        out += [f"      - {{name: ap-{a:02d}, role: ap, address: 127.{s // 250 + 1}.{s % 250}.{a + 10}, parent: sw-1}}"
                for a in range(PER_SITE - 3)]  # fmt: skip
    return "\n".join(out) + "\n"


def result(rng: random.Random, ts: float) -> ProbeResult:
    rtts = tuple(rng.uniform(0.0005, 0.02) for _ in range(5))
    return ProbeResult("icmp", True, ts, 4.1, 5, 5, rtts)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def build(devices: int, store_dir: Path) -> tuple[Monitor, NetmonRegistry, Clock]:
    clock = Clock()
    store = Store(f"sqlite:///{store_dir / 'bench.db'}")
    inv = parse_inventory(inventory_yaml(devices), "<bench>")
    monitor = Monitor(inv, store, Engines(), clock)
    registry = make_registry(monitor, "bench", "none")
    rng = random.Random(1)
    for step in range(10):  # 10 minutes of 60 s probes
        for site in inv.sites:
            for dev in site.devices:
                monitor.record(site.id, dev.name, result(rng, NOW - 600 + 60 * step))
        store.pending.clear()
    monitor.evaluate()
    monitor.ready = True
    return monitor, registry, clock


def churn(monitor: Monitor, clock: Clock, share: float, rng: random.Random) -> None:
    """Give ``share`` of the devices a new result (what happens between two scrapes)."""
    clock.now += 15.0
    for site in monitor.inventory.sites:
        for dev in site.devices:
            if rng.random() < share:
                monitor.record(site.id, dev.name, result(rng, clock.now - 1))
    monitor.store.pending.clear()


def timed(
    fn: Callable[[], bytes], scrapes: int, before: Callable[[], None]
) -> tuple[list[float], bytes]:
    times: list[float] = []
    body = b""
    for _ in range(scrapes):
        before()
        start = time.perf_counter()
        body = fn()
        times.append(time.perf_counter() - start)
    return times, body


def row(label: str, times: list[float], body: bytes) -> None:
    text = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
    series = sum(1 for line in text.split(b"\n") if line and not line.startswith(b"#"))
    print(f"  {label:<34} median {statistics.median(times):6.3f} s  max {max(times):6.3f} s  "
          f"{len(body) / 1e6:7.2f} MB  {series:>8,} series")  # fmt: skip


def bench(devices: int, scrapes: int, changed: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        monitor, registry, clock = build(devices, Path(tmp))
        rng = random.Random(2)
        tick = lambda: churn(monitor, clock, changed, rng)  # noqa: E731
        print(f"{devices:,} devices ({changed:.0%} with a new result before each scrape):")
        old_t, old_b = timed(lambda: generate_latest(registry), scrapes, tick)
        row("old: generate_latest (uncached)", old_t, old_b)
        registry.render(Scrape())  # the first scrape after start renders everything
        new_t, new_b = timed(lambda: registry.render(Scrape()).encode(), scrapes, tick)
        row("new: cached text", new_t, new_b)
        om_t, om_b = timed(
            lambda: registry.render(Scrape(openmetrics=True)).encode(), scrapes, tick
        )
        row("new: cached OpenMetrics", om_t, om_b)
        gz_t, gz_b = timed(
            lambda: gzip.compress(registry.render(Scrape()).encode(), 1), scrapes, tick
        )
        row("new: cached text + gzip", gz_t, gz_b)
        one = frozenset(s.id for s in monitor.inventory.sites if s.district == "D00")
        sh_t, sh_b = timed(
            lambda: registry.render(Scrape(sites=one, own=False)).encode(), scrapes, tick
        )
        row("new: one district of 24 (?district=)", sh_t, sh_b)
        ratio = statistics.median(old_t) / statistics.median(new_t)
        print(f"  old/new median: x{ratio:.1f}; gzip body {len(gz_b) / 1e6:.2f} MB "
              f"({len(new_b) / max(len(gz_b), 1):.0f}x smaller)")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="2000,5000,20000", help="device counts, comma-separated")
    ap.add_argument("--scrapes", type=int, default=5, help="scrapes per variant (1-50)")
    ap.add_argument(
        "--changed", type=float, default=0.1, help="share of devices with a new result per scrape"
    )
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if not all(PER_SITE <= n <= 50_000 for n in sizes) or not 1 <= args.scrapes <= 50:
        ap.error("sizes must be 20..50000 devices and --scrapes 1..50")
    for n in sizes:
        bench(n, args.scrapes, min(max(args.changed, 0.0), 1.0))


if __name__ == "__main__":
    main()
