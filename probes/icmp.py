"""ICMP echo engine: every ping netmon sends goes through one socket per address family.

Why shared sockets
    aioping opened a raw socket per ping. The kernel hands every raw ICMP socket a copy of every
    ICMP packet the host receives, so N concurrent pings cost N x N copies, ran into fd limits and
    produced false timeouts when receive buffers overflowed. icmplib lost replies under
    concurrency. Here an :class:`IcmpEngine` owns at most two non-blocking sockets (IPv4 opened at
    start, IPv6 lazily on the first IPv6 target), each drained by one ``loop.add_reader`` callback.

Per-echo cost (the engine must ping 20,000 devices x 5 echoes a minute in one process)
    Nothing is allocated per echo but one small tuple in the in-flight dict and one int in a
    timeout queue: no task, future, ``TimerHandle`` or ``asyncio.sleep`` per echo.

    * Sending: a burst is registered once with the engine's *sender*, which sends every echo due
      (all bursts, up to a few ms ahead) in one pass from one timer: the first echoes of bursts
      started in the same loop iteration go out together, and later echoes of all bursts come
      from one heap. The packet is ``struct.pack_into`` a preallocated buffer; its checksum is
      the precomputed sum of the constant words plus sequence and serial (ones' complement sums
      are sums mod 0xFFFF), never a loop over the payload. The optional echo/s cap
      (``rate_limit``) is a token bucket consulted once per pass.
    * Timeouts: echoes are appended to one FIFO per distinct timeout value (so deadlines are
      sorted) and a single sweep timer, armed for the earliest deadline plus a few ms of slack,
      expires them in bulk. Before expiring anything the sweep drains the sockets, so a reply
      already queued (its kernel timestamp within the timeout) is never a false loss.
    * Receiving: ``recvmsg_into`` a preallocated buffer, one ``unpack_from`` for the ICMP header,
      cookie and serial, one dict lookup by serial. The send path drains every 256 sends, so a
      pass of thousands of sends cannot overflow the receive buffer.

Kernel filtering
    Raw IPv4 sockets get ``ICMP_FILTER`` (echo replies only, checked before the kernel clones a
    packet for the socket) and a classic BPF socket filter (``SO_ATTACH_FILTER``) that accepts
    only echo replies carrying this engine's identifier and cookie, so other processes' pings
    never reach user space (:attr:`EngineStats.foreign` stays 0). Raw IPv6 sockets get
    ``ICMP6_FILTER`` and the same BPF program (there the packet starts at the ICMPv6 header).
    Ping sockets (dgram) need neither: the kernel delivers only the socket's own replies.

Matching
    The payload carries an 8-byte per-engine cookie and the echo's *serial*, a 64-bit engine-wide
    counter that keys the in-flight dict; the ICMP sequence is its low 16 bits. A reply counts
    only if cookie, serial, sequence and source address all match (and, on raw sockets, the
    identifier), so replies to other processes' pings and stale replies to a reused sequence
    number are never counted. A reply read after its echo expired finds nothing and is counted
    in :attr:`EngineStats.late`.

Timestamps
    RTT = kernel receive time (``SO_TIMESTAMPNS`` control message, IPv4 and IPv6) -
    ``time.time_ns()`` taken just before ``sendto``; both are CLOCK_REALTIME. User-space receive
    times added ~2.4 ms of event-loop queueing under load. If the control message is missing, or
    a clock step makes the kernel figure implausible, the monotonic user-space RTT is used.

Modes
    ``raw`` (SOCK_RAW, needs CAP_NET_RAW) or ``dgram`` (unprivileged "ping socket", needs the gid
    inside ``net.ipv4.ping_group_range``, which governs IPv6 ping sockets too). ``auto`` tries
    raw then dgram. The IPv6 socket uses the mode the IPv4 socket got.

Names
    Targets may be IPv4/IPv6 literals or host names. Names are resolved with ``AF_UNSPEC`` and
    cached (:class:`NameCache`): the first burst waits for the lookup, later bursts use the cached
    answer, and once it is older than ``resolve_ttl`` one background refresh runs (failures keep
    the last good answer). The first resolved address whose family has a working socket is
    pinged, in the resolver's (RFC 6724 / gai.conf) order. Never a lookup per echo.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import heapq
import itertools
import logging
import os
import secrets
import socket
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from probes.base import JobSpec, ProbeKind, ProbeParams, ProbeResult, Target, failed

if TYPE_CHECKING:
    from netmon.inventory import Device, Inventory, Site
    from netmon.settings import Settings

log = logging.getLogger("netmon.probes.icmp")

Mode = Literal["auto", "raw", "dgram"]
Kind = Literal["raw", "dgram"]

# Linux constants Python 3.11's socket module does not export.
SOL_RAW = 255
ICMP_FILTER = 1
ICMP6_FILTER = 1
SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
IPPROTO_ICMPV6 = getattr(socket, "IPPROTO_ICMPV6", 58)

ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST = 0, 8
ICMP6_ECHO_REQUEST, ICMP6_ECHO_REPLY = 128, 129
PAYLOAD_SIZE = 56  # classic ping size: cookie (8) + serial (8) + zero padding
DEFAULT_BUFSIZE = 32 << 20  # SO_RCVBUF/SO_SNDBUF request; a queued reply costs ~1-2 KiB of it
MIN_GOOD_RCVBUF = 4 << 20  # warn below this: ~3,000 queued replies
DEFAULT_RESOLVE_TTL = 300.0  # seconds a resolved name is used before a background refresh
DEFAULT_NEGATIVE_TTL = 30.0  # seconds a failed lookup is remembered (no lookup storm)
_RECV_SIZE = 512  # IP header (<= 60) + ICMP header (8) + payload; longer replies are truncated
_MAX_DRAIN = 4096  # packets per readiness event before yielding to the loop
_DRAIN_EVERY = 256  # sends between drains inside one sender pass
_MAX_EXPIRE_DRAIN = 65536  # packets read before the sweep declares echoes lost
_SEND_PASS = 2048  # echoes sent per sender pass before yielding to the loop
_SEND_AHEAD = 0.002  # s: the sender also sends echoes due this soon (coalesces wakeups)
_SWEEP_SLACK = 0.005  # s: the sweep runs this long after the earliest deadline (batches expiry)
_SEND_RETRIES = 5  # on EAGAIN/ENOBUFS, retry after 1, 2, 4, 8, 16 ms
_V6_RETRY = 60.0  # s before retrying to open an IPv6 socket that failed
_NAME_CACHE_MAX = 200_000  # entries; beyond that the cache starts over

_ECHO = struct.Struct("!BBHHHQQ")  # type, code, checksum, identifier, sequence, cookie, serial
_TIMESPEC = struct.Struct("@ll")
_ANC_SIZE = socket.CMSG_SPACE(_TIMESPEC.size)
_BPF_INSN = struct.Struct("HBBI")

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
    paced: int = 0  # sender passes cut short by the echo/s cap
    send_retries: int = 0  # EAGAIN/ENOBUFS on send, retried later


# -- names ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Destination:
    """A resolved address: what to put in ``sendto`` and what a reply's source must be."""

    family: int
    ip: str  # canonical text form (compressed IPv6, no scope); what replies come from
    sockaddr: tuple[str, int] | tuple[str, int, int, int]


Lookup = Callable[[str], Awaitable[list[tuple[int, str]]]]


async def system_lookup(name: str) -> list[tuple[int, str]]:
    """``getaddrinfo(name, AF_UNSPEC)`` as (family, address) pairs in the resolver's order."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(name, None, family=socket.AF_UNSPEC, type=socket.SOCK_RAW)
    return [(info[0], str(info[4][0])) for info in infos]


class ResolveError(Exception):
    pass


def parse_literal(address: str) -> Destination | None:
    """The :class:`Destination` of an IPv4/IPv6 literal (``fe80::1%eth0`` too), else None."""
    try:
        ip = socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, address))
        return Destination(socket.AF_INET, ip, (ip, 0))
    except (OSError, ValueError):
        pass
    text, _, scope = address.partition("%")
    try:
        ip = socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, text))
    except (OSError, ValueError):
        return None
    scope_id = 0
    if scope:
        try:
            scope_id = int(scope) if scope.isdigit() else socket.if_nametoindex(scope)
        except OSError:
            return None
    return Destination(socket.AF_INET6, ip, (ip, 0, 0, scope_id))


class _Entry:
    __slots__ = ("dests", "error", "fresh_until", "refreshing")

    def __init__(self) -> None:
        self.dests: tuple[Destination, ...] = ()
        self.error = ""
        self.fresh_until = 0.0
        self.refreshing: asyncio.Future[None] | None = None


class NameCache:
    """Host name -> addresses, cached for ``ttl`` s and refreshed in the background.

    * literal: parsed once, cached for good;
    * unknown name: the caller waits for the lookup (concurrent callers share it);
    * fresh entry: returned at once, no lookup;
    * stale entry with addresses: returned at once, and one background refresh starts (a failed
      refresh keeps the old addresses and is retried after ``negative_ttl``);
    * failed lookup: the error is returned for ``negative_ttl`` s, then looked up again.

    ``lookup`` and ``clock`` are seams for tests.
    """

    def __init__(
        self,
        lookup: Lookup = system_lookup,
        ttl: float = DEFAULT_RESOLVE_TTL,
        negative_ttl: float = DEFAULT_NEGATIVE_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lookup = lookup
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.clock = clock
        self.lookups = 0  # calls to ``lookup`` (for tests and metrics)
        self._literals: dict[str, Destination | None] = {}
        self._names: dict[str, _Entry] = {}
        self._background: set[asyncio.Task[None]] = set()

    def literal(self, address: str) -> Destination | None:
        try:
            return self._literals[address]
        except KeyError:
            pass
        if len(self._literals) >= _NAME_CACHE_MAX:
            self._literals.clear()
        dest = self._literals[address] = parse_literal(address)
        return dest

    async def resolve(self, name: str) -> tuple[Destination, ...]:
        """Addresses for ``name`` (a literal or a host name); raises :class:`ResolveError`."""
        dest = self.literal(name)
        if dest is not None:
            return (dest,)
        entry = self._names.get(name)
        if entry is None:
            if len(self._names) >= _NAME_CACHE_MAX:
                self._names.clear()
            entry = self._names[name] = _Entry()
        now = self.clock()
        if entry.fresh_until <= now and entry.refreshing is None:
            entry.refreshing = asyncio.get_running_loop().create_future()
            task = asyncio.create_task(self._refresh(name, entry))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        if not entry.dests and entry.refreshing is not None:
            await asyncio.shield(entry.refreshing)  # first lookup: wait for it
        if entry.dests:
            return entry.dests
        raise ResolveError(entry.error or f"cannot resolve {name!r}")

    async def _refresh(self, name: str, entry: _Entry) -> None:
        self.lookups += 1
        try:
            try:
                pairs = await self.lookup(name)
            except (OSError, UnicodeError, ValueError) as exc:
                pairs, why = [], getattr(exc, "strerror", None) or str(exc)
            else:
                why = "no address"
            dests = tuple(
                d for fam, ip in pairs if (d := parse_literal(ip)) is not None and d.family == fam
            )
            dests = tuple(dict.fromkeys(dests))  # drop duplicates, keep order
            if dests:
                entry.dests, entry.error = dests, ""
                entry.fresh_until = self.clock() + self.ttl
            else:
                entry.fresh_until = self.clock() + self.negative_ttl
                if entry.dests:
                    log.warning("cannot refresh %r (%s); keeping %s", name, why, entry.dests[0].ip)
                else:
                    entry.error = f"cannot resolve {name!r}: {why}"
        finally:
            done, entry.refreshing = entry.refreshing, None
            if done is not None and not done.done():
                done.set_result(None)

    def close(self) -> None:
        for task in list(self._background):
            task.cancel()


# -- sockets -------------------------------------------------------------------------------------


def _checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum (reference; the send path computes it incrementally)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def bpf_program(family: int, ident: int, cookie: int) -> list[tuple[int, int, int, int]]:
    """Classic BPF: accept echo replies with our identifier and cookie, drop everything else.

    IPv4 raw sockets see the IP header, so the ICMP offset comes from its IHL
    (``ldxb 4*([0]&0xf)``); IPv6 raw sockets see the ICMPv6 header first (``ldx #0``).
    """
    if family == socket.AF_INET:
        ldx, reply = (0xB1, 0, 0, 0), ICMP_ECHO_REPLY  # ldxb 4*([0]&0xf)
    else:
        ldx, reply = (0x01, 0, 0, 0), ICMP6_ECHO_REPLY  # ldx #0
    return [
        ldx,
        (0x50, 0, 0, 0),  # 1: ldb [x+0]        type
        (0x15, 0, 7, reply),  # 2: jeq #reply, 3, drop
        (0x48, 0, 0, 4),  # 3: ldh [x+4]        identifier
        (0x15, 0, 5, ident),  # 4: jeq #ident, 5, drop
        (0x40, 0, 0, 8),  # 5: ld [x+8]         cookie, high word
        (0x15, 0, 3, cookie >> 32),
        (0x40, 0, 0, 12),  # 7: ld [x+12]        cookie, low word
        (0x15, 0, 1, cookie & 0xFFFFFFFF),
        (0x06, 0, 0, 0xFFFFFFFF),  # 9: ret #-1  accept
        (0x06, 0, 0, 0),  # 10: ret #0  drop
    ]


def attach_bpf(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    """``setsockopt(SO_ATTACH_FILTER)`` with a ``struct sock_fprog`` (the kernel copies it)."""
    code = b"".join(_BPF_INSN.pack(*insn) for insn in program)
    buf = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HL", len(program), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def _new_socket(family: int, kind: int) -> socket.socket:
    """Create an ICMP socket of ``family``/``kind`` (SOCK_RAW or SOCK_DGRAM). Tests replace this."""
    proto = socket.IPPROTO_ICMP if family == socket.AF_INET else IPPROTO_ICMPV6
    return socket.socket(family, kind, proto)


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


def _create(family: int, mode: Mode) -> tuple[socket.socket, Kind]:
    kinds: dict[Kind, int] = {"raw": socket.SOCK_RAW, "dgram": socket.SOCK_DGRAM}
    order: list[Kind] = ["raw", "dgram"] if mode == "auto" else [mode]
    errors: dict[str, OSError] = {}
    for name in order:
        try:
            return _new_socket(family, kinds[name]), name
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


class _Channel:
    """One socket (one address family) and everything the hot paths need about it."""

    __slots__ = (
        "family", "sock", "kind", "bpf", "buf", "bufs", "out", "has_ip_header", "echo_type",
        "reply_type", "check_ident", "neg_base", "with_checksum", "rcvbuf",
    )  # fmt: skip

    def __init__(
        self, family: int, sock: socket.socket, kind: Kind, ident: int, cookie: int, bpf: bool
    ) -> None:
        v4 = family == socket.AF_INET
        self.family = family
        self.sock = sock
        self.kind = kind
        self.buf = bytearray(_RECV_SIZE)
        self.bufs = [self.buf]
        self.out = bytearray(_ECHO.size + PAYLOAD_SIZE - 16)  # header + cookie + serial + zeros
        self.has_ip_header = v4 and kind == "raw"
        self.echo_type = ICMP_ECHO_REQUEST if v4 else ICMP6_ECHO_REQUEST
        self.reply_type = ICMP_ECHO_REPLY if v4 else ICMP6_ECHO_REPLY
        self.check_ident = kind == "raw"  # ping sockets: the kernel rewrites the identifier
        # Only raw IPv4 needs our checksum: ping sockets and ICMPv6 raw sockets get the kernel's.
        self.with_checksum = v4 and kind == "raw"
        # Ones' complement sum of the constant words (type/code, identifier, cookie) mod 0xFFFF,
        # negated: checksum = (neg_base - sequence - serial) % 0xFFFF.
        self.neg_base = -((self.echo_type << 8) + ident + cookie)
        self.bpf = False
        self.rcvbuf = 0
        sock.setblocking(False)
        if kind == "raw":
            if v4:
                block = ~(1 << ICMP_ECHO_REPLY) & 0xFFFFFFFF  # a set bit blocks that type
                sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("I", block))
            else:
                words = [0xFFFFFFFF] * 8  # a set bit blocks that type
                words[ICMP6_ECHO_REPLY >> 5] &= ~(1 << (ICMP6_ECHO_REPLY & 31)) & 0xFFFFFFFF
                sock.setsockopt(IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("8I", *words))
            if bpf:
                try:
                    attach_bpf(sock, bpf_program(family, ident, cookie))
                    self.bpf = True
                except OSError as exc:
                    log.warning("cannot attach the BPF reply filter (%s); filtering in Python", exc)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError as exc:
            log.warning("no kernel receive timestamps (%s); RTTs use user-space time", exc)
        if self.bpf:  # drop whatever was queued before the filter was attached
            for _ in range(_MAX_EXPIRE_DRAIN):
                try:
                    sock.recv(1)
                except OSError:
                    break

    def set_bufsize(self, size: int) -> None:
        _set_buffer(self.sock, SO_RCVBUFFORCE, socket.SO_RCVBUF, size)
        _set_buffer(self.sock, SO_SNDBUFFORCE, socket.SO_SNDBUF, size)
        self.rcvbuf = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        if self.rcvbuf < min(size, MIN_GOOD_RCVBUF):
            log.warning(
                "ICMP receive buffer is only %d KiB (asked for %d KiB): bursts of replies may be "
                "dropped; raise net.core.rmem_max (sysctl) or grant CAP_NET_ADMIN",
                self.rcvbuf >> 10, size >> 10,
            )  # fmt: skip

    def kernel_drops(self) -> int | None:
        """Packets the kernel dropped for this socket (full buffer), from /proc/net/*."""
        v4 = self.family == socket.AF_INET
        table = ("raw" if v4 else "raw6") if self.kind == "raw" else ("icmp" if v4 else "icmp6")
        try:
            inode = str(os.fstat(self.sock.fileno()).st_ino)
            lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except (OSError, ValueError):
            return None
        for line in lines:
            cols = line.split()
            if len(cols) > 9 and cols[9] == inode:
                return int(cols[-1])
        return None


class _TokenBucket:
    """Engine-wide pacing: ``rate`` echoes/s with up to ``capacity`` sent back to back."""

    def __init__(
        self,
        rate: float,
        capacity: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate_limit must be > 0 echoes/s, got {rate!r}")
        self.rate = rate
        self.capacity = capacity if capacity is not None else max(1.0, rate / 10)
        self.clock = clock
        self._tokens = self.capacity
        self._stamp = clock()

    def take(self, wanted: int) -> int:
        """Take up to ``wanted`` tokens now; returns how many were granted."""
        now = self.clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        granted = min(wanted, int(self._tokens))
        self._tokens -= granted
        return max(granted, 0)

    def wait(self) -> float:
        """Seconds until the next token."""
        return max(0.0, (1.0 - self._tokens) / self.rate)


# -- bursts --------------------------------------------------------------------------------------


class _Burst:
    """One :meth:`IcmpEngine.burst` call: its schedule, its echoes and its results."""

    __slots__ = (
        "chan", "dest", "src", "sockaddr", "count", "spacing", "timeout_ns", "start", "next",
        "rtts", "pending", "sending", "done", "errors", "serials", "cancelled", "retries", "tq",
    )  # fmt: skip

    def __init__(
        self,
        chan: _Channel,
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

    Open it with the synchronous :meth:`open` (safe inside a running loop: it only creates and
    configures the IPv4 socket). The engine attaches to the running loop lazily on the first
    :meth:`burst`; all bursts must then run on that loop. :meth:`close` (or ``with``/``async
    with``) releases the sockets; bursts still waiting finish with their echoes lost.
    """

    def __init__(
        self,
        chan4: _Channel,
        *,
        ident: int,
        cookie: int,
        rate_limit: float | None = None,
        bufsize: int = DEFAULT_BUFSIZE,
        names: NameCache | None = None,
        bpf: bool = True,
    ) -> None:
        self.mode: Kind = chan4.kind
        self.stats = EngineStats()
        self.names = names if names is not None else NameCache()
        self._ident = ident
        self._cookie = cookie
        self._bpf = bpf
        self._bufsize = bufsize
        self._channels: dict[int, _Channel] = {socket.AF_INET: chan4}
        self._v6_error = ""
        self._v6_retry_at = 0.0
        self._serial = secrets.randbits(32)
        self._inflight: dict[int, _Echo] = {}
        self._expiry: dict[int, deque[int]] = {}  # timeout ns -> serials in send order
        self._ready: deque[_Burst] = deque()  # bursts whose next echo is due now
        self._later: list[tuple[float, int, _Burst]] = []  # heap: (due, tiebreak, burst)
        self._tickets = itertools.count()  # heap tiebreak
        self._bucket = _TokenBucket(rate_limit) if rate_limit is not None else None
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
    ) -> IcmpEngine:
        """Open the IPv4 socket. ``rate_limit`` caps echoes/s across all bursts (None: no cap).

        Raises :class:`IcmpUnavailable` if no socket of the requested mode can be opened. The
        IPv6 socket is opened on the first IPv6 target, in the same mode.
        """
        if mode not in ("auto", "raw", "dgram"):
            raise ValueError(f"mode must be 'auto', 'raw' or 'dgram', got {mode!r}")
        ident, cookie = secrets.randbits(16), secrets.randbits(64)
        sock, kind = _create(socket.AF_INET, mode)
        try:
            chan = _Channel(socket.AF_INET, sock, kind, ident, cookie, bpf)
        except OSError:
            sock.close()
            raise
        how = "raw socket (CAP_NET_RAW)" if kind == "raw" else "unprivileged ping socket"
        log.info("ICMP engine uses a %s; rate limit %s echo/s", how, rate_limit or "none")
        names = NameCache(lookup or system_lookup, ttl=resolve_ttl)
        return cls(
            chan, ident=ident, cookie=cookie, rate_limit=rate_limit, bufsize=bufsize,
            names=names, bpf=bpf,
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

    def _channel(self, family: int) -> _Channel | str:
        """The socket for ``family``, opening the IPv6 one on first use; or why there is none."""
        chan = self._channels.get(family)
        if chan is not None:
            return chan
        if self._v6_error and time.monotonic() < self._v6_retry_at:
            return self._v6_error
        try:
            sock = _new_socket(family, socket.SOCK_RAW if self.mode == "raw" else socket.SOCK_DGRAM)
        except OSError as exc:
            self._v6_error = f"cannot open an ICMPv6 {self.mode} socket: {exc.strerror or exc}"
            self._v6_retry_at = time.monotonic() + _V6_RETRY
            log.warning("%s", self._v6_error)
            return self._v6_error
        try:
            chan = _Channel(family, sock, self.mode, self._ident, self._cookie, self._bpf)
            chan.set_bufsize(self._bufsize)
        except OSError as exc:
            sock.close()
            self._v6_error = f"cannot configure the ICMPv6 socket: {exc.strerror or exc}"
            self._v6_retry_at = time.monotonic() + _V6_RETRY
            return self._v6_error
        self._channels[family] = chan
        if self._loop is not None and not self._loop.is_closed():
            self._loop.add_reader(sock, self._drain, chan, _MAX_DRAIN)
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
        chan: _Channel | str = ""
        for choice in dests:  # the first address whose family has a socket
            chan, dest = self._channel(choice.family), choice
            if not isinstance(chan, str):
                break
        if isinstance(chan, str) or dest is None:
            return BurstResult(dests[0].ip, 0, (), str(chan))
        if not count:
            return BurstResult(dest.ip, 0, ())
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
        try:
            await burst.done
        finally:
            if burst.pending or burst.sending:  # cancelled (or the loop is going away)
                self._forget(burst)
        sent = burst.next
        rtts = burst.rtts if sent == count else burst.rtts[:sent]
        return BurstResult(dest.ip, sent, tuple(rtts), "; ".join(burst.errors))

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
        """Send every echo that is due (or due within ``_SEND_AHEAD``), bounded per pass."""
        if self._closed:
            return
        ready, later = self._ready, self._later
        horizon = time.monotonic() + _SEND_AHEAD
        while later and later[0][0] <= horizon:
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
        if later:
            self._arm_sender(later[0][0])

    def _send_echoes(self, budget: int) -> float:
        """Send up to ``budget`` echoes from the ready queue; returns a retry delay on EAGAIN."""
        ready, later = self._ready, self._later
        inflight = self._inflight
        popleft, heappush = ready.popleft, heapq.heappush
        pack_into, time_ns, mono_ns = _ECHO.pack_into, time.time_ns, time.monotonic_ns
        ident, cookie = self._ident, self._cookie
        serial, tickets = self._serial, self._tickets
        attempts = sent = unread = 0
        earliest = self._sweep_at
        retry_in = 0.0
        chan: _Channel | None = None
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
                if index < burst.count:
                    heappush(later, (burst.start + index * burst.spacing, next(tickets), burst))
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
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
        loop = self._loop
        assert loop is not None
        self._sweep_at = deadline_ns
        delay = (deadline_ns - time.monotonic_ns()) / 1e9 + _SWEEP_SLACK
        self._sweep_handle = loop.call_later(max(0.0, delay), self._sweep)

    def _sweep(self) -> None:
        """Expire every echo whose deadline passed (after reading what is already queued)."""
        self._sweep_handle = None
        self._sweep_at = float("inf")
        if self._closed:
            return
        for chan in list(self._channels.values()):
            self._drain(chan, _MAX_EXPIRE_DRAIN)
        now = time.monotonic_ns()
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

    def _drain(self, chan: _Channel, limit: int) -> None:
        """Read up to ``limit`` queued packets from ``chan`` and settle the echoes they answer."""
        recv_into = chan.sock.recvmsg_into
        bufs, buf = chan.bufs, chan.buf
        inflight, stats = self._inflight, self.stats
        unpack_from, mono_ns = _ECHO.unpack_from, time.monotonic_ns
        has_ip, reply_type, cookie = chan.has_ip_header, chan.reply_type, self._cookie
        ident = self._ident if chan.check_ident else -1
        unpack_ts, sol_socket = _TIMESPEC.unpack_from, socket.SOL_SOCKET
        now = mono_ns()
        for _ in range(limit):
            try:
                nbytes, anc, _flags, addr = recv_into(bufs, _ANC_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. a queued ICMP error on a ping socket; or closed
                if self._closed:
                    return
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
            if anc:
                level, ctype, data = anc[0]
                if level == sol_socket and ctype == SCM_TIMESTAMPNS:
                    sec, nsec = unpack_ts(data)
                    rtt_ns = sec * 1_000_000_000 + nsec - echo[4]
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
            if not burst.pending and not burst.sending:
                burst.finish_if_done()


def _check_burst_args(count: int, spacing: float, timeout: float) -> None:
    if count < 0 or spacing < 0 or timeout <= 0:
        raise ValueError(
            f"need count >= 0, spacing >= 0, timeout > 0; got {count}, {spacing}, {timeout}"
        )


def loss_reason(sent: int, received: int) -> str:
    """Human summary of a burst's loss ("" when nothing was lost)."""
    if sent and not received:
        return f"no reply to {sent} echo{'es' if sent != 1 else ''}"
    if received < sent:
        return f"{sent - received} of {sent} echoes lost"
    return ""


@dataclass(frozen=True, slots=True)
class IcmpFindings:
    """What a burst found beyond reachability: the address a host name resolved to."""

    address: str

    def to_json(self) -> dict[str, Any]:
        return {"address": self.address}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> IcmpFindings:
        return cls(str(data["address"]))


class IcmpKind(ProbeKind[IcmpEngine | None, ProbeParams]):
    """Ping: one burst per interval through the shared :class:`IcmpEngine`."""

    name = "icmp"
    reachability = 0  # ping is the first word on whether a device answers
    findings = IcmpFindings

    def enabled_by_default(self, device: Device) -> bool:
        return True  # a device without an address needs `probes: []` (an inventory check)

    def job(self, inventory: Inventory, site: Site, device: Device) -> JobSpec:
        eff = inventory.probe_settings(site)
        return JobSpec(eff.interval, ProbeParams(eff.count, eff.timeout, eff.spacing))

    def open(self, settings: Settings) -> IcmpEngine:
        from netmon.errors import ProbeUnavailable

        try:
            return IcmpEngine.open(mode=settings.icmp_mode, rate_limit=settings.icmp_rate_limit)  # type: ignore[arg-type]
        except IcmpUnavailable as exc:
            raise ProbeUnavailable(str(exc)) from exc

    def close(self, engine: IcmpEngine | None) -> None:
        if engine is not None:
            engine.close()

    async def probe(
        self, engine: IcmpEngine | None, target: Target, params: ProbeParams
    ) -> ProbeResult:
        """Ping ``target`` with one burst through the shared engine."""
        started = time.time()
        if engine is None:
            return failed(self.name, started, "no ICMP engine")
        burst = await engine.burst(target.address, params.count, params.spacing, params.timeout)
        rtts = tuple(rtt for rtt in burst.rtts if rtt is not None)
        reason = "; ".join(r for r in (loss_reason(burst.sent, len(rtts)), burst.reason) if r)
        found = IcmpFindings(burst.address) if burst.address != target.address else None
        return ProbeResult(
            self.name, bool(rtts), started, time.time() - started, burst.sent, len(rtts), rtts,
            reason, found,
        )  # fmt: skip


KIND = IcmpKind()
