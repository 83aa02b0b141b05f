"""Verdict rules, table-driven: results are written to a real store, re-read through the
monitor's start-up path, and judged. Each case names the expected verdict and reason criteria."""

from __future__ import annotations

import dataclasses
import inspect
import random
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

import pytest

from netmon.inventory import Inventory, Policy, Role, Site, parse_inventory
from netmon.monitor import Monitor
from netmon.store import Store
from netmon.verdict import (
    CRITERIA,
    Criterion,
    Reason,
    SiteContext,
    Unit,
    Verdict,
    criteria_table,
    judge,
)
from netmon.verdict.rules import RULES
from netmon.window import DeviceSummary, DeviceWindow, bin_upper, rtt_bin
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


def inventory(n_aps: int = 10, policy: str = "", devices: bool = True) -> Inventory:
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


# fmt: off
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
         verdict=Verdict.DEGRADED, criteria=["small_site_aps_down"]),
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
# fmt: on


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
    monitor = Monitor(
        inventory(case.n_aps, case.policy, case.devices), store, Engines(), FakeClock(NOW)
    )
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


def test_silence_is_unknown_never_down_and_ends_with_the_next_result(tmp_path: Path) -> None:
    """No result from the uplinks for longer than max_silence (a poller that died): the site
    turns unknown by the clock alone (the incremental judge's boundary), not down; the next
    result brings it back."""
    clock = FakeClock(NOW)
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    store.migrate()
    inv = inventory(n_aps=2)
    m = Monitor(inv, store, Engines(), clock)
    for dev in inv.sites[0].devices:
        m.record("dh-test", dev.name, result(NOW))
    m.evaluate()
    clock.advance(Policy().max_silence - 1)
    assert m.evaluate() == [] and m.status["dh-test"].verdict == "fully_functional"
    clock.advance(2)
    (change,) = m.evaluate()  # no result folded: the time boundary alone re-judges
    assert (change.verdict, change.since) == ("unknown", clock.now)
    (reason,) = m.status["dh-test"].judgement.reasons
    assert reason.criterion == "no_recent_data" and "not reporting" in reason.message
    assert reason.threshold == Policy().max_silence
    assert m.evaluate(full=True) == []  # the full judge agrees
    m.record("dh-test", "wan-1", result(clock.now))
    (back,) = m.evaluate()
    assert back.verdict == "fully_functional"


def test_silence_during_and_right_after_maintenance_is_not_unknown() -> None:
    from datetime import UTC, datetime

    start = datetime.fromtimestamp(NOW + 100, UTC).isoformat()
    end = datetime.fromtimestamp(NOW + 2 * HOUR, UTC).isoformat()
    text = SITE.format(policy="", aps="").replace(
        "    devices:",
        f'    maintenance: [{{start: "{start}", end: "{end}", reason: power work}}]\n    devices:',
    )
    inv = parse_inventory(text)
    site, policy = inv.sites[0], inv.policy_for(inv.sites[0])
    seen = {d.name: summary_at(NOW) for d in site.devices}
    silence = policy.max_silence
    for at, verdict in (
        (NOW + 50, "fully_functional"),
        (NOW + HOUR, "fully_functional"),  # in maintenance: its results are left out
        (NOW + 2 * HOUR + silence - 1, "fully_functional"),  # silence counts from its end
        (NOW + 2 * HOUR + silence + 1, "unknown"),
    ):
        assert judge(site, policy, seen, None, at).verdict == verdict, at
    assert judge(site, policy, seen).verdict == "fully_functional"  # no clock: no silence


def summary_at(ts: float) -> DeviceSummary:
    w = DeviceWindow(window=86400.0)
    w.add(result(ts))
    s = w.summary(ts)
    assert s is not None
    return s


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
        "    devices:",
        f'    maintenance: [{{start: "{start}", end: "{end}", reason: BSNL fibre splicing}}]\n    devices:',
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
    assert sorted(round((NOW - r.started_at) / 86400) for _, _, r in store.results_since(0)) == [
        1,
        34,
    ]
    month = parse_inventory(SITE.format(policy="", aps="").replace("window: 24h", "window: 30d"))
    short = Monitor(month, store, Engines(), FakeClock(NOW), retention=86400)
    store.add_result("dh-test", "wan-1", result(NOW - 10 * 86400))
    store.flush()
    assert (
        await short.prune() == 1
    )  # the 34-day-old one; a 1-day retention never cuts a 30-day window
    assert sorted(round((NOW - r.started_at) / 86400) for _, _, r in store.results_since(0)) == [
        1,
        10,
    ]


# --- rules do not hide each other: history counts whatever the state now ----------------------

FLAP_SITE = """
policy: {window: 2m}
sites:
  - id: chc-flap
    name: CHC Torpa, Test
    district: Khunti
    type: chc
    devices:
      - {name: wan-1, role: wan, address: 127.40.1.1}
      - {name: sw-1, role: switch, address: 127.40.5.1, parent: wan-1}
""" + "".join(
    f"      - {{name: ap-{i}, role: ap, address: 127.40.6.{i}, parent: sw-1}}\n"
    for i in range(1, 6)
)


def burst(ts: float, up: Callable[[float], bool]) -> ProbeResult:
    """5 echoes 100 ms apart; each answered if the device is up when it is sent."""
    rtts = tuple(0.005 for i in range(5) if up(ts + 0.1 * i))
    return ProbeResult("icmp", bool(rtts), ts, 0.9, 5, len(rtts), rtts)


def flap_8_of_16(ts: float) -> bool:
    return ts % 16 < 8


def test_an_ap_flapping_8s_in_16s_is_never_hidden_by_its_state_now() -> None:
    """One AP of five down 8 s in every 16 s, probed every 2 s: at every instant, down or up,
    the site is degraded and names the AP as flapping and lossy (issue: at the instants the
    AP was down the site read fully_functional with no reason)."""
    inv = parse_inventory(FLAP_SITE)
    site = inv.sites[0]
    policy = inv.policy_for(site)
    windows = {d.name: DeviceWindow(policy.window) for d in site.devices}
    seen_states: set[bool] = set()
    ts = NOW + 1.7  # bursts straddle the flap edges, as probes spread over the interval do
    for _ in range(200):  # 400 s: warm-up of one window, then several flap periods judged
        for name, w in windows.items():
            w.add(burst(ts, flap_8_of_16 if name == "ap-3" else lambda _t: True))
        ts += 2.0
        if ts < NOW + policy.window:
            continue
        seen = {n: w.summary(ts) for n, w in windows.items()}
        ap = seen["ap-3"]
        seen_states.add(bool(ap.is_up))
        j = judge(site, policy, seen)
        got = {(r.criterion, r.device) for r in j.reasons}
        assert j.verdict == Verdict.DEGRADED, (ap.is_up, j.reasons)
        assert ("ap_flapping", "ap-3") in got, (ap.is_up, j.reasons)
        assert ap.loss_ratio is not None and ap.loss_ratio > policy.ap_max_loss
        assert ("ap_loss", "ap-3") in got, (ap.is_up, j.reasons)
        assert got <= {("ap_flapping", "ap-3"), ("ap_loss", "ap-3")}, j.reasons
    assert seen_states == {True, False}  # judged both while the AP answered and while it was down


RANDOM_SITE = """
policy: {window: 2m}
sites:
  - id: chc-random
    name: CHC Random, Test
    district: Ranchi
    type: chc
    devices:
      - {name: wan-1, role: wan, address: 127.40.1.1}
      - {name: sw-1, role: switch, address: 127.40.5.1, parent: wan-1}
      - {name: wlc-1, role: controller, address: 127.40.4.1, parent: sw-1}
""" + "".join(
    f"      - {{name: ap-{i}, role: ap, address: 127.40.6.{i}, parent: sw-1}}\n"
    for i in range(1, 8)
)


def random_history(rng: random.Random, window: DeviceWindow, start: float) -> None:
    """A random walk of up/down runs, with partial bursts (loss) while up."""
    up, ts = rng.random() < 0.8, start
    for _ in range(rng.randint(5, 60)):
        if rng.random() < 0.2:
            up = not up
        received = 0 if not up else (5 if rng.random() < 0.7 else rng.randint(1, 4))
        window.add(ProbeResult("icmp", received > 0, ts, 0.9, 5, received, (0.01,) * received))
        ts += 2.0


def with_state(s: DeviceSummary, up: bool) -> DeviceSummary:
    """The same window history, with the device up or down at the last instant."""
    assert s.last is not None
    last = dataclasses.replace(s.last, ok=up, received=s.last.received if up else 0)
    return dataclasses.replace(s, last=last, down_since=None if up else s.last.started_at)


HISTORY_CRITERIA = {Criterion.AP_LOSS, Criterion.AP_FLAPPING, Criterion.CONTROLLER_FLAPPING}


def history_reasons(ctx: SiteContext) -> set[tuple[str, str | None, float | None]]:
    rules = [r for r in RULES if set(r.criteria) & HISTORY_CRITERIA]
    return {(r.criterion, r.device, r.measured) for rule in rules for r in rule.check(ctx)}


@pytest.mark.parametrize("seed", range(40))
def test_history_reasons_do_not_depend_on_the_state_at_the_last_instant(seed: int) -> None:
    """Property: for random per-device histories, flapping and loss reasons of a leaf device
    (an AP, the controller) are the same whether it answers at the last instant or not."""
    rng = random.Random(seed)
    inv = parse_inventory(RANDOM_SITE)
    site = inv.sites[0]
    policy = inv.policy_for(site)
    seen: dict[str, DeviceSummary] = {}
    for dev in site.devices:
        w = DeviceWindow(policy.window)
        if dev.role in ("wan", "switch"):
            w.add(result(NOW))  # the path is up: nothing is behind a down parent
        else:
            random_history(rng, w, NOW)
        seen[dev.name] = w.summary(NOW + 130.0)
    for dev in (d for d in site.devices if d.role in ("ap", "controller")):
        variants = [{**seen, dev.name: with_state(seen[dev.name], up)} for up in (True, False)]
        up, down = (history_reasons(SiteContext.build(site, policy, v, None)) for v in variants)
        assert up == down, (dev.name, up ^ down)
        for v in variants:
            if history_reasons(SiteContext.build(site, policy, v, None)):
                assert judge(site, policy, v).verdict != Verdict.FULLY_FUNCTIONAL


def test_devices_behind_a_flapping_switch_are_reported_only_under_it() -> None:
    """The switch and the APs behind it flap together: while it is down, the site is down for
    the switch; while it answers, the switch flaps; the APs are never reasons of their own."""
    inv = parse_inventory(FLAP_SITE)
    site = inv.sites[0]
    policy = inv.policy_for(site)
    windows = {d.name: DeviceWindow(policy.window) for d in site.devices}
    got: dict[bool, set[tuple[str, str | None]]] = {}
    ts = NOW + 1.7
    for i in range(80):
        for name, w in windows.items():
            w.add(burst(ts, (lambda _t: True) if name == "wan-1" else flap_8_of_16))
        ts += 2.0
        if i >= 60:
            seen = {n: w.summary(ts) for n, w in windows.items()}
            j = judge(site, policy, seen)
            assert not [r for r in j.reasons if r.device and r.device.startswith("ap-")], j.reasons
            got.setdefault(bool(seen["sw-1"].is_up), set()).update(
                (r.criterion, r.device) for r in j.reasons
            )
            assert j.verdict == (Verdict.DEGRADED if seen["sw-1"].is_up else Verdict.DOWN)
    assert got[False] == {("switch_down", "sw-1"), ("no_ap_up", None)}
    assert got[True] == {("switch_flapping", "sw-1")}


# --- the rule registry -------------------------------------------------------------------------

GENERAL_POLICY_FIELDS = {"window"}  # applied by the windows, not by a rule


def test_every_policy_field_is_read_by_a_rule_and_each_rule_reads_what_it_declares() -> None:
    declared = {f for rule in RULES for f in rule.reads}
    assert declared | GENERAL_POLICY_FIELDS == set(Policy.model_fields)
    for rule in RULES:
        source = inspect.getsource(sys.modules[type(rule).__module__])
        read = set(re.findall(r"policy\.([a-z_0-9]+)", source))
        assert read == set(rule.reads), (rule.name, read)


def test_every_criterion_is_emitted_by_exactly_one_registered_rule() -> None:
    owners: dict[Criterion, list[str]] = {}
    for rule in RULES:
        for c in rule.criteria:
            owners.setdefault(c, []).append(rule.name)
    assert {c: names for c, names in owners.items() if len(names) != 1} == {}
    assert set(owners) == set(Criterion)
    for rule in RULES:  # a rule's source names only the criteria it declares
        source = inspect.getsource(sys.modules[type(rule).__module__])
        named = {Criterion[m] for m in re.findall(r"Criterion\.([A-Z_0-9]+)", source)}
        assert named == set(rule.criteria), rule.name
    assert len({rule.name for rule in RULES}) == len(RULES)


def test_every_criterion_has_metadata_and_role_criteria_cover_every_role() -> None:
    assert set(CRITERIA) == set(Criterion)
    for c in Criterion:
        assert c.description and "\n" not in c.description
        assert c.policy_field is None or c.policy_field in Policy.model_fields, c
        assert c.unit is not Unit.NONE or c.policy_field is None, c
    non_uplink_roles = set(get_args(Role)) - {"wan"}  # a wan device is always an uplink
    assert {f"{r}_down" for r in non_uplink_roles} <= set(Criterion)
    assert {f"{r}_flapping" for r in non_uplink_roles} <= set(Criterion)


def traced_judge(
    site: Site, policy: Policy, seen: dict[str, DeviceSummary]
) -> list[tuple[str, Reason]]:
    """(rule name, reason) for every rule judge would run, in order, until one settles."""
    ctx = SiteContext.build(site, policy, seen, None)
    out: list[tuple[str, Reason]] = []
    for rule in RULES:
        found = list(rule.check(ctx))
        out += [(rule.name, r) for r in found]
        if rule.settle(ctx, found) is not None:
            break
    return out


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_reasons_are_in_their_criterion_unit(case: Case, tmp_path: Path) -> None:
    """Each reason comes from the rule that declares its criterion; measured and threshold are
    in the criterion's unit; the threshold is the policy field's value."""
    store = Store(f"sqlite:///{tmp_path / 'v.db'}")
    store.migrate()
    fill(store, case)
    inv = inventory(case.n_aps, case.policy, case.devices)
    monitor = Monitor(inv, store, Engines(), FakeClock(NOW))
    monitor.load_history()
    site = inv.sites[0]
    policy = inv.policy_for(site)
    traced = traced_judge(site, policy, monitor.summaries(site, NOW))
    assert [r for _, r in traced] == list(judge(site, policy, monitor.summaries(site, NOW)).reasons)
    by_name = {rule.name: rule for rule in RULES}
    for name, r in traced:
        assert r.criterion in by_name[name].criteria, (name, r)
        c = Criterion(r.criterion)
        if c.policy_field:
            assert r.threshold == getattr(policy, c.policy_field), r
        else:
            assert r.threshold is None, r
        if c.unit is Unit.NONE:
            assert r.measured is None, r
        elif c.unit is Unit.RATIO:
            assert r.measured is not None and 0.0 <= r.measured <= 1.0, r
        else:
            assert r.measured is not None and 0.0 <= r.measured <= case.hours * HOUR, r


def test_a_down_device_measures_seconds_down_not_a_timestamp(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'v.db'}")
    store.migrate()
    fill(store, next(c for c in CASES if c.name == "controller down"))
    monitor = Monitor(inventory(), store, Engines(), FakeClock(NOW))
    monitor.load_history()
    monitor.evaluate()
    (reason,) = monitor.status["dh-test"].judgement.reasons
    assert reason.criterion == Criterion.CONTROLLER_DOWN
    assert reason.measured == pytest.approx(HOUR, abs=STEP)  # down for the last hour


def test_docs_list_every_criterion_as_the_enum_renders_it() -> None:
    runbooks = (Path(__file__).parents[1] / "docs" / "runbooks.md").read_text(encoding="utf-8")
    assert criteria_table() in runbooks


def test_readme_lists_every_criterion() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert criteria_table() in readme, "README's criteria table is stale: paste criteria_table()"
