"""One device-hour of raw results packed into one compressed blob, with an exact round trip.

:func:`pack` takes the column values of ``probe_result`` rows (the dicts of
``ProbeResultRow.values``, without site, device and kind, which the chunk's key holds) and
:func:`unpack` gives them back, every value equal to the stored one: a float keeps its bits,
a string its characters. The blob is columnar, each column laid out so zlib finds the
repetition:

* floats (start, duration, RTTs, the RTT statistics a row does not derive): as integers, a
  column at a time, each integer the difference from the one before (zigzag varints). A column
  whose values are all ``n / 10**k`` exactly for some ``k <= 9`` (RTTs are stored rounded to
  7 decimals) is kept as the integers ``n``; any other (a start from ``time.time()``) as the
  IEEE bit patterns, which grow linearly with the value inside one binade, so the differences
  of one device's starts a minute apart are small too. ``None`` is a bit in a mask.
* ``rtt_min`` / ``rtt_avg`` / ``rtt_max`` / ``jitter``: one bit per row when the value is the
  one :class:`probes.base.ProbeResult` derives from the row's RTTs (what netmon writes), else
  the value itself in a float column.
* ``rtts``: the count and the values, when the JSON is what ``json.dumps`` writes for that
  list of floats; any other text kept as it is.
* ``ok``: a bitmap; ``sent`` / ``received``: integer columns; ``reason`` / ``extra`` (the
  findings JSON): dictionary-coded strings (most hours have one reason or none).

Rows come back ordered by start (the order a chunk is packed in).
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

from probes.base import ProbeResult

VERSION = b"\x04"  # what pack writes (it reads 3 too: the same layouts but ESCAPED and LINE)
READS = (b"\x03", VERSION)
BITS = 0xFF  # float column mode: IEEE bit patterns (else the mode byte is the decimal scale k)
STATS = ("rtt_min", "rtt_avg", "rtt_max", "jitter")
Row = dict[str, Any]


# --- integers ---------------------------------------------------------------------------------
def _varints(values: Sequence[int]) -> bytes:
    """Zigzag varints of the differences between consecutive values."""
    out = bytearray()
    prev = 0
    for v in values:
        d, prev = v - prev, v
        z = d * 2 if d >= 0 else -d * 2 - 1
        while z >= 0x80:
            out.append((z & 0x7F) | 0x80)
            z >>= 7
        out.append(z)
    return bytes(out)


def _read_varints(data: bytes, n: int) -> list[int]:
    out, prev, pos = [], 0, 0
    for _ in range(n):
        z = shift = 0
        while True:
            b = data[pos]
            pos += 1
            z |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                break
        prev += z >> 1 if z % 2 == 0 else -((z + 1) >> 1)
        out.append(prev)
    return out


def _zigzag(values: Sequence[int]) -> bytes:
    """Zigzag varints of the values themselves (no differences)."""
    out = bytearray()
    for v in values:
        z = v * 2 if v >= 0 else -v * 2 - 1
        while z >= 0x80:
            out.append((z & 0x7F) | 0x80)
            z >>= 7
        out.append(z)
    return bytes(out)


def _diff(values: Sequence[int], order: int) -> list[int]:
    out = list(values)
    for _ in range(order):
        out = out[:1] + [b - a for a, b in zip(out, out[1:], strict=False)]
    return out


def _undiff(values: list[int], order: int) -> list[int]:
    for _ in range(order):
        total, out = 0, []
        for v in values:
            total += v
            out.append(total)
        values = out
    return values


def _bitpack(values: Sequence[int]) -> bytes:
    """Frame of reference: the minimum, a width, then each value less the minimum in that
    many bits (near the entropy of noisy values, where varints round up to 7-bit groups)."""
    lo = min(values, default=0)
    width = max((v - lo for v in values), default=0).bit_length()
    big = 0
    for i, v in enumerate(values):
        big |= (v - lo) << (i * width)
    return _zigzag([lo, width]) + big.to_bytes((len(values) * width + 7) // 8, "little")


def _unbitpack(data: bytes, n: int) -> list[int]:
    pos, (lo, width) = _zigzag_at(data, 0, 2)
    big, mask = int.from_bytes(data[pos:], "little"), (1 << width) - 1
    return [((big >> (i * width)) & mask) + lo for i in range(n)]


def _zigzag_at(data: bytes, pos: int, n: int) -> tuple[int, list[int]]:
    """``n`` plain zigzag varints from ``pos``: the position after them, and the values."""
    out = []
    for _ in range(n):
        z = shift = 0
        while True:
            b = data[pos]
            pos += 1
            z |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                break
        out.append(z >> 1 if z % 2 == 0 else -((z + 1) >> 1))
    return pos, out


def _rice(values: Sequence[int]) -> bytes:
    """Rice codes of the zigzagged values (a quotient in unary, ``k`` low bits): within a
    fraction of a bit of the entropy of noise like RTT jitter, where bit-packing pays for
    the widest value."""
    zs = [v * 2 if v >= 0 else -v * 2 - 1 for v in values]
    mean = sum(zs) // max(len(zs), 1)
    ks = range(max(0, mean.bit_length() - 2), mean.bit_length() + 1)
    k = min(ks, key=lambda k: sum(z >> k for z in zs) + len(zs) * k)
    low = (lambda z: format(z & ((1 << k) - 1), f"0{k}b")) if k else (lambda z: "")
    bits = "".join("1" * (z >> k) + "0" + low(z) for z in zs)
    bits += "0" * (-len(bits) % 8)
    return _zigzag([k]) + (int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b"")


def _unrice(data: bytes, n: int) -> list[int]:
    pos, (k,) = _zigzag_at(data, 0, 1)
    body = data[pos:]
    bits = bin(int.from_bytes(body, "big"))[2:].zfill(len(body) * 8) if body else ""
    out, pos = [], 0
    for _ in range(n):
        end = bits.index("0", pos)
        z = ((end - pos) << k) | (int(bits[end + 1 : end + 1 + k], 2) if k else 0)
        pos = end + 1 + k
        out.append(z >> 1 if z % 2 == 0 else -((z + 1) >> 1))
    return out


ESCAPED = 9  # layout bytes 9-11: escaped Rice codes of the 0th-2nd differences
LINE = 12  # layout bytes 12-13: the distances from a line (a steady schedule), escaped Rice
# codes or bit-packed


def _escaped(values: Sequence[int]) -> bytes | None:
    """Rice codes of each value less the column's median (zigzagged), with an escape: a
    quotient of ``limit`` or more is ``limit`` ones, the value's bit length (7 bits) and its
    bits. So an outlier (a failed probe's duration among answered ones, an RTT spike) costs
    its width and 7 bits, not its width in unary, nor a wider ``k`` for every other value;
    and noise around a level (the echoes of one link) is coded around that level, not as
    differences (twice the variance). None when a value is wider than 127 bits."""
    ref = sorted(values)[len(values) // 2] if values else 0
    zs = [(v - ref) * 2 if v >= ref else (ref - v) * 2 - 1 for v in values]
    if any(z.bit_length() > 127 for z in zs):
        return None
    k, lim = _escape_params(zs)
    parts = []
    for z in zs:
        if z >> k < lim:
            parts.append("1" * (z >> k) + "0" + (format(z & ((1 << k) - 1), f"0{k}b") if k else ""))
        else:
            parts.append("1" * lim + format(z.bit_length(), "07b") + (format(z, "b") if z else ""))
    bits = "".join(parts)
    bits += "0" * (-len(bits) % 8)
    return _zigzag([ref, k, lim]) + (int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b"")


def _escape_params(zs: Sequence[int]) -> tuple[int, int]:
    """The ``k`` (near the median's width) and ``limit`` (4 or 16) that code ``zs`` shortest."""
    width = sorted(zs)[len(zs) // 2].bit_length() if zs else 0
    best: tuple[int, int, int] | None = None
    for k in range(max(0, width - 2), width + 1):
        qs = [z >> k for z in zs]
        plain = sum(qs) + len(zs) * (k + 1)
        wide = [(q, z.bit_length()) for q, z in zip(qs, zs, strict=True) if q >= 4]
        for lim in (4, 16):
            cost = plain + sum(lim + 7 + b - q - k - 1 for q, b in wide if q >= lim)
            if best is None or cost < best[0]:
                best = (cost, k, lim)
    return (best[1], best[2]) if best else (0, 4)


def _unescaped(data: bytes, n: int) -> list[int]:
    pos, (ref, k, lim) = _zigzag_at(data, 0, 3)
    body = data[pos:]
    bits = bin(int.from_bytes(body, "big"))[2:].zfill(len(body) * 8) if body else ""
    out, pos = [], 0
    for _ in range(n):
        end = bits.find("0", pos, pos + lim)
        if end >= 0:
            z = ((end - pos) << k) | (int(bits[end + 1 : end + 1 + k], 2) if k else 0)
            pos = end + 1 + k
        else:
            width = int(bits[pos + lim : pos + lim + 7], 2)
            pos += lim + 7
            z, pos = (int(bits[pos : pos + width], 2) if width else 0), pos + width
        out.append(ref + (z >> 1 if z % 2 == 0 else -((z + 1) >> 1)))
    return out


def _line(values: Sequence[int]) -> list[bytes]:
    """The first value, a step (the least-squares slope, rounded) and each later value's distance
    from ``first + i * step``, escaped (:func:`_escaped`, layout :data:`LINE`) or bit-packed
    (``LINE + 1``): starts on a steady schedule cost their jitter, not the difference of two
    jitters."""
    if len(values) < 2:
        return []
    n, first = len(values), values[0]
    num = n * sum(i * v for i, v in enumerate(values)) - n * (n - 1) // 2 * sum(values)
    den = n * n * (n * n - 1) // 12  # n * sum(i * i) - sum(i) ** 2
    step = (2 * num + den) // (2 * den)
    rest = [v - first - i * step for i, v in enumerate(values) if i]
    head = _zigzag([first, step])
    out = [bytes([LINE + 1]) + head + _bitpack(rest)]
    if (escaped := _escaped(rest)) is not None:
        out.append(bytes([LINE]) + head + escaped)
    return out


def _unline(data: bytes, n: int) -> list[int]:
    pos, (first, step) = _zigzag_at(data, 1, 2)
    rest = (_unbitpack if data[0] == LINE + 1 else _unescaped)(data[pos:], n - 1)
    return [first] + [first + (i + 1) * step + r for i, r in enumerate(rest)]


def _ints(values: Sequence[int]) -> bytes:
    """An integer column, whichever layout zlib makes smallest: first or second differences
    (steady starts a minute apart: second) as varints, bit-packed or Rice codes (layout byte
    ``order * 3 + mode``, as in version 3); the values or their differences as escaped Rice
    codes (:data:`ESCAPED` + order); or their distances from a line (:data:`LINE`)."""
    candidates = []
    for order in (1, 2):
        d = _diff(values, order)
        head, rest = _zigzag(d[:order]), d[order:]
        for mode, body in ((0, _zigzag(rest)), (1, _bitpack(rest)), (2, _rice(rest))):
            candidates.append(bytes([order * 3 + mode]) + head + body)
    for order in (0, 1, 2):
        d = _diff(values, order)
        if (escaped := _escaped(d[order:])) is not None:
            candidates.append(bytes([ESCAPED + order]) + _zigzag(d[:order]) + escaped)
    candidates += _line(values)
    return min(candidates, key=lambda c: len(zlib.compress(c, 1)))


def _read_ints(data: bytes, n: int) -> list[int]:
    if data[0] >= LINE:
        return _unline(data, n)
    if data[0] >= ESCAPED:
        order, read = data[0] - ESCAPED, _unescaped
    else:
        order, mode = divmod(data[0], 3)
        read = (_unzigzag, _unbitpack, _unrice)[mode]
    pos, head = _zigzag_at(data, 1, min(order, n))
    return _undiff(head + read(data[pos:], n - len(head)), order)


def _unzigzag(data: bytes, n: int) -> list[int]:
    return _zigzag_at(data, 0, n)[1]


# --- floats -----------------------------------------------------------------------------------
def _bits(v: float) -> int:
    return int(struct.unpack("<q", struct.pack("<d", v))[0])


def _from_bits(i: int) -> float:
    return float(struct.unpack("<d", struct.pack("<q", i))[0])


def _scale(values: Sequence[float]) -> int | None:
    """The smallest k <= 9 with every value exactly ``round(v * 10**k) / 10**k`` (None: none)."""
    if not all(math.isfinite(v) and (v != 0 or math.copysign(1, v) > 0) for v in values):
        return None
    for k in range(10):
        p = 10**k
        if all(round(v * p) / p == v for v in values):
            return k
    return None


def _floats(values: Sequence[float | None]) -> bytes:
    """A float column: mode byte, null mask (a byte per row, zlib squeezes it), integers."""
    present = [v for v in values if v is not None]
    k = _scale(present)
    ints = [_bits(v) for v in present] if k is None else [round(v * 10**k) for v in present]
    mask = bytes(v is not None for v in values)
    return bytes([BITS if k is None else k]) + _section(mask) + _ints(ints)


def _read_floats(data: bytes, n: int) -> list[float | None]:
    mode, ([mask], rest) = data[0], _split(data[1:], 1)
    ints = iter(_read_ints(rest, sum(mask)))
    p = 10**mode if mode != BITS else 0
    to = _from_bits if mode == BITS else (lambda i: i / p)
    return [to(next(ints)) if m else None for m in mask[:n]]


# --- strings ----------------------------------------------------------------------------------
def _strings(values: Sequence[str]) -> bytes:
    """A dictionary (JSON list of the distinct strings) and each row's index into it."""
    index: dict[str, int] = {}
    codes = [index.setdefault(v, len(index)) for v in values]
    return _section(json.dumps(list(index), ensure_ascii=False).encode()) + _varints(codes)


def _read_strings(data: bytes, n: int) -> list[str]:
    words, rest = _split(data, 1)
    table = json.loads(words[0])
    return [table[i] for i in _read_varints(rest, n)]


# --- sections ---------------------------------------------------------------------------------
def _section(data: bytes) -> bytes:
    return _varints([len(data)]) + data


def _split(data: bytes, count: int) -> tuple[list[bytes], bytes]:
    """``count`` length-prefixed sections from the front of ``data``, and what follows."""
    out, pos = [], 0
    for _ in range(count):
        size, head = _varint_at(data, pos)
        out.append(data[head : head + size])
        pos = head + size
    return out, data[pos:]


def _varint_at(data: bytes, pos: int) -> tuple[int, int]:
    """The (non-negative, zigzagged) varint at ``pos`` and the position after it."""
    end = pos
    while data[end] >= 0x80:
        end += 1
    return _read_varints(data[pos : end + 1], 1)[0], end + 1


# --- RTTs -------------------------------------------------------------------------------------
def _rtt_list(text: str) -> list[float] | None:
    """The RTTs of a row's JSON when it is exactly ``json.dumps`` of a list of floats."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, list) or not all(type(v) is float for v in value):
        return None
    return value if json.dumps(value) == text else None


def _derived(rtts: Sequence[float]) -> dict[str, float | None]:
    r = ProbeResult("icmp", True, 0.0, rtts=tuple(rtts))
    return {"rtt_min": r.rtt_min, "rtt_avg": r.rtt_avg, "rtt_max": r.rtt_max, "jitter": r.jitter}


def _same(a: float | None, b: float | None) -> bool:
    return a is None and b is None or (a is not None and b is not None and _bits(a) == _bits(b))


# --- chunks -----------------------------------------------------------------------------------
def pack(rows: Sequence[Row]) -> bytes:
    """The rows (any order) as one blob; :func:`unpack` gives them back ordered by start."""
    rows = sorted(rows, key=lambda r: r["ts"])
    lists = [_rtt_list(r["rtts"]) for r in rows]
    counts = [len(v) + 1 if v is not None else 0 for v in lists]
    derived = [_derived(v) if v is not None else None for v in lists]
    flags, kept = bytearray(), []
    for name in STATS:
        for row, d in zip(rows, derived, strict=True):
            same = d is not None and _same(d[name], row[name])
            flags.append(same)
            if not same:
                kept.append(row[name])
    columns = [
        _floats([r["ts"] for r in rows]), _floats([r["duration"] for r in rows]),
        bytes(bool(r["ok"]) for r in rows), _ints([r["sent"] for r in rows]),
        _ints([r["received"] for r in rows]), _ints(counts),
        _floats([x for v in lists if v is not None for x in v]),
        _strings([r["rtts"] for r, v in zip(rows, lists, strict=True) if v is None]),
        bytes(flags), _floats(kept), _strings([r["reason"] for r in rows]),
        _strings([r["extra"] for r in rows]),
    ]  # fmt: skip
    return _seal(len(rows), columns)


def _seal(n: int, columns: Sequence[bytes]) -> bytes:
    """A blob: the version byte, then the row count and the sections, compressed."""
    return VERSION + zlib.compress(_varints([n]) + b"".join(map(_section, columns)), 9)


def _open(blob: bytes, what: str, sections: int) -> tuple[int, list[bytes]]:
    """The row count and the column sections of a :func:`pack`/:func:`pack_hours` blob."""
    if blob[:1] not in READS:
        raise ValueError(f"unknown {what} version {blob[:1]!r}")
    body = zlib.decompress(blob[1:])
    n, head = _varint_at(body, 0)
    cols, _rest = _split(body[head:], sections)
    return n, cols


def unpack(blob: bytes) -> list[Row]:
    """The rows of a :func:`pack` blob, ordered by start, each value as it was packed."""
    n, cols = _open(blob, "result chunk", 12)
    ts, duration = _read_floats(cols[0], n), _read_floats(cols[1], n)
    sent, received = _read_ints(cols[3], n), _read_ints(cols[4], n)
    counts = _read_ints(cols[5], n)
    flat = iter(_read_floats(cols[6], sum(max(c - 1, 0) for c in counts)))
    odd = iter(_read_strings(cols[7], counts.count(0)))
    lists = [[next(flat) for _ in range(c - 1)] if c else None for c in counts]
    reasons, extras = _read_strings(cols[10], n), _read_strings(cols[11], n)
    rows = []
    for i in range(n):
        v = lists[i]
        rows.append({"ts": ts[i], "duration": duration[i], "ok": bool(cols[2][i]),
                     "sent": sent[i], "received": received[i],
                     "rtts": json.dumps(v) if v is not None else next(odd),
                     "reason": reasons[i], "extra": extras[i]})  # fmt: skip
    _stats(rows, lists, cols[8], iter(_read_floats(cols[9], cols[8].count(0))))
    return rows


def _stats(rows: list[Row], lists: Sequence[list[Any] | None], flags: bytes,
           kept: Iterator[float | None]) -> None:  # fmt: skip
    """Put each row's RTT statistics back: derived from its RTTs, or the kept value."""
    n = len(rows)
    derived = [_derived(v) if v is not None else None for v in lists]
    for j, name in enumerate(STATS):
        for i, row in enumerate(rows):
            d = derived[i]
            row[name] = d[name] if flags[j * n + i] and d is not None else next(kept)


# --- device hours (netmon.rollup's device_day) ------------------------------------------------
HOUR_INTS = ("probes", "failed", "sent", "received")
HOUR_FLOATS = ("rtt_min", "rtt_avg", "rtt_max", "outage_seconds")


def pack_hours(rows: Sequence[Row]) -> bytes:
    """One device day's ``device_hour`` figures (dicts with ``hour``, :data:`HOUR_INTS` and
    :data:`HOUR_FLOATS`) as one blob; :func:`unpack_hours` gives them back by hour, exactly."""
    rows = sorted(rows, key=lambda r: r["hour"])
    columns = [_varints([r["hour"] // 3600 for r in rows])]
    columns += [_varints([r[name] for r in rows]) for name in HOUR_INTS]
    columns += [_floats([r[name] for r in rows]) for name in HOUR_FLOATS]
    return _seal(len(rows), columns)


def unpack_hours(blob: bytes) -> list[Row]:
    n, cols = _open(blob, "device day", 1 + len(HOUR_INTS) + len(HOUR_FLOATS))
    hours = [h * 3600 for h in _read_varints(cols[0], n)]
    ints = [_read_varints(c, n) for c in cols[1 : 1 + len(HOUR_INTS)]]
    floats = [_read_floats(c, n) for c in cols[1 + len(HOUR_INTS) :]]
    return [{"hour": hours[i], **{k: v[i] for k, v in zip(HOUR_INTS, ints, strict=True)},
             **{k: v[i] for k, v in zip(HOUR_FLOATS, floats, strict=True)}}
            for i in range(n)]  # fmt: skip
