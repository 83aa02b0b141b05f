"""SNMPv2c polls as multi-column GETBULK walks over one shared UDP socket.

What a poll sends
    One GETBULK per table and step: the profile's scalars (sysUpTime, sysName, ...) as
    non-repeaters of the first table's first request, and *every* column of the table as a
    repeater, so the agent answers row by row (``non-repeaters + columns x max-repetitions``
    varbinds). A column ends at its subtree boundary (the first OID outside it, or
    endOfMibView); the next request carries only the columns still open, each from its last
    OID. ``max-repetitions`` of the first request is the table's row count at the device's last
    poll + 1 (learned by the poller, so a known table ends in one request), else
    ``settings.max_repetitions``; each further request of the chain asks for twice as many rows
    (at least ``settings.max_repetitions``), and no request for more than :data:`MAX_VARBINDS`
    varbinds. An agent may answer fewer (snmpsim: 64 by default): the walk goes on from there.
    A 24-port switch (sysUpTime and 3 other scalars + 9 columns of 25 rows) is one request;
    bench/snmp.py counts them. Up to ``max_walks`` tables are read at once.

Misbehaving agents (each falls back for the columns concerned, never silently loses rows)
    * tooBig: max-repetitions is halved and the request repeated; at 1 the columns are walked
      one by one (and a single column still tooBig is an error).
    * out of order: every answer is checked against itself. Each column's OIDs must be the
      agent's consecutive objects: among all OIDs of the answer (sorted), each varbind of a
      column must be the next one after that column's previous OID. An agent that interleaves
      the columns wrongly (or skips rows) breaks that; the columns concerned are then walked
      one by one, where OIDs must increase ("OIDs not increasing" otherwise, as net-snmp says).
    * any other error-status for a multi-column request: the columns are walked one by one.
    * SNMPv1 has no GETBULK: v1 devices stay on gufo-snmp's per-column GETNEXT walks
      (:class:`probes.snmp_client.GufoClient`), and so does SNMPv3 (see below).

Why not gufo-snmp, and why not for v3
    gufo-snmp 0.13 sends one OID per GETBULK (its ``GetIter`` takes one OID) and has no
    multi-OID walk. This client uses netmon's own codec (probes/snmp_ber.py) on the shared
    socket (probes/snmp_socket.py); measured in bench/snmp.py and bench/README.md (CPU per
    varbind beside snmpbulkget and snmp_exporter; gufo and pysnmp in ``--libs``). SNMPv3 needs
    USM (key localisation, HMAC, AES-CFB, engine discovery and time windows): ``cryptography``
    is only a test dependency of netmon, and a second USM implementation is more risk than the
    few v3 devices are worth, so v3 keeps gufo's Rust USM and its per-column walks.

The hot path (one 24-port poll: 238 varbinds in, 25 interface rows out)
    Column-wise throughout: the decoder gives OIDs, value tags and value bytes as three lists
    (probes/snmp_ber.py), a column is a stride of them and its values convert in one ``map``.
    A table read's first answer is taken by the device's last :class:`Layout` when it has the
    same :class:`~probes.snmp_ber.Shape` (same size, same bytes between the values: the same
    OIDs, tags and lengths, so the same varbinds): one ``struct`` call cuts the values out and
    the last poll's plan says which rows each column got, with no decoding or order check. A
    device's answers keep their shape until a value's encoded length changes (a counter
    passing a power of 256, a new name); then the answer is decoded and checked as above and
    the layout replaced. No layout comes from a device's first poll (the next asks for fewer
    rows, so its answer differs). Measured by replaying a captured answer without the
    network: ~240 us per poll, against ~640 us before this path (bench/README.md).

Measured (bench/snmp.py, 4 Dec 2026; bench/README.md has the tables and the machine's load)
    24-port switch on snmpsim, devices in their steady state: 1 request per poll, 4.1-4.6 us
    CPU per varbind (every answer decoded, no layout: 5.9-7.9; gufo per column 19-21;
    snmp_exporter 17-20 and snmpbulkget 25-26 in the same runs). Through a 100 ms RTT proxy:
    one round trip (145 ms; snmpbulkget 149 ms, gufo x4 438 ms); the 200-AP controller 494 ms
    vs snmpbulkwalk's 3232 ms (0.15x). The codec alone walks 1,078 varbinds at 1.08x gufo's CPU
    and 0.04x pysnmp 7's.
"""

from __future__ import annotations

import bisect
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import TYPE_CHECKING, NamedTuple, cast

from probes.snmp_ber import (
    END_OF_MIB,
    GET,
    GETBULK,
    TOO_BIG,
    VERSIONS,
    BerError,
    Marker,
    Response,
    Shape,
    decode_response,
    encode_request,
    index_text,
    oid_bytes,
    oid_key,
    oid_text,
    values,
)
from probes.snmp_ber import value as value_of
from probes.snmp_client import (
    RequestStats,
    SnmpRequestError,
    SnmpTimeout,
    TableRead,
    Value,
    in_lanes,
    timeout_message,
)
from probes.snmp_socket import exchange

if TYPE_CHECKING:
    from probes.snmp import SnmpSettings

MAX_VARBINDS = 1000  # per answer asked for: columns x max-repetitions (a ~30 KB datagram)
_GET_CHUNK = 16  # varbinds per GET request
# value tags of the v2c exceptions (probes/snmp_ber.py): noSuchObject, noSuchInstance, endOfMib
_NO_SUCH = (0x80, 0x81)
_END_OF_MIB = 0x82
_EXCEPTIONS = frozenset((*_NO_SUCH, _END_OF_MIB))


class OutOfOrder(SnmpRequestError):
    pass


@dataclass(slots=True)
class _Column:
    """One column of a multi-column walk: where it continues, and what it read."""

    prefix: bytes  # the column OID's BER content
    values: dict[str, Value]
    last: bytes = b""  # the OID to continue from
    done: bool = False
    rank: int = 0  # scratch: position of ``last`` among the answer's sorted OIDs
    oid: str = field(default="")


class _Taken(NamedTuple):
    """What one answer gave one column: its first ``inside`` slots are rows (index texts
    ``texts``), ``last`` is where it goes on, ``done`` whether it reached its end."""

    inside: int
    done: bool
    texts: list[str]
    last: bytes


@dataclass(frozen=True, slots=True)
class Layout:
    """A table read's first answer at the device's last poll: its :class:`Shape` and what it
    meant (the scalars it answered, each column's rows).

    That outcome depends only on the answer's OIDs and value tags (endOfMibView, the other
    exceptions) and on where the columns started (their own OIDs, in a chain's first
    request). An answer of the same shape has the same OIDs and tags, so it is taken by the
    same plan, without decoding it or sorting anything; its values are read at the places the
    shape knows. Kept per device by the poller (``TableRead.layout``): ~5 KB for a 24-port
    switch (the shape's bytes between the values, and its format)."""

    skip: int  # non-repeaters before the columns
    width: int  # columns asked for
    shape: Shape
    scalars: tuple[tuple[str, int], ...]  # (scalar OID, its varbind) for those it answered
    plan: tuple[_Taken, ...]  # per column


class BulkClient:
    """:class:`probes.snmp_client.SnmpClient` for SNMPv2c: multi-column GETBULK walks."""

    def __init__(self, ip: str, settings: SnmpSettings) -> None:
        self.stats = RequestStats()
        self.engine_id: bytes | None = None
        self._address = (ip, settings.port)
        self._settings = settings
        self._community = settings.community.encode()
        self._version = VERSIONS[settings.version]

    def __repr__(self) -> str:
        return f"<BulkClient v{self._settings.version} port {self._settings.port}>"

    async def open(self, engine_id: bytes | None = None) -> None:
        return None  # v2c: nothing to learn before the first request

    async def get(self, oids: Sequence[str]) -> dict[str, Value]:
        got: dict[str, Value] = {}
        for start in range(0, len(oids), _GET_CHUNK):
            chunk = [oid_bytes(oid) for oid in oids[start : start + _GET_CHUNK]]
            answer = await self._request(GET, chunk)
            if answer.error_status:
                raise SnmpRequestError(f"SNMP request failed: error-status {answer.error_status}")
            got.update(_scalars(answer.varbinds))
        return got

    async def walk(self, oid: str) -> AsyncIterator[tuple[str, Value]]:
        column = _Column(oid_bytes(oid), {}, oid=oid)
        column.last = column.prefix
        text = oid + "."
        async for index, value in self._walk_alone(column):
            yield text + index, value

    async def read(
        self,
        scalars: Sequence[str],
        tables: Sequence[TableRead],
        into: dict[str, Value],
        max_walks: int,
    ) -> None:
        if not tables:
            into.update(await self.get(scalars))
            return
        pending = iter(enumerate(tables))

        async def lane() -> None:
            for i, table in pending:
                await self._read_table(table, scalars if i == 0 else (), into)

        await in_lanes(lane, min(max_walks, len(tables)))

    async def _read_table(
        self, table: TableRead, scalars: Sequence[str], into: dict[str, Value]
    ) -> None:
        """One table's columns in multi-column GETBULKs (see the module docstring)."""
        columns = []
        for oid in table.columns:
            column = _Column(oid_bytes(oid), table.values.setdefault(oid, {}), oid=oid)
            column.last = column.prefix
            columns.append(column)
        instances = [oid for oid in scalars if oid.endswith(".0")]  # the rest: GET
        fixed = [oid_bytes(oid[:-2]) for oid in instances]  # GETNEXT of X is X.0 if it exists
        reps, shrunk, first = table.repetitions or self._settings.max_repetitions, False, True
        layout, table.layout = table.layout, None
        alone: list[_Column] = []
        while open_ := [c for c in columns if not c.done and c not in alone]:
            reps = max(1, min(reps, MAX_VARBINDS // len(open_)))
            oids = fixed + [c.last for c in open_]
            answer = await self._request(GETBULK, oids, len(fixed), reps, first)
            if answer.error_status == TOO_BIG and reps > 1:
                reps, shrunk = reps // 2, True
                continue
            if answer.error_status:
                alone += open_  # tooBig at 1 row, or an error: column by column
                break
            if first:  # every column from its start: the previous poll's layout may fit
                learn = table.repetitions > 0  # not a first poll (the next one asks the same)
                bad, table.layout = self._take_first(open_, instances, answer, layout, into, learn)
            else:
                answer = self._decoded(answer)
                into.update(
                    (oid, value_of(answer.tags[i], answer.raws[i]))
                    for oid, i in _instances(instances, answer)
                )
                bad = _advance(open_, answer, len(fixed))
            alone += bad
            fixed, first = [], False
            if not shrunk:  # more rows than expected: ask for twice as many each time
                reps = max(2 * reps, self._settings.max_repetitions)
        for column in columns:
            if not column.done:
                await self._finish_alone(column, table)
        if others := [oid for oid in scalars if fixed or oid not in instances]:
            into.update(await self.get(others))
        table.done.update(c.oid for c in columns if c.done)

    async def _finish_alone(self, column: _Column, table: TableRead) -> None:
        async for index, value in self._walk_alone(column):
            column.values[index] = value
        table.done.add(column.oid)

    async def _walk_alone(self, column: _Column) -> AsyncIterator[tuple[str, Value]]:
        """(index, value) of one column from ``column.last`` on, one GETBULK at a time."""
        reps, size = self._settings.max_repetitions, len(column.prefix)
        while not column.done:
            answer = await self._request(GETBULK, [column.last], 0, reps)
            if answer.error_status == TOO_BIG and reps > 1:
                reps //= 2
                continue
            if answer.error_status:
                raise SnmpRequestError(f"SNMP request failed: error-status {answer.error_status}")
            if not answer.oids:
                raise SnmpRequestError("SNMP request failed: empty GETBULK answer")
            for oid, value in answer.varbinds:
                if value is END_OF_MIB or not oid.startswith(column.prefix) or len(oid) == size:
                    column.done = True
                    break
                if oid_key(oid) <= oid_key(column.last):
                    raise OutOfOrder(f"SNMP agent error: OIDs not increasing under {column.oid}")
                column.last = oid
                if not isinstance(value, Marker):
                    yield index_text(oid[size:]), value

    def _take_first(
        self,
        columns: list[_Column],
        instances: list[str],
        answer: Response,
        layout: object | None,
        into: dict[str, Value],
        learn: bool = True,
    ) -> tuple[list[_Column], Layout | None]:
        """A chain's first answer (``instances``: its non-repeaters): by ``layout`` (the
        previous poll's) if the answer has its shape, else decoded and taken by the order
        check (:func:`_advance`), which makes a new layout if ``learn``."""
        skip, width = len(instances), len(columns)
        if isinstance(layout, Layout) and (layout.skip, layout.width) == (skip, width):
            got = layout.shape.values(answer)
            if got is not None:
                into.update(_by_plan(columns, layout, got))
                return [], layout
        scalars = _instances(instances, self._decoded(answer))
        tags, raws = answer.tags, answer.raws
        into.update((oid, value_of(tags[i], raws[i])) for oid, i in scalars)
        plan: list[_Taken] = []
        bad = _advance(columns, answer, skip, plan)
        if bad or len(plan) != width or not learn:
            return bad, None
        return bad, Layout(skip, width, Shape.of(answer), tuple(scalars), tuple(plan))

    def _decoded(self, answer: Response) -> Response:
        """``answer`` with its varbind list decoded (see :meth:`_request`)."""
        try:
            answer.decode()
        except BerError as exc:
            raise SnmpRequestError(f"SNMP answer did not decode: {exc}") from exc
        return answer

    async def _request(
        self,
        pdu: int,
        oids: list[bytes],
        non_repeaters: int = 0,
        reps: int = 0,
        lazy: bool = False,
    ) -> Response:
        """One request, retried on timeout (a new request-id each attempt). ``lazy``: an
        answer without error-status is not decoded yet (:meth:`_decoded` does it)."""

        def build(request_id: int) -> bytes:
            return encode_request(
                self._version, self._community, pdu, request_id, oids, non_repeaters, reps
            )

        for _attempt in range(self._settings.retries + 1):
            self.stats.sent += 1
            try:
                data = await exchange(self._address, build, self._settings.timeout)
            except TimeoutError:
                continue
            except OSError as exc:
                raise SnmpRequestError(f"SNMP request failed: {type(exc).__name__}") from exc
            self.stats.received += 1
            try:
                return decode_response(data, self._community, lazy)
            except BerError as exc:
                raise SnmpRequestError(f"SNMP answer did not decode: {exc}") from exc
        raise SnmpTimeout(timeout_message(self._settings))


def _instances(scalars: Sequence[str], answer: Response) -> list[tuple[str, int]]:
    """The non-repeaters that answer the scalars asked for (GETNEXT of ``X``: ``X.0``): (scalar
    OID, its varbind), in order."""
    oids, tags = answer.oids, answer.tags
    return [
        (oid, i)
        for i, (oid, got) in enumerate(zip(scalars, oids, strict=False))
        if tags[i] not in _EXCEPTIONS and (got == oid_bytes(oid) or oid_text(got) == oid)
    ]


def _scalars(varbinds: Sequence[tuple[bytes, Value]]) -> dict[str, Value]:
    return {oid_text(oid): v for oid, v in varbinds if not isinstance(v, Marker)}


def _by_plan(columns: list[_Column], layout: Layout, got: Sequence[bytes]) -> dict[str, Value]:
    """Take an answer of the layout's shape (``got``: its value contents) by the layout's
    plan; the scalars it answered."""
    skip, width, tags = layout.skip, layout.width, layout.shape.tags
    for c, (column, taken) in enumerate(zip(columns, layout.plan, strict=True)):
        rows = slice(skip + c, skip + c + width * taken.inside, width)
        _apply(column, taken, tags[rows], got[rows])
    return {oid: value_of(tags[i], got[i]) for oid, i in layout.scalars}


def _advance(
    columns: list[_Column], answer: Response, skip: int, plan: list[_Taken] | None = None
) -> list[_Column]:
    """Take one answer's rows (after ``skip`` non-repeaters) into ``columns``; return the
    columns it got out of order (to walk alone). A column whose slots all lack a new OID is
    among them. ``plan`` gets what each column took (fast path only).

    Fast path: while no arc needs three BER bytes (>= 16384), OID bytes sort as the arcs do,
    so the order check is ``sorted``/``bisect`` on the bytes and list compares per column."""
    oids, tags, raws = answer.oids[skip:], answer.tags[skip:], answer.raws[skip:]
    if not oids:
        return list(columns)
    if _TWO_HIGH in b"\0".join(oids + [c.last for c in columns]).translate(_HIGH):
        return _advance_slowly(columns, list(zip(oids, values(tags, raws), strict=True)))
    width = len(columns)
    # each column's slots are one sorted run if the agent is right: timsort merges the runs
    runs = sorted(chain.from_iterable(oids[c::width] for c in range(width)))
    ordered = list(dict.fromkeys(runs))  # without the duplicates (one column's overflow)
    rank = dict(zip(ordered, range(len(ordered)), strict=True))
    bad = []
    for c, column in enumerate(columns):
        taken = _take(column, oids[c::width], tags[c::width], ordered, rank)
        if taken is None:
            bad.append(column)
            continue
        _apply(column, taken, tags[c : c + width * taken.inside : width],
               raws[c : c + width * taken.inside : width])  # fmt: skip
        if plan is not None:
            plan.append(taken)
    return bad


def _take(
    column: _Column, oids: list[bytes], tags: bytes, ordered: list[bytes], rank: dict[bytes, int]
) -> _Taken | None:
    """What one column's slots of an answer give it (bytes order: see :func:`_advance`); None
    if they are not the agent's next objects after ``column.last``."""
    prefix = column.prefix
    inside = bisect.bisect_left(oids, prefix[:-1] + bytes((prefix[-1] + 1,)))  # if sorted
    checked = min(inside + 1, len(oids))  # and the first OID past the subtree
    end_of_mib = tags.find(_END_OF_MIB, 0, checked)
    if end_of_mib >= 0:
        inside = checked = end_of_mib
    start = bisect.bisect_right(ordered, column.last)
    if list(map(rank.__getitem__, oids[:checked])) != list(range(start, start + checked)):
        return None  # not consecutive: out of order, a gap, or nothing new
    if not inside:
        return _Taken(0, inside < len(oids), [], column.last)
    inner = oids[:inside]
    cached = list(map(_INDEX.get, inner))  # by the whole OID: no slicing
    if None in cached:
        cached = [t or _index(oid, len(prefix)) for t, oid in zip(cached, inner, strict=True)]
    return _Taken(inside, inside < len(oids), cast(list[str], cached), inner[-1])


def _apply(column: _Column, taken: _Taken, tags: bytes, raws: Sequence[bytes]) -> None:
    """Store a column's rows of one answer (``tags``/``raws``: its first ``taken.inside``
    slots), without the rows that say noSuchObject/noSuchInstance."""
    if taken.inside:
        texts, got = taken.texts, values(tags, raws)
        if _NO_SUCH[0] in tags or _NO_SUCH[1] in tags:
            texts, got = _without_markers(texts, got)
        column.values.update(zip(texts, got, strict=True))
        column.last = taken.last
    if taken.done:
        column.done = True


def _without_markers(texts: list[str], got: list[Value]) -> tuple[list[str], list[Value]]:
    kept = [(t, v) for t, v in zip(texts, got, strict=True) if not isinstance(v, Marker)]
    return [t for t, _ in kept], [v for _, v in kept]


def _index(oid: bytes, size: int) -> str:
    """The text of ``oid``'s row index after a ``size``-byte column prefix, cached by the
    whole OID (the same rows come back every poll)."""
    if len(_INDEX) >= _INDEX_CACHE:
        _INDEX.clear()
    text = _INDEX[oid] = index_text(oid[size:])
    return text


# an arc of 3+ BER bytes (two continuation bytes in a row): bytes no longer sort as the arcs
_HIGH = bytes(0 if byte < 0x80 else 1 for byte in range(256))
_TWO_HIGH = b"\x01\x01"
_INDEX: dict[bytes, str] = {}  # column OID + index -> index text
_INDEX_CACHE = 1 << 16


def _advance_slowly(
    columns: list[_Column], varbinds: Sequence[tuple[bytes, Value]]
) -> list[_Column]:
    """:func:`_advance` with OIDs compared as arcs, varbind by varbind."""
    key = oid_key
    ordered = sorted({key(oid) for oid, _ in varbinds})
    rank = {k: i for i, k in enumerate(ordered)}
    for column in columns:
        column.rank = bisect.bisect_right(ordered, key(column.last)) - 1
    width, bad = len(columns), set()
    for i, (oid, value) in enumerate(varbinds):
        column = columns[i % width]
        if column.done or i % width in bad:
            continue
        if value is END_OF_MIB:
            column.done = True
            continue
        place = rank[key(oid)]
        if place != column.rank + 1:
            bad.add(i % width)
            continue
        column.rank = place
        if not oid.startswith(column.prefix) or len(oid) == len(column.prefix):
            column.done = True
            continue
        column.last = oid
        if not isinstance(value, Marker):
            column.values[index_text(oid[len(column.prefix) :])] = value
    return [columns[i] for i in sorted(bad)]
