"""/metrics scrape cost at steady state: the cached renderer vs prometheus_client, same run.

    .venv/bin/python bench/scrape.py                          # 2k, 5k, 20k devices
    .venv/bin/python bench/scrape.py --sizes 20000 --scrapes 7

No network. A Monitor over a synthetic inventory (sites of 20 devices: wan, router, switch, 17
APs, 24 districts) fed at the real rate by ``bench/evaluate.py``'s load: one 5-echo result per
device a minute, each device at the phase netmon's scheduler gives it (``--down`` of the
devices never answer, ``--lossy`` lose an echo now and then), folded through ``Monitor.record`` (the metrics counters see them; the store
queue is cleared). Its windows are first filled with one policy window (``--window``, 10 min:
a window is 240 buckets either way, so results and buckets leave it at the real rate too).
Between two scrapes 15 s of monitor time pass as in ``netmon run``: three times an evaluation
then 5 s of results, so each scrape finds ~25 % of the devices with a new result (5 s of them
not judged yet) and ~25 % with a bucket leaving their window. Per size, each variant timed over
``--scrapes`` scrapes, every one after such a 15 s step (not timed):

* reference: ``prometheus_client.generate_latest`` of the same registry (every family built and
  formatted from scratch by prometheus_client, the uncached ``NetmonCollector``);
* cached: ``NetmonRegistry.render`` in the text format (what /metrics runs on the event loop);
* as Prometheus scrapes: OpenMetrics (asked for first) rendered, then encoded and gzipped at
  level 1 (/metrics does the last two in a worker thread), total and both parts;
* the same without the window gauges (``?window_gauges=false``) and for one district of 24.

Prints median and max wall seconds and the median process CPU seconds per scrape, body MB
(plain, gzip), series and series per device, and reference/cached. Bounded: ``--scrapes`` 1..50,
sizes 20..50,000 devices.
"""

from __future__ import annotations

import argparse
import gzip
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client import generate_latest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluate import EVALUATE_EVERY, Load  # noqa: E402  (bench/evaluate.py, beside this file)

from exporters.prometheus import NetmonRegistry, make_registry  # noqa: E402
from exporters.render import Scrape  # noqa: E402
from netmon.inventory import Inventory, parse_inventory  # noqa: E402
from netmon.monitor import Monitor  # noqa: E402
from netmon.poller import Poller  # noqa: E402
from netmon.store import Store  # noqa: E402
from probes.base import Engines  # noqa: E402

T0 = 1_800_000_000.0
PER_SITE = 20
DISTRICTS = 24
SCRAPE_EVERY = 15.0


def inventory_yaml(devices: int, window: float) -> str:
    out = ["state: Bench", "defaults: {interval: 60s, count: 5, timeout: 1s, spacing: 1s}",
           f"policy: {{window: {window:g}s}}", "sites:"]  # fmt: skip
    for s in range(devices // PER_SITE):
        net = f"127.{s // 250 + 1}.{s % 250}"
        out += [f"  - id: site-{s:05d}", f"    name: Site {s}", f"    district: D{s % DISTRICTS:02d}",
                "    type: chc", "    devices:",
                f"      - {{name: wan-1, role: wan, address: {net}.1}}",
                f"      - {{name: router-1, role: router, address: {net}.2, parent: wan-1}}",
                f"      - {{name: sw-1, role: switch, address: {net}.3, parent: router-1}}"]  # fmt: skip
        out += [f"      - {{name: ap-{a:02d}, role: ap, address: {net}.{a + 10}, parent: sw-1}}"
                for a in range(PER_SITE - 3)]  # fmt: skip
    return "\n".join(out) + "\n"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def scheduled(inv: Inventory, load: Load) -> Load:
    """The load with each device's phase as netmon's scheduler sets it (a hash of the job's
    key: a site's devices are spread over the minute, not probed one after the other)."""
    poller = Poller(lambda site, device, result: None)  # its jobs and scheduler only
    due = {job.key[:2]: poller.scheduler._first_due(job, T0) - T0 for job in poller.jobs(inv)}
    return Load([(site, dev, due[(site, dev)], health) for site, dev, _, health in load.devices])


class Steady:
    """A monitor at steady state, and the 15 s that pass between two scrapes."""

    def __init__(self, devices: int, args: argparse.Namespace) -> None:
        self.rng = random.Random(devices)
        self.clock = Clock()
        inv = parse_inventory(inventory_yaml(devices, args.window), "<bench>")
        self.monitor = Monitor(inv, Store("sqlite://"), Engines(), self.clock)
        self.registry: NetmonRegistry = make_registry(self.monitor, "bench", "none")
        self.load = scheduled(inv, Load.of(inv, args.down, args.lossy, self.rng))
        self.fold(T0 - args.window, T0)  # warm-up: one full window
        self.monitor.evaluate()
        self.monitor.ready = True
        self.results = 0

    def fold(self, start: float, end: float) -> None:
        batch = self.load.between(start, end, self.rng)
        for site, device, result in batch:
            self.monitor.record(site, device, result)
        self.monitor.store.pending.clear()
        self.results = len(batch)

    def between_scrapes(self) -> None:
        for _ in range(round(SCRAPE_EVERY / EVALUATE_EVERY)):
            self.monitor.evaluate()
            self.fold(self.clock.now, self.clock.now + EVALUATE_EVERY)
            self.clock.now += EVALUATE_EVERY


def timed(fn: Callable[[], bytes], scrapes: int, before: Callable[[], None]) -> tuple[list[float], list[float], bytes]:  # fmt: skip
    walls: list[float] = []
    cpus: list[float] = []
    body = b""
    for _ in range(scrapes):
        before()
        cpu, wall = time.process_time(), time.perf_counter()
        body = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return walls, cpus, body


def row(label: str, walls: list[float], cpus: list[float], body: bytes, devices: int) -> None:
    text = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
    series = sum(1 for line in text.split(b"\n") if line and not line.startswith(b"#"))
    size = f"{len(text) / 1e6:6.2f} MB" + (
        f" ({len(body) / 1e6:.2f} gz)" if body is not text else ""
    )
    print(f"  {label:<40} median {statistics.median(walls):6.3f} s  max {max(walls):6.3f} s  "
          f"cpu {statistics.median(cpus):6.3f} s  {size:<20} {series:>8,} series "
          f"({series / devices:.1f}/device)")  # fmt: skip


def om_gzip(registry: NetmonRegistry, scrape: Scrape, parts: list[tuple[float, float]]) -> bytes:
    """What /metrics does for Prometheus: render (event loop), then encode + gzip (a thread)."""
    start = time.perf_counter()
    text = registry.render(scrape)
    mid = time.perf_counter()
    body = gzip.compress(text.encode(), compresslevel=1)
    parts.append((mid - start, time.perf_counter() - mid))
    return body


def bench(devices: int, args: argparse.Namespace) -> None:
    wall = time.perf_counter()
    st = Steady(devices, args)
    reg, n, tick = st.registry, args.scrapes, st.between_scrapes
    print(f"{devices:,} devices, {len(st.monitor.inventory.sites):,} sites "
          f"(warm-up {time.perf_counter() - wall:.0f} s):")  # fmt: skip
    ref_t, ref_c, ref_b = timed(lambda: generate_latest(reg), n, tick)
    row("reference: generate_latest (uncached)", ref_t, ref_c, ref_b, devices)
    reg.render(Scrape())  # the first scrape after start renders everything
    new_t, new_c, new_b = timed(lambda: reg.render(Scrape()).encode(), n, tick)
    row("cached: text", new_t, new_c, new_b, devices)
    parts: list[tuple[float, float]] = []
    om = Scrape(openmetrics=True)
    om_t, om_c, om_b = timed(lambda: om_gzip(reg, om, parts), n, tick)
    row("cached: OpenMetrics + gzip (Prometheus)", om_t, om_c, om_b, devices)
    print(f"    of which render {statistics.median(p[0] for p in parts):.3f} s (event loop), "
          f"encode + gzip {statistics.median(p[1] for p in parts):.3f} s (worker thread); "
          f"{st.results:,} results in the last 5 s step")  # fmt: skip
    lean = Scrape(openmetrics=True, window_gauges=False)
    lean_t, lean_c, lean_b = timed(lambda: om_gzip(reg, lean, []), n, tick)
    row("cached: same, ?window_gauges=false", lean_t, lean_c, lean_b, devices)
    one = frozenset(s.id for s in st.monitor.inventory.sites if s.district == "D00")
    shard = Scrape(openmetrics=True, sites=one, own=False)
    sh_t, sh_c, sh_b = timed(lambda: om_gzip(reg, shard, []), n, tick)
    row(f"cached: one district of {DISTRICTS} (?district=)", sh_t, sh_c, sh_b, devices)
    ratio = statistics.median(ref_t) / statistics.median(new_t)
    print(f"  reference/cached text, median wall: x{ratio:.1f}; "
          f"cpu: x{statistics.median(ref_c) / statistics.median(new_c):.1f}", flush=True)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="2000,5000,20000", help="device counts, comma-separated")
    ap.add_argument("--scrapes", type=int, default=5, help="scrapes per variant (1-50)")
    ap.add_argument("--window", type=float, default=600.0, help="policy window, seconds")
    ap.add_argument("--down", type=float, default=0.01, help="share of devices down")
    ap.add_argument("--lossy", type=float, default=0.02, help="share of devices losing echoes")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if not all(PER_SITE <= n <= 50_000 for n in sizes) or not 1 <= args.scrapes <= 50:
        ap.error("sizes must be 20..50000 devices and --scrapes 1..50")
    if not 60 <= args.window <= 86400:
        ap.error("--window must be 60..86400 seconds")
    print(f"steady state: 1 result/device/60 s, evaluate every {EVALUATE_EVERY:.0f} s, a scrape "
          f"every {SCRAPE_EVERY:.0f} s of monitor time, window {args.window:.0f} s, "
          f"{PER_SITE} devices/site")  # fmt: skip
    for n in sizes:
        bench(n, args)


if __name__ == "__main__":
    main()
