"""SNMP v1/v2c messages in BER: encode GET/GETBULK requests, decode responses.

Why our own codec
    gufo-snmp 0.13 (probes/snmp_client.py) sends one OID per GETBULK (``GetIter(oid)``), so a
    profile's nine interface columns cost nine walks. netmon's multi-column walk
    (probes/snmp_bulk.py) needs all of a table's columns in one GETBULK and the rows back in the
    agent's order, which no gufo call exposes. This module is the small part of SNMP that
    takes: a community message (RFC 1157 / 3416) with one PDU, no SNMPv3 (v3 stays on gufo:
    see probes/snmp_bulk.py).

Hot path
    :func:`decode_response` reads the message header; the varbind list is decoded on first use
    (:class:`Response`), by a loop that handles short-form lengths inline (agents use them for
    every varbind below 128 bytes) and returns three parallel lists: OIDs as their BER content
    bytes (a column's prefix test is ``bytes.startswith``, only row indexes become text), one
    tag byte per value, and the value bytes. :func:`values` converts a column's values in one
    ``map`` when they share a type (~100 us for a 24-port answer, where building (oid, value)
    pairs took ~260). :class:`Shape` reads an answer of a known shape without decoding it.
    Values are what gufo returned, so the profile code reads them unchanged:
    INTEGER/Counter/Gauge/TimeTicks -> int, OCTET STRING and Opaque -> bytes, OBJECT IDENTIFIER
    and IpAddress -> dotted str, NULL -> None; the three v2c exceptions (noSuchObject,
    noSuchInstance, endOfMibView) -> the :data:`NO_SUCH_OBJECT`, :data:`NO_SUCH_INSTANCE`,
    :data:`END_OF_MIB` markers.
"""

from __future__ import annotations

import functools
import operator
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate, chain, repeat

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


class Response:
    """A response PDU. Its varbinds are three parallel sequences, decoded on first use (a
    table read whose answer has a known :class:`Shape` never decodes them): ``oids`` (OID
    content bytes), ``tags`` (one value tag byte per varbind) and ``raws`` (value contents).
    Column-wise: a table's column is ``oids[c::width]``, its values convert in one go with
    :func:`values`. The varbind list is ``data[start:end]``."""

    __slots__ = ("request_id", "error_status", "error_index", "data", "start", "end", "_decoded")

    def __init__(
        self, request_id: int, error_status: int, error_index: int, data: bytes, start: int, end: int
    ) -> None:  # fmt: skip
        self.request_id, self.error_status, self.error_index = request_id, error_status, error_index
        self.data, self.start, self.end = data, start, end
        self._decoded: tuple[list[bytes], bytes, list[bytes]] | None = None

    def decode(self) -> tuple[list[bytes], bytes, list[bytes]]:
        """(oids, tags, raws); raises :class:`BerError` if the varbind list is malformed."""
        if self._decoded is None:
            try:
                oids, tags, raws = _varbinds(self.data, self.start, self.end)
            except IndexError:
                raise BerError("truncated varbind") from None
            self._decoded = oids, bytes(tags), raws
        return self._decoded

    @property
    def oids(self) -> list[bytes]:
        return self.decode()[0]

    @property
    def tags(self) -> bytes:
        return self.decode()[1]

    @property
    def raws(self) -> list[bytes]:
        return self.decode()[2]

    @property
    def varbinds(self) -> list[tuple[bytes, Value]]:
        """(OID content bytes, value) pairs (the slow, general view)."""
        oids, tags, raws = self.decode()
        return list(zip(oids, values(tags, raws), strict=True))


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
    body = _int(request_id) + _request_rest(tuple(oids), non_repeaters, max_repetitions)
    return _tlv(0x30, _int(version) + _tlv(0x04, community) + _tlv(pdu, body))


@functools.lru_cache(maxsize=4096)  # a device's first request is the same every poll
def _request_rest(oids: tuple[bytes, ...], non_repeaters: int, max_repetitions: int) -> bytes:
    """A request PDU's content after its request-id."""
    binds = b"".join(_null_varbind(oid) for oid in oids)
    return _int(non_repeaters) + _int(max_repetitions) + _tlv(0x30, binds)


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


def decode_response(data: bytes, community: bytes, lazy: bool = False) -> Response:
    """The PDU of a response to us (same community); raises :class:`BerError`. ``lazy``: the
    varbind list of an answer without error-status is decoded on first use (see
    :class:`Response`), else now."""
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
    response = Response(request_id, status, index, data, start, end)
    if status or not lazy:
        response.decode()
    return response


# hot loop: once per varbind of every answer. Three slices/appends per varbind and no value
# conversion (that is done a column at a time by ``values``); measured on a captured 24-port
# answer (238 varbinds): 86 us, where a loop building (oid, value) tuples took 259 us.
def _varbinds(data: bytes, pos: int, end: int) -> tuple[list[bytes], bytearray, list[bytes]]:
    oids: list[bytes] = []
    raws: list[bytes] = []
    tags = bytearray()
    add_oid, add_raw, add_tag = oids.append, raws.append, tags.append
    while pos < end:
        size, oid_size = data[pos + 1], data[pos + 3]
        stop = pos + 4 + oid_size  # the value's tag
        vend = pos + 2 + size
        # short-form lengths (every varbind under 128 bytes), value length fitting the varbind
        if (size | oid_size) & 0x80 or data[stop + 1] + stop + 2 != vend or data[pos] != 0x30 or data[pos + 2] != 0x06:  # fmt: skip
            pos = _long_varbind(data, pos, oids, tags, raws)
            continue
        add_oid(data[pos + 4 : stop])
        add_tag(data[stop])
        add_raw(data[stop + 2 : vend])
        pos = vend
    if pos != end:
        raise BerError("varbind list overruns its sequence")
    return oids, tags, raws


def _long_varbind(
    data: bytes, pos: int, oids: list[bytes], tags: bytearray, raws: list[bytes]
) -> int:
    """One varbind with any length form (the general case of :func:`_varbinds`); its end."""
    start, end = _header(data, pos, 0x30)
    if start >= end or data[start] != 0x06:
        raise BerError(f"expected an OID at byte {start}")
    ostart, oend = _header(data, start, 0x06)
    if oend + 2 > end:
        raise BerError(f"expected a value at byte {oend}")
    vstart, vend = _header(data, oend, data[oend])
    if vend != end:
        raise BerError(f"varbind at byte {pos} does not end with its value")
    oids.append(data[ostart:oend])
    tags.append(data[oend])
    raws.append(data[vstart:vend])
    return end


@dataclass(frozen=True, slots=True)
class Shape:
    """An answer's varbind list with the values cut out: the bytes between the values (each
    varbind's header, OID, value tag and length) and the ``struct`` format that cuts a varbind
    list of the same shape into those pieces and the values in one C call.

    Exact: if another answer's varbind list has the same size and the same bytes between the
    values, it parses into the same varbinds (same OIDs, tags and lengths: the headers say
    where everything is, and they are the same bytes at the same places), so its values are
    the pieces at the value places. A poll of the same device usually has that shape until a
    value's encoded length changes (a counter passing a power of 256, ...). Measured on a
    captured 24-port answer (238 varbinds): ~12 us, where decoding it took ~100 us."""

    size: int  # of the varbind list
    format: str  # "<n>s" pieces: between, value, between, value, ...
    between: bytes  # the pieces between the values, joined
    tags: bytes  # value tag per varbind

    @classmethod
    def of(cls, answer: Response) -> Shape:
        """The shape of an answer's varbind list (``BerError`` if it does not decode)."""
        oids, tags, raws = answer.decode()
        # short-form lengths (the usual case): each varbind is 30 L 06 l OID tag l value, so
        # the pieces' sizes follow from the OIDs' and values' (any long-form length would make
        # the varbind list longer than their sum)
        heads = list(map(operator.add, map(len, oids), repeat(6)))
        sizes = list(chain.from_iterable(zip(heads, map(len, raws), strict=True)))
        if sum(sizes) != answer.end - answer.start:
            return cls._of_any(answer)
        cuts = list(accumulate(sizes, initial=answer.start))
        return cls(
            answer.end - answer.start,
            "=" + "".join(map(_PIECES.__getitem__, sizes)),
            b"".join(map(answer.data.__getitem__, map(slice, cuts[::2], cuts[1::2]))),
            tags,
        )

    @classmethod
    def _of_any(cls, answer: Response) -> Shape:
        data, cuts = answer.data, _cuts(answer.data, answer.start, answer.end)
        format = "=" + "".join(f"{b - a}s" for a, b in zip(cuts, cuts[1:], strict=False))
        between = b"".join(data[a:b] for a, b in zip(cuts[::2], cuts[1::2], strict=False))
        return cls(answer.end - answer.start, format, between, answer.tags)

    def values(self, answer: Response) -> Sequence[bytes] | None:
        """The value contents of an answer of this shape, else None."""
        if answer.end - answer.start != self.size:
            return None
        pieces = _struct(self.format).unpack_from(answer.data, answer.start)
        if b"".join(pieces[::2]) != self.between:
            return None
        return pieces[1::2]


_struct = functools.lru_cache(maxsize=256)(struct.Struct)  # ~15 KB each for a 24-port answer
_PIECES = [f"{size}s" for size in range(256)]


def _cuts(data: bytes, pos: int, end: int) -> list[int]:
    """Where each varbind starts and its value starts (and the list ends), for :class:`Shape`."""
    cuts = []
    while pos < end:
        start, stop = _header(data, pos, 0x30)
        oend = _header(data, start, 0x06)[1]
        cuts += [pos, _header(data, oend, data[oend])[0]]
        pos = stop
    cuts.append(end)
    return cuts


_SIGNED = functools.partial(int.from_bytes, byteorder="big", signed=True)


def _signed_ints(raws: Sequence[bytes]) -> list[Value]:
    if raws and max(raws) >= b"\x80":  # a negative one (two's complement): the slow way
        return list(map(_SIGNED, raws))
    return list(map(int.from_bytes, raws))


def _unsigned_ints(raws: Sequence[bytes]) -> list[Value]:
    return list(map(int.from_bytes, raws))  # big-endian: the default since Python 3.11


_BULK: dict[int, Callable[[Sequence[bytes]], list[Value]]] = {  # a column at a time
    0x02: _signed_ints,
    0x04: list,
    0x44: list,
    **dict.fromkeys(_UNSIGNED, _unsigned_ints),
}


def values(tags: bytes, raws: Sequence[bytes]) -> list[Value]:
    """The values of varbinds with these tags and contents (see the module docstring): one
    C-level ``map`` when they all have the same common type, as a table column's do."""
    if tags and tags.count(tags[0]) == len(tags) and (bulk := _BULK.get(tags[0])) is not None:
        return bulk(raws)
    return [value(tag, raw) for tag, raw in zip(tags, raws, strict=True)]


def value(tag: int, raw: bytes) -> Value:
    """One varbind's value from its tag and content bytes."""
    if tag == 0x04 or tag == 0x44:
        return raw
    if tag == 0x02:
        return int.from_bytes(raw, "big", signed=True)
    if tag in _UNSIGNED:
        return int.from_bytes(raw, "big")
    return _other(tag, raw)


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
