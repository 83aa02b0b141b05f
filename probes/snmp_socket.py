"""One UDP socket per address family for every SNMP v1/v2c request, answers matched by request-id.

:func:`exchange` sends a request built for a fresh request-id and waits for the datagram that
answers it. Requests of all devices share one unconnected socket per family (per event loop):
the answer is matched by request-id *and* the address it came from (an answer from another
host, or to a request that already timed out, is dropped and counted in
:attr:`SharedSocket.stray`). Each attempt of a retry gets a new request-id, so a late answer to
the first attempt cannot be mistaken for the second's.

Why shared
    gufo-snmp opens a connected socket per session (and netmon a session per walk in flight):
    a socket(), connect() and close() per device poll, and one more file descriptor per device
    in flight. One socket is one descriptor for all and no per-poll setup. Measured ad hoc on
    the bench machine (not a bench/ figure): opening and closing this socket costs ~68 us of
    CPU, one exchange on it ~120 us (user + kernel, 6 KB answer from a trivial responder). The
    socket closes when no request is in flight (so tests' event loops end with nothing open);
    under load it stays open, and a device polled alone pays the 68 us per poll.

Request-ids are drawn from a counter with a random start (31 bits, never 0), like net-snmp.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections.abc import Callable
from typing import cast

from probes.snmp_ber import response_id

log = logging.getLogger("netmon.probes.snmp")
_RCVBUF = 4 << 20  # bytes asked for: many answers may arrive between two reads
Address = tuple[str, int]


class SharedSocket(asyncio.DatagramProtocol):
    """The socket of one family, with the requests waiting for an answer."""

    def __init__(self, family: int) -> None:
        self.family = family
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: dict[int, tuple[Address, asyncio.Future[bytes]]] = {}
        self.stray = 0  # datagrams that answered nothing we wait for
        self._next_id = random.randrange(1, 1 << 31)

    def request_id(self) -> int:
        while True:
            rid = self._next_id
            self._next_id = rid % ((1 << 31) - 1) + 1
            if rid not in self.pending:
                return rid

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        sock = transport.get_extra_info("socket")
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
        except OSError:  # pragma: no cover - the kernel caps it; the default still works
            log.debug("SO_RCVBUF %d refused", _RCVBUF)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        rid = response_id(data)
        waiting = self.pending.get(rid) if rid is not None else None
        if waiting is None or waiting[0] != (addr[0], addr[1]) or waiting[1].done():
            self.stray += 1
            return
        waiting[1].set_result(data)

    def error_received(self, exc: Exception) -> None:
        log.debug("SNMP socket error: %s", exc)  # e.g. ICMP unreachable: the request times out

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        for _addr, future in self.pending.values():
            if not future.done():
                future.set_exception(ConnectionError("SNMP socket closed"))

    def release(self, rid: int) -> None:
        self.pending.pop(rid, None)
        if not self.pending and self.transport is not None:
            asyncio.get_running_loop().call_soon(self._close_if_idle)

    def _close_if_idle(self) -> None:
        if not self.pending and self.transport is not None:
            self.transport.close()
            self.transport = None


_sockets: dict[tuple[asyncio.AbstractEventLoop, int], SharedSocket] = {}


async def _socket_for(family: int) -> SharedSocket:
    loop = asyncio.get_running_loop()
    shared = _sockets.get((loop, family))
    if shared is None or shared.transport is None:
        for key in [k for k, s in _sockets.items() if s.transport is None]:
            del _sockets[key]  # closed ones (also those of finished event loops)
        shared = SharedSocket(family)
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:  # our own socket: local_addr= would resolve "0.0.0.0" in the executor first
            sock.setblocking(False)
            sock.bind(("::", 0) if family == socket.AF_INET6 else ("0.0.0.0", 0))
            await loop.create_datagram_endpoint(lambda: shared, sock=sock)
        except BaseException:
            sock.close()
            raise
        _sockets[(loop, family)] = shared
    return shared


async def exchange(address: Address, build: Callable[[int], bytes], timeout: float) -> bytes:
    """Send ``build(request_id)`` to ``address``; the answer's bytes, or TimeoutError."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    shared = await _socket_for(family)
    rid = shared.request_id()
    future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    shared.pending[rid] = (address, future)
    try:
        assert shared.transport is not None
        shared.transport.sendto(build(rid), address)
        async with asyncio.timeout(timeout):
            return await future
    finally:
        shared.release(rid)
