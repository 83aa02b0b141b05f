"""SNMP v1/v2c messages in BER: encode GET/GETBULK requests, decode responses.

Why our own codec
    gufo-snmp 0.13 (probes/snmp_client.py) sends one OID per GETBULK (``GetIter(oid)``), so a
    profile's nine interface columns cost nine walks. netmon's multi-column walk
    (probes/snmp_bulk.py) needs all of a table's columns in one GETBULK and the rows back in the
    agent's order, which no gufo call exposes. This module is the small part of SNMP that
    takes: a community message (RFC 1157 / 3416) with one PDU, no SNMPv3 (v3 stays on gufo:
    see probes/snmp_bulk.py).

Hot path
    :func:`decode_response` runs once per varbind of every answer. It walks the bytes with
    short-form lengths inline (agents use them for every varbind below 128 bytes) and returns
    OIDs as their BER content bytes: a column's prefix test is ``bytes.startswith`` and only the
    row index after it is turned into text (``index_text``). Values are what gufo returned, so
    the profile code reads them unchanged: INTEGER/Counter/Gauge/TimeTicks -> int, OCTET STRING
    and Opaque -> bytes, OBJECT IDENTIFIER and IpAddress -> dotted str, NULL -> None; the three
    v2c exceptions (noSuchObject, noSuchInstance, endOfMibView) -> the :data:`NO_SUCH_OBJECT`,
    :data:`NO_SUCH_INSTANCE`, :data:`END_OF_MIB` markers.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

Value = None | str | bytes | int | float


class BerError(ValueError):
    """The datagram is not a well-formed SNMP response."""


class Marker(str):
    """A v2c exception value in a varbind (see the module docstring)."""


NO_SUCH_OBJECT = Marker("noSuchObject")
NO_SUCH_INSTANCE = Marker("noSuchInstance")
END_OF_MIB = Marker("endOfMibView")
_EXCEPTIONS = {0x80: NO_SUCH_OBJECT, 0x81: NO_SUCH_INSTANCE, 0x82: END_OF_MIB}
_UNSIGNED = frozenset((0x41, 0x42, 0x43, 0x46, 0x47))  # Counter32, Gauge32, TimeTicks, C64, UInt
GET, GETNEXT, RESPONSE, GETBULK = 0xA0, 0xA1, 0xA2, 0xA5
TOO_BIG, NO_SUCH_NAME = 1, 2  # error-status values the walk acts on

VERSIONS = {"1": 0, "2c": 1}


@dataclass(frozen=True, slots=True)
class Response:
    request_id: int
    error_status: int
    error_index: int
    varbinds: list[tuple[bytes, Value]]  # (OID content bytes, value)


# -- encoding --------------------------------------------------------------------------------


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(raw),)) + raw


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + _length(len(content)) + content


def _int(n: int) -> bytes:
    return _tlv(0x02, n.to_bytes(n.bit_length() // 8 + 1, "big", signed=True))


@functools.lru_cache(maxsize=4096)  # a profile's few dozen OIDs, encoded once
def oid_bytes(oid: str) -> bytes:
    """The BER content of a dotted OID (``1.3.6.1...`` -> ``2b 06 01 ...``)."""
    arcs = [int(arc) for arc in oid.strip(".").split(".")]
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] > 39):
        raise ValueError(f"not an OID: {oid!r}")
    out = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


@functools.lru_cache(maxsize=1 << 14)  # the OIDs of the next requests are mostly known ones
def _null_varbind(oid: bytes) -> bytes:
    return _tlv(0x30, _tlv(0x06, oid) + b"\x05\x00")


def encode_request(
    version: int,
    community: bytes,
    pdu: int,
    request_id: int,
    oids: Sequence[bytes],
    non_repeaters: int = 0,
    max_repetitions: int = 0,
) -> bytes:
    """A GET/GETNEXT/GETBULK message for ``oids`` (OID content bytes, each with a NULL value)."""
    binds = b"".join(_null_varbind(oid) for oid in oids)
    body = _int(request_id) + _int(non_repeaters) + _int(max_repetitions) + _tlv(0x30, binds)
    return _tlv(0x30, _int(version) + _tlv(0x04, community) + _tlv(pdu, body))


# -- decoding --------------------------------------------------------------------------------


def _header(data: bytes, pos: int, tag: int) -> tuple[int, int]:
    """(content start, content end) of the TLV with ``tag`` at ``pos``."""
    if pos + 2 > len(data) or data[pos] != tag:
        raise BerError(f"expected tag 0x{tag:02x} at byte {pos}")
    length, pos = data[pos + 1], pos + 2
    if length & 0x80:
        size = length & 0x7F
        if not 0 < size <= 4:
            raise BerError(f"bad length at byte {pos - 1}")
        length, pos = int.from_bytes(data[pos : pos + size], "big"), pos + size
    end = pos + length
    if end > len(data):
        raise BerError("truncated message")
    return pos, end


def _integer(data: bytes, pos: int) -> tuple[int, int]:
    start, end = _header(data, pos, 0x02)
    return int.from_bytes(data[start:end], "big", signed=True), end


def response_id(data: bytes) -> int | None:
    """The request-id of a response datagram, or None if it is not one (cheap: for matching)."""
    try:
        pos, _ = _header(data, 0, 0x30)
        pos = _integer(data, pos)[1]
        pos = _header(data, pos, 0x04)[1]
        pos, _ = _header(data, pos, RESPONSE)
        return _integer(data, pos)[0]
    except BerError:
        return None


def decode_response(data: bytes, community: bytes) -> Response:
    """The PDU of a response to us (same community); raises :class:`BerError`."""
    pos, _ = _header(data, 0, 0x30)
    pos = _integer(data, pos)[1]
    start, pos = _header(data, pos, 0x04)
    if data[start:pos] != community:
        raise BerError("response for another community")
    pos, _ = _header(data, pos, RESPONSE)
    request_id, pos = _integer(data, pos)
    status, pos = _integer(data, pos)
    index, pos = _integer(data, pos)
    start, end = _header(data, pos, 0x30)
    return Response(request_id, status, index, _varbinds(data, start, end))


# hot loop: once per varbind; inline short-form lengths (measured in bench/snmp.py --libs:
# the per-varbind cost of this loop is most of netmon's CPU per varbind)
def _varbinds(data: bytes, pos: int, end: int) -> list[tuple[bytes, Value]]:
    out: list[tuple[bytes, Value]] = []
    append = out.append
    while pos < end:
        if data[pos] != 0x30:
            raise BerError(f"expected a varbind at byte {pos}")
        if data[pos + 1] & 0x80:
            pos = _header(data, pos, 0x30)[0]
        else:
            pos += 2
        if data[pos] != 0x06 or data[pos + 1] & 0x80:
            raise BerError(f"expected an OID at byte {pos}")
        stop = pos + 2 + data[pos + 1]
        oid = data[pos + 2 : stop]
        tag, length, pos = data[stop], data[stop + 1], stop + 2
        if length & 0x80:
            pos, vend = _header(data, stop, tag)
        else:
            vend = pos + length
        raw = data[pos:vend]
        if tag == 0x04 or tag == 0x44:
            value: Value = raw
        elif tag == 0x02:
            value = int.from_bytes(raw, "big", signed=True)
        elif tag in _UNSIGNED:
            value = int.from_bytes(raw, "big")
        else:
            value = _other(tag, raw)
        append((oid, value))
        pos = vend
    if pos != end:
        raise BerError("varbind list overruns its sequence")
    return out


def _other(tag: int, raw: bytes) -> Value:
    if tag == 0x06:
        return oid_text(raw)
    if tag == 0x40 and len(raw) == 4:
        return ".".join(map(str, raw))
    if tag == 0x05:
        return None
    if tag in _EXCEPTIONS:
        return _EXCEPTIONS[tag]
    raise BerError(f"unknown value type 0x{tag:02x}")


def index_text(raw: bytes) -> str:
    """Dotted text of OID content bytes that do not start the OID (a row index's arcs)."""
    if raw.isascii():
        return ".".join(map(str, raw))
    arcs, arc = [], 0
    for byte in raw:
        arc = (arc << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(arc)
            arc = 0
    return ".".join(map(str, arcs))


def oid_text(raw: bytes) -> str:
    """Dotted text of a whole OID's content bytes."""
    if not raw:
        return ""
    text = index_text(raw)
    first, _, rest = text.partition(".")
    x = min(int(first) // 40, 2)
    y = int(first) - 40 * x
    return f"{x}.{y}.{rest}" if rest else f"{x}.{y}"


def oid_key(raw: bytes) -> tuple[int, ...]:
    """OID content bytes as arcs (the first two merged), for ordering."""
    if raw.isascii():
        return tuple(raw)
    return tuple(int(a) for a in index_text(raw).split("."))
