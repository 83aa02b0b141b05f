"""The probe-kind seam: a kind registered behind it is scheduled, folded into its own evidence
only, stored and re-read like the built-in ones; findings of every kind survive a restart."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from netmon.inventory import Device, Inventory, Site, parse_inventory
from netmon.monitor import Monitor
from netmon.store import Store
from netmon.verdict import Verdict
from probes import KINDS, Engines, JobSpec, ProbeKind, ProbeParams, ProbeResult, Target
from probes.base import run_probe
from probes.icmp import IcmpFindings
from probes.snmp_findings import AccessPoint, Interface, SnmpFindings
from probes.snmp_view import SnmpEvidence, SnmpFacts
from tests.conftest import FakeClock

NOW = 1_750_000_000.0

INVENTORY = """
policy: {window: 1h}
snmp:
  credentials:
    lab: {version: 2c, community: public}
sites:
  - id: dh-test
    name: DH Test
    district: Ranchi
    type: district_hospital
    devices:
      - {name: wan-1, role: wan, address: 127.0.0.1}
      - {name: wlc-1, role: controller, address: 127.0.0.2, parent: wan-1,
         snmp: {credentials: lab, uplink_interfaces: [uplink-1]}}
      - {name: ap-1, role: ap, parent: wlc-1, probes: []}
"""


@dataclass(frozen=True, slots=True)
class FakeFindings:
    status: int

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FakeFindings:
        return cls(int(data["status"]))


class FakeKind(ProbeKind[str, ProbeParams]):
    """A kind that never says whether a device answers (like an HTTP check of a web UI)."""

    name = "fake"
    findings = FakeFindings

    def enabled_by_default(self, device: Device) -> bool:
        return device.address is not None

    def job(self, inventory: Inventory, site: Site, device: Device) -> JobSpec:
        return JobSpec(30.0, ProbeParams(count=1, timeout=0.2))

    def open(self, config: object) -> str:
        return "engine"

    async def probe(self, engine: str, target: Target, params: ProbeParams) -> ProbeResult:
        await asyncio.sleep(0)
        return ProbeResult(self.name, False, NOW, reason="HTTP 503", findings=FakeFindings(503))


@pytest.fixture
def fake_kind() -> Iterator[FakeKind]:
    kind = FakeKind()
    KINDS[kind.name] = kind
    try:
        yield kind
    finally:
        del KINDS[kind.name]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'kinds.db'}")
    s.migrate()
    yield s
    s.close()


def icmp(ts: float, ok: bool = True) -> ProbeResult:
    rtts = (0.0012, 0.0015) if ok else ()
    return ProbeResult("icmp", ok, ts, 1.2, 2, len(rtts), rtts, "" if ok else "no reply to 2 echoes",
                       IcmpFindings("127.0.0.1"))  # fmt: skip


def snmp(ts: float, ap_up: bool = True, rebooted: bool = False) -> ProbeResult:
    found = SnmpFindings(
        "cisco-wlc", True, 0.25, 300.0, rebooted, "wlc", None, None, {"model": "x"},
        (Interface(1, "uplink-1", False, True, 1e6, 2e6, 0, 1, 2),),
        (AccessPoint("ap-1", "00:11:22:33:44:55", ap_up, 7),), ("ifIndex 1: in octets wrap",),
    )  # fmt: skip
    return ProbeResult("snmp", True, ts, 0.25, 12, 12, (0.25,), "", found)


def fake(ts: float) -> ProbeResult:
    return ProbeResult("fake", False, ts, 0.01, 1, 0, (), "HTTP 503", FakeFindings(503))


def test_a_registered_kind_is_scheduled_and_never_counts_as_reachability(
    fake_kind: FakeKind, store: Store
) -> None:
    inv = parse_inventory(INVENTORY)
    m = Monitor(inv, store, Engines({"fake": "engine"}), FakeClock(NOW))
    poller = m.poller.poller  # type: ignore[attr-defined]
    assert {key for key in poller.scheduler.jobs} == set()  # jobs appear when the monitor starts
    keys = {job.key for job in poller.jobs(inv)}
    assert ("dh-test", "wan-1", "fake") in keys and ("dh-test", "ap-1", "fake") not in keys
    for i in range(10):
        m.record("dh-test", "wan-1", icmp(NOW - 600 + i * 60))
        m.record("dh-test", "wan-1", fake(NOW - 590 + i * 60))
    wan = m.summaries(inv.sites[0], NOW)["wan-1"]
    assert (wan.probes, wan.up, wan.is_up, wan.outages) == (10, 10, True, 0)  # ICMP's alone
    own = m.evidence[("dh-test", "wan-1", "fake")].summary(NOW)
    assert own is not None and (own.probes, own.up) == (10, 0)  # kept as the fake kind's
    m.evaluate()
    assert m.status["dh-test"].verdict != Verdict.DOWN


async def test_the_runner_runs_a_registered_kind_with_its_engine(fake_kind: FakeKind) -> None:
    result = await run_probe(
        fake_kind, "engine", Target("s", "d", "127.0.0.1"), ProbeParams(1, 0.2)
    )
    assert result.kind == "fake" and result.findings == FakeFindings(503)


def test_every_kind_round_trips_the_store_and_refolds_identically(
    fake_kind: FakeKind, store: Store
) -> None:
    inv = parse_inventory(INVENTORY)
    live = Monitor(inv, store, Engines(), FakeClock(NOW))
    for i in range(6):
        ts = NOW - 900 + i * 120
        live.record("dh-test", "wan-1", icmp(ts, ok=i != 3))
        live.record("dh-test", "wlc-1", snmp(ts + 1, ap_up=i < 4, rebooted=i == 2))
        live.record("dh-test", "wan-1", fake(ts + 2))
    store.flush()
    again = Monitor(inv, Store(store.url), Engines(), FakeClock(NOW))
    assert again.load_history() == 18
    assert set(again.evidence) == set(live.evidence)
    site = inv.sites[0]
    for key, ev in live.evidence.items():
        assert again.evidence[key].summary(NOW) == ev.summary(NOW), key
        dev = site.device(key[1])
        assert dev is not None and again.evidence[key].facts(dev, NOW) == ev.facts(dev, NOW), key
    assert again.summaries(site, NOW) == live.summaries(site, NOW)  # APs via the controller too
    wlc = again.evidence[("dh-test", "wlc-1", "snmp")]
    assert isinstance(wlc, SnmpEvidence) and wlc.findings == snmp(0, ap_up=False).findings
    facts = wlc.facts(site.devices[1], NOW)
    assert facts == SnmpFacts(True, (NOW - 660 + 1 - 300.0,), ("uplink-1",), 300.0)
    assert again.summaries(site, NOW)["ap-1"].is_up is False  # the controller reports it down


def test_findings_stored_by_older_versions_still_load(store: Store) -> None:
    old = ('{"profile":"generic","complete":true,"poll_seconds":0.1,"sys_uptime_seconds":5.0,'
           '"rebooted":false,"sys_name":"sw","interfaces":[{"index":2,"name":"ge-0/0/1",'
           '"oper_up":true}],"aps":null,"aps_total":null,"aps_up":null,"notes":[]}')  # fmt: skip
    with store.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO probe_result (site_id, device, kind, ts, duration, ok, sent, received,"
                 " rtts, reason, extra) VALUES ('s', 'sw', 'snmp', 1.0, 0.1, true, 3, 3, '[0.1]', '',"
                 " :old), ('s', 'x', 'gone', 1.0, 0.1, true, 1, 1, '[]', '', '{\"a\": 1}'),"
                 " ('s', 'y', 'snmp', 1.0, 0.1, true, 1, 1, '[]', '', 'not json')"),
            {"old": old},
        )  # fmt: skip
    rows = {dev: r for _site, dev, r in store.results_since(0)}
    found = rows["sw"].findings
    assert isinstance(found, SnmpFindings) and found.sys_name == "sw" and found.aps is None
    assert found.interfaces == (Interface(2, "ge-0/0/1", True),)
    assert rows["x"].findings is None and rows["x"].ok  # a kind no longer registered
    assert rows["y"].findings is None  # unreadable findings: the result loads without them


def test_each_kinds_findings_json_round_trips() -> None:
    for result in (icmp(NOW), snmp(NOW), fake(NOW)):
        found = result.findings
        assert found is not None
        assert type(found).from_json(found.to_json()) == found


def test_the_inventory_accepts_each_registered_kind() -> None:
    inv = parse_inventory(INVENTORY)
    wan, wlc, ap = inv.sites[0].devices
    assert (wan.kinds, wlc.kinds, ap.kinds) == (["icmp"], ["icmp", "snmp"], [])
    assert set(Device.model_fields) >= {"snmp"} and "snmp" in Inventory.model_fields
