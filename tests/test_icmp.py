"""ICMP engine tests with real packets.

Tests marked ``root`` need root (raw sockets, namespaces, the ping_group_range sysctl); they skip
themselves without it. Safety: echoes go only to 127.0.0.0/8 and to 198.18.255.2, the far end of
a veth pair into a network namespace the fixture creates (and always deletes). No test asserts
on wall-clock time.
"""

from __future__ import annotations

import asyncio
import errno
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import probes  # noqa: F401  (registers every probe kind)
from probes import icmp
from probes.base import ProbeContext, ProbeParams, Target, run_probe
from probes.icmp import IcmpEngine, IcmpUnavailable, loss_reason

IS_ROOT = os.geteuid() == 0
PING_GROUP_RANGE = Path("/proc/sys/net/ipv4/ping_group_range")
NS_HOST_IP, NS_PEER_IP = "198.18.255.1", "198.18.255.2"


def loopback(i: int) -> str:
    """The i-th test address in 127.20.0.0/16 (every 127.x.y.z answers)."""
    return f"127.20.{i // 250}.{i % 250 + 1}"


async def wait_until(condition: Callable[[], bool], tries: int = 200) -> None:
    """Poll ``condition`` every 10 ms, at most ``tries`` times."""
    for _ in range(tries):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


def _gid_allowed() -> bool:
    low, high = (int(v) for v in PING_GROUP_RANGE.read_text().split())
    return low <= os.getgid() <= high


@pytest.fixture
def ping_sockets_allowed() -> Iterator[None]:
    """Let this process open unprivileged ICMP sockets; restore the sysctl afterwards."""
    if _gid_allowed():
        yield
        return
    if not IS_ROOT:
        pytest.skip("ping_group_range excludes our gid and we are not root to widen it")
    saved = PING_GROUP_RANGE.read_text()
    PING_GROUP_RANGE.write_text("0 2147483647\n")
    try:
        yield
    finally:
        PING_GROUP_RANGE.write_text(saved)


@pytest.fixture
def raw_engine() -> Iterator[IcmpEngine]:
    if not IS_ROOT:
        pytest.skip("raw ICMP sockets need CAP_NET_RAW")
    with IcmpEngine.open("raw") as engine:
        yield engine


@pytest.fixture(params=["raw", "dgram"])
def engine(request: pytest.FixtureRequest) -> Iterator[IcmpEngine]:
    if request.param == "raw":
        yield request.getfixturevalue("raw_engine")
        return
    request.getfixturevalue("ping_sockets_allowed")
    with IcmpEngine.open("dgram") as dgram:
        yield dgram


# -- loopback ------------------------------------------------------------------------------------


@pytest.mark.root
async def test_burst_gets_every_reply(engine: IcmpEngine) -> None:
    for address in ("127.0.0.1", "127.20.7.9"):
        result = await engine.burst(address, count=4, spacing=0.01, timeout=1.0)
        assert (result.address, result.sent, result.received, result.reason) == (address, 4, 4, "")
        assert all(rtt is not None and 0 < rtt < 1.0 for rtt in result.rtts)
    assert engine.in_flight == 0


@pytest.mark.root
async def test_kernel_timestamps_are_used(engine: IcmpEngine) -> None:
    await engine.burst("127.0.0.1", count=3, spacing=0.0, timeout=1.0)
    assert engine.stats.received == 3
    assert engine.stats.user_timestamps == 0


@pytest.mark.root
async def test_concurrent_bursts_lose_nothing(engine: IcmpEngine) -> None:
    addresses = [loopback(i) for i in range(500)]
    results = await asyncio.gather(
        *(engine.burst(a, count=3, spacing=0.01, timeout=2.0) for a in addresses)
    )
    assert [r.address for r in results] == addresses
    assert sum(r.sent for r in results) == 1500
    assert [r.received for r in results] == [3] * 500
    assert engine.in_flight == 0
    assert (engine.stats.late, engine.stats.timed_out) == (0, 0)


@pytest.mark.root
async def test_sequence_numbers_wrap(raw_engine: IcmpEngine) -> None:
    raw_engine._counter = 65533  # the next echoes use sequences 65534, 65535, 0, 1
    result = await raw_engine.burst("127.0.0.1", count=4, spacing=0.0, timeout=1.0)
    assert result.received == 4


@pytest.mark.root
async def test_two_engines_do_not_count_each_others_replies(raw_engine: IcmpEngine) -> None:
    with IcmpEngine.open("raw") as other:
        mine, theirs = await asyncio.gather(
            raw_engine.burst("127.0.0.1", count=20, spacing=0.001, timeout=1.0),
            other.burst("127.0.0.1", count=20, spacing=0.001, timeout=1.0),
        )
        assert (mine.received, theirs.received) == (20, 20)
        assert raw_engine.stats.received == other.stats.received == 20
        assert raw_engine.stats.foreign >= 20  # a raw socket sees the other engine's replies


async def test_auto_mode_opens_a_socket() -> None:
    if not IS_ROOT and not _gid_allowed():
        pytest.skip("no ICMP privilege here")
    with IcmpEngine.open() as engine:
        assert engine.mode == ("raw" if IS_ROOT else "dgram")
        assert (await engine.burst("127.0.0.1", 1, 0.0, 1.0)).received == 1


@pytest.mark.root
async def test_engine_opened_inside_a_running_loop_and_reused_across_bursts() -> None:
    if not IS_ROOT:
        pytest.skip("raw ICMP sockets need CAP_NET_RAW")
    async with IcmpEngine.open("raw", rate_limit=500) as engine:
        results = await asyncio.gather(*(engine.burst(loopback(i), 5, 0.0, 2.0) for i in range(8)))
    assert [r.received for r in results] == [5] * 8
    assert engine.closed


def test_token_bucket_makes_callers_wait() -> None:
    bucket = icmp._TokenBucket(rate=10.0, capacity=1.0)
    assert bucket.reserve() == 0.0
    assert bucket.reserve() > 0.0  # the second token is not there yet: wait ~0.1 s


@pytest.mark.root
async def test_send_error_counts_as_sent_and_lost(raw_engine: IcmpEngine) -> None:
    # The loopback broadcast address needs SO_BROADCAST: sendto fails locally with EACCES.
    result = await raw_engine.burst("127.255.255.255", count=2, spacing=0.0, timeout=0.5)
    assert (result.sent, result.rtts) == (2, (None, None))
    assert "failed" in result.reason and os.strerror(errno.EACCES) in result.reason
    assert raw_engine.in_flight == 0


@pytest.mark.root
async def test_unresolvable_name_is_a_failed_result(raw_engine: IcmpEngine) -> None:
    name = "netmon-test.invalid"
    burst = await raw_engine.burst(name, count=3, spacing=0.0, timeout=0.5)
    assert (burst.sent, burst.rtts) == (0, ())
    assert "cannot resolve" in burst.reason and name in burst.reason
    target = Target(site="s1", device="ap1", address=name)
    result = await run_probe("icmp", ProbeContext(icmp=raw_engine), target, ProbeParams(count=3))
    assert not result.ok and result.sent == 0 and "cannot resolve" in result.reason


@pytest.mark.root
async def test_hostname_is_resolved_once_per_burst(raw_engine: IcmpEngine) -> None:
    result = await raw_engine.burst("localhost", count=2, spacing=0.0, timeout=1.0)
    assert (result.address, result.received) == ("127.0.0.1", 2)


@pytest.mark.root
async def test_ipv6_is_reported_not_supported(raw_engine: IcmpEngine) -> None:
    result = await raw_engine.burst("::1", count=1, spacing=0.0, timeout=1.0)
    assert result.sent == 0 and "IPv6" in result.reason


@pytest.mark.root
async def test_probe_through_the_registry(engine: IcmpEngine) -> None:
    target = Target(site="hospital-a", device="wan-router", address="127.0.0.1")
    params = ProbeParams(count=3, timeout=1.0, spacing=0.01)
    result = await run_probe("icmp", ProbeContext(icmp=engine), target, params)
    assert (result.kind, result.ok, result.reason) == ("icmp", True, "")
    assert (result.sent, result.received) == (3, 3)
    assert len(result.rtts) == 3 and all(0 < rtt < 1.0 for rtt in result.rtts)
    assert result.started_at > 0 and result.duration >= 0


async def test_probe_without_engine_fails_with_reason() -> None:
    target = Target(site="s", device="d", address="127.0.0.1")
    result = await run_probe("icmp", ProbeContext(), target, ProbeParams(count=1))
    assert not result.ok and "no ICMP engine" in result.reason


@pytest.mark.root
async def test_close_finishes_pending_bursts(raw_engine: IcmpEngine) -> None:
    task = asyncio.create_task(raw_engine.burst("127.0.0.1", count=3, spacing=0.3, timeout=1.0))
    await wait_until(lambda: raw_engine.stats.sent == 1)
    raw_engine.close()
    result = await asyncio.wait_for(task, timeout=5)
    assert result.sent == 1 and "closed" in result.reason
    assert raw_engine.in_flight == 0
    after = await raw_engine.burst("127.0.0.1", count=1, spacing=0.0, timeout=1.0)
    assert after.sent == 0 and "closed" in after.reason


@pytest.mark.parametrize(
    ("sent", "received", "reason"),
    [(5, 5, ""), (5, 0, "no reply to 5 echoes"), (5, 2, "3 of 5 echoes lost"), (0, 0, "")],
)
def test_loss_reason(sent: int, received: int, reason: str) -> None:
    assert loss_reason(sent, received) == reason


# -- privilege errors (fake socket constructor behind the module's seam) --------------------------


def _refuse(kind: int) -> None:
    if kind == icmp.socket.SOCK_RAW:
        raise PermissionError(errno.EPERM, os.strerror(errno.EPERM))
    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))


def test_auto_mode_error_names_both_fixes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(icmp, "_new_socket", _refuse)
    with pytest.raises(IcmpUnavailable) as caught:
        IcmpEngine.open("auto")
    message = str(caught.value)
    assert isinstance(caught.value, RuntimeError)
    assert "CAP_NET_RAW" in message and "AmbientCapabilities=CAP_NET_RAW" in message
    assert 'net.ipv4.ping_group_range="0 2147483647"' in message


def test_explicit_mode_error_names_its_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(icmp, "_new_socket", _refuse)
    with pytest.raises(IcmpUnavailable, match="CAP_NET_RAW"):
        IcmpEngine.open("raw")
    with pytest.raises(IcmpUnavailable, match="ping_group_range"):
        IcmpEngine.open("dgram")


# -- a host that does not answer (network namespace) ----------------------------------------------

RESPONDER = r"""
import socket, struct, sys, time
delay, skip, life = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
def csum(b):
    t = sum(struct.unpack(f"!{len(b) // 2}H", b + b"\0" * (len(b) % 2)))
    t = (t >> 16) + (t & 0xFFFF)
    return ~(t + (t >> 16)) & 0xFFFF
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(0.02)
print("ready", flush=True)
seen, due, end = 0, [], time.monotonic() + life
while time.monotonic() < end:
    try:
        data, (src, _) = s.recvfrom(2048)
        icmp = data[(data[0] & 15) * 4:]
        if icmp[0] == 8:
            seen += 1
            if seen > skip:
                body = b"\0\0\0\0" + icmp[4:]
                reply = body[:2] + struct.pack("!H", csum(body)) + body[4:]
                due.append((time.monotonic() + delay, reply, src))
    except TimeoutError:
        pass
    while due and due[0][0] <= time.monotonic():
        s.sendto(due[0][1], (due.pop(0)[2], 0))
"""


@dataclass
class Netns:
    name: str
    address: str

    def responder(self, delay: float, skip: int = 0, life: float = 5.0) -> subprocess.Popen[str]:
        """Answer echoes from inside the namespace (after skipping ``skip``), ``delay`` s late."""
        cmd = ["ip", "netns", "exec", self.name, sys.executable, "-c", RESPONDER]
        proc = subprocess.Popen(
            [*cmd, str(delay), str(skip), str(life)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        return proc


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def silent_host() -> Iterator[Netns]:
    """198.18.255.2 in a fresh namespace, which ignores echo requests."""
    if not IS_ROOT or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to create a network namespace")
    in_use = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "to", "198.18.255.0/30"],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout
    if in_use.strip():
        pytest.skip(f"198.18.255.0/30 is already in use on this host: {in_use.strip()}")
    tag = secrets.token_hex(3)
    name, host_if, peer_if = f"netmon-icmptest-{tag}", f"nmi{tag}h", f"nmi{tag}n"
    try:
        _ip("netns", "add", name)
        _ip("link", "add", host_if, "type", "veth", "peer", "name", peer_if, "netns", name)
        _ip("addr", "add", f"{NS_HOST_IP}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("-n", name, "addr", "add", f"{NS_PEER_IP}/30", "dev", peer_if)
        _ip("-n", name, "link", "set", peer_if, "up")
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("netns", "exec", name, "sysctl", "-qw", "net.ipv4.icmp_echo_ignore_all=1")
        yield Netns(name, NS_PEER_IP)
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, timeout=10)


@pytest.fixture
async def ns_engine(silent_host: Netns) -> AsyncIterator[IcmpEngine]:
    with IcmpEngine.open("raw") as engine:
        yield engine


@pytest.mark.root
async def test_silent_host_loses_every_echo(ns_engine: IcmpEngine, silent_host: Netns) -> None:
    target = Target(site="s", device="silent", address=silent_host.address)
    params = ProbeParams(count=3, timeout=0.3, spacing=0.05)
    result = await run_probe("icmp", ProbeContext(icmp=ns_engine), target, params)
    assert (result.ok, result.sent, result.received, result.rtts) == (False, 3, 0, ())
    assert result.reason == "no reply to 3 echoes"
    assert ns_engine.stats.timed_out == 3 and ns_engine.in_flight == 0


@pytest.mark.root
async def test_partial_loss(ns_engine: IcmpEngine, silent_host: Netns) -> None:
    with silent_host.responder(delay=0.0, skip=1) as proc:
        target = Target(site="s", device="flaky", address=silent_host.address)
        params = ProbeParams(count=3, timeout=1.0, spacing=0.05)
        result = await run_probe("icmp", ProbeContext(icmp=ns_engine), target, params)
        proc.terminate()
    assert (result.ok, result.sent, result.received) == (True, 3, 2)
    assert result.reason == "1 of 3 echoes lost"
    assert all(0 < rtt < 1.0 for rtt in result.rtts)


@pytest.mark.root
async def test_late_replies_are_dropped_without_leaking(
    ns_engine: IcmpEngine, silent_host: Netns
) -> None:
    with silent_host.responder(delay=0.5) as proc:
        result = await ns_engine.burst(silent_host.address, count=2, spacing=0.0, timeout=0.1)
        await wait_until(lambda: ns_engine.stats.late == 2, tries=500)
        proc.terminate()
    assert (result.sent, result.rtts) == (2, (None, None))
    assert (ns_engine.stats.late, ns_engine.stats.received, ns_engine.in_flight) == (2, 0, 0)


@pytest.mark.root
async def test_cancelled_burst_leaves_no_state(ns_engine: IcmpEngine, silent_host: Netns) -> None:
    task = asyncio.create_task(ns_engine.burst(silent_host.address, 3, spacing=0.0, timeout=30))
    await wait_until(lambda: ns_engine.in_flight == 3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ns_engine.in_flight == 0
