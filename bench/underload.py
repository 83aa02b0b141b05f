"""Scrape under load: `netmon run` with 20,000 devices, /metrics scraped every 15 s for 3 minutes.

    .venv/bin/python bench/underload.py                                   # 20,000 devices, 180 s
    .venv/bin/python bench/underload.py --devices 1000 --interval 20 --duration 40 --warmup 20

Runs netmon as a user does (the real ``netmon run`` command, see ``bench/netmon_live.py``) over
a generated inventory of ``--devices`` loopback devices (sites of ``--per-site``, ICMP only, 5
echoes 1 s apart every ``--interval`` s). Every address answers from the kernel, so every
failed probe, every device that leaves up and every site that leaves fully_functional is a
*false outage*: the figure that must be 0. From netmon's start the script GETs /metrics every
``--scrape-every`` s as Prometheus does (OpenMetrics preferred, gzip), timed until the body is
read and decompressed.

Warm-up: netmon spreads its first probes over one interval, so for the first minute devices have
no data. The measured interval starts once every site has a verdict and every device is up (and
at least ``--warmup`` s after start), at the next moment fping is idle; it lasts ``--duration``
s, rounded to whole probe intervals. After it the script counts, since the end of the warm-up:

* devices that left up: a device whose ``netmon_device_probes_failed_total`` rose, or that a
  scrape showed with ``netmon_device_up`` 0; devices that lost any echo (sent - received rose);
* sites that left fully_functional: a change in the site's verdict history (``GET
  /api/v1/sites/{id}/history``, which records every change) to another verdict, or a scrape
  with ``netmon_site_fully_functional`` 0;

and prints scrape median/max seconds, body size (gzip and plain), series count, the final
summary by verdict, and (unless ``--skip-fping``) CPU of every netmon process vs fping sending
the same echoes in the same run (as ``bench/icmp.py --sustained``). Exit status 1 if there was
any false outage or the warm-up was not reached. Bounded: at most 50,000 devices, 1 h measured.
"""

from __future__ import annotations

import argparse
import math
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import netmon_live as live

FAILED, SENT, RECEIVED = (
    "netmon_device_probes_failed_total",
    "netmon_device_echoes_sent_total",
    "netmon_device_echoes_received_total",
)
WATCHED = (live.DEVICE_UP, live.SITE_FF, FAILED, SENT, RECEIVED)
PROMETHEUS_TIMEOUT = 10.0  # Prometheus' default scrape_timeout


def device_key(labels: str) -> tuple[str, str]:
    return live.label(labels, "site"), live.label(labels, "device")


@dataclass
class Watch:
    """What the scrapes saw after the warm-up: devices down, sites not fully functional."""

    baseline: dict[str, dict[tuple[str, str], float]] = field(default_factory=dict)
    last: dict[str, dict[tuple[str, str], float]] = field(default_factory=dict)
    devices_down: set[tuple[str, str]] = field(default_factory=set)
    sites_not_ff: set[str] = field(default_factory=set)

    @staticmethod
    def counters(text: str) -> dict[str, dict[tuple[str, str], float]]:
        got = live.samples_of(text, WATCHED)
        out = {name: {device_key(k): v for k, v in got[name].items()} for name in WATCHED}
        out[live.SITE_FF] = {(live.label(k, "site"), ""): v for k, v in got[live.SITE_FF].items()}
        return out

    def start(self, text: str) -> None:
        self.baseline = self.last = self.counters(text)

    def see(self, text: str) -> None:
        self.last = now = self.counters(text)
        self.devices_down |= {k for k, v in now[live.DEVICE_UP].items() if v == 0}
        self.sites_not_ff |= {k[0] for k, v in now[live.SITE_FF].items() if v == 0}

    def rose(self, name: str) -> dict[tuple[str, str], float]:
        """Devices whose counter ``name`` rose since the baseline, by how much."""
        base = self.baseline.get(name, {})
        return {k: v - base.get(k, 0.0) for k, v in self.last.get(name, {}).items()
                if v > base.get(k, 0.0)}  # fmt: skip

    def lost_echoes(self) -> dict[tuple[str, str], float]:
        sent, received = self.rose(SENT), self.rose(RECEIVED)
        return {k: n - received.get(k, 0.0) for k, n in sent.items()
                if n - received.get(k, 0.0) > 0}  # fmt: skip


@dataclass
class Scrapes:
    all: list[live.Scrape] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def between(self, start: float, end: float) -> list[live.Scrape]:
        return [s for s in self.all if start <= s.at <= end]


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def site_changes(client: httpx.Client, sites: list[str], after: float) -> dict[str, list[dict]]:
    """Per site, its verdict changes since ``after`` to anything but fully_functional."""
    out: dict[str, list[dict]] = {}
    for site in sites:  # one GET per site (bounded by the inventory)
        r = client.get(f"/api/v1/sites/{site}/history", params={"limit": 1000})
        r.raise_for_status()
        bad = [c for c in r.json()["data"]
               if epoch(c["since"]) >= after and c["verdict"] != "fully_functional"]  # fmt: skip
        if bad:
            out[site] = bad
    return out


def device_reasons(client: httpx.Client, devices: list[tuple[str, str]], after: float) -> Counter:
    """Why the probes of (up to 5 of) ``devices`` failed since ``after``: reason -> count."""
    reasons: Counter[str] = Counter()
    since = datetime.fromtimestamp(after).astimezone().isoformat()
    for site, device in devices[:5]:
        r = client.get(f"/api/v1/sites/{site}/devices/{device}/results", params={"since": since})
        if r.status_code == 200:
            reasons.update(row["reason"] or "?" for row in r.json()["data"] if not row["ok"])
    return reasons


def run(args: argparse.Namespace) -> int:
    live.raise_open_files()
    inv = live.LoopbackInventory(args.devices, args.per_site, args.interval)
    fping = not args.skip_fping and Path(live.FPING).exists()
    n_cycles = max(1, round(args.duration / inv.interval))
    print(f"underload: {inv.describe()}")
    print(f"  /metrics every {args.scrape_every:g}s as Prometheus (OpenMetrics, gzip) from the "
          f"start; measured {n_cycles} interval(s) of {inv.interval:g}s after a warm-up "
          f"(>= {args.warmup:g}s, until every site is judged and every device up, at most "
          f"{args.warmup_max:g}s); fping beside it: {'yes' if fping else 'no'}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="netmon-underload-") as tmp:
        work = Path(tmp)
        with live.NetmonRun(inv, work) as netmon, netmon.client(timeout=120) as client:
            print(f"  {netmon.command}")
            print(f"  serving after {netmon.wait_serving(client, 600):.1f}s")
            bound = math.ceil((args.warmup_max + args.duration) / inv.interval) + 4
            with live.Cycles(inv, netmon, fping, work, cycles=bound) as cycles:
                result = scrape_loop(args, inv, netmon, client, cycles, n_cycles)
                processes = netmon.processes()
                print(f"  {cycles.describe()}")
            return report(args, inv, netmon, client, result, fping, processes, cycles.problems)


@dataclass
class LoopResult:
    scrapes: Scrapes
    watch: Watch
    warm_at: float
    warm: live.Readiness | None
    warm_ok: bool
    start: live.Mark | None
    end: live.Mark | None


def scrape_loop(
    args: argparse.Namespace,
    inv: live.LoopbackInventory,
    netmon: live.NetmonRun,
    client: httpx.Client,
    cycles: live.Cycles,
    n_cycles: int,
) -> LoopResult:
    """Scrape every --scrape-every s (like Prometheus: on a fixed schedule, never two at once)
    until the measured interval's end mark; bounded by the warm-up bound plus the duration."""
    scrapes, watch = Scrapes(), Watch()
    out = LoopResult(scrapes, watch, 0.0, None, False, None, None)
    t0 = time.monotonic()
    limit = t0 + args.warmup_max + (n_cycles + 2) * inv.interval + 120
    k = 0
    while time.monotonic() < limit:
        netmon.check_alive()
        try:
            s = netmon.scrape(client)
            s.text = s.text if s.status == 200 else ""
            scrapes.all.append(s)
        except httpx.HTTPError as exc:
            scrapes.failed.append(f"{time.time() - netmon.started:.0f}s: {exc!r}")
            s = None
        if s is not None and s.text:
            if out.warm is None:
                state = live.readiness(s.text)
                elapsed = s.at - netmon.started
                ok = state.ready(inv) and elapsed >= args.warmup
                if ok or elapsed >= args.warmup_max:
                    out.warm_at, out.warm, out.warm_ok = s.at, state, ok
                    print(f"  warm-up {'done' if ok else 'NOT REACHED'} after {elapsed:.0f}s: "
                          f"{state.describe(inv)}")  # fmt: skip
                    watch.start(s.text)
            else:
                watch.see(s.text)
        if out.warm is not None and out.start is None:
            out.start = next((m for m in cycles.marks if m.at >= out.warm_at), None)
        if out.start is not None:
            end_after = out.start.at + (n_cycles - 0.5) * inv.interval
            out.end = next((m for m in cycles.marks if m.at >= end_after), None)
            if out.end is not None:
                break
        k += 1
        time.sleep(max(0.0, t0 + k * args.scrape_every - time.monotonic()))
    final = netmon.scrape(client)  # the counters after the end mark
    scrapes.all.append(final)
    if out.warm is not None and final.status == 200:
        watch.see(final.text)
    return out


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def scrape_lines(label: str, scrapes: list[live.Scrape]) -> list[str]:
    if not scrapes:
        return [f"  {label:<17}: no scrapes"]
    secs = [s.seconds for s in scrapes]
    slow = sum(1 for x in secs if x > PROMETHEUS_TIMEOUT)
    bad = sum(1 for s in scrapes if s.status != 200)
    last = scrapes[-1]
    return [
        f"  {label:<17}: {len(scrapes)} scrapes, median {statistics.median(secs):.3f}s, "
        f"max {max(secs):.3f}s, over {PROMETHEUS_TIMEOUT:g}s (Prometheus' default timeout) "
        f"{slow}, not 200 {bad}",
        f"  {'':<17}  body {_mb(last.wire_bytes)} gzip, {_mb(last.body_bytes)} plain; "
        f"{last.series:,} series",
    ]


def report(
    args: argparse.Namespace,
    inv: live.LoopbackInventory,
    netmon: live.NetmonRun,
    client: httpx.Client,
    result: LoopResult,
    fping: bool,
    processes: str,
    problems: list[str],
) -> int:
    """The summary table; 1 if any false outage or no warm-up."""
    if result.warm is None or result.start is None or result.end is None:
        print("the run ended before the measured interval did (see the bounds)")
        return 1
    start, end, watch = result.start, result.end, result.watch
    sites = [f"site-{s:05d}" for s in range(inv.sites)]
    changes = site_changes(client, sites, result.warm_at)
    failed = watch.rose(FAILED)
    down = set(failed) | watch.devices_down
    lost = watch.lost_echoes()
    summary = client.get("/api/v1/summary").json()["by_verdict"]
    reasons = Counter(r["criterion"] for cs in changes.values() for c in cs for r in c["reasons"])
    probe_reasons = device_reasons(client, sorted(down), result.warm_at)
    measured = result.scrapes.between(start.at, end.at)
    print(f"\nmeasured {end.at - start.at:.0f}s from {start.at - netmon.started:.0f}s after "
          f"start; netmon processes: {processes}")  # fmt: skip
    print("\n/metrics")
    print("\n".join(scrape_lines("measured interval", measured)))
    print("\n".join(scrape_lines("whole run", result.scrapes.all)))
    for failure in result.scrapes.failed:
        print(f"  scrape failed at {failure}")
    n_sites_left = len(set(changes) | watch.sites_not_ff)
    print(f"\nfalse outages since the warm-up ended ({time.time() - result.warm_at:.0f}s; "
          "every device answers, so each one is false)")  # fmt: skip
    rows = [
        ("devices that left up (failed probe / up=0 in a scrape)",
         f"{len(down):,} of {inv.devices:,}  ({len(failed):,} / {len(watch.devices_down):,})"),
        ("devices that lost any echo", f"{len(lost):,}  ({sum(lost.values()):,.0f} echoes)"),
        ("sites that left fully_functional (history / scrapes)",
         f"{n_sites_left:,} of {inv.sites:,}  ({len(changes):,} / {len(watch.sites_not_ff):,})"),
        ("final summary", ", ".join(f"{k} {v}" for k, v in summary.items())),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    print("\n".join(f"  {name:<{width}}  {value}" for name, value in rows))
    if reasons:
        print("  site reasons: " + ", ".join(f"{k} x{n}" for k, n in reasons.most_common(5)))
    if probe_reasons:
        print("  probe failures (up to 5 devices): "
              + "; ".join(f"{k!r} x{n}" for k, n in probe_reasons.most_common(3)))  # fmt: skip
    print()
    print("\n".join(live.cpu_table(live.figures(start, end, fping))))
    for problem in problems:
        print(f"problem: {problem}")
    return 0 if result.warm_ok and not down and not n_sites_left else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--devices", type=int, default=20_000, help="loopback devices (<= 50,000)")
    p.add_argument("--per-site", type=int, default=20, help="devices per site")
    p.add_argument("--interval", type=float, default=60.0, help="probe interval, seconds")
    p.add_argument("--scrape-every", type=float, default=15.0, help="seconds between scrapes")
    p.add_argument(
        "--duration", type=float, default=180.0, help="measured seconds (whole intervals)"
    )
    p.add_argument("--warmup", type=float, default=60.0, help="minimum warm-up seconds")
    p.add_argument("--warmup-max", type=float, default=300.0, help="warm-up bound, seconds")
    p.add_argument("--skip-fping", action="store_true", help="no fping beside netmon")
    args = p.parse_args(argv)
    if not 1 <= args.devices <= 50_000 or not 4 <= args.per_site <= 250:
        p.error("need 1 <= --devices <= 50000 and 4 <= --per-site <= 250")
    if not 10 <= args.interval <= 600 or not 1 <= args.scrape_every <= 300:
        p.error("need 10 <= --interval <= 600 and 1 <= --scrape-every <= 300")
    if not 1 <= args.duration <= 3600 or not 0 <= args.warmup <= args.warmup_max <= 1800:
        p.error("need 1 <= --duration <= 3600 and 0 <= --warmup <= --warmup-max <= 1800")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def _exit(signum: int, _frame: object) -> None:  # SIGTERM/SIGHUP: stop netmon, then exit
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
