"""SNMP traps as hints (netmon.traps): real ``snmptrap`` datagrams decoded; each datagram one
counted outcome; a flood from loopback bounded by the budgets; and a real snmpd whose uplink goes
down, with a linkDown sent by ``snmptrap``: the site's verdict follows from the poll the trap
triggered, long before that device's next scheduled poll."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporters.prometheus import OwnCollector
from netmon.inventory import Inventory, parse_inventory
from netmon.lab.snmp import PASSPERSIST, SUBTREES
from netmon.monitor import Monitor
from netmon.store import Store
from netmon.traps import PER_DEVICE, TOTAL, TrapError, TrapEvent, TrapHints, TrapReceiver, decode
from netmon.traps import directory as trap_directory
from netmon.verdict import Verdict
from probes.base import Engines
from probes.icmp import IcmpEngine
from probes.snmp import SnmpPoller
from tests.snmp import agents

LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
IF_INDEX_1 = ("1.3.6.1.2.1.2.2.1.1.1", "i", "1")
COMMUNITY = "trap-community-1"
SNMPTRAP = shutil.which("snmptrap")
needs_snmptrap = pytest.mark.skipif(
    SNMPTRAP is None, reason="snmptrap missing (apt-get install snmp)"
)
RECEIVER_INVENTORY = f"""
snmp:
  credentials:
    v2: {{version: 2c, community: {COMMUNITY}}}
    v3: {{version: 3, user: netmon, auth_key: auth-pass-123}}
sites:
  - id: chc-a
    name: CHC A
    district: Ranchi
    type: chc
    devices:
      - {{name: sw-1, role: switch, address: 127.0.0.1, snmp: {{credentials: v2}}}}
      - {{name: sw-2, role: switch, address: 127.0.0.2, snmp: {{credentials: v3}}}}
"""


def snmptrap(port: int, community: str, oid: str, *varbinds: str, version: str = "2c") -> None:
    assert SNMPTRAP is not None
    env = {**os.environ, "MIBS": "", "MIBDIRS": "/nonexistent"}
    args = [SNMPTRAP, "-v", version, "-c", community, f"127.0.0.1:{port}", ""]
    args += [oid, *varbinds] if version == "2c" else ["", "2", "0", ""]
    subprocess.run(args, env=env, check=True, timeout=10, capture_output=True)


def captured(community: str = COMMUNITY, version: str = "2c") -> bytes:
    """The bytes snmptrap sends for a linkDown of ifIndex 1."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        snmptrap(sock.getsockname()[1], community, LINK_DOWN, *IF_INDEX_1, version=version)
        return sock.recv(65535)


@needs_snmptrap
def test_a_real_linkdown_is_decoded_and_v1_is_unsupported() -> None:
    trap = decode(captured())
    assert (trap.name, trap.if_index, trap.community) == ("linkDown", 1, COMMUNITY.encode())
    with pytest.raises(TrapError) as info:
        decode(captured(version="1"))
    assert info.value.outcome == "unsupported"


@needs_snmptrap
def test_any_damaged_datagram_is_a_trap_error_never_another_exception() -> None:
    good = captured()
    rng = random.Random(15)
    for n in range(3000):  # bounded: truncations, bit flips, noise
        data = bytearray(good[: rng.randrange(len(good))] if n % 3 == 0 else good)
        for _ in range(rng.randrange(1, 4)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        if n % 3 == 2:
            data = bytearray(rng.randbytes(rng.randrange(80)))
        with contextlib.suppress(TrapError):
            decode(bytes(data))


def receiver_for(inventory: Inventory) -> tuple[TrapReceiver, list[TrapEvent]]:
    events: list[TrapEvent] = []
    return TrapReceiver(trap_directory(inventory), events.append), events


@needs_snmptrap
def test_each_datagram_is_one_counted_outcome() -> None:
    receiver, events = receiver_for(parse_inventory(RECEIVER_INVENTORY))
    good, wrong = captured(), captured(community="not-the-community")
    receiver.datagram_received(good, ("127.0.0.1", 5000))
    receiver.datagram_received(wrong, ("127.0.0.1", 5000))
    receiver.datagram_received(good, ("127.0.0.2", 5000))  # v3 credentials: no community to match
    receiver.datagram_received(good, ("127.0.0.3", 5000))  # no device has this address
    receiver.datagram_received(b"\x30\x03\x02\x01", ("127.0.0.1", 5000))
    receiver.datagram_received(captured(version="1"), ("127.0.0.1", 5000))
    cold_start = good.replace(bytes([0x05, 0x03]), bytes([0x05, 0x01]))  # the trap OID's last arc
    receiver.datagram_received(cold_start, ("127.0.0.1", 5000))
    enterprise = good.replace(bytes([0x05, 0x03]), bytes([0x05, 0x09]))
    receiver.datagram_received(enterprise, ("127.0.0.1", 5000))
    assert receiver.counts == {"accepted": 2, "ignored": 1, "unknown_source": 1, "rate_limited": 0,
                               "malformed": 1, "unsupported": 1, "bad_community": 2}  # fmt: skip
    assert [(e.site, e.device, e.trap, e.if_index) for e in events] == [
        ("chc-a", "sw-1", "linkDown", 1), ("chc-a", "sw-1", "coldStart", 1)
    ]  # fmt: skip


async def test_a_flood_from_loopback_is_bounded_by_the_budgets() -> None:
    """10,000 linkDowns at about 10,000/s from a known device's address: the receiver decodes
    at most its budget; the rest stop at a token count (no decode, no poll)."""
    inventory = parse_inventory(RECEIVER_INVENTORY)
    receiver, events = receiver_for(inventory)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: receiver, local_addr=("127.0.0.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    datagram = trap_bytes(COMMUNITY)
    started = time.monotonic()
    sender = threading.Thread(target=flood, args=(port, datagram, 10_000), daemon=True)
    sender.start()
    while (
        sender.is_alive() or sum(receiver.counts.values()) < 10 and time.monotonic() - started < 5
    ):
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # what the kernel still holds
    elapsed = time.monotonic() - started
    transport.close()
    received = sum(receiver.counts.values())
    assert received > 1000  # most arrived (the kernel may drop some of a flood)
    budget = PER_DEVICE[1] + PER_DEVICE[0] * elapsed
    assert 1 <= receiver.counts["accepted"] <= min(budget, TOTAL[1] + TOTAL[0] * elapsed)
    assert receiver.counts["rate_limited"] == received - receiver.counts["accepted"]
    assert len(events) == receiver.counts["accepted"]


def trap_bytes(community: str) -> bytes:
    """A linkDown as snmptrap would send it, built here (the flood test needs no net-snmp)."""

    def tlv(tag: int, body: bytes) -> bytes:
        return bytes([tag, len(body)]) + body

    def oid(text: str) -> bytes:
        arcs = [int(x) for x in text.split(".")]
        body = bytes([arcs[0] * 40 + arcs[1]]) + bytes(a for a in arcs[2:])  # arcs < 128
        return tlv(0x06, body)

    varbinds = tlv(0x30, oid("1.3.6.1.2.1.1.3.0") + tlv(0x43, b"\x01"))
    varbinds += tlv(0x30, oid("1.3.6.1.6.3.1.1.4.1.0") + oid(LINK_DOWN))
    pdu = tlv(0x02, b"\x01") + tlv(0x02, b"\x00") + tlv(0x02, b"\x00") + tlv(0x30, varbinds)
    return tlv(0x30, tlv(0x02, b"\x01") + tlv(0x04, community.encode()) + tlv(0xA7, pdu))


def flood(port: int, datagram: bytes, count: int) -> None:
    """``count`` datagrams at about 10,000/s (batches of 100 every 10 ms)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for i in range(count):
            sock.sendto(datagram, ("127.0.0.1", port))
            if i % 100 == 99:
                time.sleep(0.01)


def test_the_built_trap_decodes() -> None:
    assert decode(trap_bytes(COMMUNITY)).name == "linkDown"


# --- the lab: a real snmpd whose uplink goes down, and a linkDown from snmptrap ----------------
LAB_INVENTORY = """
defaults: {{interval: 30d, count: 1, timeout: 500ms, spacing: 100ms}}
policy: {{window: 10m}}
snmp:
  credentials:
    ro: {{version: 2c, community: {community}, port: {port}}}
  defaults: {{interval: 30d, timeout: 1s, retries: 1, max_poll_time: 5s}}
sites:
  - id: chc-bundu
    name: Community Health Centre, Bundu
    district: Ranchi
    type: chc
    devices:
      - {{name: sw-01, role: switch, address: 127.0.0.1,
          snmp: {{credentials: ro, uplink_interfaces: [uplink0]}}}}
"""


@pytest.fixture
def lab_snmpd(tmp_path: Path) -> Iterator[tuple[agents.Agent, Path]]:
    """snmpd on loopback serving sysUpTime and the interface tables from a state file
    (netmon.lab.passpersist), uplink0 up."""
    if shutil.which("snmpd") is None and not Path("/usr/sbin/snmpd").exists():
        pytest.skip("snmpd is not installed (apt-get install snmpd)")
    state = tmp_path / "state.json"
    write_state(state, oper=1)
    helper = f"{os.sys.executable} -S {PASSPERSIST} {state}"
    conf = tmp_path / "snmpd.conf"
    conf.write_text(f"rocommunity {COMMUNITY} 127.0.0.1\n" + "".join(
        f"pass_persist -p 1 {oid} {helper} {oid}\n" for oid in SUBTREES))  # fmt: skip
    (tmp_path / "persist").mkdir()
    port = agents.free_udp_port()
    log = tmp_path / "snmpd.log"
    cmd = [shutil.which("snmpd") or "/usr/sbin/snmpd", "-f", "-Lo", "-C", "-c", str(conf),
           "-p", str(tmp_path / "snmpd.pid"), "-I", "-ifTable,ifXTable,interfaces",
           f"udp:127.0.0.1:{port}"]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env=agents.quiet_env(tmp_path / "persist"))  # fmt: skip
    with agents._wait_ready(agents.Agent(proc, "127.0.0.1", port, log), COMMUNITY) as agent:
        yield agent, state


def write_state(path: Path, oper: int) -> None:
    now = time.time()
    iface = {"index": 1, "name": "uplink0", "oper": oper, "admin": 1, "speed_mbps": 1000,
             "last_change": now, "in_rate": 1000, "out_rate": 1000}  # fmt: skip
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"boot": now - 3600, "interfaces": [iface]}), encoding="utf-8")
    tmp.replace(path)


async def until(check: object, seconds: float = 10.0) -> None:
    """Poll ``check()`` every 20 ms until true, for at most ``seconds`` (then fail)."""
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "deadline passed"
        await asyncio.sleep(0.02)


@needs_snmptrap
async def test_a_linkdown_trap_gets_the_uplink_down_into_the_verdict_before_the_next_poll(
    lab_snmpd: tuple[agents.Agent, Path], tmp_path: Path
) -> None:
    agent, state = lab_snmpd
    inventory = parse_inventory(LAB_INVENTORY.format(community=COMMUNITY, port=agent.port))
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    store.migrate()
    with IcmpEngine.open() as icmp:
        monitor = Monitor(
            inventory, store, Engines({"icmp": icmp, "snmp": SnmpPoller.from_directory()})
        )
        hints = TrapHints(monitor)
        await monitor.start(evaluate_every=3600.0)  # no periodic judging: only the trap's
        transport = await hints.listen("127.0.0.1", 0)
        try:
            await check_trap_path(monitor, hints, state, transport.get_extra_info("sockname")[1])
        finally:
            transport.close()
            await monitor.stop()
            store.close()


async def check_trap_path(monitor: Monitor, hints: TrapHints, state: Path, trap_port: int) -> None:
    scheduler = monitor.poller.poller.scheduler  # type: ignore[attr-defined]
    status = monitor.status
    assert status["chc-bundu"].verdict != Verdict.FULLY_FUNCTIONAL  # nothing polled yet
    before = time.time()
    snmptrap(trap_port, COMMUNITY, "1.3.6.1.6.3.1.1.5.4", *IF_INDEX_1)  # linkUp: a baseline poll
    await answered(hints, monitor, 1)
    assert status["chc-bundu"].verdict == Verdict.FULLY_FUNCTIONAL
    assert status["chc-bundu"].since >= before
    write_state(state, oper=2)  # the uplink goes down ...
    await asyncio.sleep(1.1)  # ... past POKE_GAP, so this trap polls again (not a sync point)
    sent = time.time()
    snmptrap(trap_port, COMMUNITY, LINK_DOWN, *IF_INDEX_1)  # ... and the switch says so
    await answered(hints, monitor, 2)
    judged = status["chc-bundu"]
    assert judged.verdict == Verdict.DEGRADED
    assert [r.criterion for r in judged.judgement.reasons] == ["uplink_interface_down"]
    assert judged.since >= sent  # judged from the poll after the trap, not the trap itself
    linkdown = [e for e in hints.of_site("chc-bundu") if e.trap == "linkDown"]
    assert len(linkdown) == 1 and sent <= linkdown[0].at <= judged.since
    # every probe so far was a trap's: no scheduled poll ran (the next is days away)
    assert scheduler.started == scheduler.run_now_started == 4  # icmp + snmp, twice
    assert all(job.next_due - scheduler._clock() > 86400 for job in scheduler.jobs.values())
    assert hints.receiver is not None and hints.receiver.counts["accepted"] == 2
    families = {f.name: f for f in OwnCollector(monitor).collect()}
    outcomes = {s.labels["outcome"]: s.value for s in families["netmon_traps"].samples
                if s.name == "netmon_traps_total"}  # fmt: skip
    assert outcomes["accepted"] == 2 and outcomes["bad_community"] == 0
    last = {
        s.labels["trap"]: s.value for s in families["netmon_trap_last_timestamp_seconds"].samples
    }
    assert last["linkDown"] == linkdown[0].at


async def answered(hints: TrapHints, monitor: Monitor, traps: int) -> None:
    """Until ``traps`` traps are in, every poll they asked for is back, and judged since."""
    await until(lambda: len(hints.events) == traps and hints.outstanding == 0)
    last = max(ts for ts in monitor.folded_until.values())
    await until(lambda: monitor.last_evaluation >= last)


async def test_poll_now_reaches_the_poller_process_over_the_channel(tmp_path: Path) -> None:
    """``poll_now`` on the default link (a poller process): a device whose next scheduled probe
    is days away is probed at once, each time it is asked."""
    if os.geteuid() != 0:
        pytest.skip("raw ICMP for the poller needs root")
    from netmon.config import validate
    from netmon.poller_link import PollerProcess
    from netmon.settings import Settings

    path = tmp_path / "inventory.yaml"
    path.write_text("defaults: {interval: 30d, count: 1, timeout: 500ms}\nsites:\n"
                    "  - {id: chc-x, name: CHC X, district: Ranchi, type: chc, devices: "
                    "[{name: wan-1, role: wan, address: 127.0.0.1}]}\n")  # fmt: skip
    config = validate(Settings.from_env({"NETMON_CONFIG": str(path),
                                         "NETMON_DATA_DIR": str(tmp_path)}))  # fmt: skip
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.migrate()
    monitor = Monitor(config.inventory, store)
    monitor.poller = link = PollerProcess(monitor.record)
    await link.open(config)
    await monitor.start(evaluate_every=3600.0)
    try:
        for n in (1, 2):
            await link.poll_now("chc-x", "wan-1")
            await until(lambda n=n: monitor.results_taken == n, seconds=20)  # type: ignore[misc]
        summary = monitor.evidence[("chc-x", "wan-1", "icmp")].summary(time.time())
        assert summary is not None and (summary.probes, summary.up) == (2, 2)
    finally:
        await monitor.stop()
        store.close()


class _CountingLink:
    """A PollerLink that only counts poll_now calls (a fake behind the seam, for this unit)."""

    connected, restarts = True, 0

    def __init__(self) -> None:
        self.polled: list[tuple[str, str]] = []

    async def poll_now(self, site_id: str, device: str) -> None:
        self.polled.append((site_id, device))


async def test_a_trap_before_the_monitor_is_ready_is_kept_but_polls_nothing(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    store.migrate()
    link = _CountingLink()
    monitor = Monitor(parse_inventory(RECEIVER_INVENTORY), store, poller=link)  # type: ignore[arg-type]
    hints = TrapHints(monitor)
    event = TrapEvent(time.time(), "chc-a", "sw-1", "linkDown", 1, "127.0.0.1")
    hints.hint(event)
    await asyncio.sleep(0)
    assert (list(hints.events), link.polled) == ([event], [])  # loading history: no judging yet
    monitor.ready = True
    hints.hint(TrapEvent(time.time(), "chc-a", "sw-1", "linkDown", 1, "127.0.0.1"))
    hints.hint(TrapEvent(time.time(), "chc-a", "sw-1", "linkUp", 1, "127.0.0.1"))  # within POKE_GAP
    await asyncio.sleep(0)
    assert link.polled == [("chc-a", "sw-1")] and len(hints.events) == 3
    store.close()
