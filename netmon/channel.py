"""The results channel between a poller and the server: framed messages over one byte stream.

A poller (``netmon.poller``) probes; the server (store, judge, API, /metrics) judges. They talk
over one stream socket -- a socketpair to the child that ``netmon run`` starts, or (for pollers on
other machines) a TCP connection the poller opens -- in frames of::

    4 bytes  big-endian length of what follows
    1 byte   codec: b"J" (JSON, UTF-8) or b"P" (pickle)
    ...      the message: a mapping with a "type" key

What flows which way, and in which codec:

============  ===============  ======  ========================================================
type          direction        codec   body
============  ===============  ======  ========================================================
``config``    server → poller  pickle  ``config``: the ``ValidatedConfig`` to probe (engines
                                       reconfigured, jobs replaced; devices that stay keep
                                       their schedule)
``stop``      server → poller  JSON    finish: cancel probes, send what is taken, ``bye``
``poll_now``  server → poller  JSON    ``site``, ``device``: probe it now with every kind it
                                       has, off schedule (a trap's hint, ``netmon.traps``)
``hello``     poller → server  JSON    ``version``, ``pid``, ``modes`` (engine modes by kind),
                                       or ``error`` (engines could not open: the run fails)
``results``   poller → server  JSON    ``items``: results as :func:`encode_result` rows
``stats``     poller → server  JSON    the poller's :class:`netmon.poller.PollerStats`
``bye``       poller → server  JSON    nothing more follows
============  ===============  ======  ========================================================

Only the server's own messages are pickled, and the server never unpickles: a frame from a
poller in any codec but JSON is refused (:class:`ChannelError`). A poller trusts the server it
was started by or connected to, as it trusts the inventory it probes. Both ends must run the
same netmon version (``hello`` carries it; the server refuses another).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import pickle
import struct
from collections.abc import Mapping
from typing import Any

from netmon.errors import NetmonError
from probes.base import KINDS, ProbeResult

_HEADER = struct.Struct(">IB")
JSON, PICKLE = ord("J"), ord("P")
MAX_FRAME = 256 * 1024 * 1024  # bytes: a config of 50k devices is a few MB


class ChannelError(NetmonError):
    """The other end sent something that is not a frame of this protocol."""


class Channel:
    """One end of the channel (asyncio streams). ``send`` never blocks the caller's loop for
    long: it writes into the transport's buffer and waits only for that buffer to drain."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, accept_pickle: bool
    ) -> None:
        self.reader, self.writer = reader, writer
        self.accept_pickle = accept_pickle

    async def send(self, message: Mapping[str, Any], pickled: bool = False) -> None:
        if pickled:
            body, codec = pickle.dumps(dict(message), protocol=pickle.HIGHEST_PROTOCOL), PICKLE
        else:
            body, codec = json.dumps(message, separators=(",", ":")).encode(), JSON
        self.writer.write(_HEADER.pack(len(body) + 1, codec) + body)
        await self.writer.drain()

    async def receive(self) -> dict[str, Any] | None:
        """The next message; ``None`` when the other end closed the stream."""
        try:
            head = await self.reader.readexactly(_HEADER.size)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        length, codec = _HEADER.unpack(head)
        if not 1 <= length <= MAX_FRAME:
            raise ChannelError(f"frame of {length} bytes (at most {MAX_FRAME})")
        try:
            body = await self.reader.readexactly(length - 1)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        return self._decode(codec, body)

    def _decode(self, codec: int, body: bytes) -> dict[str, Any]:
        try:
            if codec == JSON:
                message = json.loads(body)
            elif codec == PICKLE and self.accept_pickle:
                message = pickle.loads(body)  # noqa: S301 (from the server this poller trusts)
            else:
                raise ChannelError(f"frame codec {codec!r} not accepted here")
        except (ValueError, pickle.UnpicklingError) as exc:
            raise ChannelError(f"unreadable frame: {exc}") from exc
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise ChannelError("a message is a mapping with a 'type'")
        return message

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


def encode_result(site: str, device: str, r: ProbeResult) -> list[Any]:
    """One result as a JSON row: site, device, kind, ok, started_at, duration, sent, received,
    rtts, reason, findings (the kind's ``to_json()``, or null)."""
    found = r.findings.to_json() if r.findings is not None else None
    return [site, device, r.kind, r.ok, r.started_at, r.duration, r.sent, r.received,
            list(r.rtts), r.reason, found]  # fmt: skip


def decode_result(row: list[Any]) -> tuple[str, str, ProbeResult]:
    """The inverse of :func:`encode_result`; a ChannelError for a row that is not one."""
    try:
        site, device, kind, ok, started, duration, sent, received, rtts, reason, found = row
        findings = None
        if found is not None and kind in KINDS and KINDS[kind].findings is not None:
            findings = KINDS[kind].findings.from_json(found)  # type: ignore[union-attr]
        result = ProbeResult(str(kind), bool(ok), float(started), float(duration), int(sent),
                             int(received), tuple(float(x) for x in rtts), str(reason), findings)  # fmt: skip
    except (ValueError, TypeError, KeyError) as exc:
        raise ChannelError(f"unreadable result row: {exc}") from exc
    return str(site), str(device), result
