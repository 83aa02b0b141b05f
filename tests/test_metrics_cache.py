"""The cached /metrics text equals the uncached reference after any history: randomized folds
(ICMP and SNMP, late results, controllers turning APs down), clock steps across window
boundaries, evaluations and reloads, compared after every step. No network."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_families
from prometheus_client.parser import text_string_to_metric_families

from exporters.prometheus import NetmonCollector, NetmonRegistry, make_registry
from exporters.render import Scrape
from netmon.inventory import parse_inventory
from netmon.monitor import Monitor
from netmon.store import Store
from probes.base import Engines, ProbeResult
from probes.snmp_findings import AccessPoint, Interface, SnmpFindings
from tests.conftest import FakeClock

NOW = 1_800_000_000.0
INVENTORY = """
policy: {window: 30m}
snmp:
  credentials:
    lab: {version: 2c, community: public}
sites:
  - id: dh-a
    name: DH A
    district: Ranchi
    type: district_hospital
    devices:
      - {name: wan-1, role: wan, address: 127.0.0.1}
      - {name: router-1, role: router, address: 127.0.0.2, parent: wan-1}
      - {name: wlc-1, role: controller, address: 127.0.0.3, parent: router-1,
         snmp: {credentials: lab, uplink_interfaces: [uplink-1]}}
      - {name: ap-1, role: ap, address: 127.0.0.4, parent: wlc-1}
      - {name: ap-2, role: ap, parent: wlc-1, probes: []}
      - {name: ap-3, role: ap, address: 127.0.0.6, parent: wlc-1}
  - id: chc-b
    name: CHC B
    district: Khunti
    type: chc
    policy: {window: 10m}
    devices:
      - {name: wan-1, role: wan, address: 127.0.1.1}
      - {name: ap-1, role: ap, address: 127.0.1.2, parent: wan-1}
  - id: chc-c
    name: CHC C
    district: Khunti
    type: chc
"""
ICMP = [("dh-a", "wan-1"), ("dh-a", "router-1"), ("dh-a", "ap-1"), ("dh-a", "ap-3"),
        ("chc-b", "wan-1"), ("chc-b", "ap-1")]  # fmt: skip
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str, openmetrics: bool = False) -> Samples:
    parse = om_families if openmetrics else text_string_to_metric_families
    return {(s.name, frozenset(s.labels.items())): s.value
            for f in parse(text) for s in f.samples}  # fmt: skip


def icmp(rng: random.Random, ts: float) -> ProbeResult:
    got = rng.choice((3, 3, 3, 2, 0))
    rtts = tuple(rng.uniform(0.001, 0.2) for _ in range(got))
    return ProbeResult("icmp", got > 0, ts, 0.5, 3, got, rtts, "" if got else "no reply")


def snmp(rng: random.Random, ts: float, octets: int) -> ProbeResult:
    if rng.random() < 0.15:
        return ProbeResult("snmp", False, ts, 1.0, 2, 0, (), "timeout")
    aps = tuple(AccessPoint(f"ap-{n}", None, rng.random() < 0.7, rng.randrange(9)) for n in (1, 2))
    links = (Interface(1, "uplink-1", rng.random() < 0.9, True, 1e6, 2e6, 0, 0, 0,
                       octets, octets * 2, 3, None),)  # fmt: skip
    found = SnmpFindings("cisco-wlc", True, 0.2, 300.0, rng.random() < 0.1, "wlc", None, None,
                         {}, links, aps)  # fmt: skip
    return ProbeResult("snmp", True, ts, 0.2, 4, 4, (0.2,), "", found)


async def step(rng: random.Random, monitor: Monitor, clock: FakeClock, octets: int) -> str:
    """One random thing that happens to a running monitor; returns what it did."""
    kinds = ["icmp", "snmp", "time", "evaluate", "reload", "refold"]
    action = rng.choices(kinds, [8, 2, 3, 3, 0.3, 0.3])[0]
    if action == "icmp":
        site, device = rng.choice(ICMP)
        monitor.record(site, device, icmp(rng, clock.now - rng.choice((0.0, 0.0, 5.0, 40.0))))
    elif action == "snmp":
        monitor.record("dh-a", "wlc-1", snmp(rng, clock.now, octets))
    elif action == "time":
        clock.advance(rng.choice((1.0, 4.0, 15.0, 60.0, 300.0, 1300.0)))
    elif action == "evaluate":
        monitor.evaluate()
    elif action == "reload":
        await monitor.reload(parse_inventory(INVENTORY))
    else:  # the site's window re-read from the store (a maintenance change): new evidence
        assert await monitor.refold(rng.choice(ICMP)[0])
    return action


@pytest.mark.parametrize("seed", range(4))
async def test_cached_equals_uncached_after_random_histories(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    clock = FakeClock(NOW)
    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    store.migrate()
    monitor = Monitor(parse_inventory(INVENTORY), store, Engines(), clock)
    registry: NetmonRegistry = make_registry(monitor, "t", "x")
    reference = CollectorRegistry(auto_describe=False)  # device, site and kind series, uncached
    reference.register(NetmonCollector(monitor, registry.counters))
    monitor.evaluate()
    monitor.ready = True
    done: list[str] = []
    for n in range(200):  # bounded; the output after every other step or so is compared
        done.append(await step(rng, monitor, clock, octets=1000 * n))
        store.pending.clear()
        if rng.random() < 0.5:
            continue  # the cache must also hold across steps nobody scraped
        cached = samples(registry.render(Scrape(own=False)))
        assert cached == samples(generate_latest(reference).decode()), done[-12:]
        om = samples(registry.render(Scrape(openmetrics=True, own=False)), openmetrics=True)
        assert om == cached
        lean = samples(registry.render(Scrape(window_gauges=False, own=False)))
        assert lean == {k: v for k, v in cached.items() if "_window_" not in k[0]}
        shard = samples(registry.render(Scrape(sites=frozenset({"chc-b"}), own=False)))
        assert shard == {k: v for k, v in cached.items() if ("site", "chc-b") in k[1]}
    assert {"icmp", "snmp", "time", "evaluate"} <= set(done)
    kinds = {name for name, _ in cached}  # the history reached every kind of series
    assert {"netmon_ap_up", "netmon_interface_receive_bytes_total", "netmon_site_reasons",
            "netmon_device_window_rtt_p95_seconds"} <= kinds  # fmt: skip
