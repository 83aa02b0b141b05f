"""ICMP sockets for the engine: privilege modes, kernel filters, buffers, one channel per family.

:mod:`probes.icmp_engine` owns at most two sockets, each wrapped in a :class:`Channel` that
carries everything its hot paths (send loop, receive drain) need: the preallocated packet and
receive buffers, the echo/reply types and the checksum base.

Modes
    ``raw`` (SOCK_RAW, needs CAP_NET_RAW) or ``dgram`` (unprivileged "ping socket", needs the gid
    inside ``net.ipv4.ping_group_range``, which governs IPv6 ping sockets too). ``auto`` tries
    raw then dgram (:func:`open_ipv4_channel`); when none opens, :class:`IcmpUnavailable` names
    the fixes. The IPv6 socket (:func:`open_ipv6_channel`) uses the mode the IPv4 socket got.

Kernel filtering
    Raw IPv4 sockets get ``ICMP_FILTER`` (echo replies only, checked before the kernel clones a
    packet for the socket) and a classic BPF socket filter (``SO_ATTACH_FILTER``,
    :func:`bpf_program`) that accepts only echo replies carrying this engine's identifier and
    cookie, so other processes' pings never reach user space (``EngineStats.foreign`` stays 0).
    Raw IPv6 sockets get ``ICMP6_FILTER`` and the same BPF program (there the packet starts at
    the ICMPv6 header). Ping sockets (dgram) need neither: the kernel delivers only the socket's
    own replies.

Checksum
    The packet is ``struct.pack_into`` :attr:`Channel.out`; only raw IPv4 needs our checksum
    (ping sockets and ICMPv6 raw sockets get the kernel's). It is the precomputed sum of the
    constant words (:attr:`Channel.neg_base`) plus sequence and serial (ones' complement sums
    are sums mod 0xFFFF), never a loop over the payload; :func:`checksum` is the RFC 1071
    reference the tests check it against.

Buffers and drops
    Receive and send buffers are asked for with ``SO_RCVBUFFORCE``/``SO_SNDBUFFORCE`` (needs
    CAP_NET_ADMIN), else the capped ``SO_RCVBUF``/``SO_SNDBUF``, with a warning when the
    receive buffer stays small; :meth:`Channel.kernel_drops` reads what the kernel dropped from
    ``/proc/net/*``.

Kernel receive timestamps
    Each reply carries the time the kernel received it (:func:`enable_timestamps`), so the
    engine judges it by the kernel's clock, not by when Python read it. ``SO_TIMESTAMPING``
    (software receive stamps) is asked for first, ``SO_TIMESTAMPNS`` only if that is refused.
    The difference matters: Linux turns receive stamping on for the whole host only after the
    first stamping socket appears (``net_enable_timestamp`` defers it to a workqueue), and a
    packet that arrived before that has no stamp. ``SO_TIMESTAMPNS`` then reports the time of
    the ``recvmsg`` call instead (``__sock_recv_timestamp``: "Race occurred between timestamp
    enabling and packet receiving"), which after a stalled event loop looks like a reply that
    came too late; ``SO_TIMESTAMPING`` sends no control message, which the engine can see and
    count (``EngineStats.no_kernel_timestamp``). To keep even that window shut,
    :func:`wait_for_stamping` (called when the engine opens) waits until the host stamps
    packets before the first echo can leave.
"""

from __future__ import annotations

import ctypes
import logging
import os
import socket
import struct
import time
from pathlib import Path
from typing import Literal

from netmon.errors import ProbeUnavailable

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
SO_TIMESTAMPING = getattr(socket, "SO_TIMESTAMPING", 37)  # (the _OLD one: native timespecs)
SCM_TIMESTAMPING = SO_TIMESTAMPING
SOF_TIMESTAMPING_RX_SOFTWARE = 1 << 3  # stamp received packets in software
SOF_TIMESTAMPING_SOFTWARE = 1 << 4  # report software stamps (ts[0] of struct scm_timestamping)
SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
IPPROTO_ICMPV6 = getattr(socket, "IPPROTO_ICMPV6", 58)

ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST = 0, 8
ICMP6_ECHO_REQUEST, ICMP6_ECHO_REPLY = 128, 129
PAYLOAD_SIZE = 56  # classic ping size: cookie (8) + serial (8) + zero padding
DEFAULT_BUFSIZE = 32 << 20  # SO_RCVBUF/SO_SNDBUF request; a queued reply costs ~1-2 KiB of it
MIN_GOOD_RCVBUF = 4 << 20  # warn below this: ~3,000 queued replies
_RECV_SIZE = 512  # IP header (<= 60) + ICMP header (8) + payload; longer replies are truncated
_MAX_FLUSH = 65536  # packets discarded after attaching the BPF filter (queued before it)

ECHO = struct.Struct("!BBHHHQQ")  # type, code, checksum, identifier, sequence, cookie, serial
TIMESPEC = struct.Struct("@ll")  # SCM_TIMESTAMPNS; the first of SCM_TIMESTAMPING's three
ANC_SIZE = socket.CMSG_SPACE(3 * TIMESPEC.size)  # room for either control message
_BPF_INSN = struct.Struct("HBBI")

FIX_CAP_NET_RAW = (
    "grant CAP_NET_RAW (systemd unit: AmbientCapabilities=CAP_NET_RAW; "
    "or `setcap cap_net_raw+ep <python interpreter>`)"
)
FIX_PING_GROUP = 'allow ping sockets: `sysctl -w net.ipv4.ping_group_range="0 2147483647"`'


class IcmpUnavailable(ProbeUnavailable):
    """No ICMP socket can be opened here; the message names the fixes."""


def checksum(data: bytes) -> int:
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


def new_socket(family: int, kind: int) -> socket.socket:
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


def create_socket(family: int, mode: Mode) -> tuple[socket.socket, Kind]:
    """A socket of ``mode`` (``auto``: raw, else dgram); raises :class:`IcmpUnavailable`."""
    kinds: dict[Kind, int] = {"raw": socket.SOCK_RAW, "dgram": socket.SOCK_DGRAM}
    order: list[Kind] = ["raw", "dgram"] if mode == "auto" else [mode]
    errors: dict[str, OSError] = {}
    for name in order:
        try:
            return new_socket(family, kinds[name]), name
        except OSError as exc:
            errors[name] = exc
    raise _unavailable(mode, errors)


def open_ipv4_channel(
    mode: Mode, ident: int, cookie: int, bpf: bool, timestamps: bool = True
) -> Channel:
    """The engine's IPv4 channel; raises :class:`IcmpUnavailable` (or OSError configuring it)."""
    sock, kind = create_socket(socket.AF_INET, mode)
    try:
        return Channel(socket.AF_INET, sock, kind, ident, cookie, bpf, timestamps)
    except OSError:
        sock.close()
        raise


def open_ipv6_channel(
    kind: Kind, ident: int, cookie: int, bpf: bool, bufsize: int, timestamps: bool = True
) -> Channel | str:
    """A configured IPv6 channel of ``kind`` (the IPv4 socket's), or why there is none."""
    try:
        sock = new_socket(socket.AF_INET6, socket.SOCK_RAW if kind == "raw" else socket.SOCK_DGRAM)
    except OSError as exc:
        error = f"cannot open an ICMPv6 {kind} socket: {exc.strerror or exc}"
        log.warning("%s", error)
        return error
    try:
        chan = Channel(socket.AF_INET6, sock, kind, ident, cookie, bpf, timestamps)
        chan.set_bufsize(bufsize)
    except OSError as exc:
        sock.close()
        return f"cannot configure the ICMPv6 socket: {exc.strerror or exc}"
    return chan


def _set_buffer(sock: socket.socket, force_opt: int, opt: int, size: int) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, force_opt, size)  # ignores rmem_max; CAP_NET_ADMIN
    except OSError:
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, size)  # capped at net.core.[rw]mem_max
        except OSError as exc:
            log.debug("cannot set socket buffer option %d: %s", opt, exc)


def _accept_only_echo_replies(sock: socket.socket, family: int) -> None:
    """``ICMP_FILTER`` / ``ICMP6_FILTER`` on a raw socket: every type but echo reply blocked."""
    if family == socket.AF_INET:
        block = ~(1 << ICMP_ECHO_REPLY) & 0xFFFFFFFF  # a set bit blocks that type
        sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("I", block))
    else:
        words = [0xFFFFFFFF] * 8  # a set bit blocks that type
        words[ICMP6_ECHO_REPLY >> 5] &= ~(1 << (ICMP6_ECHO_REPLY & 31)) & 0xFFFFFFFF
        sock.setsockopt(IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("8I", *words))


def _attach_reply_filter(sock: socket.socket, family: int, ident: int, cookie: int) -> bool:
    """Attach :func:`bpf_program`; False (filtering stays in Python) if the kernel refuses."""
    try:
        attach_bpf(sock, bpf_program(family, ident, cookie))
    except OSError as exc:
        log.warning("cannot attach the BPF reply filter (%s); filtering in Python", exc)
        return False
    return True


def enable_timestamps(sock: socket.socket) -> int:
    """Ask for kernel receive timestamps; returns the control message type they come in
    (``SCM_TIMESTAMPING``, else ``SCM_TIMESTAMPNS``), or 0 if the kernel refuses both."""
    flags = SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, flags)
        return SCM_TIMESTAMPING
    except OSError as exc:
        log.info("SO_TIMESTAMPING refused (%s); using SO_TIMESTAMPNS", exc)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        return SCM_TIMESTAMPNS
    except OSError as exc:
        log.warning("no kernel receive timestamps (%s); RTTs use user-space time", exc)
    return 0


def wait_for_stamping(wait: float) -> bool:
    """Whether the host stamps received packets, waiting up to ``wait`` s for it to start.

    Call it after a socket asked for stamping: from then on, while that socket is open, stamping
    stays on once it is on. Checked with UDP datagrams this function sends itself on 127.0.0.1
    (nothing leaves the host); one round trip, ~20 us, when stamping is on already.
    """
    flags = SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            probe.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, flags)
            probe.settimeout(1.0)
            until = time.monotonic() + wait
            while True:  # bounded by ``wait``
                probe.sendto(b"?", probe.getsockname())
                _data, anc, _flags, _addr = probe.recvmsg(1, ANC_SIZE)
                if anc or time.monotonic() >= until:
                    return bool(anc)
                time.sleep(0.001)
    except OSError as exc:
        log.debug("cannot check that the host stamps packets: %s", exc)
        return False


def _flush(sock: socket.socket) -> None:
    """Drop whatever was queued before the filter was attached."""
    for _ in range(_MAX_FLUSH):
        try:
            sock.recv(1)
        except OSError:
            break


class Channel:
    """One socket (one address family) and everything the hot paths need about it."""

    __slots__ = (
        "family", "sock", "kind", "bpf", "buf", "bufs", "out", "has_ip_header", "echo_type",
        "reply_type", "check_ident", "neg_base", "with_checksum", "rcvbuf", "ts_type",
    )  # fmt: skip

    def __init__(
        self,
        family: int,
        sock: socket.socket,
        kind: Kind,
        ident: int,
        cookie: int,
        bpf: bool,
        timestamps: bool = True,
    ) -> None:
        v4 = family == socket.AF_INET
        self.family = family
        self.sock = sock
        self.kind = kind
        self.buf = bytearray(_RECV_SIZE)
        self.bufs = [self.buf]
        self.out = bytearray(ECHO.size + PAYLOAD_SIZE - 16)  # header + cookie + serial + zeros
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
            _accept_only_echo_replies(sock, family)
            if bpf:
                self.bpf = _attach_reply_filter(sock, family, ident, cookie)
        # The control message type of kernel receive timestamps (0: none, RTTs in user space;
        # ``timestamps=False`` is for comparisons, e.g. ``bench/icmp.py --stall``).
        self.ts_type = enable_timestamps(sock) if timestamps else 0
        if self.bpf:
            _flush(sock)

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
