"""ICMP engine tests with real packets.

Tests marked ``root`` need root (raw sockets, namespaces, capability dropping); they skip
themselves without it. Safety: echoes go only to 127.0.0.0/8, ::1, and to the far end of veth
pairs into network namespaces the fixtures create (and always delete): 198.19.255.0/29 and
fd00:198:18::/64 / fd00:198:18:1::/64, each checked with ``ip route get`` to leave through the
fixture's own veth before anything is sent. No test asserts on wall-clock time.
"""

from __future__ import annotations

import asyncio
import errno
import os
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import probes  # noqa: F401  (registers every probe kind)
from netmon.errors import ProbeUnavailable
from probes import icmp_socket
from probes.base import ProbeParams, Target, run_probe
from probes.icmp import KIND as ICMP
from probes.icmp import IcmpEngine, IcmpUnavailable, NameCache, loss_reason
from probes.icmp_ratelimit import TokenBucket
from probes.icmp_resolver import parse_literal

IS_ROOT = os.geteuid() == 0
PING_GROUP_RANGE = Path("/proc/sys/net/ipv4/ping_group_range")
ROOT = Path(__file__).resolve().parents[1]
AF4, AF6 = socket.AF_INET, socket.AF_INET6


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


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(AF6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


needs_v6 = pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")


async def kernel_clock_ready(engine: IcmpEngine, tries: int = 100) -> None:
    """Ping 127.0.0.1 until a reply carries a kernel receive timestamp.

    Linux turns receive stamping on host-wide from a workqueue once the first stamping socket
    appears, so the first replies after an engine opens can come without a stamp when no other
    socket on the host had stamping on (see probes.icmp_socket); after one stamped reply, every
    later one is stamped while the engine stays open.
    """
    for _ in range(tries):
        before = engine.stats.no_kernel_timestamp
        if (await engine.burst("127.0.0.1", 1, 0.0, 1.0)).received and (
            engine.stats.no_kernel_timestamp == before
        ):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no reply with a kernel receive timestamp")


def allow_ping_sockets() -> Iterator[None]:
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
def ping_sockets_allowed() -> Iterator[None]:
    yield from allow_ping_sockets()


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
    addresses = ["127.0.0.1", "127.20.7.9"] + (["::1"] if _has_ipv6_loopback() else [])
    for address in addresses:
        result = await engine.burst(address, count=4, spacing=0.01, timeout=1.0)
        assert (result.address, result.sent, result.received, result.reason) == (address, 4, 4, "")
        assert all(rtt is not None and 0 < rtt < 1.0 for rtt in result.rtts)
    assert engine.in_flight == 0
    assert engine.stats.foreign == engine.stats.late == 0


@pytest.mark.root
async def test_kernel_timestamps_are_used(engine: IcmpEngine) -> None:
    await kernel_clock_ready(engine)
    timed_in_user_space = engine.stats.user_timestamps
    await engine.burst("127.0.0.1", count=3, spacing=0.0, timeout=1.0)
    if _has_ipv6_loopback():
        await engine.burst("::1", count=3, spacing=0.0, timeout=1.0)
        assert AF6 in engine.families
    assert engine.stats.received == engine.stats.sent > 0
    assert engine.stats.user_timestamps == timed_in_user_space


@pytest.mark.root
async def test_concurrent_bursts_lose_nothing(engine: IcmpEngine) -> None:
    addresses = [loopback(i) for i in range(500)]
    if _has_ipv6_loopback():
        addresses += ["::1"] * 20
    results = await asyncio.gather(
        *(engine.burst(a, count=3, spacing=0.01, timeout=2.0) for a in addresses)
    )
    assert [r.address for r in results] == addresses
    assert sum(r.sent for r in results) == 3 * len(addresses)
    assert [r.received for r in results] == [3] * len(addresses)
    assert engine.in_flight == 0
    assert (engine.stats.late, engine.stats.timed_out, engine.stats.foreign) == (0, 0, 0)
    assert engine.kernel_drops() == 0


@pytest.mark.root
async def test_sequence_numbers_wrap(raw_engine: IcmpEngine) -> None:
    raw_engine._serial = 65533  # the next echoes use sequences 65534, 65535, 0, 1
    result = await raw_engine.burst("127.0.0.1", count=4, spacing=0.0, timeout=1.0)
    assert result.received == 4


def test_incremental_checksum_matches_rfc1071() -> None:
    """The send path's checksum (constant words + sequence + serial, mod 0xFFFF) is valid."""
    ident, cookie = 0xBEEF, 0x0123456789ABCDEF
    neg_base = -((icmp_socket.ICMP_ECHO_REQUEST << 8) + ident + cookie)
    packet = bytearray(icmp_socket.ECHO.size + icmp_socket.PAYLOAD_SIZE - 16)
    serials = [*range(1, 3000), 2**32 - 1, 2**48 + 7, 2**64 - 1]
    serials += [s for s in range(70_000, 200_000) if (neg_base - (s & 0xFFFF) - s) % 0xFFFF == 0]
    for serial in serials:
        seq = serial & 0xFFFF
        csum = (neg_base - seq - serial) % 0xFFFF
        icmp_socket.ECHO.pack_into(
            packet, 0, icmp_socket.ICMP_ECHO_REQUEST, 0, csum, ident, seq, cookie, serial
        )
        assert icmp_socket.checksum(bytes(packet)) == 0, serial  # a valid packet sums to 0xFFFF


# -- kernel filtering ------------------------------------------------------------------------------

FOREIGN_PINGER = r"""
import socket, struct, sys
def csum(b):
    t = sum(struct.unpack(f"!{len(b) // 2}H", b))
    t = (t >> 16) + (t & 0xFFFF)
    return ~(t + (t >> 16)) & 0xFFFF
count, got = int(sys.argv[1]), 0
for family, proto, kind, dst in ((socket.AF_INET, 1, 8, "127.0.0.1"), (socket.AF_INET6, 58, 128, "::1")):
    if family == socket.AF_INET6 and sys.argv[2] != "v6":
        continue
    s = socket.socket(family, socket.SOCK_RAW, proto)
    s.settimeout(2.0)
    for seq in range(count):
        body = struct.pack("!BBHHH", kind, 0, 0, 0x4242, seq) + b"foreign!" * 7
        if family == socket.AF_INET:
            body = body[:2] + struct.pack("!H", csum(body)) + body[4:]
        s.sendto(body, (dst, 0))
    while got < count * (2 if family == socket.AF_INET6 else 1):
        data = s.recv(2048)
        off = (data[0] & 15) * 4 if family == socket.AF_INET else 0
        if data[off] == kind - (8 if family == socket.AF_INET else -1):
            got += 1
print(got)
"""


@pytest.mark.root
async def test_bpf_keeps_other_processes_pings_out_of_user_space() -> None:
    """Another process pings loopback while two engines are open: only the one without the BPF
    filter sees (and counts as ``foreign``) those replies; the filtered one sees none."""
    if not IS_ROOT:
        pytest.skip("raw ICMP sockets need CAP_NET_RAW")
    v6 = _has_ipv6_loopback()
    with IcmpEngine.open("raw") as filtered, IcmpEngine.open("raw", bpf=False) as unfiltered:
        for engine in (filtered, unfiltered):  # open the IPv6 sockets too
            if v6:
                assert (await engine.burst("::1", 1, 0.0, 1.0)).received == 1
        done = subprocess.run(
            [sys.executable, "-c", FOREIGN_PINGER, "50", "v6" if v6 else "v4"],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        assert int(done.stdout) == (100 if v6 else 50)  # the other process got its replies
        # Their replies are now queued in (or filtered out of) our sockets; bursts drain them.
        mine, theirs = await asyncio.gather(
            filtered.burst("127.0.0.1", count=20, spacing=0.001, timeout=1.0),
            unfiltered.burst("127.0.0.1", count=20, spacing=0.001, timeout=1.0),
        )
        if v6:
            await asyncio.gather(*(e.burst("::1", 3, 0.0, 1.0) for e in (filtered, unfiltered)))
        assert (mine.received, theirs.received) == (20, 20)
        assert filtered.stats.foreign == 0
        # The unfiltered engine sees the other process's replies and each other's (>= 50 / 100).
        assert unfiltered.stats.foreign >= (100 if v6 else 50)
        assert filtered.stats.received == unfiltered.stats.received


@pytest.mark.root
async def test_two_engines_do_not_see_each_others_replies(raw_engine: IcmpEngine) -> None:
    with IcmpEngine.open("raw") as other:
        mine, theirs = await asyncio.gather(
            raw_engine.burst("127.0.0.1", count=20, spacing=0.001, timeout=1.0),
            other.burst("127.0.0.1", count=20, spacing=0.001, timeout=1.0),
        )
        assert (mine.received, theirs.received) == (20, 20)
        assert raw_engine.stats.received == other.stats.received == 20
        assert raw_engine.stats.foreign == other.stats.foreign == 0  # filtered in the kernel


def test_bpf_program_reads_the_ip_header_length_for_ipv4() -> None:
    prog4 = icmp_socket.bpf_program(AF4, 0x1234, 0xAABBCCDD_11223344)
    prog6 = icmp_socket.bpf_program(AF6, 0x1234, 0xAABBCCDD_11223344)
    assert prog4[0] == (0xB1, 0, 0, 0)  # ldxb 4*([0]&0xf)
    assert prog6[0] == (0x01, 0, 0, 0)  # ldx #0: IPv6 raw sockets get no IP header
    assert (0x15, 0, 7, 0) in prog4 and (0x15, 0, 7, 129) in prog6  # echo reply types
    for prog in (prog4, prog6):
        ks = [k for (_code, _jt, _jf, k) in prog]
        assert 0x1234 in ks and 0xAABBCCDD in ks and 0x11223344 in ks
        for i, (code, jt, jf, _k) in enumerate(prog):  # every jump lands on the drop
            if code == 0x15:
                assert i + 1 + jf == len(prog) - 1 and jt == 0


# -- modes, pacing, errors ------------------------------------------------------------------------


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


def test_token_bucket_grants_at_its_rate() -> None:
    now = [100.0]
    bucket = TokenBucket(rate=8.0, capacity=2.0, clock=lambda: now[0])
    assert bucket.take(5) == 2  # the initial burst capacity
    assert bucket.take(1) == 0 and bucket.wait() == 0.125
    now[0] += 0.5  # 4 tokens accrue, capped at 2
    assert bucket.take(5) == 2
    now[0] += 0.125
    assert bucket.take(5) == 1


@pytest.mark.root
async def test_rate_limit_paces_the_sender(raw_engine: IcmpEngine) -> None:
    async with IcmpEngine.open("raw", rate_limit=2000) as paced:
        results = await asyncio.gather(*(paced.burst(loopback(i), 3, 0.0, 2.0) for i in range(100)))
        assert sum(r.received for r in results) == 300
        assert paced.stats.paced > 0  # the sender had to wait for tokens (capacity 200)
        assert (paced.stats.timed_out, paced.stats.send_errors) == (0, 0)


@pytest.mark.root
async def test_send_error_counts_as_sent_and_lost(raw_engine: IcmpEngine) -> None:
    # The loopback broadcast address needs SO_BROADCAST: sendto fails locally with EACCES.
    result = await raw_engine.burst("127.255.255.255", count=2, spacing=0.0, timeout=0.5)
    assert (result.sent, result.rtts) == (2, (None, None))
    assert "failed" in result.reason and os.strerror(errno.EACCES) in result.reason
    assert raw_engine.in_flight == 0 and raw_engine.stats.send_errors == 2
    assert (await raw_engine.burst("127.0.0.1", 2, 0.0, 1.0)).received == 2  # still fine


@pytest.mark.root
async def test_probe_through_the_registry(engine: IcmpEngine) -> None:
    target = Target(site="hospital-a", device="wan-router", address="127.0.0.1")
    params = ProbeParams(count=3, timeout=1.0, spacing=0.01)
    result = await run_probe(ICMP, engine, target, params)
    assert (result.kind, result.ok, result.reason) == ("icmp", True, "")
    assert (result.sent, result.received) == (3, 3)
    assert len(result.rtts) == 3 and all(0 < rtt < 1.0 for rtt in result.rtts)
    assert result.started_at > 0 and result.duration >= 0


async def test_probe_without_engine_fails_with_reason() -> None:
    target = Target(site="s", device="d", address="127.0.0.1")
    result = await run_probe(ICMP, None, target, ProbeParams(count=1))
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


def test_literals_are_parsed_without_a_lookup() -> None:
    v4, v6 = parse_literal("127.0.0.1"), parse_literal("FD00:198:18:0::2")
    assert v4 is not None and (v4.family, v4.ip, v4.sockaddr) == (
        AF4,
        "127.0.0.1",
        ("127.0.0.1", 0),
    )
    assert v6 is not None and (v6.family, v6.ip) == (AF6, "fd00:198:18::2")
    assert v6.sockaddr == ("fd00:198:18::2", 0, 0, 0)
    lo = parse_literal("fe80::1%1")
    assert lo is not None and lo.sockaddr == ("fe80::1", 0, 0, 1)
    for name in ("localhost", "127.1", "01.2.3.4", "1.2.3.4%eth0", "", "::1%no-such-if0"):
        assert parse_literal(name) is None, name


# -- names: the resolver seam (no DNS) ------------------------------------------------------------


class FakeLookup:
    """Stands in for getaddrinfo: answers from a dict, counts calls, can be made to fail."""

    def __init__(self, answers: dict[str, list[tuple[int, str]]]) -> None:
        self.answers = answers
        self.calls: list[str] = []
        self.gate: asyncio.Event | None = None

    async def __call__(self, name: str) -> list[tuple[int, str]]:
        self.calls.append(name)
        if self.gate is not None:
            await self.gate.wait()
        if name not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.answers[name]


@pytest.mark.root
async def test_names_are_resolved_once_and_refreshed_in_the_background(
    raw_engine: IcmpEngine,
) -> None:
    now = [0.0]
    lookup = FakeLookup({"ap-1.hospital.test": [(AF4, "127.0.0.5")]})
    raw_engine.names = NameCache(lookup, ttl=300.0, negative_ttl=30.0, clock=lambda: now[0])
    first = await asyncio.gather(
        *(raw_engine.burst("ap-1.hospital.test", 2, 0.0, 1.0) for _ in range(5))
    )
    assert [(r.address, r.received) for r in first] == [("127.0.0.5", 2)] * 5
    assert lookup.calls == ["ap-1.hospital.test"]  # concurrent first bursts share one lookup
    now[0] += 299.0
    await raw_engine.burst("ap-1.hospital.test", 1, 0.0, 1.0)
    assert len(lookup.calls) == 1  # fresh: no lookup
    # Stale: the burst uses the cached address at once; one refresh runs in the background.
    lookup.answers["ap-1.hospital.test"] = [(AF4, "127.0.0.6")]
    now[0] += 2.0
    stale = await raw_engine.burst("ap-1.hospital.test", 1, 0.0, 1.0)
    assert stale.address == "127.0.0.5"
    await wait_until(lambda: len(lookup.calls) == 2)
    await asyncio.sleep(0)
    assert (await raw_engine.burst("ap-1.hospital.test", 1, 0.0, 1.0)).address == "127.0.0.6"
    # A failed refresh keeps the last good answer (and is retried after negative_ttl).
    del lookup.answers["ap-1.hospital.test"]
    now[0] += 301.0
    await raw_engine.burst("ap-1.hospital.test", 1, 0.0, 1.0)
    await wait_until(lambda: len(lookup.calls) == 3)
    await asyncio.sleep(0)
    kept = await raw_engine.burst("ap-1.hospital.test", 1, 0.0, 1.0)
    assert (kept.address, kept.received, len(lookup.calls)) == ("127.0.0.6", 1, 3)


@pytest.mark.root
async def test_unresolvable_name_is_a_failed_result_and_negatively_cached(
    raw_engine: IcmpEngine,
) -> None:
    now = [0.0]
    lookup = FakeLookup({})
    raw_engine.names = NameCache(lookup, ttl=300.0, negative_ttl=30.0, clock=lambda: now[0])
    name = "netmon-test.invalid"
    burst = await raw_engine.burst(name, count=3, spacing=0.0, timeout=0.5)
    assert (burst.address, burst.sent, burst.rtts) == (name, 0, ())
    assert "cannot resolve" in burst.reason and name in burst.reason
    target = Target(site="s1", device="ap1", address=name)
    result = await run_probe(ICMP, raw_engine, target, ProbeParams(count=3))
    assert not result.ok and result.sent == 0 and "cannot resolve" in result.reason
    assert len(lookup.calls) == 1  # the failure is remembered
    now[0] += 31.0
    lookup.answers[name] = [(AF4, "127.0.0.7")]
    assert (await raw_engine.burst(name, 1, 0.0, 1.0)).received == 1
    assert len(lookup.calls) == 2


@pytest.mark.root
@needs_v6
async def test_name_family_follows_the_resolver_order(raw_engine: IcmpEngine) -> None:
    lookup = FakeLookup(
        {
            "v6-only.test": [(AF6, "::1")],
            "dual.test": [(AF6, "::1"), (AF4, "127.0.0.1")],
            "dual4.test": [(AF4, "127.0.0.1"), (AF6, "::1")],
        }
    )
    raw_engine.names = NameCache(lookup)
    for name, expected in (
        ("v6-only.test", "::1"),
        ("dual.test", "::1"),
        ("dual4.test", "127.0.0.1"),
    ):
        result = await raw_engine.burst(name, 2, 0.0, 1.0)
        assert (result.address, result.received) == (expected, 2), name


@pytest.mark.root
async def test_localhost_resolves_through_the_system_resolver(raw_engine: IcmpEngine) -> None:
    result = await raw_engine.burst("localhost", count=2, spacing=0.0, timeout=1.0)
    assert result.address in ("127.0.0.1", "::1") and result.received == 2
    assert raw_engine.names.lookups == 1


@pytest.mark.root
async def test_missing_ipv6_socket_is_a_failed_result(
    raw_engine: IcmpEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_v6(family: int, kind: int) -> socket.socket:
        raise OSError(errno.EAFNOSUPPORT, os.strerror(errno.EAFNOSUPPORT))

    monkeypatch.setattr(icmp_socket, "new_socket", no_v6)
    result = await raw_engine.burst("::1", 2, 0.0, 1.0)
    assert result.sent == 0 and "ICMPv6" in result.reason
    assert (await raw_engine.burst("127.0.0.1", 1, 0.0, 1.0)).received == 1


# -- privileges ------------------------------------------------------------------------------------


def _refuse(family: int, kind: int) -> None:
    if kind == socket.SOCK_RAW:
        raise PermissionError(errno.EPERM, os.strerror(errno.EPERM))
    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))


def test_auto_mode_error_names_both_fixes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(icmp_socket, "new_socket", _refuse)
    with pytest.raises(IcmpUnavailable) as caught:
        IcmpEngine.open("auto")
    message = str(caught.value)
    assert isinstance(caught.value, ProbeUnavailable)  # rooted in NetmonError: no traceback
    assert "CAP_NET_RAW" in message and "AmbientCapabilities=CAP_NET_RAW" in message
    assert 'net.ipv4.ping_group_range="0 2147483647"' in message


def test_explicit_mode_error_names_its_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(icmp_socket, "new_socket", _refuse)
    with pytest.raises(IcmpUnavailable, match="CAP_NET_RAW"):
        IcmpEngine.open("raw")
    with pytest.raises(IcmpUnavailable, match="ping_group_range"):
        IcmpEngine.open("dgram")


WITHOUT_CAP_NET_RAW = r"""
import asyncio, socket
from probes.icmp import IcmpEngine, IcmpUnavailable
async def main():
    try:
        engine = IcmpEngine.open("auto")
    except IcmpUnavailable as exc:
        print("unavailable:", exc)
        return
    with engine:
        for _ in range(100):  # until replies are kernel-stamped (see kernel_clock_ready)
            before = engine.stats.no_kernel_timestamp
            r = await engine.burst("127.0.0.1", 1, 0.0, 1.0)
            if r.received and engine.stats.no_kernel_timestamp == before:
                break
            await asyncio.sleep(0.01)
        user = engine.stats.user_timestamps
        for address in ("127.0.0.1", "::1"):
            r = await engine.burst(address, 3, 0.0, 1.0)
            print(engine.mode, address, r.received, engine.stats.user_timestamps - user, r.reason)
asyncio.run(main())
"""


def _run_without_cap_net_raw(ping_group_range: str) -> str:
    """Run WITHOUT_CAP_NET_RAW as root minus CAP_NET_RAW, in a private network namespace whose
    ping_group_range we set (the host's sysctl is never touched)."""
    if not IS_ROOT or not shutil.which("unshare"):
        pytest.skip("needs root and unshare(1)")
    if shutil.which("setpriv"):
        drop = ["setpriv", "--bounding-set=-net_raw", "--inh-caps=-net_raw", "--"]
    elif shutil.which("capsh"):
        drop = ["capsh", "--drop=cap_net_raw", "--"]
    else:
        pytest.skip("needs setpriv(1) or capsh(1) to drop CAP_NET_RAW")
    script = 'ip link set lo up && sysctl -qw net.ipv4.ping_group_range="$1" && shift && exec "$@"'
    python = [sys.executable, "-c", WITHOUT_CAP_NET_RAW]
    if drop[0] == "capsh":
        python = ["-c", shlex.join(python)]  # capsh runs bash with the arguments after --
    cmd = ["unshare", "--net", "sh", "-c", script, "sh", ping_group_range, *drop, *python]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.root
def test_without_cap_net_raw_falls_back_to_ping_sockets() -> None:
    out = _run_without_cap_net_raw("0 2147483647").splitlines()
    # "auto" found no CAP_NET_RAW, so it fell back to ping sockets, which get every reply and
    # kernel timestamps (no reply timed in user space once stamping is on), for IPv4 and IPv6.
    assert out[0].split() == ["dgram", "127.0.0.1", "3", "0"]
    if _has_ipv6_loopback():
        assert out[1].split() == ["dgram", "::1", "3", "0"]


@pytest.mark.root
def test_without_cap_net_raw_or_ping_sockets_the_error_names_both_fixes() -> None:
    out = _run_without_cap_net_raw("1 0")
    assert out.startswith("unavailable:")
    assert "AmbientCapabilities=CAP_NET_RAW" in out and "setcap cap_net_raw+ep" in out
    assert 'net.ipv4.ping_group_range="0 2147483647"' in out and "'1 0'" in out


# -- hosts in a network namespace ------------------------------------------------------------------

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
    address: str  # IPv4 of the namespace end
    address6: str  # IPv6 of the namespace end

    def responder(self, delay: float, skip: int = 0, life: float = 5.0) -> subprocess.Popen[str]:
        """Answer IPv4 echoes from inside the namespace (after skipping ``skip``), ``delay`` late."""
        cmd = ["ip", "netns", "exec", self.name, sys.executable, "-c", RESPONDER]
        proc = subprocess.Popen(
            [*cmd, str(delay), str(skip), str(life)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        return proc


def _ip(*args: str) -> str:
    return subprocess.run(
        ["ip", *args], check=True, capture_output=True, text=True, timeout=10
    ).stdout


def _netns(host4: str, peer4: str, host6: str, peer6: str, answer: bool) -> Iterator[Netns]:
    """A namespace behind a fresh veth: ``peer4``/``peer6`` live inside it (host ends on the
    host side, /30 and /64). With ``answer=False`` the namespace ignores every echo request."""
    if not IS_ROOT or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to create a network namespace")
    for fam, net in (("-4", f"{host4}/30"), ("-6", f"{host6}/64")):
        in_use = _ip(fam, "-o", "addr", "show", "to", net).strip()
        if in_use:
            pytest.skip(f"{net} is already in use on this host: {in_use}")
    tag = secrets.token_hex(3)
    name, host_if, peer_if = f"netmon-icmptest-{tag}", f"nmi{tag}h", f"nmi{tag}n"
    try:
        _ip("netns", "add", name)
        _ip("link", "add", host_if, "type", "veth", "peer", "name", peer_if, "netns", name)
        _ip("addr", "add", f"{host4}/30", "dev", host_if)
        _ip("-6", "addr", "add", f"{host6}/64", "dev", host_if, "nodad")
        _ip("link", "set", host_if, "up")
        _ip("-n", name, "addr", "add", f"{peer4}/30", "dev", peer_if)
        _ip("-n", name, "-6", "addr", "add", f"{peer6}/64", "dev", peer_if, "nodad")
        _ip("-n", name, "link", "set", peer_if, "up")
        _ip("-n", name, "link", "set", "lo", "up")
        ignore = "0" if answer else "1"
        _ip("netns", "exec", name, "sysctl", "-qw", f"net.ipv4.icmp_echo_ignore_all={ignore}")
        _ip("netns", "exec", name, "sysctl", "-qw", f"net.ipv6.icmp.echo_ignore_all={ignore}")
        for fam, peer in (("-4", peer4), ("-6", peer6)):  # never send anything anywhere else
            route = _ip(fam, "route", "get", peer).split()
            assert route[route.index("dev") + 1] == host_if, route
        yield Netns(name, peer4, peer6)
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, timeout=10)


@pytest.fixture
def silent_host() -> Iterator[Netns]:
    """198.19.255.2 and fd00:198:18::2 in a fresh namespace that ignores echo requests."""
    yield from _netns("198.19.255.1", "198.19.255.2", "fd00:198:18::1", "fd00:198:18::2", False)


@pytest.fixture
def answering_host() -> Iterator[Netns]:
    """198.19.255.6 and fd00:198:18:1::2 in a fresh namespace whose kernel answers echoes."""
    yield from _netns("198.19.255.5", "198.19.255.6", "fd00:198:18:1::1", "fd00:198:18:1::2", True)


@pytest.fixture
async def ns_engine(silent_host: Netns) -> AsyncIterator[IcmpEngine]:
    with IcmpEngine.open("raw") as engine:
        yield engine


@pytest.mark.root
async def test_silent_host_loses_every_echo(ns_engine: IcmpEngine, silent_host: Netns) -> None:
    params = ProbeParams(count=3, timeout=0.3, spacing=0.05)
    for address in (silent_host.address, silent_host.address6):
        target = Target(site="s", device="silent", address=address)
        result = await run_probe(ICMP, ns_engine, target, params)
        assert (result.ok, result.sent, result.received, result.rtts) == (False, 3, 0, ())
        assert result.reason == "no reply to 3 echoes"
    assert ns_engine.stats.timed_out == 6 and ns_engine.in_flight == 0


@pytest.mark.root
async def test_ipv6_host_in_a_namespace(answering_host: Netns) -> None:
    with IcmpEngine.open("raw") as engine:
        await kernel_clock_ready(engine)
        timed_in_user_space = engine.stats.user_timestamps
        results = await asyncio.gather(
            engine.burst(answering_host.address6, count=5, spacing=0.01, timeout=1.0),
            engine.burst(answering_host.address, count=5, spacing=0.01, timeout=1.0),
        )
        assert [(r.address, r.received) for r in results] == [
            (answering_host.address6, 5),
            (answering_host.address, 5),
        ]
        assert engine.stats.user_timestamps == timed_in_user_space
        assert engine.stats.foreign == 0
        assert engine.families == [AF4, AF6]


@pytest.mark.root
async def test_down_hosts_cause_no_false_loss_on_the_others(
    ns_engine: IcmpEngine, silent_host: Netns
) -> None:
    """Timeouts in flight among many answering targets (10 % down): only the down ones lose."""
    up = [loopback(i) for i in range(360)]
    down = [silent_host.address, silent_host.address6] * 20
    results = await asyncio.gather(
        *(ns_engine.burst(a, count=5, spacing=0.005, timeout=0.5) for a in up + down)
    )
    assert [r.received for r in results[: len(up)]] == [5] * len(up)
    assert [r.received for r in results[len(up) :]] == [0] * len(down)
    assert ns_engine.stats.timed_out == 5 * len(down) and ns_engine.stats.late == 0
    assert ns_engine.in_flight == 0


@pytest.mark.root
async def test_partial_loss(ns_engine: IcmpEngine, silent_host: Netns) -> None:
    with silent_host.responder(delay=0.0, skip=1) as proc:
        target = Target(site="s", device="flaky", address=silent_host.address)
        params = ProbeParams(count=3, timeout=1.0, spacing=0.05)
        result = await run_probe(ICMP, ns_engine, target, params)
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
    task6 = asyncio.create_task(ns_engine.burst(silent_host.address6, 3, spacing=5, timeout=30))
    await wait_until(lambda: ns_engine.in_flight == 4)
    for t in (task, task6):
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
    assert ns_engine.in_flight == 0
    assert (await ns_engine.burst("127.0.0.1", 2, 0.0, 1.0)).received == 2
