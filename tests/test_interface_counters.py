"""SNMP interface counters in /metrics: the device's own ifHC*Octets and if*Errors, polled from
a real net-snmp ``snmpd`` on 127.0.0.1 through the monitor, typed as counters in OpenMetrics
and accepted by promtool. Nothing leaves loopback."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_families

from exporters.prometheus import make_registry
from exporters.render import Scrape
from netmon.inventory import parse_inventory
from netmon.monitor import Monitor
from netmon.poller import Poller, ProbeJob
from netmon.store import Store
from probes.base import Engines, Target, run_probe
from probes.snmp import SnmpPoller, SnmpSettings
from probes.snmp_client import open_client
from tests.snmp import agents
from tests.snmp.agents import COMMUNITY, Agent

snmpd_fixture = agents.snmpd_fixture

INVENTORY = """
policy: {{window: 10m}}
snmp:
  credentials:
    ro: {{version: 2c, community: {community}, port: {port}}}
sites:
  - id: dh-lab
    name: DH Lab
    district: Ranchi
    type: district_hospital
    devices:
      - {{name: sw-1, role: switch, address: {host}, probes: [snmp],
          snmp: {{credentials: ro, uplink_interfaces: [lo]}}}}
"""
COUNTERS = {  # family -> the IF-MIB column its samples are (generic profile)
    "netmon_interface_receive_bytes": "1.3.6.1.2.1.31.1.1.1.6",  # ifHCInOctets
    "netmon_interface_transmit_bytes": "1.3.6.1.2.1.31.1.1.1.10",  # ifHCOutOctets
    "netmon_interface_receive_errors": "1.3.6.1.2.1.2.2.1.14",  # ifInErrors
    "netmon_interface_transmit_errors": "1.3.6.1.2.1.2.2.1.20",  # ifOutErrors
}


async def poll(poller: Poller, monitor: Monitor) -> None:
    """One SNMP poll of sw-1 by the poller, taken by the monitor as ``netmon run`` does."""
    jobs = poller.jobs(monitor.inventory)
    job = next(j.payload for j in jobs if j.key == ("dh-lab", "sw-1", "snmp"))
    assert isinstance(job, ProbeJob)
    target = Target(job.site.id, job.device.name, job.device.address or "", job.device.role)
    result = await run_probe(job.kind, poller.engines.named("snmp"), target, job.params)
    assert result.ok, result.reason
    monitor.record("dh-lab", "sw-1", result)


def lo_counters(text: str) -> tuple[dict[str, str], dict[str, float]]:
    """Each counter family's type, and lo's ``_total`` value, from OpenMetrics (strict parser)."""
    types: dict[str, str] = {}
    values: dict[str, float] = {}
    for fam in om_families(text):
        if fam.name in COUNTERS:
            types[fam.name] = fam.type
            for s in fam.samples:
                if s.labels["interface"] == "lo":
                    assert s.name == fam.name + "_total" and s.labels["uplink"] == "true"
                    values[fam.name] = s.value
    return types, values


async def test_interface_counters_are_the_devices_own(snmpd: Agent, tmp_path: Path) -> None:
    inv = parse_inventory(INVENTORY.format(community=COMMUNITY, port=snmpd.port, host=snmpd.host))
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    store.migrate()
    monitor = Monitor(inv, store)
    poller = Poller(monitor.record, Engines({"snmp": SnmpPoller.from_directory()}))
    monitor.ready = True
    registry = make_registry(monitor, "test", "none")
    await poll(poller, monitor)
    types, first = lo_counters(registry.render(Scrape(openmetrics=True)))
    assert types == dict.fromkeys(COUNTERS, "counter") and first.keys() == COUNTERS.keys()

    client = await open_client(snmpd.host, SnmpSettings(community=COMMUNITY, port=snmpd.port))
    await client.open()
    names = [(oid, name) async for oid, name in client.walk("1.3.6.1.2.1.31.1.1.1.1")]  # ifName
    lo = next(oid.rsplit(".", 1)[1] for oid, name in names if name in ("lo", b"lo"))
    read = await client.get([f"{col}.{lo}" for col in COUNTERS.values()])
    between = {fam: float(read[f"{col}.{lo}"]) for fam, col in COUNTERS.items()}  # type: ignore[arg-type]

    await poll(poller, monitor)
    text = registry.render(Scrape(openmetrics=True))
    _, second = lo_counters(text)
    for fam in COUNTERS:  # the device's counter as read (not a total netmon adds up from 0)
        assert first[fam] <= between[fam] <= second[fam], fam
    assert second["netmon_interface_receive_bytes"] > 0  # lo carried at least these polls

    if shutil.which("promtool") is None:
        pytest.fail("promtool (Debian: prometheus) is not installed")
    plain = registry.render(Scrape())
    assert "# TYPE netmon_interface_receive_bytes_total counter" in plain
    proc = subprocess.run(["promtool", "check", "metrics"], input=plain, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    findings = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert proc.returncode in (0, 3), findings  # 3: lint findings only, every line parsed
    # the one lint accepted: the rate gauges the dashboards read are named in bits, not bytes
    assert set(findings) <= {f'netmon_interface_{d}_bits_per_second use base unit "bytes" '
                             'instead of "bits"' for d in ("receive", "transmit")}, findings  # fmt: skip
