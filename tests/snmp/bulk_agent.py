"""A small SNMPv2c agent on a real UDP socket, for the walk's fallbacks (tests only).

It answers GET, GETNEXT and GETBULK over its ``objects`` with pysnmp's codec (not netmon's:
the agent and the client must not share a bug), and can misbehave the ways agents do:

* ``too_big`` = N: a GETBULK answer that would carry more than N varbinds is refused with
  error-status tooBig(1), as agents with a small message buffer do (the request is not cut).
* ``scramble`` = True: a GETBULK with several repeaters gets each row's varbinds in reverse
  column order, so the answer's slots no longer line up with the columns asked for (a single
  repeater is answered correctly, as such agents do).
* ``hold_first`` = True: the answer to the very first request is held back and sent just
  before the answer to the third (the client has timed out, retried, and asked the next
  thing), as a slow path on the network would deliver it.

    agent = BulkAgent(objects, community="c", too_big=40)
    async with agent:        # listens on 127.0.0.1:<free port> until the block ends
        ...poll 127.0.0.1:agent.port...
"""

from __future__ import annotations

import asyncio
import bisect
from types import TracebackType
from typing import Any, cast

from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto import api, rfc1902, rfc1905

Oid = tuple[int, ...]
V2C = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]


class BulkAgent(asyncio.DatagramProtocol):
    def __init__(
        self,
        objects: dict[Oid, Any],
        community: str,
        too_big: int | None = None,
        scramble: bool = False,
        hold_first: bool = False,
    ) -> None:
        self.objects = objects
        self.names = sorted(objects)
        self.community = community
        self.too_big = too_big
        self.scramble = scramble
        self.hold_first = hold_first  # the first answer is sent when the third request comes
        self.held: tuple[bytes, tuple[str | int, ...]] | None = None
        self.late_sent = False
        self.requests = 0
        self.refused = 0  # GETBULKs answered tooBig
        self.transport: asyncio.DatagramTransport | None = None

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    async def __aenter__(self) -> BulkAgent:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        message, _ = decoder.decode(data, asn1Spec=V2C.Message())
        if str(V2C.apiMessage.get_community(message)) != self.community:
            return
        self.requests += 1
        request = V2C.apiMessage.get_pdu(message)
        answer = V2C.apiMessage.get_response(message)
        pdu = V2C.apiMessage.get_pdu(answer)
        binds, status = self._answer(request)
        V2C.apiPDU.set_error_status(pdu, status)
        V2C.apiPDU.set_varbinds(pdu, [] if status else binds)
        assert self.transport is not None
        if self.hold_first and self.requests == 1:
            self.held = (encoder.encode(answer), addr)
            return
        if self.held is not None and self.requests == 3:
            self.transport.sendto(*self.held)  # late: the client retried and moved on
            self.held, self.late_sent = None, True
        self.transport.sendto(encoder.encode(answer), addr)

    def _answer(self, request: Any) -> tuple[list[tuple[rfc1902.ObjectName, Any]], int]:
        asked = [tuple(oid) for oid, _ in V2C.apiPDU.get_varbinds(request)]
        if request.isSameTypeWith(rfc1905.GetRequestPDU()):
            return [self._exact(oid) for oid in asked], 0
        if request.isSameTypeWith(rfc1905.GetNextRequestPDU()):
            return [self._next(oid) for oid in asked], 0
        fixed = V2C.apiBulkPDU.get_non_repeaters(request)
        reps = V2C.apiBulkPDU.get_max_repetitions(request)
        binds = [self._next(oid) for oid in asked[:fixed]]
        cursors = asked[fixed:]
        for _row in range(reps):
            row = [self._next(oid) for oid in cursors]
            cursors = [tuple(oid) for oid, _ in row]
            binds += row[::-1] if self.scramble and len(row) > 1 else row
        if self.too_big is not None and len(binds) > self.too_big:
            self.refused += 1
            return [], 1
        return binds, 0

    def _exact(self, oid: Oid) -> tuple[rfc1902.ObjectName, Any]:
        value = self.objects.get(oid, rfc1905.noSuchObject)
        return rfc1902.ObjectName(oid), value

    def _next(self, oid: Oid) -> tuple[rfc1902.ObjectName, Any]:
        at = bisect.bisect_right(self.names, oid)
        if at == len(self.names):
            return rfc1902.ObjectName(oid), rfc1905.endOfMibView
        name = self.names[at]
        return rfc1902.ObjectName(name), self.objects[name]
