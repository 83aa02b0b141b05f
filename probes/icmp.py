"""ICMP echo engine: every ping netmon sends goes through one shared socket.

Why one shared socket
    aioping opened a raw socket per ping. The kernel hands every raw ICMP socket a copy of every
    ICMP packet the host receives, so N concurrent pings cost N x N copies, ran into fd limits and
    produced false timeouts when receive buffers overflowed. icmplib lost replies under
    concurrency. Here one non-blocking socket is opened per :class:`IcmpEngine`; a single
    ``loop.add_reader`` callback drains it with ``recvmsg`` until ``BlockingIOError`` and settles
    the waiting echoes directly -- no task, no future per packet. Because a busy loop (thousands
    of sends in one iteration) delays that callback, the send path also drains every 256 sends
    (else the receive buffer overflows) and an expiring echo drains the socket before it is
    declared lost (else replies already queued become false timeouts).

Matching
    Each echo is keyed by ``(source address, sequence)`` in a dict of in-flight echoes; sequence
    numbers come from one engine-wide counter (mod 65536) that skips keys still in flight. The
    payload carries an 8-byte per-engine cookie and the echo's unwrapped serial number, so replies
    to other processes' pings (a raw socket sees them all) and stale replies to a reused sequence
    number are never counted. In raw mode the ICMP identifier (random per engine) must match too;
    in dgram mode the kernel rewrites the identifier to the socket's port and only delivers our
    own replies. A reply arriving after its echo timed out finds no key and is dropped (counted in
    :attr:`EngineStats.late`).

Timestamps
    RTT = kernel receive time (``SO_TIMESTAMPNS`` control message) - ``time.time_ns()`` taken just
    before ``sendto``; both are CLOCK_REALTIME. User-space receive times added ~2.4 ms of
    event-loop queueing under load. If the control message is missing, or a clock step makes the
    kernel figure implausible, the monotonic user-space RTT is used instead.

Modes
    ``raw`` (SOCK_RAW, needs CAP_NET_RAW) with the kernel ``ICMP_FILTER`` so only echo replies
    are queued; ``dgram`` (unprivileged "ping socket", needs the gid inside
    ``net.ipv4.ping_group_range``). ``auto`` tries raw then dgram.

IPv6 (later)
    Address handling is confined to :func:`_resolve` (returns an IPv4 literal) and the
    :class:`_V4` codec. IPv6 needs a second socket (AF_INET6/IPPROTO_ICMPV6, echo types 128/129,
    no IP header on receive, checksum by the kernel, ICMP6_FILTER) selected by address family.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
import secrets
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from probes.base import ProbeContext, ProbeParams, ProbeResult, Target, register

log = logging.getLogger("netmon.probes.icmp")

Mode = Literal["auto", "raw", "dgram"]

# Linux constants Python 3.11's socket module does not export.
SOL_RAW = 255
ICMP_FILTER = 1
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)

ICMP_ECHO_REPLY = 0
ICMP_ECHO_REQUEST = 8
PAYLOAD_SIZE = 56  # classic ping size: cookie (8) + serial (8) + zero padding
DEFAULT_BUFSIZE = 32 << 20  # SO_RCVBUF/SO_SNDBUF request; a queued reply costs ~1-2 KiB of it
_RECV_SIZE = 512  # IP header (<= 60) + ICMP header (8) + payload; longer replies are truncated
_MAX_DRAIN = 4096  # packets per readiness event before yielding to the loop
_DRAIN_EVERY = 256  # sends between opportunistic drains (keeps the receive queue short)
_MAX_EXPIRE_DRAIN = 65536  # packets read before declaring an echo lost (see IcmpEngine._expire)
_SEND_RETRIES = 5  # on EAGAIN/ENOBUFS, retry after 1, 2, 4, 8, 16 ms

_ICMP_HEADER = struct.Struct("!BBHHH")
_SERIAL = struct.Struct("!Q")
_TIMESPEC = struct.Struct("@ll")
_ANC_SIZE = socket.CMSG_SPACE(_TIMESPEC.size)

FIX_CAP_NET_RAW = (
    "grant CAP_NET_RAW (systemd unit: AmbientCapabilities=CAP_NET_RAW; "
    "or `setcap cap_net_raw+ep <python interpreter>`)"
)
FIX_PING_GROUP = 'allow ping sockets: `sysctl -w net.ipv4.ping_group_range="0 2147483647"`'


class IcmpUnavailable(RuntimeError):
    """No ICMP socket can be opened here; the message names the fixes."""


@dataclass(frozen=True, slots=True)
class BurstResult:
    """Outcome of one burst. ``rtts`` has one entry per sent echo, in send order; None = lost."""

    address: str  # the IPv4 address pinged, or the name that did not resolve
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


class _TokenBucket:
    """Engine-wide pacing: ``rate`` echoes/s with up to ``capacity`` sent back to back.

    :meth:`reserve` takes a token now and returns how long the caller must wait before using it;
    tokens may go negative, so concurrent callers queue up in order without polling.
    """

    def __init__(self, rate: float, capacity: float | None = None) -> None:
        if rate <= 0:
            raise ValueError(f"rate_limit must be > 0 echoes/s, got {rate!r}")
        self.rate = rate
        self.capacity = capacity if capacity is not None else max(1.0, rate / 10)
        self._tokens = self.capacity
        self._stamp = time.monotonic()

    def reserve(self) -> float:
        now = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


class _Burst:
    """Collects the echoes of one :meth:`IcmpEngine.burst` call."""

    __slots__ = ("rtts", "pending", "sending", "done", "errors", "echoes")

    def __init__(self, done: asyncio.Future[None]) -> None:
        self.rtts: list[float | None] = []
        self.pending = 0
        self.sending = True
        self.done = done
        self.errors: list[str] = []
        self.echoes: list[_Echo] = []

    def settle(self, index: int, rtt: float | None) -> None:
        self.rtts[index] = rtt
        self.pending -= 1
        self.maybe_finish()

    def maybe_finish(self) -> None:
        if self.sending or self.pending or self.done.done():
            return
        if not self.done.get_loop().is_closed():
            self.done.set_result(None)

    def error(self, text: str) -> None:
        if text not in self.errors:
            self.errors.append(text)


class _Echo:
    """One echo request in flight."""

    __slots__ = ("burst", "index", "key", "serial", "timeout", "sent_ns", "sent_mono_ns", "timer")

    def __init__(
        self, burst: _Burst, index: int, key: tuple[str, int], serial: bytes, timeout: float
    ) -> None:
        self.burst = burst
        self.index = index
        self.key = key
        self.serial = serial
        self.timeout = timeout
        self.sent_ns = 0
        self.sent_mono_ns = 0
        self.timer: asyncio.TimerHandle | None = None


class _V4:
    """ICMPv4 echo encoding/decoding."""

    family = socket.AF_INET
    proto = socket.IPPROTO_ICMP

    @staticmethod
    def echo_request(ident: int, seq: int, payload: bytes, with_checksum: bool) -> bytes:
        header = _ICMP_HEADER.pack(ICMP_ECHO_REQUEST, 0, 0, ident, seq)
        if not with_checksum:  # ping sockets: the kernel fills in id and checksum
            return header + payload
        csum = _checksum(header + payload)
        return _ICMP_HEADER.pack(ICMP_ECHO_REQUEST, 0, csum, ident, seq) + payload

    @staticmethod
    def parse_reply(data: bytes, has_ip_header: bool) -> tuple[int, int, bytes] | None:
        """(identifier, sequence, payload) of an echo reply, or None if it is not one."""
        offset = (data[0] & 0x0F) * 4 if has_ip_header and data else 0
        if len(data) < offset + _ICMP_HEADER.size + 16:
            return None
        kind, code, _csum, ident, seq = _ICMP_HEADER.unpack_from(data, offset)
        if kind != ICMP_ECHO_REPLY or code != 0:
            return None
        start = offset + _ICMP_HEADER.size
        return ident, seq, data[start : start + 16]


def _checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _kernel_rx_ns(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(data)
            return sec * 1_000_000_000 + nsec
    return None


def _new_socket(kind: int) -> socket.socket:
    """Create an ICMPv4 socket of ``kind`` (SOCK_RAW or SOCK_DGRAM). Tests replace this seam."""
    return socket.socket(socket.AF_INET, kind, socket.IPPROTO_ICMP)


def _ping_group_range() -> str:
    try:
        return " ".join(Path("/proc/sys/net/ipv4/ping_group_range").read_text().split())
    except OSError:
        return "unknown"


def _unavailable(mode: Mode, errors: dict[str, OSError]) -> IcmpUnavailable:
    failed = "; ".join(f"{kind} socket: {exc.strerror or exc}" for kind, exc in errors.items())
    why = f"cannot open an ICMP socket ({failed})"
    group = f"gid {os.getgid()} is not in net.ipv4.ping_group_range ({_ping_group_range()!r})"
    if mode == "raw":
        return IcmpUnavailable(f"{why}. Fix: {FIX_CAP_NET_RAW}, or use mode 'auto'/'dgram'.")
    if mode == "dgram":
        return IcmpUnavailable(f"{why}; {group}. Fix: {FIX_PING_GROUP}.")
    return IcmpUnavailable(
        f"{why}; no CAP_NET_RAW for a raw socket and {group}. "
        f"Fix one of: {FIX_CAP_NET_RAW}; or {FIX_PING_GROUP} "
        "(persist it in /etc/sysctl.d/)."
    )


def _create(mode: Mode) -> tuple[socket.socket, Literal["raw", "dgram"]]:
    kinds: dict[str, int] = {"raw": socket.SOCK_RAW, "dgram": socket.SOCK_DGRAM}
    order = ["raw", "dgram"] if mode == "auto" else [mode]
    errors: dict[str, OSError] = {}
    for name in order:
        try:
            return _new_socket(kinds[name]), name  # type: ignore[return-value]
        except OSError as exc:
            errors[name] = exc
    raise _unavailable(mode, errors)


def _set_buffer(sock: socket.socket, force_opt: int, opt: int, size: int) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, force_opt, size)  # ignores rmem_max; CAP_NET_ADMIN
    except OSError:
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, size)  # capped at net.core.[rw]mem_max
        except OSError as exc:
            log.debug("cannot set socket buffer option %d: %s", opt, exc)


def _configure(sock: socket.socket, mode: str, bufsize: int) -> None:
    sock.setblocking(False)
    if mode == "raw":
        only_echo_reply = ~(1 << ICMP_ECHO_REPLY) & 0xFFFFFFFF  # a set bit blocks that type
        sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("I", only_echo_reply))
    _set_buffer(sock, SO_RCVBUFFORCE, socket.SO_RCVBUF, bufsize)
    _set_buffer(sock, SO_SNDBUFFORCE, socket.SO_SNDBUF, bufsize)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError as exc:
        log.warning("no kernel receive timestamps (%s); RTTs use user-space time", exc)


class IcmpEngine:
    """One shared ICMP socket serving every concurrent :meth:`burst`.

    Open it with the synchronous :meth:`open` (safe inside a running loop: it only creates and
    configures the socket). The engine attaches its reader to the running loop lazily on the first
    :meth:`burst`; all bursts must then run on that loop. :meth:`close` (or ``with``/``async
    with``) releases the socket; bursts still waiting finish with their echoes lost.
    """

    def __init__(
        self, sock: socket.socket, mode: Literal["raw", "dgram"], rate_limit: float | None = None
    ) -> None:
        self.mode = mode
        self.stats = EngineStats()
        self._sock = sock
        self._codec = _V4
        self._ident = secrets.randbits(16)
        self._cookie = secrets.token_bytes(8)
        self._padding = bytes(PAYLOAD_SIZE - 16)
        self._counter = secrets.randbits(16)
        self._inflight: dict[tuple[str, int], _Echo] = {}
        self._bucket = _TokenBucket(rate_limit) if rate_limit is not None else None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._unread_sends = 0

    @classmethod
    def open(
        cls,
        mode: Mode = "auto",
        *,
        rate_limit: float | None = None,
        bufsize: int = DEFAULT_BUFSIZE,
    ) -> IcmpEngine:
        """Open the shared socket. ``rate_limit`` caps echoes/s across all bursts (None: no cap).

        Raises :class:`IcmpUnavailable` if no socket of the requested mode can be opened.
        """
        if mode not in ("auto", "raw", "dgram"):
            raise ValueError(f"mode must be 'auto', 'raw' or 'dgram', got {mode!r}")
        sock, kind = _create(mode)
        try:
            _configure(sock, kind, bufsize)
        except OSError:
            sock.close()
            raise
        how = "raw socket (CAP_NET_RAW)" if kind == "raw" else "unprivileged ping socket"
        log.info("ICMP engine uses a %s; rate limit %s echo/s", how, rate_limit or "none")
        return cls(sock, kind, rate_limit)

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def in_flight(self) -> int:
        """Echoes sent and still waiting for a reply."""
        return len(self._inflight)

    def close(self) -> None:
        """Stop reading, fail every waiting echo as lost and close the socket. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._sock)
        for echo in list(self._inflight.values()):
            self._lose(echo)
        self._sock.close()

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
        if self._inflight:
            raise RuntimeError("IcmpEngine is busy on another event loop")
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._sock)
        loop.add_reader(self._sock, self._on_readable)
        self._loop = loop
        return loop

    # -- bursts ------------------------------------------------------------------------------

    async def burst(self, address: str, count: int, spacing: float, timeout: float) -> BurstResult:
        """Send ``count`` echoes to ``address`` ``spacing`` s apart, each waiting ``timeout`` s.

        Never raises for network trouble: an unresolvable name or a send error is reported in
        :attr:`BurstResult.reason` (a failed send counts as sent and lost).
        """
        _check_burst_args(count, spacing, timeout)
        try:
            ip = await _resolve(address)
        except _ResolveError as exc:
            return BurstResult(address, 0, (), str(exc))
        if self._closed:
            return BurstResult(ip, 0, (), "ICMP engine closed")
        loop = self._attach()
        burst = _Burst(loop.create_future())
        try:
            await self._send_all(burst, ip, count, spacing, timeout)
            burst.sending = False
            burst.maybe_finish()
            await burst.done
        finally:
            self._forget(burst)
        return BurstResult(ip, len(burst.rtts), tuple(burst.rtts), "; ".join(burst.errors))

    async def _send_all(
        self, burst: _Burst, ip: str, count: int, spacing: float, timeout: float
    ) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for index in range(count):
            delay = start + index * spacing - loop.time()
            if index and delay > 0:
                await asyncio.sleep(delay)
            if self._bucket is not None and (wait := self._bucket.reserve()) > 0:
                await asyncio.sleep(wait)
            if self._closed:
                burst.error("ICMP engine closed")
                return
            await self._send_one(burst, ip, timeout)

    async def _send_one(self, burst: _Burst, ip: str, timeout: float) -> None:
        index = len(burst.rtts)
        burst.rtts.append(None)
        burst.pending += 1
        echo: _Echo | None = None
        try:
            echo = self._new_echo(burst, index, ip, timeout)
            await self._sendto(echo, ip)
        except OSError as exc:
            self.stats.send_errors += 1
            burst.error(f"send to {ip} failed: {exc.strerror or exc}")
            if echo is None:
                burst.settle(index, None)
            elif self._inflight.get(echo.key) is echo:  # (close() may have settled it already)
                self._lose(echo)
            return
        self.stats.sent += 1
        assert self._loop is not None
        echo.timer = self._loop.call_later(timeout, self._expire, echo)
        self._unread_sends += 1
        if self._unread_sends >= _DRAIN_EVERY:  # thousands of sends in one loop iteration
            self._drain(_MAX_DRAIN)  # would otherwise overflow the receive buffer

    def _new_echo(self, burst: _Burst, index: int, ip: str, timeout: float) -> _Echo:
        """Register an echo under the next (address, sequence) key not already in flight."""
        for _ in range(65536):
            self._counter += 1
            key = (ip, self._counter & 0xFFFF)
            if key not in self._inflight:
                echo = _Echo(burst, index, key, _SERIAL.pack(self._counter), timeout)
                self._inflight[key] = echo
                burst.echoes.append(echo)
                return echo
        raise OSError(errno.EBUSY, "all 65536 ICMP sequence numbers in flight")

    def _packet(self, echo: _Echo) -> bytes:
        payload = self._cookie + echo.serial + self._padding
        raw = self.mode == "raw"
        return self._codec.echo_request(self._ident, echo.key[1], payload, with_checksum=raw)

    async def _sendto(self, echo: _Echo, ip: str) -> None:
        packet = self._packet(echo)
        for attempt in range(_SEND_RETRIES + 1):
            echo.sent_mono_ns = time.monotonic_ns()
            echo.sent_ns = time.time_ns()
            try:
                self._sock.sendto(packet, (ip, 0))
                return
            except (BlockingIOError, InterruptedError) as exc:
                error: OSError = exc
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                error = exc
            if attempt == _SEND_RETRIES or self._closed:
                raise error
            await asyncio.sleep(0.001 * 2**attempt)

    def _expire(self, echo: _Echo) -> None:
        """Timer callback: the echo is lost unless its reply is already queued in the socket.

        When the loop is busy (thousands of sends in one iteration) replies can sit unread in the
        socket while their timers come due; the loop runs the reader first but it reads at most
        ``_MAX_DRAIN`` packets. Draining here before giving up avoids those false timeouts; the
        kernel timestamp then decides whether the reply came within ``timeout``.
        """
        if self._inflight.get(echo.key) is echo:
            self._drain(_MAX_EXPIRE_DRAIN)
        if self._inflight.get(echo.key) is echo:
            self.stats.timed_out += 1
            self._lose(echo)

    def _lose(self, echo: _Echo) -> None:
        del self._inflight[echo.key]
        if echo.timer is not None:
            echo.timer.cancel()
        echo.burst.settle(echo.index, None)

    def _forget(self, burst: _Burst) -> None:
        """Drop the state of a finished or cancelled burst so late replies find nothing."""
        for echo in burst.echoes:
            if self._inflight.get(echo.key) is echo:
                del self._inflight[echo.key]
                if echo.timer is not None:
                    echo.timer.cancel()
        burst.echoes.clear()

    # -- receive -----------------------------------------------------------------------------

    def _on_readable(self) -> None:
        """Reader callback: drain queued replies (bounded; the loop calls again if more remain)."""
        self._drain(_MAX_DRAIN)

    def _drain(self, limit: int) -> None:
        self._unread_sends = 0
        recvmsg = self._sock.recvmsg
        for _ in range(limit):
            if self._closed:
                return
            try:
                data, ancdata, _flags, src = recvmsg(_RECV_SIZE, _ANC_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. a queued ICMP error on a ping socket
                self.stats.recv_errors += 1
                log.debug("ICMP receive error: %s", exc)
                continue
            self._on_packet(data, ancdata, src[0])

    def _on_packet(self, data: bytes, ancdata: list[tuple[int, int, bytes]], src: str) -> None:
        parsed = self._codec.parse_reply(data, has_ip_header=self.mode == "raw")
        if parsed is None:
            self.stats.foreign += 1
            return
        ident, seq, payload = parsed
        if payload[:8] != self._cookie or (self.mode == "raw" and ident != self._ident):
            self.stats.foreign += 1
            return
        echo = self._inflight.get((src, seq))
        if echo is None or payload[8:16] != echo.serial:
            self.stats.late += 1
            return
        rtt = self._rtt(echo, ancdata)
        if rtt > echo.timeout:  # arrived after its deadline, read before its timer ran
            self.stats.late += 1
            self.stats.timed_out += 1
            self._lose(echo)
            return
        del self._inflight[echo.key]
        if echo.timer is not None:
            echo.timer.cancel()
        self.stats.received += 1
        echo.burst.settle(echo.index, rtt)

    def _rtt(self, echo: _Echo, ancdata: list[tuple[int, int, bytes]]) -> float:
        """Kernel-timestamped RTT if plausible, else the user-space (monotonic) one."""
        user_ns = time.monotonic_ns() - echo.sent_mono_ns
        rx_ns = _kernel_rx_ns(ancdata)
        if rx_ns is not None and 0 < rx_ns - echo.sent_ns <= user_ns:
            return (rx_ns - echo.sent_ns) / 1e9
        self.stats.user_timestamps += 1
        return max(user_ns, 1) / 1e9


def _check_burst_args(count: int, spacing: float, timeout: float) -> None:
    if count < 0 or spacing < 0 or timeout <= 0:
        raise ValueError(
            f"need count >= 0, spacing >= 0, timeout > 0; got {count}, {spacing}, {timeout}"
        )


class _ResolveError(Exception):
    pass


async def _resolve(address: str) -> str:
    """The IPv4 literal to ping for ``address`` (resolved once per burst)."""
    try:
        return str(ipaddress.IPv4Address(address))
    except ValueError:
        pass
    if ":" in address:
        raise _ResolveError(f"IPv6 address {address!r} is not supported yet")
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(address, None, family=socket.AF_INET, type=socket.SOCK_RAW)
    except (socket.gaierror, UnicodeError) as exc:
        raise _ResolveError(f"cannot resolve {address!r}: {getattr(exc, 'strerror', exc)}") from exc
    if not infos:
        raise _ResolveError(f"cannot resolve {address!r}: no IPv4 address")
    return str(infos[0][4][0])


def loss_reason(sent: int, received: int) -> str:
    """Human summary of a burst's loss ("" when nothing was lost)."""
    if sent and not received:
        return f"no reply to {sent} echo{'es' if sent != 1 else ''}"
    if received < sent:
        return f"{sent - received} of {sent} echoes lost"
    return ""


@register("icmp")
async def icmp_probe(ctx: ProbeContext, target: Target, params: ProbeParams) -> ProbeResult:
    """Ping ``target`` with one burst through the shared engine in ``ctx.icmp``."""
    started = time.time()
    engine: IcmpEngine | None = ctx.icmp
    if engine is None:
        return ProbeResult(kind="icmp", ok=False, started_at=started, reason="no ICMP engine")
    burst = await engine.burst(target.address, params.count, params.spacing, params.timeout)
    rtts = tuple(rtt for rtt in burst.rtts if rtt is not None)
    reason = "; ".join(r for r in (loss_reason(burst.sent, len(rtts)), burst.reason) if r)
    extra = {"address": burst.address} if burst.address != target.address else {}
    return ProbeResult(
        kind="icmp",
        ok=bool(rtts),
        started_at=started,
        duration=time.time() - started,
        sent=burst.sent,
        received=len(rtts),
        rtts=rtts,
        reason=reason,
        extra=extra,
    )
