"""The incremental judge gives exactly what a full re-judge gives, at every step.

Randomized histories (seeded): sites of every shape (wan, router or parentless uplinks, switches,
controllers with SNMP, APs), random ok/loss/RTT, gaps, outages long and short, late results,
announced maintenance, reboots, and time advancing irregularly. Two monitors take the same
results; one judges incrementally, the other re-judges every site from scratch at every
evaluation; verdicts, reasons (with their figures) and since-times must be equal after every
step. The window's cached summaries are checked against a window refolded from every result.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from netmon.inventory import Inventory, Site, parse_inventory
from netmon.monitor import Monitor
from netmon.store import Store
from netmon.window import DeviceWindow
from probes.base import Engines, ProbeResult
from probes.snmp_findings import AccessPoint, Interface, SnmpFindings
from probes.snmp_view import SnmpEvidence
from tests.conftest import FakeClock

T0 = 1_800_000_000.0
WINDOW = 600.0  # short, so results, outages and reboots leave it often
STEPS = [0.5, 1.0, 3.0, 5.0, 5.0, 5.0, 5.0, 12.0, 12.0, 47.0, 150.0, 700.0]  # seconds
POLICY = "{window: 10m, max_outage: 90s, max_outages: 2, min_probes: 2, rtt_p95_max: 80ms}"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def _devices(rng: random.Random, i: int) -> list[str]:
    shape = rng.choice(["wan", "router", "flat"])
    top = {"wan": "wan", "router": "router", "flat": "switch"}[shape]
    out = [f"{{name: up-1, role: {top}, address: 127.60.{i}.1}}"]
    if rng.random() < 0.4:
        out.append(f"{{name: up-2, role: {top}, address: 127.60.{i}.2}}")
    out.append(f"{{name: sw-1, role: switch, address: 127.60.{i}.3, parent: up-1}}")
    if rng.random() < 0.5:
        out.append(f"{{name: wlc-1, role: controller, address: 127.60.{i}.4, parent: sw-1, "
                   "snmp: {credentials: lab, uplink_interfaces: [uplink-1]}}")  # fmt: skip
    for a in range(rng.randint(0 if shape == "flat" else 1, 8)):
        parent = rng.choice(["sw-1", "up-1"]) if shape != "flat" else "sw-1"
        out.append(f"{{name: ap-{a}, role: ap, address: 127.60.{i}.{10 + a}, parent: {parent}}}")
    if shape == "flat" and rng.random() < 0.5:
        out.append(f"{{name: ap-x, role: ap, address: 127.60.{i}.99}}")  # a parentless AP
    return out


def random_inventory(rng: random.Random, sites: int, span: float) -> Inventory:
    lines = [f"policy: {POLICY}", "snmp:", "  credentials:", "    lab: {version: 2c, community: public}", "sites:"]  # fmt: skip
    for i in range(sites):
        lines += [f"  - id: site-{i}", f"    name: Site {i}", "    district: Ranchi",
                  "    type: phc"]  # fmt: skip
        if rng.random() < 0.4:
            start = T0 + rng.uniform(0, span)
            end = start + rng.uniform(30, 400)
            lines += ["    maintenance:",
                      f"      - {{start: '{_iso(start)}', end: '{_iso(end)}', reason: works}}"]  # fmt: skip
        lines.append("    devices:")
        lines += [f"      - {d}" for d in _devices(rng, i)]
    return parse_inventory("\n".join(lines) + "\n")


class History:
    """Each device flips between answering and not in runs of random length."""

    def __init__(self, rng: random.Random, inv: Inventory) -> None:
        self.rng = rng
        self.up: dict[tuple[str, str], bool] = {}
        self.flip_at: dict[tuple[str, str], float] = {}
        self.devices = [(s.id, d.name, d.snmp is not None) for s in inv.sites for d in s.devices]
        self.every = {(s, d): rng.choice([10.0, 30.0, 60.0, 300.0]) for s, d, _ in self.devices}
        self.quiet_until: dict[str, float] = {}  # a site that sends nothing for a while

    def results(self, before: float, now: float) -> Iterator[tuple[str, str, ProbeResult]]:
        rng = self.rng
        for site in {site for site, _, _ in self.devices}:
            if rng.random() < 0.02 and self.quiet_until.get(site, 0.0) < now:
                self.quiet_until[site] = now + rng.uniform(50.0, 500.0)
        for site, dev, snmp in self.devices:
            due = rng.random() < (now - before) / self.every[site, dev]  # about every 10-300 s
            if not due or self.quiet_until.get(site, 0.0) > now:
                continue  # a gap
            ts = (
                rng.uniform(before, now)
                if rng.random() > 0.05
                else now - rng.uniform(0, 1.3 * WINDOW)
            )
            yield site, dev, self._icmp((site, dev), ts, now)
            if snmp and rng.random() < 0.7:
                yield site, dev, _snmp(rng, ts + 0.5)

    def _icmp(self, key: tuple[str, str], ts: float, now: float) -> ProbeResult:
        rng = self.rng
        if now >= self.flip_at.get(key, 0.0):
            self.up[key] = rng.random() < 0.85
            self.flip_at[key] = now + rng.choice([5.0, 30.0, 80.0, 100.0, 300.0])
        if not self.up[key]:
            return ProbeResult("icmp", False, ts, 5.0, 5, 0, (), "no reply to 5 echoes")
        received = 5 if rng.random() < 0.97 else rng.randint(1, 4)
        slow = rng.random() < 0.03
        rtts = tuple(
            rng.uniform(0.09, 0.3) if slow else rng.uniform(0.001, 0.03) for _ in range(received)
        )
        return ProbeResult("icmp", True, ts, 5.0, 5, received, rtts)


def _snmp(rng: random.Random, ts: float) -> ProbeResult:
    if rng.random() < 0.1:
        return ProbeResult("snmp", False, ts, 2.0, 1, 0, (), "no SNMP answer")
    found = SnmpFindings(
        "cisco-wlc", True, 0.25, rng.uniform(10, 900), rng.random() < 0.15, "wlc", None, None,
        {}, (Interface(1, "uplink-1", True, rng.random() < 0.8, 1e6, 2e6, 0, 1, 2),),
        (AccessPoint("ap-0", None, rng.random() < 0.8, 3),), (),
    )  # fmt: skip
    return ProbeResult("snmp", True, ts, 0.25, 12, 12, (0.25,), "", found)


def _state(m: Monitor) -> dict[str, object]:
    return {k: (st.judgement, st.since, st.evaluated_at) for k, st in m.status.items()}


def _check_windows(
    m: Monitor, folded: dict[tuple[str, str, str], list[ProbeResult]], now: float
) -> None:
    """Cached summaries equal those of a window refolded from every result it took."""
    for key, results in folded.items():
        ev = m.evidence[key]
        window = ev.polls if isinstance(ev, SnmpEvidence) else ev
        assert isinstance(window, DeviceWindow)
        fresh = DeviceWindow(WINDOW, ever_up=window.ever_up)
        for r in results:
            fresh.add(r) if r.kind else fresh.close_outage(r.started_at)
        assert window.summary(now) == fresh.summary(now), key
        assert window._longest_outage(now) == window._longest_scan(now), key


@pytest.mark.parametrize("seed", range(5))
def test_incremental_judge_equals_a_full_rejudge(seed: int) -> None:
    rng = random.Random(seed)
    steps = 300
    inv = random_inventory(rng, sites=12, span=steps * 20.0)
    clocks = (FakeClock(T0), FakeClock(T0))
    fast, full = (Monitor(inv, Store("sqlite://"), Engines(), c) for c in clocks)
    full.incremental = False
    history = History(rng, inv)
    folded: dict[tuple[str, str, str], list[ProbeResult]] = {}
    now = T0
    judged = carried = 0
    verdicts: set[str] = set()
    for step in range(steps):
        before, now = now, now + rng.choice(STEPS)
        for c in clocks:
            c.now = now
        if rng.random() < 0.8:
            for site, dev, r in history.results(before, now):
                for m in (fast, full):
                    m.record(site, dev, r)
                _note(inv, folded, site, dev, r)
        before_j = {k: st.judgement for k, st in fast.status.items()}
        assert fast.evaluate() == full.evaluate(), step
        assert _state(fast) == _state(full), step
        same = sum(fast.status[k].judgement is j for k, j in before_j.items())
        carried, judged = carried + same, judged + len(inv.sites) - same
        verdicts |= {st.verdict.value for st in full.status.values()}
        if step % 20 == 0:
            _check_windows(fast, folded, now)
    assert verdicts >= {"down", "degraded", "fully_functional"}, verdicts  # a varied run
    assert carried > 0 and judged > 0, (carried, judged)  # both paths taken


def _note(inv: Inventory, folded: dict[tuple[str, str, str], list[ProbeResult]], site_id: str,
          dev: str, r: ProbeResult) -> None:  # fmt: skip
    """What the monitor folds of a result (maintenance: only the outage's end), for the check."""
    site = inv.site(site_id)
    assert isinstance(site, Site)
    kept = r if not site.in_maintenance(r.started_at) else ProbeResult("", False, r.started_at)
    folded.setdefault((site_id, dev, r.kind), []).append(kept)


QUIET_SITE = f"""
policy: {POLICY}
snmp:
  credentials:
    lab: {{version: 2c, community: public}}
sites:
  - id: quiet
    name: Quiet
    district: Ranchi
    type: phc
    devices:
      - {{name: wan-1, role: wan, address: 127.60.0.1}}
      - {{name: wan-2, role: wan, address: 127.60.0.3}}
      - {{name: wlc-1, role: controller, address: 127.60.0.2, parent: wan-1,
         snmp: {{credentials: lab}}}}
"""


def _lockstep(results: list[tuple[str, ProbeResult]], until: float) -> set[str]:
    """Fold ``results`` (device, result) into both monitors, then evaluate both
    every second with no new result; the criteria seen along the way."""
    inv = parse_inventory(QUIET_SITE)
    clocks = (FakeClock(T0), FakeClock(T0))
    fast, full = (Monitor(inv, Store("sqlite://"), Engines(), c) for c in clocks)
    full.incremental = False
    for dev, r in results:
        for m in (fast, full):
            m.record("quiet", dev, r)
    seen: set[str] = set()
    while clocks[0].now < until:
        assert fast.evaluate() == full.evaluate(), clocks[0].now
        assert _state(fast) == _state(full), clocks[0].now
        seen |= {r.criterion.value for r in fast.status["quiet"].judgement.reasons}
        for c in clocks:
            c.advance(1.0)
    return seen


def _ok(ts: float) -> ProbeResult:
    return ProbeResult("icmp", True, ts, 4.0, 5, 5, (0.001,) * 5)


def _poll(ts: float, uptime: float, rebooted: bool) -> ProbeResult:
    found = SnmpFindings(
        "generic", True, 0.2, uptime, rebooted, "wlc", None, None, {}, (), None, ()
    )
    return ProbeResult("snmp", True, ts, 0.2, 4, 4, (0.2,), "", found)


def test_a_reboot_leaving_the_window_is_judged_without_a_new_result() -> None:
    polls = [_poll(T0 - 100, 50.0, False), _poll(T0 - 5, 300.0, True)]  # rebooted at T0-305
    oks = [(wan, _ok(T0 - t)) for wan in ("wan-1", "wan-2") for t in (20, 10)]
    seen = _lockstep([*oks, *(("wlc-1", p) for p in polls)], until=T0 + 400)
    assert "device_rebooted" in seen  # and it left at T0+295, with the same verdict both ways


def test_an_ongoing_uplink_outage_crosses_max_outage_without_a_new_result() -> None:
    down = ProbeResult("icmp", False, T0 - 5, 5.0, 5, 0, (), "no reply to 5 echoes")
    oks = [(wan, _ok(T0 - t)) for wan in ("wan-1", "wan-2") for t in (30, 20)]
    seen = _lockstep([*oks, ("wan-1", down)], until=T0 + 200)
    assert "uplink_outage" in seen  # 90 s limit crossed at T0+85 (wan-2 up: not settled down)
