"""SNMP evidence in the verdict, the API and /metrics: the monitor polls a real snmpsim agent
serving a Cisco WLC recording (200 APs, every 10th disassociated; uplink-2 down)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporters.prometheus import make_registry
from netmon.api import create_app
from netmon.inventory import parse_inventory
from netmon.monitor import Monitor
from netmon.store import Store
from netmon.verdict import Verdict
from probes.base import Engines
from probes.icmp import IcmpEngine
from probes.snmp import SnmpPoller
from tests.snmp import agents

APS = 25  # the inventory knows AP-RIMS-001..025; the controller reports 200

INVENTORY = """
defaults: {{interval: 1s, count: 2, timeout: 300ms, spacing: 100ms}}
policy: {{window: 10m, ap_min_up_ratio: 0.95}}
snmp:
  credentials:
    wlc: {{version: 2c, community: {{env: NETMON_TEST_WLC_COMMUNITY}}, port: {port}}}
  defaults: {{interval: 1s, timeout: 1s, retries: 1, max_poll_time: 5s}}
sites:
  - id: mc-rims-ranchi
    name: RIMS Ranchi
    district: Ranchi
    type: medical_college
    devices:
      - {{name: wan-1, role: wan, address: 127.10.1.1}}
      - {{name: wlc-1, role: controller, address: {host}, parent: wan-1,
          snmp: {{credentials: wlc, profile: cisco-wlc, uplink_interfaces: [uplink-1, uplink-2]}}}}
{aps}
"""


@pytest.fixture(scope="module")
def snmpsim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[agents.Agent]:
    # start_snmpsim skips the module with a reason when snmpsim or gufo-snmp is missing
    agent = agents.start_snmpsim(tmp_path_factory.mktemp("snmpsim"))
    yield agent
    agent.stop()


async def test_controller_evidence_drives_verdict_api_and_metrics(
    snmpsim: agents.Agent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NETMON_TEST_WLC_COMMUNITY", "cisco-wlc")
    aps = "\n".join(
        f"      - {{name: ap-rims-{n:03d}, role: ap, parent: wlc-1, probes: []}}"
        for n in range(1, APS + 1)
    )
    inv = parse_inventory(INVENTORY.format(port=snmpsim.port, host=snmpsim.host, aps=aps))
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    store.migrate()
    with IcmpEngine.open() as icmp:
        monitor = Monitor(inv, store, Engines({"icmp": icmp, "snmp": SnmpPoller.from_directory()}))
        await monitor.start(evaluate_every=0.5)
        try:
            for _ in range(120):  # bounded: until the controller has been polled and judged
                await asyncio.sleep(0.25)
                st = monitor.status["mc-rims-ranchi"]
                if st.verdict == Verdict.DEGRADED and any(
                    r.criterion == "ap_up_ratio" for r in st.judgement.reasons
                ):
                    break
            app = create_app(monitor, make_registry(monitor, "test", icmp.mode))
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://t"
            ) as c:
                site = (await c.get("/api/v1/sites/mc-rims-ranchi")).json()
                metrics = (await c.get("/metrics")).text
        finally:
            await monitor.stop()
            store.close()

    assert site["verdict"] == "degraded"
    reasons = {r["criterion"]: r for r in site["reasons"]}
    assert set(reasons) == {"ap_up_ratio", "uplink_interface_down"}
    assert "23 of 25 access points up" in reasons["ap_up_ratio"]["message"]
    assert "ap-rims-010, ap-rims-020" in reasons["ap_up_ratio"]["message"]
    assert reasons["uplink_interface_down"]["message"] == "wlc-1 uplink interface uplink-2 is down"

    devices = {d["name"]: d for d in site["device_list"]}
    assert devices["ap-rims-010"]["state"] == "down"
    assert devices["ap-rims-010"]["last"]["reason"] == "wlc-1 reports it not associated"
    assert devices["ap-rims-011"]["state"] == "up"
    wlc = devices["wlc-1"]["snmp"]
    assert wlc["answered"] is True and wlc["aps_total"] == 200 and wlc["aps_up"] == 180
    assert {i["name"]: i["oper_up"] for i in wlc["interfaces"]} == {
        "uplink-1": True,
        "uplink-2": False,
    }
    assert len(site["unknown_aps"]) == 200 - APS  # reported, not ignored
    assert all(ap["controller"] == "wlc-1" for ap in site["unknown_aps"])
    assert site["clients"] is not None and site["clients"] > 0

    samples = {(s.name, frozenset(s.labels.items())): s.value
               for f in text_string_to_metric_families(metrics) for s in f.samples}  # fmt: skip
    base = {"site": "mc-rims-ranchi", "district": "Ranchi", "type": "medical_college"}
    wlc_labels = {**base, "device": "wlc-1", "role": "controller"}
    assert samples[("netmon_device_snmp_up", frozenset(wlc_labels.items()))] == 1.0
    uplink2 = {**wlc_labels, "interface": "uplink-2", "uplink": "true"}
    assert samples[("netmon_interface_oper_up", frozenset(uplink2.items()))] == 0.0
    ap001 = {**base, "device": "ap-rims-001", "role": "ap"}
    assert samples[("netmon_device_up", frozenset(ap001.items()))] == 1.0
    assert ("netmon_device_loss_ratio", frozenset(ap001.items())) not in samples  # no echoes sent
    ap = {**base, "controller": "wlc-1", "ap": "ap-rims-010", "known": "true"}
    assert samples[("netmon_ap_up", frozenset(ap.items()))] == 0.0
    unknown = [k for k in samples if k[0] == "netmon_ap_up" and ("known", "false") in k[1]]
    assert len(unknown) == 200 - APS
    assert "cisco-wlc" not in metrics  # the community never leaks into metrics
    assert "cisco-wlc" not in str(site)
