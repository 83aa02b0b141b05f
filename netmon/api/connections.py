"""HTTP connection hygiene for the API and /metrics server: no connection is held forever.

uvicorn closes a kept-alive connection :data:`KEEP_ALIVE_TIMEOUT` seconds after a response,
but a connection that never sends a request, or sends its headers a byte at a time, it keeps
open for as long as the client likes (400 such connections were all still open after 30 s).
:class:`GuardedH11Protocol` gives every request :data:`HEADER_TIMEOUT` seconds, from the moment
the connection opens or the previous response ends, to finish its request line and headers;
then the connection is closed. :data:`LIMIT_CONCURRENCY` caps connections and requests in
flight: past it uvicorn answers 503 instead of queueing without bound (the unit's
``LimitNOFILE=`` is the hard bound on sockets).

:func:`server_options` is what ``netmon run`` passes to ``uvicorn.Config``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT = 10.0  # seconds to send a request's line and headers (nginx: 60, Apache: 20-40)
KEEP_ALIVE_TIMEOUT = 5  # seconds an idle kept-alive connection stays open (uvicorn's default)
LIMIT_CONCURRENCY = 512  # connections or requests at once; more get 503


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on each request's headers (see module docstring)."""

    header_timeout = HEADER_TIMEOUT
    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the request's headers are in
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this connection has its own deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_late(self) -> None:
        self._header_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()  # nothing was answered on it: there is nothing to flush


def server_options() -> dict[str, Any]:
    """The ``uvicorn.Config`` keywords for the limits above."""
    return {
        "http": GuardedH11Protocol,
        "timeout_keep_alive": KEEP_ALIVE_TIMEOUT,
        "limit_concurrency": LIMIT_CONCURRENCY,
    }
