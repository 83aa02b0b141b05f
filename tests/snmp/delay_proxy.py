"""A user-space UDP proxy on 127.0.0.1 that delays every datagram, to poll loopback agents as if
over a WAN link (tests and ``bench/snmp.py --latency-ms``).

    async with DelayProxy(("127.0.0.1", agent.port), delay=0.05) as proxy:
        ...poll 127.0.0.1:proxy.port...   # each request and each answer is held 50 ms

Each client socket (source port) gets its own upstream socket to the agent, so answers go back
to the socket that asked. Bounded: the upstream must be on 127.0.0.0/8, at most
``max_clients`` client sockets and ``max_pending`` datagrams held at once (more are dropped,
like a full queue), and the proxy closes itself after ``lifetime`` seconds, or ``idle`` seconds
without a datagram, if nobody closed it first.

:class:`ProxyStats` counts what crossed it, including the shape of the exchange: the peak number
of requests in flight at once, and ``rounds`` -- the longest chain of round trips that had to
happen one after another. A request's depth is one more than the depth of the last answer its
socket received (a socket's first request: than the deepest answer delivered to anyone so far,
since the client may have waited for it); ``rounds`` is the deepest request. Requests on one
socket are one at a time (an SNMP client waits for the answer), so a poll that walks N columns
one after another has N + 1 rounds; with four walks in flight, about a quarter of that.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass, field
from types import TracebackType

Address = tuple[str, int]


@dataclass
class ProxyStats:
    requests: int = 0  # datagrams client -> agent (forwarded)
    responses: int = 0  # datagrams agent -> client (delivered)
    dropped: int = 0  # over max_clients or max_pending, or after close
    peak_in_flight: int = 0  # requests forwarded and not yet answered, at most at once
    rounds: int = 0  # longest chain of sequential round trips (see the module docstring)
    _outstanding: dict[Address, int] = field(default_factory=dict, repr=False)  # socket: depth
    _answered: dict[Address, int] = field(default_factory=dict, repr=False)
    _deepest_answer: int = field(default=0, repr=False)

    def on_request(self, client: Address) -> None:
        depth = 1 + self._answered.get(client, self._deepest_answer)
        self._outstanding[client] = depth  # a retry replaces the request it repeats
        self.requests += 1
        self.rounds = max(self.rounds, depth)
        self.peak_in_flight = max(self.peak_in_flight, len(self._outstanding))

    def on_response(self, client: Address) -> None:
        self.responses += 1
        depth = self._outstanding.pop(client, None)
        if depth is not None:
            self._answered[client] = depth
            self._deepest_answer = max(self._deepest_answer, depth)


class DelayProxy:
    """Forward UDP between clients on 127.0.0.1 and ``upstream``, ``delay`` seconds each way."""

    def __init__(
        self,
        upstream: Address,
        delay: float,
        *,
        lifetime: float = 600.0,
        idle: float = 120.0,
        max_clients: int = 256,
        max_pending: int = 10_000,
    ) -> None:
        if not ipaddress.ip_address(upstream[0]).is_loopback:
            raise ValueError("DelayProxy forwards to loopback agents only")
        if not 0 <= delay <= 10 or lifetime <= 0 or idle <= 0:
            raise ValueError("need 0 <= delay <= 10 s, lifetime > 0 and idle > 0")
        self.upstream, self.delay = upstream, delay
        self.lifetime, self.idle = lifetime, idle
        self.max_clients, self.max_pending = max_clients, max_pending
        self.stats = ProxyStats()
        self.closed = asyncio.Event()
        self._front: asyncio.DatagramTransport | None = None
        self._backs: dict[Address, asyncio.Future[asyncio.DatagramTransport]] = {}
        self._pending: set[asyncio.TimerHandle] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop_at: asyncio.TimerHandle | None = None
        self._idle_at: asyncio.TimerHandle | None = None

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        assert self._front is not None, "start() first"
        return int(self._front.get_extra_info("sockname")[1])

    async def start(self) -> DelayProxy:
        loop = asyncio.get_running_loop()
        self._front, _ = await loop.create_datagram_endpoint(
            lambda: _Front(self), local_addr=(self.host, 0)
        )
        self._stop_at = loop.call_later(self.lifetime, self.close)
        self._touch()
        return self

    def close(self) -> None:
        """Stop forwarding and close every socket (idempotent)."""
        if self.closed.is_set():
            return
        self.closed.set()
        for handle in (*self._pending, self._stop_at, self._idle_at):
            if handle is not None:
                handle.cancel()
        self._pending.clear()
        for task in self._tasks:
            task.cancel()
        for back in self._backs.values():
            if back.done() and not back.cancelled() and back.exception() is None:
                back.result().close()
            else:
                back.cancel()
        self._backs.clear()
        if self._front is not None:
            self._front.close()

    async def __aenter__(self) -> DelayProxy:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- forwarding -------------------------------------------------------------------------

    def _touch(self) -> None:
        if self._idle_at is not None:
            self._idle_at.cancel()
        self._idle_at = asyncio.get_running_loop().call_later(self.idle, self.close)

    def _hold(self, callback: object, *args: object) -> bool:
        """Run ``callback(*args)`` after the delay; False (dropped) when the queue is full."""
        if self.closed.is_set() or len(self._pending) >= self.max_pending:
            self.stats.dropped += 1
            return False
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._pending.discard(handle)
            callback(*args)  # type: ignore[operator]

        handle = loop.call_later(self.delay, fire)
        self._pending.add(handle)
        return True

    def from_client(self, data: bytes, client: Address) -> None:
        self._touch()
        if client not in self._backs and len(self._backs) >= self.max_clients:
            self.stats.dropped += 1
            return
        if client not in self._backs:
            self._backs[client] = asyncio.ensure_future(self._connect(client))
        if self._hold(self._send_up, client, data):
            self.stats.on_request(client)

    async def _connect(self, client: Address) -> asyncio.DatagramTransport:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Back(self, client), remote_addr=self.upstream
        )
        return transport

    def _send_up(self, client: Address, data: bytes) -> None:
        back = self._backs.get(client)
        if back is None or self.closed.is_set():
            return
        if back.done():
            back.result().sendto(data)
            return

        async def later() -> None:
            (await back).sendto(data)

        task = asyncio.ensure_future(later())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def from_agent(self, data: bytes, client: Address) -> None:
        self._touch()
        self._hold(self._send_down, client, data)

    def _send_down(self, client: Address, data: bytes) -> None:
        if self._front is not None and not self.closed.is_set():
            self._front.sendto(data, client)
            self.stats.on_response(client)


class _Front(asyncio.DatagramProtocol):
    def __init__(self, proxy: DelayProxy) -> None:
        self.proxy = proxy

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.proxy.from_client(data, addr)


class _Back(asyncio.DatagramProtocol):
    def __init__(self, proxy: DelayProxy, client: Address) -> None:
        self.proxy, self.client = proxy, client

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.proxy.from_agent(data, self.client)
