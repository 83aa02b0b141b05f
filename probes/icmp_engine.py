"""ICMP echo engine: every ping netmon sends goes through one socket per address family.

Why shared sockets
    aioping opened a raw socket per ping. The kernel hands every raw ICMP socket a copy of every
    ICMP packet the host receives, so N concurrent pings cost N x N copies, ran into fd limits and
    produced false timeouts when receive buffers overflowed. icmplib lost replies under
    concurrency. Here an :class:`IcmpEngine` owns at most two non-blocking sockets (IPv4 opened at
    start, IPv6 lazily on the first IPv6 target), each drained by one ``loop.add_reader`` callback.
    The sockets, their modes and kernel filters are in :mod:`probes.icmp_socket`; names are
    resolved by :mod:`probes.icmp_resolver`; the probe kind ``icmp`` (:mod:`probes.icmp`) is a
    thin adapter over :meth:`IcmpEngine.burst`.

Per-echo cost (the engine must ping 20,000 devices x 5 echoes a minute in one process)
    Nothing is allocated per echo but one small tuple in the in-flight dict and one int in a
    timeout queue: no task, future, ``TimerHandle`` or ``asyncio.sleep`` per echo.

    * Sending: a burst is registered once with the engine's *sender*, which sends every echo due
      (all bursts, up to a few ms ahead) in one pass from one timer: the first echoes of bursts
      started in the same loop iteration go out together, and later echoes of all bursts come
      from one heap. Echo ``i`` of a burst is due at ``start + i * spacing``, but never sooner
      than ``spacing`` after echo ``i - 1`` actually left: after a stalled loop the rest of a
      burst keeps its spacing instead of going out back to back. The packet is
      ``struct.pack_into`` a preallocated buffer with an
      incrementally computed checksum (see :mod:`probes.icmp_socket`). The optional echo/s cap
      (``rate_limit``) is a token bucket (:mod:`probes.icmp_ratelimit`) consulted once per pass.
    * Timeouts: echoes are appended to one FIFO per distinct timeout value (so deadlines are
      sorted) and a single sweep timer, armed for the earliest deadline plus a grace, expires
      them in bulk. See "Loss is decided by the kernel's clock" below for why that is safe.
    * Receiving: ``recvmsg_into`` a preallocated buffer, one ``unpack_from`` for the ICMP header,
      cookie and serial, one dict lookup by serial. The send path drains every 256 sends, so a
      pass of thousands of sends cannot overflow the receive buffer.

Matching
    The payload carries an 8-byte per-engine cookie and the echo's *serial*, a 64-bit engine-wide
    counter that keys the in-flight dict; the ICMP sequence is its low 16 bits. A reply counts
    only if cookie, serial, sequence and source address all match (and, on raw sockets, the
    identifier), so replies to other processes' pings and stale replies to a reused sequence
    number are never counted. A reply read after its echo expired finds nothing and is counted
    in :attr:`EngineStats.late`.

Timestamps
    RTT = kernel receive time (``SO_TIMESTAMPING`` software stamp, or ``SO_TIMESTAMPNS``, IPv4
    and IPv6; see :mod:`probes.icmp_socket`) - ``time.time_ns()`` taken just before ``sendto``;
    both are CLOCK_REALTIME. User-space receive times added ~2.4 ms of event-loop queueing under
    load. If the control message is missing (:attr:`EngineStats.no_kernel_timestamp`: the host
    had receive stamping off when the packet came, see :mod:`probes.icmp_socket`; :meth:`open`
    waits until it is on, so this is rare), or a clock step makes the kernel figure implausible,
    the monotonic user-space RTT is used and the reply judged by it
    (:attr:`EngineStats.user_timestamps` counts both).

Loss is decided by the kernel's clock, not by when Python woke up
    A reply counts as received iff its kernel receive time - send time <= timeout, however late
    the event loop reads it (a scrape rendering, a GC pause, a slow callback): the RTT is the
    kernel's, and a reply read more than ``_LATE_READ_NS`` after the kernel stamped it is counted
    in :attr:`EngineStats.late_reads`. The one decision not made on a stamp is expiry (no reply
    at all), and the sweep makes it safe so:

    1. it takes the time *before* draining, and expires only echoes whose deadline plus
       ``_SWEEP_GRACE_NS`` had passed by then;
    2. it drains every socket until ``EAGAIN`` first (if a drain stops at its packet limit it
       expires nothing and runs again on the next loop iteration).

    A reply stamped in time was queued to the socket before the deadline (plus the grace, which
    covers the kernel's stamp-to-queue latency when its softirq work is deferred), hence before
    the drain reached ``EAGAIN``, hence read and judged by its stamp before the expiry. This
    does not depend on the order asyncio runs callbacks in (``_run_once`` runs the callbacks
    already queued, then the I/O callbacks of its ``select``, then the timers that are due; a
    callback scheduled meanwhile waits for the next iteration): whatever ran before the sweep,
    a late sweep reads the socket itself.
"""

from __future__ import annotations

import asyncio
import errno
import heapq
import itertools
import logging
import secrets
import socket
import time
from collections import deque
from dataclasses import dataclass

from probes.icmp_ratelimit import TokenBucket
from probes.icmp_resolver import (
    DEFAULT_RESOLVE_TTL,
    Destination,
    Lookup,
    NameCache,
    ResolveError,
    system_lookup,
)
from probes.icmp_socket import (
    ANC_SIZE,
    DEFAULT_BUFSIZE,
    ECHO,
    TIMESPEC,
    Channel,
    Kind,
    Mode,
    open_ipv4_channel,
    open_ipv6_channel,
    wait_for_stamping,
)
from probes.stall import WAKE_STEP, on_wake_grid

log = logging.getLogger("netmon.probes.icmp")

_MAX_DRAIN = 4096  # packets per readiness event before yielding to the loop
_DRAIN_EVERY = 256  # sends between drains inside one sender pass
_MAX_EXPIRE_DRAIN = 65536  # packets the sweep reads per run (it expires only after EAGAIN)
_SEND_PASS = 2048  # echoes sent per sender pass before yielding to the loop
_SEND_AHEAD = WAKE_STEP  # s: the sender also sends echoes due this soon, at most half their burst's
# spacing early (one wake-up per step at most under steady load; RTTs are from the real send time)
_SWEEP_GRACE_NS = 20_000_000  # an echo expires this long after its deadline (stamp-to-queue
# latency of the kernel; also batches expiry)
_LATE_READ_NS = 100_000_000  # a reply read this long after its kernel stamp is a late read
_STAMPING_WAIT = 1.0  # s open() waits at most for the host to start stamping packets
_SEND_RETRIES = 5  # on EAGAIN/ENOBUFS, retry after 1, 2, 4, 8, 16 ms
_V6_RETRY = 60.0  # s before retrying to open an IPv6 socket that failed


@dataclass(frozen=True, slots=True)
class BurstResult:
    """Outcome of one burst. ``rtts`` has one entry per sent echo, in send order; None = lost."""

    address: str  # the IPv4/IPv6 address pinged, or the name that did not resolve
    sent: int
    rtts: tuple[float | None, ...]
    reason: str = ""  # resolver error or send errors ("" when there were none)

    @property
    def received(self) -> int:
        return sum(rtt is not None for rtt in self.rtts)

    @property
    def lost(self) -> int:
        return self.sent - self.received


@dataclass(slots=True)
class EngineStats:
    """Counters since the engine opened (for metrics and tests)."""

    sent: int = 0  # echoes that left (failed sends are in send_errors)
    received: int = 0
    timed_out: int = 0
    send_errors: int = 0
    late: int = 0  # ours, but after the echo's timeout (or after its burst was cancelled)
    foreign: int = 0  # not ours: other processes' pings, malformed packets
    recv_errors: int = 0
    user_timestamps: int = 0  # replies timed in user space (no/implausible kernel timestamp)
    no_kernel_timestamp: int = 0  # replies without a kernel timestamp (in user_timestamps too)
    late_reads: int = 0  # received (kernel clock) but read > 100 ms after the kernel stamp
    paced: int = 0  # sender passes cut short by the echo/s cap
    send_retries: int = 0  # EAGAIN/ENOBUFS on send, retried later


class _Burst:
    """One :meth:`IcmpEngine.burst` call: its schedule, its echoes and its results."""

    __slots__ = (
        "chan", "dest", "src", "sockaddr", "count", "spacing", "timeout_ns", "start", "next",
        "rtts", "pending", "sending", "done", "errors", "serials", "cancelled", "retries", "tq",
    )  # fmt: skip

    def __init__(
        self,
        chan: Channel,
        dest: Destination,
        count: int,
        spacing: float,
        timeout: float,
        done: asyncio.Future[None],
    ) -> None:
        self.chan = chan
        self.dest = dest
        self.src = dest.ip
        self.sockaddr = dest.sockaddr
        self.count = count
        self.spacing = spacing
        self.timeout_ns = round(timeout * 1e9)
        self.start = 0.0
        self.next = 0  # index of the next echo to send
        self.rtts: list[float | None] = [None] * count
        self.pending = 0  # echoes sent and not settled
        self.sending = True
        self.done = done
        self.errors: list[str] = []
        self.serials: list[int] = []
        self.cancelled = False
        self.retries = 0
        self.tq: deque[int] = deque()  # the engine's expiry queue for this timeout

    def finish_if_done(self) -> None:
        if not self.sending and not self.pending and not self.done.done():
            self.done.set_result(None)

    def error(self, text: str) -> None:
        if text not in self.errors:
            self.errors.append(text)


# An in-flight echo: (burst, index, expected source, sequence, sent CLOCK_REALTIME ns,
# sent CLOCK_MONOTONIC ns). A tuple, not an object: it is the one allocation per echo.
_Echo = tuple[_Burst, int, str, int, int, int]


class IcmpEngine:
    """Shared ICMP sockets (IPv4 and, lazily, IPv6) serving every concurrent :meth:`burst`.

    Open it with the synchronous :meth:`open` (safe inside a running loop: it creates and
    configures the IPv4 socket and, in the rare case the host does not stamp packets yet,
    waits for that: ~1 ms, at most ``_STAMPING_WAIT``). The engine attaches to the running loop
    lazily on the first :meth:`burst`; all bursts must then run on that loop. :meth:`close` (or
    ``with``/``async with``) releases the sockets; bursts still waiting finish with their echoes
    lost.
    """

    def __init__(
        self,
        chan4: Channel,
        *,
        ident: int,
        cookie: int,
        rate_limit: float | None = None,
        bufsize: int = DEFAULT_BUFSIZE,
        names: NameCache | None = None,
        bpf: bool = True,
        timestamps: bool = True,
    ) -> None:
        self.mode: Kind = chan4.kind
        self.stats = EngineStats()
        self.names = names if names is not None else NameCache()
        self._ident = ident
        self._cookie = cookie
        self._bpf = bpf
        self._timestamps = timestamps  # for the IPv6 socket, opened later
        self._bufsize = bufsize
        self._channels: dict[int, Channel] = {socket.AF_INET: chan4}
        self._v6_error = ""
        self._v6_retry_at = 0.0
        self._serial = secrets.randbits(32)
        self._inflight: dict[int, _Echo] = {}
        self._expiry: dict[int, deque[int]] = {}  # timeout ns -> serials in send order
        self._ready: deque[_Burst] = deque()  # bursts whose next echo is due now
        self._later: list[tuple[float, int, _Burst]] = []  # heap: (due, tiebreak, burst)
        self._tickets = itertools.count()  # heap tiebreak
        self._bucket = TokenBucket(rate_limit) if rate_limit is not None else None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._send_soon = False  # a sender pass is scheduled for this loop iteration
        self._send_timer: asyncio.TimerHandle | None = None
        self._send_timer_at = float("inf")
        self._sweep_handle: asyncio.TimerHandle | None = None
        self._sweep_at = float("inf")
        self._closed = False
        chan4.set_bufsize(bufsize)

    @classmethod
    def open(
        cls,
        mode: Mode = "auto",
        *,
        rate_limit: float | None = None,
        bufsize: int = DEFAULT_BUFSIZE,
        resolve_ttl: float = DEFAULT_RESOLVE_TTL,
        lookup: Lookup | None = None,
        bpf: bool = True,
        timestamps: bool = True,
    ) -> IcmpEngine:
        """Open the IPv4 socket. ``rate_limit`` caps echoes/s across all bursts (None: no cap).
        ``timestamps=False`` ignores kernel receive timestamps (for comparisons only: replies
        are then judged by when the event loop read them).

        Raises :class:`IcmpUnavailable` if no socket of the requested mode can be opened. The
        IPv6 socket is opened on the first IPv6 target, in the same mode.
        """
        if mode not in ("auto", "raw", "dgram"):
            raise ValueError(f"mode must be 'auto', 'raw' or 'dgram', got {mode!r}")
        ident, cookie = secrets.randbits(16), secrets.randbits(64)
        chan = open_ipv4_channel(mode, ident, cookie, bpf, timestamps)
        if chan.ts_type and not wait_for_stamping(_STAMPING_WAIT):
            log.warning(
                "the host does not stamp received packets yet; the first replies will be timed "
                "in user space (EngineStats.no_kernel_timestamp counts them)"
            )
        how = "raw socket (CAP_NET_RAW)" if chan.kind == "raw" else "unprivileged ping socket"
        log.info("ICMP engine uses a %s; rate limit %s echo/s", how, rate_limit or "none")
        names = NameCache(lookup or system_lookup, ttl=resolve_ttl)
        return cls(
            chan, ident=ident, cookie=cookie, rate_limit=rate_limit, bufsize=bufsize,
            names=names, bpf=bpf, timestamps=timestamps,
        )  # fmt: skip

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def in_flight(self) -> int:
        """Echoes sent and still waiting for a reply."""
        return len(self._inflight)

    @property
    def families(self) -> list[int]:
        """Address families with an open socket."""
        return list(self._channels)

    def kernel_drops(self) -> int:
        """Replies the kernel dropped because a receive buffer was full (0 if unknown)."""
        return sum(c.kernel_drops() or 0 for c in self._channels.values())

    def close(self) -> None:
        """Stop reading, fail every waiting echo as lost and close the sockets. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for handle in (self._send_timer, self._sweep_handle):
            if handle is not None:
                handle.cancel()
        loop_alive = self._loop is not None and not self._loop.is_closed()
        for chan in self._channels.values():
            if loop_alive:
                assert self._loop is not None
                self._loop.remove_reader(chan.sock)
            chan.sock.close()
        waiting: dict[int, _Burst] = {}
        for echo in self._inflight.values():
            burst = echo[0]
            burst.pending -= 1
            waiting[id(burst)] = burst
        for burst in [*self._ready, *(entry[2] for entry in self._later)]:
            if burst.sending and not burst.cancelled:
                burst.error("ICMP engine closed")
            burst.sending = False
            waiting[id(burst)] = burst
        self._inflight.clear()
        for tq in self._expiry.values():
            tq.clear()
        self._ready.clear()
        self._later.clear()
        if loop_alive:
            for burst in waiting.values():
                burst.finish_if_done()
        self.names.close()

    def __enter__(self) -> IcmpEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> IcmpEngine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.in_flight} in flight"
        return f"<IcmpEngine {self.mode} {state}>"

    def _attach(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return loop
        if self._inflight or self._ready or self._later:
            raise RuntimeError("IcmpEngine is busy on another event loop")
        if self._loop is not None and not self._loop.is_closed():
            for chan in self._channels.values():
                self._loop.remove_reader(chan.sock)
        for handle in (self._send_timer, self._sweep_handle):
            if handle is not None:
                handle.cancel()
        self._send_timer = self._sweep_handle = None
        self._send_timer_at = self._sweep_at = float("inf")
        self._send_soon = False
        for chan in self._channels.values():
            loop.add_reader(chan.sock, self._drain, chan, _MAX_DRAIN)
        self._loop = loop
        return loop

    def _channel(self, family: int) -> Channel | str:
        """The socket for ``family``, opening the IPv6 one on first use; or why there is none."""
        chan = self._channels.get(family)
        if chan is not None:
            return chan
        if self._v6_error and time.monotonic() < self._v6_retry_at:
            return self._v6_error
        opened = open_ipv6_channel(
            self.mode, self._ident, self._cookie, self._bpf, self._bufsize, self._timestamps
        )
        if isinstance(opened, str):
            self._v6_error = opened
            self._v6_retry_at = time.monotonic() + _V6_RETRY
            return opened
        chan = self._channels[family] = opened
        if self._loop is not None and not self._loop.is_closed():
            self._loop.add_reader(chan.sock, self._drain, chan, _MAX_DRAIN)
        log.info("ICMP engine opened its IPv6 %s socket", self.mode)
        return chan

    # -- bursts ------------------------------------------------------------------------------

    async def burst(self, address: str, count: int, spacing: float, timeout: float) -> BurstResult:
        """Send ``count`` echoes to ``address`` ``spacing`` s apart, each waiting ``timeout`` s.

        ``address`` is an IPv4/IPv6 literal or a host name (see :class:`NameCache`). Never raises
        for network trouble: an unresolvable name, a missing IPv6 socket or a send error is
        reported in :attr:`BurstResult.reason` (a failed send counts as sent and lost).
        """
        if count < 0 or spacing < 0 or timeout <= 0:
            _check_burst_args(count, spacing, timeout)
        route = await self._route(address)
        if isinstance(route, BurstResult):
            return route
        chan, dest = route
        if not count:
            return BurstResult(dest.ip, 0, ())
        burst = self._schedule(chan, dest, count, spacing, timeout)
        try:
            await burst.done
        finally:
            if burst.pending or burst.sending:  # cancelled (or the loop is going away)
                self._forget(burst)
        sent = burst.next
        rtts = burst.rtts if sent == count else burst.rtts[:sent]
        return BurstResult(dest.ip, sent, tuple(rtts), "; ".join(burst.errors))

    async def _route(self, address: str) -> tuple[Channel, Destination] | BurstResult:
        """The socket and address to ping for ``address``, or the failed result saying why not."""
        dest = self.names.literal(address)
        if dest is None:
            try:
                dests = await self.names.resolve(address)
            except ResolveError as exc:
                return BurstResult(address, 0, (), str(exc))
        else:
            dests = (dest,)
        if self._closed:
            return BurstResult(dests[0].ip, 0, (), "ICMP engine closed")
        chan: Channel | str = ""
        for choice in dests:  # the first address whose family has a socket
            chan, dest = self._channel(choice.family), choice
            if not isinstance(chan, str):
                break
        if isinstance(chan, str) or dest is None:
            return BurstResult(dests[0].ip, 0, (), str(chan))
        return chan, dest

    def _schedule(
        self, chan: Channel, dest: Destination, count: int, spacing: float, timeout: float
    ) -> _Burst:
        """Register a burst with the sender (a pass is scheduled with ``call_soon``)."""
        loop = self._loop if self._loop is asyncio.get_running_loop() else self._attach()
        burst = _Burst(chan, dest, count, spacing, timeout, loop.create_future())
        tq = self._expiry.get(burst.timeout_ns)
        if tq is None:  # (one queue per distinct timeout value; they are never removed)
            tq = self._expiry[burst.timeout_ns] = deque()
        burst.tq = tq
        burst.start = time.monotonic()
        self._ready.append(burst)
        if not self._send_soon:
            self._send_soon = True
            loop.call_soon(self._send_soon_pass)
        return burst

    def _forget(self, burst: _Burst) -> None:
        """Drop a cancelled burst's state so late replies find nothing."""
        burst.cancelled = True
        burst.sending = False
        inflight = self._inflight
        for serial in burst.serials:
            echo = inflight.get(serial)
            if echo is not None and echo[0] is burst:
                del inflight[serial]
        burst.pending = 0

    # -- sending -----------------------------------------------------------------------------

    def _send_soon_pass(self) -> None:
        self._send_soon = False
        self._send_pass()

    def _send_timer_pass(self) -> None:
        self._send_timer = None
        self._send_timer_at = float("inf")
        self._send_pass()

    def _arm_sender(self, due: float) -> None:
        """Make sure a sender pass runs at ``due`` (monotonic s) or earlier."""
        loop = self._loop
        assert loop is not None
        now = time.monotonic()
        if due <= now:
            if not self._send_soon:
                self._send_soon = True
                loop.call_soon(self._send_soon_pass)
            return
        if due >= self._send_timer_at:
            return
        if self._send_timer is not None:
            self._send_timer.cancel()
        self._send_timer_at = due
        self._send_timer = loop.call_later(due - now, self._send_timer_pass)

    def _send_pass(self) -> None:
        """Send every echo that is due (or due soon, see below), bounded per pass."""
        if self._closed:
            return
        ready, later = self._ready, self._later
        now = time.monotonic()
        # what is due within _SEND_AHEAD, at most half its burst's spacing early: echoes of a
        # burst spaced closer than 2 x _SEND_AHEAD keep at least half their spacing (what waits
        # behind a closely spaced one goes at the next pass, armed for its due time)
        while later and later[0][0] <= now + min(_SEND_AHEAD, later[0][2].spacing / 2):
            ready.append(heapq.heappop(later)[2])
        budget = min(len(ready), _SEND_PASS)
        if self._bucket is not None and budget:
            granted = self._bucket.take(budget)
            if granted < budget:
                self.stats.paced += 1
            budget = granted
        retry_in = self._send_echoes(budget)
        if self._closed:
            return
        now = time.monotonic()
        if retry_in:
            self._arm_sender(now + retry_in)
        elif ready:
            self._arm_sender(now + (self._bucket.wait() if self._bucket is not None else 0.0))
        if later:  # on the grid the scheduler wakes on too (one wake-up)
            self._arm_sender(on_wake_grid(later[0][0], now))

    # hot loop: kept in one function (measured: `bench/icmp.py --hot-loop --sizes 20000`, 6 paired
    # runs: send loop + drain 2.4 us/echo as written, 3.1 with the pack/send and the in-flight
    # bookkeeping here and the checks/settle step in _drain as per-echo methods; this loop's
    # share of that is ~0.3 us). Everything touched per echo is bound to a local once per pass.
    def _send_echoes(self, budget: int) -> float:
        """Send up to ``budget`` echoes from the ready queue; returns a retry delay on EAGAIN."""
        ready, later = self._ready, self._later
        inflight = self._inflight
        popleft, heappush = ready.popleft, heapq.heappush
        pack_into, time_ns, mono_ns = ECHO.pack_into, time.time_ns, time.monotonic_ns
        ident, cookie = self._ident, self._cookie
        serial, tickets = self._serial, self._tickets
        attempts = sent = unread = 0
        earliest = self._sweep_at
        retry_in = 0.0
        chan: Channel | None = None
        out = bytearray()
        echo_type = neg_base = 0
        with_checksum = False
        sendto = self._channels[socket.AF_INET].sock.sendto
        try:
            while attempts < budget and ready:
                burst = popleft()
                if burst.cancelled or not burst.sending:
                    continue
                if burst.chan is not chan:
                    chan = burst.chan
                    out, echo_type, neg_base = chan.out, chan.echo_type, chan.neg_base
                    with_checksum, sendto = chan.with_checksum, chan.sock.sendto
                serial += 1
                seq = serial & 0xFFFF
                csum = (neg_base - seq - serial) % 0xFFFF if with_checksum else 0
                pack_into(out, 0, echo_type, 0, csum, ident, seq, cookie, serial)
                sent_mono = mono_ns()  # (first: so ``rx - sent_ns <= now - sent_mono`` holds)
                sent_ns = time_ns()
                try:
                    sendto(out, burst.sockaddr)
                except OSError as exc:
                    if self._closed:
                        return 0.0
                    if self._send_failed(burst, exc):
                        ready.appendleft(burst)
                        retry_in = 0.001 * 2 ** (burst.retries - 1)
                        break
                    attempts += 1
                    continue
                attempts += 1
                sent += 1
                index = burst.next
                inflight[serial] = (burst, index, burst.src, seq, sent_ns, sent_mono)
                burst.serials.append(serial)
                burst.pending += 1
                burst.tq.append(serial)
                deadline = sent_mono + burst.timeout_ns
                if deadline < earliest:
                    earliest = deadline
                index += 1
                burst.next = index
                if index < burst.count:  # on the grid, but at least `spacing` after this one
                    due = burst.start + index * burst.spacing
                    floor = sent_mono * 1e-9 + burst.spacing
                    heappush(later, (due if due >= floor else floor, next(tickets), burst))
                else:
                    burst.sending = False
                unread += 1
                if unread >= _DRAIN_EVERY:  # replies pile up while we send
                    unread = 0
                    self._serial = serial
                    for c in list(self._channels.values()):
                        self._drain(c, _MAX_DRAIN)
                    if self._closed:
                        return 0.0
        finally:
            self._serial = serial
            self.stats.sent += sent
        if earliest < self._sweep_at:
            self._arm_sweep(earliest)
        return retry_in

    def _send_failed(self, burst: _Burst, exc: OSError) -> bool:
        """Handle a failed ``sendto``; True if it should be retried later (EAGAIN, ENOBUFS)."""
        transient = isinstance(exc, BlockingIOError | InterruptedError) or (
            exc.errno == errno.ENOBUFS
        )
        if transient and burst.retries < _SEND_RETRIES:
            self.stats.send_retries += 1
            burst.retries += 1
            return True
        burst.retries = 0
        self.stats.send_errors += 1
        burst.error(f"send to {burst.src} failed: {exc.strerror or exc}")
        self._advance(burst)
        return False

    def _advance(self, burst: _Burst) -> None:
        """The echo at ``burst.next`` failed to send: it is sent and lost; schedule the next."""
        burst.rtts[burst.next] = None
        burst.next += 1
        if burst.next < burst.count:
            due = burst.start + burst.next * burst.spacing
            heapq.heappush(self._later, (due, next(self._tickets), burst))
        else:
            burst.sending = False
            burst.finish_if_done()

    # -- timeouts ----------------------------------------------------------------------------

    def _arm_sweep(self, deadline_ns: float) -> None:
        """Run the sweep when the echo deadline ``deadline_ns`` (monotonic) plus the grace is due."""
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
        loop = self._loop
        assert loop is not None
        self._sweep_at = deadline_ns
        delay = (deadline_ns + _SWEEP_GRACE_NS - time.monotonic_ns()) / 1e9
        self._sweep_handle = loop.call_later(max(0.0, delay), self._sweep)

    def _sweep(self) -> None:
        """Expire the echoes whose deadline plus the grace had passed before the sockets were
        read to ``EAGAIN``: every reply stamped in time has then been judged by its stamp (the
        argument is in the module docstring). O(expired + number of timeout values)."""
        self._sweep_handle = None
        self._sweep_at = float("inf")
        if self._closed:
            return
        cutoff = time.monotonic_ns() - _SWEEP_GRACE_NS  # taken before draining, on purpose
        emptied = [self._drain(chan, _MAX_EXPIRE_DRAIN) for chan in list(self._channels.values())]
        if self._closed:
            return
        if not all(emptied):  # more queued than one drain reads: read on, expire nothing yet
            self._arm_sweep(0)
            return
        now = cutoff
        inflight, stats = self._inflight, self.stats
        earliest = float("inf")
        for timeout_ns, tq in self._expiry.items():
            while tq:
                serial = tq[0]
                echo = inflight.get(serial)
                if echo is None:
                    tq.popleft()
                    continue
                deadline = echo[5] + timeout_ns
                if deadline > now:
                    earliest = min(earliest, deadline)
                    break
                tq.popleft()
                del inflight[serial]
                stats.timed_out += 1
                burst = echo[0]
                burst.pending -= 1
                if not burst.pending and not burst.sending:
                    burst.finish_if_done()
        if earliest < self._sweep_at:
            self._arm_sweep(earliest)

    # -- receive -----------------------------------------------------------------------------

    # hot loop: kept in one function (measured: `bench/icmp.py --hot-loop --sizes 20000`: the
    # header checks and the RTT/settle step as per-packet methods cost ~0.4 us more per echo,
    # on 2.4 us for send loop + drain; see _send_echoes).
    def _drain(self, chan: Channel, limit: int) -> bool:
        """Read up to ``limit`` queued packets from ``chan`` and settle the echoes they answer;
        True if the socket was read empty (``EAGAIN``), False if ``limit`` stopped it.

        Judgement by the kernel's clock: received iff kernel stamp - send time <= timeout."""
        recv_into = chan.sock.recvmsg_into
        bufs, buf = chan.bufs, chan.buf
        inflight, stats = self._inflight, self.stats
        unpack_from, mono_ns = ECHO.unpack_from, time.monotonic_ns
        has_ip, reply_type, cookie = chan.has_ip_header, chan.reply_type, self._cookie
        ident = self._ident if chan.check_ident else -1
        late_read = _LATE_READ_NS
        unpack_ts, sol_socket, ts_type = TIMESPEC.unpack_from, socket.SOL_SOCKET, chan.ts_type
        now = mono_ns()
        for _ in range(limit):
            try:
                nbytes, anc, _flags, addr = recv_into(bufs, ANC_SIZE)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError as exc:  # e.g. a queued ICMP error on a ping socket; or closed
                if self._closed:
                    return True
                stats.recv_errors += 1
                log.debug("ICMP receive error: %s", exc)
                continue
            off = (buf[0] & 0x0F) << 2 if has_ip else 0
            if nbytes < off + 24:
                stats.foreign += 1
                continue
            kind, code, _c, rid, seq, rcookie, serial = unpack_from(buf, off)
            if kind != reply_type or code or rcookie != cookie or (ident >= 0 and rid != ident):
                stats.foreign += 1
                continue
            echo = inflight.get(serial)
            if echo is None or echo[3] != seq or echo[2] != addr[0]:
                stats.late += 1
                continue
            del inflight[serial]
            burst = echo[0]
            rtt_ns = 0
            if anc and anc[0][1] == ts_type and anc[0][0] == sol_socket:
                sec, nsec = unpack_ts(anc[0][2])  # (SCM_TIMESTAMPING: ts[0], the software one)
                rtt_ns = sec * 1_000_000_000 + nsec - echo[4]
            else:
                stats.no_kernel_timestamp += 1
            # Plausible if within the monotonic time since the send (guards against clock steps);
            # ``now`` is refreshed only when a packet that arrived during this drain needs it.
            if not 0 < rtt_ns <= now - echo[5]:
                now = mono_ns()
                if not 0 < rtt_ns <= now - echo[5]:
                    stats.user_timestamps += 1
                    rtt_ns = max(now - echo[5], 1)
            burst.pending -= 1
            if rtt_ns > burst.timeout_ns:  # arrived after its deadline, read before the sweep
                stats.late += 1
                stats.timed_out += 1
            else:
                stats.received += 1
                burst.rtts[echo[1]] = rtt_ns / 1e9
                if now - echo[5] - rtt_ns > late_read:  # (read time - stamp, >= 0 here)
                    stats.late_reads += 1
            if not burst.pending and not burst.sending:
                burst.finish_if_done()
        return False


def _check_burst_args(count: int, spacing: float, timeout: float) -> None:
    if count < 0 or spacing < 0 or timeout <= 0:
        raise ValueError(
            f"need count >= 0, spacing >= 0, timeout > 0; got {count}, {spacing}, {timeout}"
        )
