"""Loss is decided by the kernel's clock, not by when Python woke up (issue 10, item 2).

Every test stalls the event loop for real (``time.sleep`` inside a callback, longer than the
echo timeout) with real echoes to 127.0.0.1 (the kernel answers them at once) or, for a reply
that is genuinely late, to a delayed responder in a network namespace the fixture creates. The
stalls are placed by loop order, not by time: :func:`stall_once_sent` checks once per loop
iteration, from a ``call_soon`` callback, which runs before the I/O callbacks of the next
iteration, so the replies to the echoes it waited for are still unread in the socket when it
sleeps. No assertion is on wall-clock time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import probes  # noqa: F401  (registers every probe kind)
from probes import icmp_engine
from probes.base import JobSpec, ProbeKind, ProbeParams, ProbeResult, Target, run_probe
from probes.icmp import KIND as ICMP
from probes.icmp import BurstResult, IcmpEngine
from probes.icmp_engine import _SWEEP_GRACE_NS
from tests import test_icmp
from tests.test_icmp import Netns, kernel_clock_ready

pytestmark = pytest.mark.root
LOCAL = "127.0.0.1"
TARGET = Target(site="s", device="d", address=LOCAL)


@pytest.fixture(params=["raw", "dgram"])
def engine(request: pytest.FixtureRequest) -> Iterator[IcmpEngine]:
    if not test_icmp.IS_ROOT:
        pytest.skip("raw ICMP sockets (and widening ping_group_range) need root")
    with contextlib.ExitStack() as stack:
        if request.param == "dgram":
            stack.enter_context(contextlib.contextmanager(test_icmp.allow_ping_sockets)())
        yield stack.enter_context(IcmpEngine.open(request.param))


@pytest.fixture
def user_clock_engine() -> Iterator[IcmpEngine]:
    """An engine told to ignore kernel timestamps: replies timed when the loop reads them."""
    if not test_icmp.IS_ROOT:
        pytest.skip("raw ICMP sockets need root")
    with IcmpEngine.open("raw", timestamps=False) as engine:
        yield engine


@pytest.fixture
def slow_host() -> Iterator[Netns]:
    """198.19.255.10 in a fresh namespace that ignores echoes (its responder answers, late)."""
    yield from test_icmp._netns(
        "198.19.255.9", "198.19.255.10", "fd00:198:18:2::1", "fd00:198:18:2::2", False
    )


async def three_echoes(engine: IcmpEngine, timeout: float) -> list[BurstResult]:
    """Three one-echo bursts to 127.0.0.1 started together: one sender pass sends all three."""
    return await asyncio.gather(*(engine.burst(LOCAL, 1, 0.0, timeout) for _ in range(3)))


def stall_once_sent(engine: IcmpEngine, sent: int, seconds: float) -> asyncio.Future[None]:
    """Block the loop for ``seconds`` in the first iteration in which the engine has sent
    ``sent`` echoes in all, before the loop reads their replies (see the module docstring)."""
    loop = asyncio.get_running_loop()
    stalled = loop.create_future()

    def check() -> None:
        if engine.stats.sent < sent:
            loop.call_soon(check)
            return
        time.sleep(seconds)  # the stall: nothing on this loop runs meanwhile
        stalled.set_result(None)

    loop.call_soon(check)
    return stalled


async def test_replies_read_after_a_stall_are_received(engine: IcmpEngine) -> None:
    await kernel_clock_ready(engine)
    late_reads, user_timestamps = engine.stats.late_reads, engine.stats.user_timestamps
    stalled = stall_once_sent(engine, engine.stats.sent + 3, seconds=0.6)
    results = await three_echoes(engine, timeout=0.2)
    assert stalled.done()
    assert [(r.sent, r.received) for r in results] == [(1, 1)] * 3
    assert all(r.rtts[0] is not None and r.rtts[0] <= 0.2 for r in results)  # the kernel's RTT
    assert engine.stats.late_reads == late_reads + 3
    assert engine.stats.user_timestamps == user_timestamps
    assert engine.stats.late == engine.stats.timed_out == 0


async def test_without_kernel_timestamps_the_same_stall_is_loss(
    user_clock_engine: IcmpEngine,
) -> None:
    """The comparison that shows the test above can fail: timed by the loop, they are late."""
    engine = user_clock_engine
    stalled = stall_once_sent(engine, 3, seconds=0.6)
    results = await three_echoes(engine, timeout=0.2)
    assert stalled.done()
    assert [(r.sent, r.received) for r in results] == [(1, 0)] * 3
    assert engine.stats.late == engine.stats.timed_out == 3
    assert engine.stats.no_kernel_timestamp == engine.stats.user_timestamps == 3


async def test_without_kernel_timestamps_replies_are_timed_in_user_space(
    user_clock_engine: IcmpEngine,
) -> None:
    result = await user_clock_engine.burst(LOCAL, count=3, spacing=0.0, timeout=1.0)
    assert result.received == 3
    stats = user_clock_engine.stats
    assert stats.no_kernel_timestamp == stats.user_timestamps == stats.received == 3


async def test_the_sweep_reads_the_socket_before_it_expires_anything(engine: IcmpEngine) -> None:
    """A late sweep that runs before the reader (here: called from the stalled callback)
    judges the queued replies by their stamps instead of expiring their echoes."""
    await kernel_clock_ready(engine)
    loop = asyncio.get_running_loop()
    sent = engine.stats.sent + 3
    swept: list[tuple[int, int]] = []

    def stall_then_sweep() -> None:
        if engine.stats.sent < sent:
            loop.call_soon(stall_then_sweep)
            return
        time.sleep(0.6)
        engine._sweep()
        swept.append((engine.stats.timed_out, engine.in_flight))

    loop.call_soon(stall_then_sweep)
    results = await three_echoes(engine, timeout=0.2)
    assert swept == [(0, 0)] and sum(r.received for r in results) == 3
    assert engine.stats.late_reads >= 3


async def test_a_sweep_that_cannot_read_everything_expires_nothing(
    engine: IcmpEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With more replies queued than one sweep reads, the sweep leaves every echo for later."""
    await kernel_clock_ready(engine)
    monkeypatch.setattr(icmp_engine, "_MAX_EXPIRE_DRAIN", 1)
    loop = asyncio.get_running_loop()
    sent = engine.stats.sent + 3
    swept: list[tuple[int, int]] = []

    def stall_then_sweep() -> None:
        if engine.stats.sent < sent:
            loop.call_soon(stall_then_sweep)
            return
        time.sleep(0.6)
        engine._sweep()  # reads one reply, finds the socket not empty, expires nothing
        swept.append((engine.stats.timed_out, engine.in_flight))

    loop.call_soon(stall_then_sweep)
    results = await three_echoes(engine, timeout=0.2)
    assert swept == [(0, 2)] and sum(r.received for r in results) == 3
    assert engine.stats.timed_out == 0


async def test_a_stall_inside_a_probe_does_not_fail_it(engine: IcmpEngine) -> None:
    """Stalled past the whole runner deadline after the first echo: every echo is received,
    the rest of the burst is sent afterwards, and the deadline waited for it."""
    await kernel_clock_ready(engine)
    params = ProbeParams(count=3, timeout=0.2, spacing=0.05)  # deadline 1.3 s
    stalled = stall_once_sent(engine, engine.stats.sent + 1, seconds=params.deadline + 0.3)
    result = await run_probe(ICMP, engine, TARGET, params)
    assert stalled.done()
    assert (result.ok, result.sent, result.received, result.reason) == (True, 3, 3, "")
    assert engine.stats.late_reads >= 1 and engine.stats.late == 0


async def test_a_probe_stalled_across_its_whole_burst_is_not_failed(engine: IcmpEngine) -> None:
    """One stall after each echo, 2.4 s in all, against a 1.4 s deadline. (Only the first
    reply is sure to be read late: a later one may be read at once by the overdue sweep.)"""
    await kernel_clock_ready(engine)
    params = ProbeParams(count=3, timeout=0.2, spacing=0.1)
    first = engine.stats.sent + 1
    stalls = [stall_once_sent(engine, first + i, seconds=0.8) for i in range(params.count)]
    result = await run_probe(ICMP, engine, TARGET, params)
    assert all(s.done() for s in stalls)
    assert (result.ok, result.sent, result.received, result.reason) == (True, 3, 3, "")
    assert engine.stats.late_reads >= 1 and engine.stats.late == engine.stats.timed_out == 0


async def test_after_a_stall_the_burst_keeps_its_spacing(engine: IcmpEngine) -> None:
    """The third echo is due one spacing after the second actually left, not on the grid the
    stall left behind (which would send the rest of the burst back to back)."""
    await kernel_clock_ready(engine)
    loop = asyncio.get_running_loop()
    spacing, first = 0.2, engine.stats.sent + 1
    stalled = stall_once_sent(engine, first, seconds=2 * spacing + 0.1)
    seen: list[tuple[float, float]] = []

    def after_echo_1() -> None:  # just after the second echo (index 1) left
        if engine.stats.sent < first + 1:
            loop.call_soon(after_echo_1)
            return
        sent_at = max(echo[5] for echo in engine._inflight.values() if echo[1] == 1) * 1e-9
        due = min(entry[0] for entry in engine._later)
        seen.append((sent_at, due))

    burst = asyncio.create_task(engine.burst(LOCAL, count=3, spacing=spacing, timeout=1.0))
    await stalled
    loop.call_soon(after_echo_1)
    result = await burst
    assert result.received == 3 and len(seen) == 1
    sent_at, due = seen[0]
    assert due >= sent_at + spacing


@dataclass(frozen=True)
class Deadline:
    deadline: float


class Hangs(ProbeKind[None, Any]):
    """A probe that never returns: the runner's deadline must still end it."""

    name = "hangs"

    def job(self, *_: Any) -> JobSpec:
        raise NotImplementedError

    async def probe(self, engine: None, target: Target, params: Any) -> ProbeResult:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


class _TimedSends:
    """A socket whose sendto notes when each echo left (everything else: the real socket)."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.at: list[float] = []
        self.to: list[str] = []

    def sendto(self, data: Any, address: Any) -> int:
        self.at.append(time.monotonic())
        self.to.append(address[0])
        return int(self.sock.sendto(data, address))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


@pytest.mark.parametrize("spacing", [0.01, 0.1])
async def test_echoes_leave_at_most_half_their_spacing_early(
    engine: IcmpEngine, spacing: float
) -> None:
    """The sender sends what is due within its look-ahead (20 ms: fewer wake-ups); an echo of a
    closely spaced burst still leaves at least half its spacing after the previous one, also
    while another burst makes the sender pass every 2 ms."""
    await kernel_clock_ready(engine)
    chan = next(iter(engine._channels.values()))
    timed = chan.sock = _TimedSends(chan.sock)  # type: ignore[assignment]
    try:
        busy = asyncio.create_task(engine.burst("127.0.0.2", count=80, spacing=0.002, timeout=1.0))
        result = await engine.burst(LOCAL, count=6, spacing=spacing, timeout=1.0)
        await busy
    finally:
        chan.sock = timed.sock
    timed.at = [at for at, to in zip(timed.at, timed.to, strict=True) if to == LOCAL]
    assert result.received == 6 and len(timed.at) == 6
    gaps = [b - a for a, b in zip(timed.at, timed.at[1:], strict=False)]
    assert min(gaps) >= spacing / 2 - 0.002, gaps  # 2 ms: the clock reads around the send
    assert min(gaps) >= min(spacing - icmp_engine._SEND_AHEAD, spacing / 2) - 0.002, gaps


async def test_a_hung_probe_still_fails_at_its_deadline() -> None:
    result = await run_probe(Hangs(), None, TARGET, Deadline(0.1))
    assert not result.ok and result.reason == "probe exceeded its 0.1s deadline"


async def test_stalls_extend_the_deadline_at_most_tenfold() -> None:
    """A hung probe stalled for longer than 10x its deadline fails, the extension capped."""
    asyncio.get_running_loop().call_soon(time.sleep, 1.5)  # > 10 x 0.1 s + one heartbeat
    result = await run_probe(Hangs(), None, TARGET, Deadline(0.1))
    assert not result.ok
    assert result.reason == (
        "probe exceeded its 0.1s deadline (extended by 0.9s for event-loop stalls)"
    )


async def test_a_reply_later_than_the_timeout_is_lost_even_when_read_late(
    slow_host: Netns,
) -> None:
    """The kernel's clock does not forgive real lateness: a reply 0.5 s after its echo, with a
    0.2 s timeout, is lost whether the loop reads it promptly or after a stall."""
    assert _SWEEP_GRACE_NS < 0.3e9  # the responder's lateness exceeds timeout plus grace
    with IcmpEngine.open("raw") as engine, slow_host.responder(delay=0.5, life=10) as proc:
        await kernel_clock_ready(engine)
        prompt = await engine.burst(slow_host.address, count=1, spacing=0.0, timeout=0.2)
        stalled = stall_once_sent(engine, engine.stats.sent + 1, seconds=1.0)
        after_stall = await engine.burst(slow_host.address, count=1, spacing=0.0, timeout=0.2)
        assert stalled.done()
        await test_icmp.wait_until(lambda: engine.stats.late == 2, tries=300)
        proc.terminate()
    assert prompt.rtts == after_stall.rtts == (None,)
    assert engine.stats.timed_out == 2 and engine.stats.received == engine.stats.sent - 2
