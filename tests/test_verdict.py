"""Verdict rules, table-driven: results are written to a real store, re-read through the
monitor's start-up path, and judged. Each case names the expected verdict and reason criteria."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from netmon.inventory import parse_inventory
from netmon.monitor import Monitor
from netmon.store import Store
from netmon.verdict import Verdict
from netmon.window import DeviceWindow, bin_upper, rtt_bin
from probes.base import Engines, ProbeResult
from tests.conftest import FakeClock

NOW = 1_800_000_000.0
STEP = 300.0  # one probe every 5 minutes keeps the table fast
HOUR = 3600.0

SITE = """
policy: {{window: 24h{policy}}}
sites:
  - id: dh-test
    name: Sadar Hospital, Test
    district: Ranchi
    type: district_hospital
    devices:
      - {{name: wan-1, role: wan, address: 127.40.1.1}}
      - {{name: sw-1, role: switch, address: 127.40.5.1, parent: wan-1}}
      - {{name: wlc-1, role: controller, address: 127.40.4.1, parent: sw-1}}
{aps}
"""


def inventory(n_aps: int = 10, policy: str = "", devices: bool = True):  # type: ignore[no-untyped-def]
    aps = "\n".join(
        f"      - {{name: ap-{i}, role: ap, address: 127.40.6.{i}, parent: sw-1}}"
        for i in range(1, n_aps + 1)
    )
    text = SITE.format(policy=policy, aps=aps)
    if not devices:
        text = text.split("    devices:")[0]
    return parse_inventory(text)


def result(ts: float, received: int = 5, sent: int = 5, rtt: float = 0.010) -> ProbeResult:
    return ProbeResult("icmp", received > 0, ts, 0.5, sent, received, (rtt,) * received)


Pattern = Callable[[float], ProbeResult | None]  # seconds-before-now -> result (None: no probe)


def healthy(age: float) -> ProbeResult:
    return result(NOW - age)


def down_for(seconds: float) -> Pattern:
    """Down for the last ``seconds``, healthy before."""
    return lambda age: result(NOW - age, received=0) if age <= seconds else result(NOW - age)


def lossy(per_100: int) -> Pattern:
    # one of 5 echoes lost in every k-th probe gives a loss ratio of 1/(5k)
    every = round(20 / per_100)
    return lambda age: result(NOW - age, received=4 if int(age / STEP) % every == 0 else 5)


def slow(rtt: float) -> Pattern:
    return lambda age: result(NOW - age, rtt=rtt)


def nothing(_age: float) -> None:
    return None


@dataclass
class Case:
    name: str
    patterns: dict[str, Pattern] = field(default_factory=dict)
    verdict: Verdict = Verdict.FULLY_FUNCTIONAL
    criteria: list[str] = field(default_factory=list)
    n_aps: int = 10
    policy: str = ""
    devices: bool = True
    hours: float = 24.0


CASES = [
    Case("healthy"),
    Case("no gear registered", devices=False, verdict=Verdict.NOT_INSTALLED, criteria=["no_devices"]),
    Case("never answered", patterns={"*": lambda a: result(NOW - a, received=0)},
         verdict=Verdict.NOT_INSTALLED, criteria=["never_seen"]),
    Case("no probes yet", patterns={"*": nothing}, verdict=Verdict.UNKNOWN, criteria=["no_data"]),
    Case("APs not probed yet are left out", patterns={f"ap-{i}": nothing for i in range(1, 6)}),
    Case("uplink down: one root cause", patterns={"*": down_for(30 * 60)},
         verdict=Verdict.DOWN, criteria=["uplink_down"]),
    Case("30% of APs down", patterns={f"ap-{i}": down_for(HOUR) for i in (1, 2, 3)},
         verdict=Verdict.DEGRADED, criteria=["ap_up_ratio"]),
    Case("one AP of ten down is tolerated", patterns={"ap-1": down_for(HOUR)}),
    Case("small site: one AP of three down tolerated", n_aps=3, patterns={"ap-1": down_for(HOUR)}),
    Case("small site: two APs of three down", n_aps=3,
         patterns={"ap-1": down_for(HOUR), "ap-2": down_for(HOUR)},
         verdict=Verdict.DEGRADED, criteria=["ap_up_ratio"]),
    Case("all APs down", patterns={f"ap-{i}": down_for(HOUR) for i in range(1, 11)},
         verdict=Verdict.DOWN, criteria=["no_ap_up"]),
    Case("switch down: APs behind it under the switch", patterns={
        "sw-1": down_for(HOUR), "wlc-1": down_for(HOUR), **{f"ap-{i}": down_for(HOUR) for i in range(1, 11)}},
         verdict=Verdict.DOWN, criteria=["switch_down", "no_ap_up"]),
    Case("lossy uplink 4%", patterns={"wan-1": lossy(4)}, verdict=Verdict.DEGRADED, criteria=["uplink_loss"]),
    Case("lossy uplink below 1% is fine", policy=", uplink_max_loss: 0.05", patterns={"wan-1": lossy(4)}),
    Case("APs behind a lossy uplink: the loss is the uplink's", patterns={
        n: lossy(4) for n in ["wan-1", "sw-1", "wlc-1"] + [f"ap-{i}" for i in range(1, 11)]},
         verdict=Verdict.DEGRADED, criteria=["uplink_loss"]),
    Case("lossy AP 4%", patterns={"ap-1": lossy(4)}, verdict=Verdict.DEGRADED, criteria=["ap_loss"]),
    Case("slow uplink", patterns={"wan-1": slow(0.300)}, verdict=Verdict.DEGRADED, criteria=["uplink_rtt_p95"]),
    Case("uplink 110 ms is within 120 ms", patterns={"wan-1": slow(0.110)}),
    Case("flapping AP: down 5 min in every 15", patterns={"ap-3": lambda a: result(NOW - a, received=0)
                                                         if (a // STEP) % 3 == 0 else result(NOW - a)},
         verdict=Verdict.DEGRADED, criteria=["ap_flapping"]),
    Case("two outages of an AP in a day are tolerated", patterns={"ap-3": lambda a: result(NOW - a, received=0)
                                                                   if a in (HOUR, 5 * HOUR) else result(NOW - a)}),
    Case("flapping switch: APs behind it are reported under it", patterns={
        n: (lambda a: result(NOW - a, received=0) if (a // STEP) % 3 == 2 else result(NOW - a))
        for n in ["sw-1", "wlc-1"] + [f"ap-{i}" for i in range(1, 11)]},
         verdict=Verdict.DEGRADED, criteria=["switch_flapping"]),
    Case("controller down", patterns={"wlc-1": down_for(HOUR)}, verdict=Verdict.DEGRADED,
         criteria=["controller_down"]),
    Case("recovered after a 5 h outage", patterns={"wan-1": lambda a: result(NOW - a, received=0)
                                                   if 2 * HOUR < a <= 7 * HOUR else result(NOW - a)},
         verdict=Verdict.DEGRADED, criteria=["uplink_availability", "uplink_outage"]),
    Case("outage older than the window is forgotten", patterns={"*": lambda a: result(NOW - a, received=0)
                                                                if a > 25 * HOUR else result(NOW - a)}, hours=30),
    Case("too few probes", policy=", min_probes: 5", hours=2 * STEP / HOUR,
         verdict=Verdict.UNKNOWN, criteria=["no_data"]),
]


def fill(store: Store, case: Case) -> None:
    inv = inventory(case.n_aps, case.policy, case.devices)
    for site in inv.sites:
        for dev in site.devices:
            pattern = case.patterns.get(dev.name) or case.patterns.get("*") or healthy
            age = case.hours * HOUR
            while age > 0:
                r = pattern(age)
                if r is not None:
                    store.add_result(site.id, dev.name, r)
                age -= STEP
    store.flush()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_verdict_from_stored_results(case: Case, tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'v.db'}")
    store.migrate()
    fill(store, case)
    monitor = Monitor(inventory(case.n_aps, case.policy, case.devices), store, Engines(), FakeClock(NOW))
    monitor.load_history()
    monitor.evaluate()
    status = monitor.status["dh-test"]
    assert status.verdict == case.verdict, status.judgement.reasons
    assert sorted({r.criterion for r in status.judgement.reasons}) == sorted(case.criteria)


def test_uplink_down_is_one_reason_naming_what_is_behind(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'v.db'}")
    store.migrate()
    fill(store, next(c for c in CASES if c.name.startswith("uplink down")))
    monitor = Monitor(inventory(), store, Engines(), FakeClock(NOW))
    monitor.load_history()
    monitor.evaluate()
    (reason,) = monitor.status["dh-test"].judgement.reasons
    assert reason.device == "wan-1"
    assert "12 device(s) behind it" in reason.message  # too many to name them all
    # since = start of the outage, not the moment of evaluation
    assert monitor.status["dh-test"].since == pytest.approx(NOW - 30 * 60, abs=STEP)


def test_since_survives_restart_and_changes_on_new_verdict(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'v.db'}"
    clock = FakeClock(NOW)
    store = Store(url)
    store.migrate()
    inv = inventory(n_aps=2)
    m = Monitor(inv, store, Engines(), clock)
    for dev in inv.sites[0].devices:
        m.record("dh-test", dev.name, result(NOW))
    assert m.evaluate()[0].verdict == "fully_functional"
    store.flush()
    clock.advance(600)
    m2 = Monitor(inv, Store(url), Engines(), clock)
    m2.load_history()
    assert m2.evaluate() == []  # same verdict: no change recorded
    assert m2.status["dh-test"].since == NOW
    m2.record("dh-test", "wan-1", result(clock.now, received=0))
    (change,) = m2.evaluate()
    assert (change.verdict, change.since) == ("down", clock.now)


def test_window_p95_and_totals_follow_the_window() -> None:
    w = DeviceWindow(window=100.0)
    for i in range(100):
        w.add(result(1000.0 + i, rtt=0.001 * (i + 1)))
    s = w.summary(1099.0)
    assert (s.probes, s.sent, s.received) == (100, 500, 500)
    assert s.rtt_p95 is not None and 0.095 <= s.rtt_p95 <= 0.095 * 1.05
    later = w.summary(1150.0)  # half the results have left the window
    assert 45 <= later.probes <= 55
    assert later.sent == later.probes * 5


def test_rtt_bins_are_within_five_percent() -> None:
    for rtt in (0.0001, 0.0012, 0.040, 0.3, 2.5):
        assert rtt <= bin_upper(rtt_bin(rtt)) <= rtt * 1.05 + 1e-12


def test_announced_maintenance_is_left_out_of_the_verdict(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    start = datetime.fromtimestamp(NOW - 2 * HOUR, UTC).isoformat()
    end = datetime.fromtimestamp(NOW - HOUR, UTC).isoformat()
    text = SITE.format(policy="", aps="").replace(
        "    devices:", f'    maintenance: [{{start: "{start}", end: "{end}", reason: BSNL fibre splicing}}]\n    devices:'
    )
    inv = parse_inventory(text)
    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    store.migrate()
    outage = down_for(3 * HOUR)  # down from 3 h ago, through the maintenance 2 h to 1 h ago ...

    def pattern(age: float) -> ProbeResult:
        return result(NOW - age) if age <= HOUR else outage(age)  # ... and up since it ended

    for dev in inv.sites[0].devices:
        age = 24 * HOUR
        while age > 0:
            store.add_result("dh-test", dev.name, pattern(age))
            age -= STEP
    store.flush()
    monitor = Monitor(inv, store, Engines(), FakeClock(NOW))
    monitor.load_history()
    monitor.evaluate()
    # the hour inside maintenance is forgiven; the hour before it is not
    reasons = monitor.status["dh-test"].judgement.reasons
    assert {r.criterion for r in reasons} == {"uplink_availability"}
    wan = monitor.evidence[("dh-test", "wan-1", "icmp")].summary(NOW)
    assert wan.probes == 288 - 12  # the 12 five-minute probes inside maintenance are left out
    assert wan.longest_outage == pytest.approx(HOUR, abs=STEP)


async def test_prune_keeps_the_retention_and_every_policy_window(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'p.db'}")
    store.migrate()
    for age_days in (40, 36, 34, 1):
        store.add_result("dh-test", "wan-1", result(NOW - age_days * 86400))
    store.flush()
    m = Monitor(inventory(), store, Engines(), FakeClock(NOW), retention=35 * 86400)
    assert await m.prune() == 2
    assert sorted(round((NOW - r.started_at) / 86400) for _, _, r in store.results_since(0)) == [1, 34]
    month = parse_inventory(SITE.format(policy="", aps="").replace("window: 24h", "window: 30d"))
    short = Monitor(month, store, Engines(), FakeClock(NOW), retention=86400)
    store.add_result("dh-test", "wan-1", result(NOW - 10 * 86400))
    store.flush()
    assert await short.prune() == 1  # the 34-day-old one; a 1-day retention never cuts a 30-day window
    assert sorted(round((NOW - r.started_at) / 86400) for _, _, r in store.results_since(0)) == [1, 10]
