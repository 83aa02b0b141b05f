"""The poller process and its results channel, with the real child process and real ICMP to
loopback (127.0.0.1-3 answer from the kernel). No timing asserts: the tests wait for counts
of results, bounded by generous deadlines that only turn a hang into a failure."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import struct
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from netmon.channel import Channel, ChannelError, decode_result, encode_result
from netmon.config import ValidatedConfig, validate
from netmon.monitor import Monitor
from netmon.poller_link import PollerProcess
from netmon.settings import Settings
from netmon.store import Store
from probes.base import ProbeResult
from probes.snmp_findings import AccessPoint, Interface, SnmpFindings

INVENTORY = """\
policy: {{min_probes: 1}}
defaults: {{interval: 1500ms, count: 3, spacing: 200ms, timeout: 500ms}}
sites:
  - id: chc-test
    name: CHC Test
    district: Ranchi
    type: chc
    devices:
{devices}
"""
DEVICE = "      - {{name: {name}, role: {role}, address: {address}}}\n"


def config_for(tmp_path: Path, n: int = 3) -> ValidatedConfig:
    roles = ["wan", "switch", "ap"]
    devices = "".join(
        DEVICE.format(name=f"d{i}", role=roles[i % 3], address=f"127.0.0.{i + 1}") for i in range(n)
    )
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY.format(devices=devices))
    env = {"NETMON_CONFIG": str(path), "NETMON_DATA_DIR": str(tmp_path)}
    return validate(Settings.from_env(env))


def monitor_with_poller(
    tmp_path: Path, n: int = 3
) -> tuple[ValidatedConfig, Store, Monitor, PollerProcess]:
    """A monitor over a fresh SQLite store whose results come from a real poller process
    (not opened yet); skips without the privilege raw ICMP needs."""
    _need_icmp()
    config = config_for(tmp_path, n)
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.migrate()
    monitor = Monitor(config.inventory, store)
    monitor.poller = link = PollerProcess(monitor.record)
    return config, store, monitor, link


async def wait_for(predicate: Callable[[], bool], limit: float = 60.0) -> None:
    """Until ``predicate()`` holds; a hang becomes a failure after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, "gave up waiting"
        await asyncio.sleep(0.05)


def _need_icmp() -> None:
    if os.geteuid() != 0:
        pytest.skip("raw ICMP for the poller needs root")


# --- the channel --------------------------------------------------------------------------------
def test_results_cross_the_channel_unchanged_with_their_findings() -> None:
    found = SnmpFindings(
        "generic", True, 0.2, sys_uptime_seconds=1234.0, sys_name="router",
        interfaces=(Interface(1, "uplink0", True, True, 10.0, 20.0, 0, 1, 2),),
        aps=(AccessPoint("ap-1", "00:11:22:33:44:55", True, 7),), notes=("a note",),
    )  # fmt: skip
    results = [
        ProbeResult("icmp", True, 1.5e9, 0.3, 3, 2, (0.001, 0.002), ""),
        ProbeResult("icmp", False, 1.5e9, 1.0, 3, 0, (), "no reply"),
        ProbeResult("snmp", True, 1.5e9, 0.2, 4, 4, (0.01,), "", found),
    ]
    for r in results:
        row = json.loads(json.dumps(encode_result("s", "d", r)))  # as the wire carries it
        assert decode_result(row) == ("s", "d", r)
    with pytest.raises(ChannelError):
        decode_result(["s", "d", "icmp"])


async def _channel_fed(data: bytes, accept_pickle: bool) -> Channel:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return Channel(reader, None, accept_pickle)  # type: ignore[arg-type]


async def test_the_server_end_refuses_pickle_and_garbage_without_unpickling() -> None:
    pickled = struct.pack(">IB", 3, ord("P")) + b"\x80\x05N"  # would unpickle to None
    ch = await _channel_fed(pickled, accept_pickle=False)
    with pytest.raises(ChannelError, match="codec"):
        await ch.receive()
    for frame in (
        struct.pack(">IB", 4, ord("J")) + b"{no",  # not JSON
        struct.pack(">IB", 3, ord("J")) + b"[1]",  # not a message
        struct.pack(">IB", 0, ord("J")),  # an empty frame
    ):
        ch = await _channel_fed(frame, accept_pickle=False)
        with pytest.raises(ChannelError):
            await ch.receive()
    ch = await _channel_fed(struct.pack(">IB", 50, ord("J")) + b"{}", accept_pickle=False)
    assert await ch.receive() is None  # a stream cut inside a frame: the other end is gone


# --- the process ----------------------------------------------------------------------------
async def test_a_stalled_server_loses_nothing_the_poller_took(tmp_path: Path) -> None:
    """The server's loop blocks 2.5 s on each of the first results it takes (a deliberately
    slow handler: longer than an echo's 0.5 s timeout, a probe's 1.9 s deadline and its 1.5 s
    interval). The poller, a process of its own, keeps its schedule: every echo it sent is
    answered, none recorded lost. (The same stalls on a poller sharing the server's loop,
    ``LocalPoller``, fail probes by their deadline.)"""
    config, store, monitor, link = monitor_with_poller(tmp_path)
    taken: list[ProbeResult] = []

    def slow(_site: str, _device: str, result: ProbeResult) -> None:
        taken.append(result)
        if len(taken) <= 6:
            time.sleep(2.5)  # stalls the server's event loop past a whole probe's deadline

    monitor.listeners.append(slow)
    await link.open(config)
    await monitor.start(evaluate_every=0.5)
    try:
        await wait_for(lambda: len(taken) >= 18, limit=120)
        assert link.connected and link.stats().pid == link.pid != os.getpid()
    finally:
        await monitor.stop()
        store.close()
    assert all(r.ok and r.sent == 3 and r.received == 3 for r in taken), [
        (r.ok, r.sent, r.received, r.reason) for r in taken if not r.ok or r.received < r.sent
    ]
    status = monitor.status["chc-test"]
    assert status.verdict == "fully_functional", status.judgement.reasons
    assert link.delivered == link.results  # every result the poller said it sent arrived


async def test_a_dead_poller_is_no_data_and_comes_back(tmp_path: Path) -> None:
    """SIGKILL the poller (the PID this test's monitor started): the link says it is down, the
    site keeps its verdict (a dead poller is not an outage), and a new poller takes over."""
    config, store, monitor, link = monitor_with_poller(tmp_path, n=1)
    await link.open(config)
    await monitor.start(evaluate_every=0.2)
    try:
        await wait_for(lambda: monitor.status["chc-test"].verdict == "fully_functional")
        first = link.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        await wait_for(lambda: not link.connected)

        await wait_for(lambda: link.connected and link.pid not in (None, first))
        assert link.restarts == 1
        taken = monitor.results_taken
        await wait_for(lambda: monitor.results_taken > taken)  # the new poller's results
        monitor.evaluate()
        assert monitor.status["chc-test"].verdict == "fully_functional"
        history = [c.verdict for c in store.verdict_history("chc-test")]
        assert history == ["fully_functional", "unknown"]  # newest first: no change meanwhile
    finally:
        await monitor.stop()
        store.close()


async def test_a_hung_poller_is_stopped_and_replaced(tmp_path: Path) -> None:
    """SIGSTOP the poller (alive, silent): the watchdog kills that PID and a new one probes."""
    config, store, monitor, link = monitor_with_poller(tmp_path, n=1)
    link.silent_limit, link.watch_every = 4.0, 0.5  # results come every 1.5 s
    await link.open(config)
    await monitor.start(evaluate_every=0.2)
    try:
        await wait_for(lambda: monitor.results_taken > 0)
        first = link.pid
        assert first is not None
        os.kill(first, signal.SIGSTOP)
        await wait_for(lambda: link.restarts == 1 and link.connected)
        assert link.pid != first
        taken = monitor.results_taken
        await wait_for(lambda: monitor.results_taken > taken)
    finally:
        await monitor.stop()
        store.close()


async def test_probing_starts_at_once_while_the_server_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart probes from the first second: while the history refill is still running (here
    held until the poller has taken results), the poller probes and reports; what it took
    then is folded, in order, once the server is ready."""
    config, store, monitor, link = monitor_with_poller(tmp_path, n=2)
    refill = threading.Event()
    original = monitor.load_history

    def slow_load() -> int:
        assert refill.wait(60), "the poller never probed while the server loaded"
        return original()

    monkeypatch.setattr(monitor, "load_history", slow_load)
    await link.open(config)
    starting = asyncio.create_task(monitor.start(evaluate_every=0.2))
    try:
        await wait_for(lambda: link.stats().started >= 4 and link.results >= 4)
        assert not monitor.ready and monitor.results_taken == 0  # held, not folded yet
        refill.set()
        await starting
        assert monitor.results_taken >= 4  # the held results, folded as the monitor started
        await wait_for(lambda: monitor.status["chc-test"].verdict == "fully_functional")
    finally:
        refill.set()
        if not starting.done():
            await starting
        await monitor.stop()
        store.close()


async def test_a_poller_that_dies_before_its_hello_fails_the_start(tmp_path: Path) -> None:
    """A poller process that exits at once (here: a command that exits 3) ends the start with
    a PollerError, which ``netmon run`` prints as one line (exit 1), not a traceback."""
    from netmon.poller_link import PollerError

    link = PollerProcess(lambda *_: None)
    link.command = [sys.executable, "-c", "import sys; sys.exit(3)"]
    with pytest.raises(PollerError, match="exited before it started probing"):
        await link.open(config_for(tmp_path, n=1))
    assert not link.connected and link.pid is None  # reaped
