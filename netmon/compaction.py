"""Raw results older than a few hours, packed one device-hour to a row (``result_chunk``).

30 days of one-minute results for 5,000 devices are 216 M ``probe_result`` rows, ~200 B each
with their indexes. Every 10 minutes (:data:`EVERY`) the monitor packs each UTC hour that
ended more than ``NETMON_COMPACT_AFTER_HOURS`` (default 2) ago: the raw rows of each (site,
device, kind) in it become one ``result_chunk`` row holding them as a :mod:`netmon.chunks`
blob (an exact round trip), with the number of results and of answered ones (``oks``: "ever
up" without unpacking). A row that arrives late for an hour already packed (a journal replayed
after a long database outage) is merged into that hour's chunk at the next run; a row whose
start is already in the chunk (a replay) adds nothing.

A batch (the sites of one hour, :data:`BATCH_ROWS` raw rows or so) is one transaction: its
chunks written and exactly its packed raw rows (by id) deleted, so a crash or a dead database mid-run loses and duplicates nothing, and a re-run
packs only what is still raw. The raw row with the highest id is never packed (SQLite would
give its id to the next row: ids must only grow, ``netmon.snapshot``'s cut), nor any above
``upto_id`` (the monitor passes its latest snapshot's cut, so the rows a restart refolds by id
are still raw).

Every reader of raw results reads chunks and raw rows alike: the store's readers
(``Store.results_since``, ``device_results``, ``results``, ``ever_up``, ``devices_ever_up``),
``netmon.rollup.device_hour_rows`` (and so ``netmon rollup rebuild``); pruning drops chunks
whose hour is past the retention.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, Index, LargeBinary, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlmodel import Field, SQLModel

from netmon.chunks import pack, unpack

if TYPE_CHECKING:
    from netmon.store import Store

log = logging.getLogger("netmon.compaction")
HOUR = 3600
EVERY = 600.0  # seconds between compactions
BATCH_ROWS = 6_000  # raw rows packed a transaction (whole sites of one hour; ~1 s of packing)
AFTER_HOURS = 2.0  # an hour is packed this long after it ended (NETMON_COMPACT_AFTER_HOURS)
VALUES = ("ts", "duration", "ok", "sent", "received", "rtt_min", "rtt_avg", "rtt_max",
          "jitter", "rtts", "reason", "extra")  # fmt: skip
Key = tuple[str, str, str]  # (site, device, kind)


class ResultChunkRow(SQLModel, table=True):
    """One device's results of one kind in one UTC hour, packed (netmon.chunks)."""

    __tablename__ = "result_chunk"
    __table_args__ = (Index("ix_result_chunk_hour", "hour"),)

    site_id: str = Field(primary_key=True, max_length=64)
    device: str = Field(primary_key=True, max_length=64)
    kind: str = Field(primary_key=True, max_length=16)
    hour: int = Field(primary_key=True)  # Unix seconds, a multiple of 3600
    count: int  # results in the blob
    oks: int  # of them answered (ok)
    blob: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


def hour_of(ts: float) -> int:
    return int(ts // HOUR * HOUR)


# --- packing ----------------------------------------------------------------------------------
def compact(store: Store, now: float, after_hours: float = AFTER_HOURS,
            upto_id: int | None = None) -> int:  # fmt: skip
    """Pack every hour that ended ``after_hours`` before ``now``: the raw rows packed."""
    from netmon.store import ProbeResultRow

    t = ProbeResultRow.__table__  # type: ignore[attr-defined]
    cutoff = hour_of(now - after_hours * HOUR)
    with store.reading("the newest result id"), store.engine.connect() as conn:
        top = conn.execute(select(func.max(t.c.id))).scalar()
    if top is None:
        return 0
    bound = int(top) - 1 if upto_id is None else min(int(top) - 1, upto_id)
    packed = 0
    while True:
        where = (t.c.ts < cutoff) & (t.c.id <= bound)
        with store.reading("the oldest raw result"), store.engine.connect() as conn:
            first = conn.execute(select(func.min(t.c.ts)).where(where)).scalar()
        n = compact_hour(store, hour_of(first), bound) if first is not None else 0
        if n == 0:  # nothing left (or the rows went meanwhile: pruned)
            return packed
        packed += n


def compact_hour(store: Store, hour: int, bound: int) -> int:
    """Pack one hour's raw rows with ids up to ``bound`` into its chunks, merging the chunks
    already there, :data:`BATCH_ROWS` rows (whole sites) a transaction. The raw rows packed."""
    from netmon.store import ProbeResultRow

    t = ProbeResultRow.__table__  # type: ignore[attr-defined]
    where = (t.c.ts >= hour) & (t.c.ts < hour + HOUR) & (t.c.id <= bound)
    q = select(t.c.site_id, func.count()).where(where).group_by(t.c.site_id)
    with store.reading(f"raw results of hour {hour}"), store.engine.connect() as conn:
        counts = sorted((str(site), int(n)) for site, n in conn.execute(q))
    packed, batch, size = 0, [], 0
    for site, n in counts:
        batch.append(site)
        size += n
        if size >= BATCH_ROWS:
            packed, batch, size = packed + _compact_sites(store, hour, bound, batch), [], 0
    return packed + (_compact_sites(store, hour, bound, batch) if batch else 0)


def _compact_sites(store: Store, hour: int, bound: int, sites: Sequence[str]) -> int:
    """:func:`compact_hour` for these sites: one transaction."""
    from netmon.store import ProbeResultRow

    t = ProbeResultRow.__table__  # type: ignore[attr-defined]
    c = ResultChunkRow.__table__  # type: ignore[attr-defined]
    cols = (t.c.id, t.c.site_id, t.c.device, t.c.kind, *(t.c[name] for name in VALUES))
    q = select(*cols).where(t.c.ts >= hour, t.c.ts < hour + HOUR, t.c.id <= bound,
                            t.c.site_id.in_(sites))  # fmt: skip
    with store.writing(f"result chunks of hour {hour}"), store.engine.begin() as conn:
        raw: dict[Key, list[dict[str, Any]]] = {}
        ids = []
        for row_id, site, dev, kind, *values in conn.execute(q):
            ids.append(row_id)
            raw.setdefault((site, dev, kind), []).append(dict(zip(VALUES, values, strict=True)))
        old = conn.execute(select(c.c.site_id, c.c.device, c.c.kind, c.c.blob)
                           .where(c.c.hour == hour, c.c.site_id.in_(sites)))  # fmt: skip
        stored = {(s, d, k): unpack(b) for s, d, k, b in old if (s, d, k) in raw}
        chunks = [_chunk(key, hour, rows, stored.get(key, [])) for key, rows in raw.items()]
        _upsert(conn, chunks)
        for i in range(0, len(ids), 5000):
            conn.execute(delete(t).where(t.c.id.in_(ids[i : i + 5000])))
    return len(ids)


def _chunk(key: Key, hour: int, raw: Sequence[dict[str, Any]],
           stored: Sequence[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    """The chunk row of ``key``'s hour: its stored results and the raw ones not among them
    (a start already packed is a replayed row)."""
    merged = {r["ts"]: r for r in raw}
    merged.update((r["ts"], r) for r in stored)
    rows = list(merged.values())
    site, device, kind = key
    return {"site_id": site, "device": device, "kind": kind, "hour": hour, "count": len(rows),
            "oks": sum(bool(r["ok"]) for r in rows), "blob": pack(rows)}  # fmt: skip


def _upsert(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    c = ResultChunkRow.__table__  # type: ignore[attr-defined]
    ins = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(c)
    keys = ("site_id", "device", "kind", "hour")
    update = {n: ins.excluded[n] for n in ("count", "oks", "blob")}
    stmt = ins.on_conflict_do_update(index_elements=list(keys), set_=update)
    for i in range(0, len(rows), 1000):
        conn.execute(stmt, rows[i : i + 1000])


# --- reading ----------------------------------------------------------------------------------
def chunk_results(
    store: Store,
    where: Any,
    since: float,
    until: float = float("inf"),
    bulk: bool = False,
    newest_first: bool = False,
) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(site, device, kind, row values) of the packed results matching ``where`` (a clause
    over result_chunk) that started in ``[since, until)``, by hour (oldest first, or newest
    hour first), a few hours a read; inside an hour by key, then start."""
    c = ResultChunkRow.__table__  # type: ignore[attr-defined]
    span = (c.c.hour > since - HOUR) & (c.c.hour < until)
    cond = span if where is None else span & where
    order = c.c.hour.desc() if newest_first else c.c.hour
    last: int | None = None
    while True:
        q = select(c.c.hour).where(cond)
        if last is not None:
            q = q.where(c.c.hour < last if newest_first else c.c.hour > last)
        with store.reading("result chunks", bulk=bulk), store.engine.connect() as conn:
            if bulk:
                store.allow_bulk(conn)
            hours = list(conn.execute(q.distinct().order_by(order).limit(6)).scalars())
            if not hours:
                return
            got = conn.execute(select(c.c.site_id, c.c.device, c.c.kind, c.c.blob)
                               .where(cond, c.c.hour.in_(hours))
                               .order_by(order, c.c.site_id, c.c.device, c.c.kind)).all()  # fmt: skip
        for site, dev, kind, blob in got:
            for row in unpack(blob):
                if since <= row["ts"] < until:
                    yield site, dev, kind, row
        last = hours[-1]


def prune_chunks(conn: Connection, before: float) -> int:
    """Delete the chunks of hours that ended at or before ``before`` (in the caller's
    transaction); those of an hour ``before`` cuts stay until it has passed."""
    c = ResultChunkRow.__table__  # type: ignore[attr-defined]
    return int(conn.execute(delete(c).where(c.c.hour + HOUR <= before)).rowcount or 0)


class Compactor:
    """The monitor's compaction task: every :data:`EVERY` seconds, see :func:`compact`."""

    def __init__(self, after_hours: float = AFTER_HOURS, every: float = EVERY) -> None:
        self.after_hours = after_hours
        self.every = every
        self.packed = 0  # raw rows packed since start

    def run_once(self, store: Store, now: float, upto_id: int | None = None) -> int:
        """Blocking (run it in a thread); StoreError when the database is away."""
        if not store.migrated:
            return 0
        n = compact(store, now, self.after_hours, upto_id)
        self.packed += n
        if n:
            log.info("packed %d raw results into hourly chunks", n)
        return n
