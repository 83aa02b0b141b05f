"""The result store: every probe result and every verdict change, in SQLite or PostgreSQL.

``NETMON_DATABASE_URL`` (an SQLAlchemy URL) picks the database; the embedded default is a
SQLite file in WAL mode. Results are queued in memory and written in batches by
:meth:`Store.flush`; a batch that fails stays queued (oldest first) and is retried, so a dead
database loses nothing already taken, up to ``max_pending`` rows (then the oldest are dropped,
counted and logged). With a :class:`~netmon.journal.Journal` every queued row is also on disk
within a second until it is committed, so a kill -9 during an outage loses at most that second;
the unique keys of both tables make a replay add nothing twice. The schema is created, and
migrated, at start-up, or at the first write when the database was unreachable then.

A hung database never blocks the rest (:class:`Timeouts`): PostgreSQL connects within
``connect`` seconds and cancels a statement past ``statement`` (or a lock wait past ``lock``)
itself; a server that cannot even do that (SIGSTOPped, frozen VM, black-holed network) is cut
by the store: an operation past its ``deadline`` shuts down the sockets of every connection to
it, so the blocked thread gets an error at once. Either way the operation is a StoreError,
counted (``errors`` / ``read_errors``), and a failed write keeps its rows queued. The start-up
reads over the whole table (refill, devices ever up) have ``bulk`` seconds instead. SQLite
waits at most ``statement`` seconds for a lock (its busy timeout).

A result's typed findings go to the ``extra`` JSON column as their kind's ``to_json()`` and come
back through that kind's ``from_json`` (``ProbeKind.decode``), so results re-read at start-up
fold exactly like live ones; a kind no longer registered loads without findings.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import json
import logging
import math
import os
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar

from sqlalchemy import Boolean, Float, Index, Integer, String, and_, event, func, or_, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, Session, SQLModel, create_engine, select

from netmon.compaction import ResultChunkRow, chunk_results, hour_of, prune_chunks
from netmon.errors import StoreError, StoreUnavailable
from netmon.journal import Journal
from netmon.rollup import CoverageRow, migrate_device_hours
from probes import KINDS
from probes.base import Findings, ProbeResult

log = logging.getLogger("netmon.store")
P = ParamSpec("P")
R = TypeVar("R")
READ_WORKERS = 4  # threads of the API's store reads (their own: a hung read holds no other work)
READS_WAITING = 16  # API reads running or waiting beyond which a new one fails at once (503)
SCHEMA_VERSION = 5
# Steps that bring an existing database from version N-1 to N (new databases get create_all).
MIGRATIONS: dict[int, list[str | Callable[[Connection], None]]] = {
    2: ["ALTER TABLE probe_result ADD COLUMN extra TEXT NOT NULL DEFAULT ''"],
    # v3: unique keys, so a replayed journal (or a batch re-sent after its COMMIT's reply was
    # lost) never duplicates a row; duplicates an older netmon wrote are removed first
    3: [
        "DELETE FROM probe_result WHERE id NOT IN "
        "(SELECT MIN(id) FROM probe_result GROUP BY site_id, device, kind, ts)",
        "DROP INDEX IF EXISTS ix_probe_result_site_device_ts",
        "CREATE UNIQUE INDEX IF NOT EXISTS ux_probe_result_key ON probe_result (site_id, device, kind, ts)",
        "ALTER TABLE verdict_change ADD COLUMN changed_at FLOAT",
        "CREATE UNIQUE INDEX IF NOT EXISTS ux_verdict_change_key ON verdict_change (site_id, changed_at)",
    ],
    # v4: raw results older than a few hours packed a device-hour a row (netmon.compaction;
    # the table itself is made by create_all)
    # the device hours likewise a device day a row (netmon.rollup.DeviceDayRow)
    4: [
        "CREATE INDEX IF NOT EXISTS ix_result_chunk_hour ON result_chunk (hour)",
        migrate_device_hours,
    ],
    # v5: site_day's index on district dropped: no query reads site_day by district (the
    # reports group sites by the inventory's districts), and it cost ~10 B a site day
    5: ["DROP INDEX IF EXISTS ix_site_day_district"],
}


class ProbeResultRow(SQLModel, table=True):
    __tablename__ = "probe_result"
    # the key of a result: one per device, kind and start (also the site's and device's index)
    __table_args__ = (Index("ux_probe_result_key", "site_id", "device", "kind", "ts", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    site_id: str = Field(max_length=64)
    device: str = Field(max_length=64)
    kind: str = Field(max_length=16)
    ts: float = Field(index=True)  # Unix seconds when the probe started
    duration: float
    ok: bool
    sent: int
    received: int
    rtt_min: float | None = None
    rtt_avg: float | None = None
    rtt_max: float | None = None
    jitter: float | None = None
    rtts: str = ""  # JSON list of the received RTTs, seconds
    reason: str = ""
    extra: str = ""  # JSON: the result's findings (its kind's to_json; SNMP: interfaces, APs)

    @staticmethod
    def values(site_id: str, device: str, r: ProbeResult) -> dict[str, Any]:
        """The column values of one result (plain dict: queued, written and spilled as is).

        RTTs are kept to 0.1 µs and the duration to 1 µs, and the RTT statistics are those of
        the RTTs kept (what a result re-read from the store has): so a packed hour stores
        them in a few bits each, not eight bytes (netmon.chunks)."""
        kept = ProbeResult(r.kind, r.ok, r.started_at, rtts=tuple(round(x, 7) for x in r.rtts))
        return {
            "site_id": site_id, "device": device, "kind": r.kind, "ts": r.started_at,
            "duration": round(r.duration, 6), "ok": r.ok, "sent": r.sent, "received": r.received,
            "rtt_min": kept.rtt_min, "rtt_avg": kept.rtt_avg, "rtt_max": kept.rtt_max,
            "jitter": kept.jitter, "rtts": json.dumps(list(kept.rtts)), "reason": r.reason,
            "extra": _findings_json(r.findings),
        }  # fmt: skip


class VerdictChangeRow(SQLModel, table=True):
    __tablename__ = "verdict_change"
    # the key of a change: one per site and judging time (NULL in rows of schema v2)
    __table_args__ = (Index("ux_verdict_change_key", "site_id", "changed_at", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    site_id: str = Field(max_length=64, index=True)
    verdict: str = Field(max_length=32)
    since: float
    reasons: str = ""  # JSON list of reason objects
    changed_at: float | None = None  # Unix seconds when it was judged


class SchemaVersionRow(SQLModel, table=True):
    __tablename__ = "schema_version"

    version: int = Field(primary_key=True)


@dataclass(frozen=True, slots=True)
class VerdictChange:
    site_id: str
    verdict: str
    since: float
    reasons: list[dict[str, Any]]
    at: float | None = field(default=None, compare=False)  # judged when (None: when queued)
    row_id: int | None = field(default=None, compare=False)  # its id once written (None: queued)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """How long the store waits for its database, seconds (see the module docstring)."""

    connect: float = 5.0  # PostgreSQL: to connect (libpq connect_timeout)
    statement: float = 10.0  # PostgreSQL statement_timeout; SQLite: its busy timeout
    lock: float = 5.0  # PostgreSQL lock_timeout
    margin: float = 2.0  # past the statement timeout, the server is hung: cut its connections
    bulk: float = 300.0  # the statement timeout of the start-up reads over the whole table

    @property
    def deadline(self) -> float:
        """The longest one store operation may take before its connections are cut."""
        return max(self.connect, self.statement) + self.margin


def make_engine(url: str, timeouts: Timeouts = Timeouts()) -> Engine:
    if url.startswith("sqlite"):
        args = {"check_same_thread": False, "timeout": timeouts.statement}
        engine = create_engine(url, connect_args=args)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=2,
                         connect_args=_postgres_args(url, timeouts))  # fmt: skip


def _postgres_args(url: str, timeouts: Timeouts) -> dict[str, Any]:
    """libpq connect arguments with the timeouts; what the URL sets itself is kept (its
    ``connect_timeout``; its ``options`` go before ours)."""
    query = make_url(url).query
    ms = {"statement_timeout": timeouts.statement, "lock_timeout": timeouts.lock}
    ours = " ".join(f"-c {name}={round(s * 1000)}" for name, s in ms.items())
    given = query.get("options", "")
    given = given if isinstance(given, str) else " ".join(given)
    args: dict[str, Any] = {"options": f"{given} {ours}".strip()}
    if "connect_timeout" not in query:
        args["connect_timeout"] = max(1, round(timeouts.connect))
    return args


class _Deadlines:
    """Calls ``expire`` when an operation runs past ``seconds``: one daemon thread, started at
    the first operation, sleeping until the earliest deadline (O(operations in flight))."""

    def __init__(self, seconds: float, expire: Callable[[], None]) -> None:
        self.seconds = seconds
        self._expire = expire
        self._cond = threading.Condition()
        self._due: dict[int, float] = {}  # token -> monotonic deadline
        self._started: dict[int, float] = {}  # token -> monotonic start
        self._tokens = itertools.count()
        self._bulk: set[int] = set()  # tokens with a bound of their own (not "overdue")
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def bound(self, seconds: float | None = None) -> Iterator[dict[str, bool]]:
        """Watch the block (``seconds``, default :attr:`seconds`); the yielded dict's
        ``expired`` says whether it ran past."""
        state = {"expired": False}
        with self._cond:
            token = next(self._tokens)
            self._started[token] = time.monotonic()
            self._due[token] = self._started[token] + (seconds or self.seconds)
            if seconds:
                self._bulk.add(token)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="store-deadline",
                                                daemon=True)  # fmt: skip
                self._thread.start()
            self._cond.notify()
        try:
            yield state
        finally:
            with self._cond:
                self._started.pop(token, None)
                self._bulk.discard(token)
                state["expired"] = self._due.pop(token, None) is None

    def overdue(self, after: float) -> bool:
        """Whether an operation in flight with the default bound has run past ``after`` s."""
        with self._cond:
            first = min((t for k, t in self._started.items() if k not in self._bulk), default=None)
        return first is not None and time.monotonic() - first > after

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                expired = [t for t, due in self._due.items() if due <= now]
                for t in expired:
                    del self._due[t]
                if not expired:
                    self._cond.wait(min(self._due.values(), default=now + 60.0) - now)
                    continue
            self._expire()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # a new database only (an existing one keeps its own): 16 KiB pages hold packed hours
    # (~1 KiB rows, netmon.compaction) with less left over than 4 KiB pages do
    cur.execute("PRAGMA page_size=16384")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


class Store:
    def __init__(
        self,
        url: str,
        max_pending: int = 2_000_000,
        timeouts: Timeouts = Timeouts(),
        journal: Journal | None = None,
    ) -> None:
        self.url = url
        self.journal = journal  # the write-ahead journal of the queue (netmon.journal), if any
        self.migrated = False  # the schema is in place (migrate() succeeded)
        self._removed = 0  # rows that left the queue (written or dropped) since it was opened
        self.timeouts = timeouts
        self.engine = make_engine(url, timeouts)
        self._conns: weakref.WeakSet[Any] = weakref.WeakSet()  # every DBAPI connection opened
        self._deadlines: _Deadlines | None = None
        if not url.startswith("sqlite"):  # SQLite: its busy timeout bounds every wait
            self._deadlines = _Deadlines(timeouts.deadline, self._cut_connections)
            event.listen(self.engine, "connect", lambda conn, _rec: self._conns.add(conn))
        self.pending: deque[tuple[str, dict[str, Any]]] = deque()  # (table name, row values)
        self.max_pending = max_pending
        self.written = 0
        self.errors = 0  # failed writes
        self.read_errors = 0
        self.dropped = 0
        self.spill_skipped = 0  # torn or corrupt spill lines skipped by load_spills
        self.write_failing = False  # the last write failed
        self.read_failing = False  # the last read failed
        self.last_error: str | None = None  # the last failure, short (no SQL, no parameters)
        self.last_error_at: float | None = None  # Unix seconds
        self._lock = threading.Lock()  # one writer at a time (flush loop vs. final flush)
        self._readers = concurrent.futures.ThreadPoolExecutor(READ_WORKERS, "store-read")
        self._reads = 0  # API reads running or waiting (event loop only)
        # rows queued for the database by another writer, read with the queue (netmon.judging)
        self.queued_elsewhere: Callable[[], list[tuple[str, dict[str, Any]]]] = list
        self.fence: Callable[[Any], None] | None = None  # the leader's check (netmon.judging)

    # --- schema -----------------------------------------------------------------------------
    def migrate(self) -> None:
        """Create missing tables, then apply the migration steps the database has not had.
        A database that cannot be reached is :class:`StoreUnavailable` (netmon starts anyway
        and journals; the first flush that gets through migrates)."""
        try:
            with self.engine.connect():
                pass
        except SQLAlchemyError as exc:
            why = describe(exc)
            raise StoreUnavailable(f"cannot reach database {self.safe_url}: {why}") from exc
        try:
            self._migrate()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot prepare database {self.safe_url}: {exc}") from exc

    def _migrate(self) -> None:
        SQLModel.metadata.create_all(self.engine)
        with Session(self.engine) as s:
            current = s.exec(select(func.max(SchemaVersionRow.version))).one()
        if current is None:
            self._set_version(SCHEMA_VERSION)
        elif current > SCHEMA_VERSION:
            raise StoreError(
                f"database schema v{current} is newer than this netmon (v{SCHEMA_VERSION})"
            )
        for version in range((current or SCHEMA_VERSION) + 1, SCHEMA_VERSION + 1):
            with self.engine.begin() as conn:
                for step in MIGRATIONS[version]:
                    if callable(step):
                        step(conn)
                    else:
                        conn.execute(text(step))
            self._set_version(version)
            log.info("database migrated to schema v%d", version)
        self.migrated = True

    def _set_version(self, version: int) -> None:
        with Session(self.engine) as s:
            s.add(SchemaVersionRow(version=version))
            s.commit()

    @property
    def safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    # --- writing ----------------------------------------------------------------------------
    def add_result(self, site_id: str, device: str, result: ProbeResult) -> None:
        self._queue(ProbeResultRow.__tablename__, ProbeResultRow.values(site_id, device, result))

    def add_verdict_change(self, change: VerdictChange) -> None:
        at = change.at if change.at is not None else time.time()
        row = {"site_id": change.site_id, "verdict": change.verdict, "since": change.since,
               "reasons": json.dumps(change.reasons), "changed_at": at}  # fmt: skip
        self._queue(VerdictChangeRow.__tablename__, row)

    def add_coverage(self, slot: int) -> None:
        """Note that netmon ran, its poller connected, in this slot (netmon.rollup)."""
        self._queue("coverage", {"slot": slot})

    def _queue(self, table: str, row: dict[str, Any], journaled: bool = False) -> None:
        self.pending.append((table, row))
        if self.journal is not None and not journaled:
            self.journal.append(table, row)
        while len(self.pending) > self.max_pending:
            self.pending.popleft()
            self._removed += 1
            self.dropped += 1
            if self.dropped in (1, 1000) or self.dropped % 100_000 == 0:
                log.error("store backlog full: %d oldest rows dropped so far", self.dropped)

    def flush(self, batch_size: int = 5000) -> int:
        """Write queued rows in batches; on failure keep them queued and raise StoreError."""
        total = 0
        with self._lock:
            if not self.migrated and self.pending:
                with self._guarded("writing", "the schema"):
                    self._migrate()
            while self.pending:
                batch = [self.pending[i] for i in range(min(batch_size, len(self.pending)))]
                with self._guarded("writing", f"{len(batch)} rows"):
                    self._write(batch)
                for _ in batch:
                    self.pending.popleft()
                self._removed += len(batch)
                total += len(batch)
                self.written += len(batch)
                if self.journal is not None:
                    self.journal.release(self._removed)
        return total

    def _write(self, batch: list[tuple[str, dict[str, Any]]]) -> None:
        by_table: dict[str, list[dict[str, Any]]] = {}
        for table, row in batch:
            by_table.setdefault(table, []).append(row)
        with self.engine.begin() as conn:
            for table, rows in by_table.items():
                conn.execute(self._insert(table), rows)

    def _insert(self, table: str) -> Any:
        """An INSERT that skips rows whose key is already stored: a journal replayed after a
        kill, or a batch written again after its COMMIT's reply was lost, adds nothing twice."""
        t = SQLModel.metadata.tables[table]
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        return insert(t).on_conflict_do_nothing()

    def open_journal(self) -> int:
        """Re-queue the rows an earlier run journaled and the database did not confirm (they
        keep their place in the journal until written); the number queued. Never raises for
        what is in the files (torn or corrupt lines are counted, see netmon.journal)."""
        if self.journal is None:
            return 0
        rows = self.journal.open(_spilled_row)
        for table, row in rows:
            self._queue(table, row, journaled=True)
        return len(rows)

    def load_spills(self, directory: Path) -> int:
        """Queue the rows a netmon before the journal (schema v2) spilled at shutdown; never
        raises. Lines that are torn (a file cut short) or corrupt are skipped, counted in
        ``spill_skipped`` and logged. Each file's rows are queued (and journaled) before the
        file is removed; loaded twice, they are not stored twice (the unique keys). A file that
        cannot be read is left for the next start, none of it queued."""
        try:
            paths = sorted(p for p in directory.glob("spill-*.jsonl*") if _is_spill(p.name))
        except OSError as exc:
            log.error("cannot list spilled rows in %s: %s", directory, exc)
            return 0
        return sum(self._load_spill(path) for path in paths)

    def _load_spill(self, path: Path) -> int:
        try:
            lines = path.read_bytes().splitlines()
        except OSError as exc:
            log.error("cannot load spilled rows from %s (left for the next start): %s", path, exc)
            return 0
        rows = [row for row in map(_spilled_row, lines) if row is not None]
        skipped = len(lines) - len(rows)
        if skipped:
            self.spill_skipped += skipped
            log.warning("%s: %d torn or corrupt lines skipped, %d rows queued",
                        path.name, skipped, len(rows))  # fmt: skip
        for table, row in rows:
            self._queue(table, row)
        if self.journal is not None:
            self.journal.sync()
        try:
            path.unlink()
            _fsync_dir(path.parent)
        except OSError as exc:
            log.error("cannot remove %s (its rows are queued; loading it again adds none twice): "
                      "%s", path, exc)  # fmt: skip
        return len(rows)

    async def flush_async(self) -> int:
        return await asyncio.to_thread(self.flush)

    # --- reading ----------------------------------------------------------------------------
    async def read_async(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the read ``fn`` for the API in the store's own reader threads: a hung database
        then holds those (each read bounded by the deadline), never the event loop's default
        executor that /metrics and the flush use. With ``READS_WAITING`` reads already running
        or waiting, fail at once (StoreError: a 503) rather than queue behind them."""
        if self._reads >= READS_WAITING:
            self.read_errors += 1
            raise StoreError(f"reading failed: {self._reads} reads already waiting for the store")
        self._reads += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._readers, lambda: fn(*args, **kwargs))
        finally:
            self._reads -= 1

    def results_since(
        self, since: float, chunk: int = 50_000
    ) -> Iterator[tuple[str, str, ProbeResult]]:
        """Every result at or after ``since``, oldest first, as (site, device, result).

        Reads plain columns in id-ordered chunks (no ORM objects): a restart refolds a whole
        24 h window, millions of rows, from here. The packed hours come first (by hour), then
        the raw rows by id (netmon.compaction).
        """
        t = ProbeResultRow.__table__  # type: ignore[attr-defined]
        for site, dev, kind, row in chunk_results(self, None, since, bulk=True):
            yield site, dev, _packed(kind, row)
        for _id, site, dev, result in self._read_results(t.c.ts >= since, 0, chunk, bulk=True):
            yield site, dev, result

    def results_after(
        self, row_id: int, chunk: int = 50_000
    ) -> Iterator[tuple[str, str, ProbeResult]]:
        """Every result stored with an id above ``row_id``, in id order (the rows written after
        a snapshot's cut, ``netmon.snapshot``): a primary-key range, whatever the table's size."""
        for _id, site, dev, result in self._read_results(None, row_id, chunk, bulk=True):
            yield site, dev, result

    def device_results(
        self, site_id: str, device: str, kind: str, since: float
    ) -> Iterator[ProbeResult]:
        """One device's results of one kind at or after ``since``: the packed ones by start,
        then the raw rows in id order (its index)."""
        t = ProbeResultRow.__table__  # type: ignore[attr-defined]
        c = ResultChunkRow.__table__  # type: ignore[attr-defined]
        mine = (c.c.site_id == site_id) & (c.c.device == device) & (c.c.kind == kind)
        for _site, _dev, _kind, row in chunk_results(self, mine, since):
            yield _packed(kind, row)
        where = (t.c.site_id == site_id) & (t.c.device == device) & (t.c.kind == kind)
        for _id, _site, _dev, result in self._read_results(where & (t.c.ts >= since), 0):
            yield result

    def _read_results(
        self, where: Any, after_id: int, chunk: int = 50_000, bulk: bool = False
    ) -> Iterator[tuple[int, str, str, ProbeResult]]:
        """(id, site, device, result) of the rows matching ``where`` with an id above
        ``after_id``, in id-ordered chunks of plain columns (``bulk``: the start-up reads)."""
        t = ProbeResultRow.__table__  # type: ignore[attr-defined]
        cols = (t.c.id, t.c.site_id, t.c.device, t.c.kind, t.c.ts, t.c.duration, t.c.ok,
                t.c.sent, t.c.received, t.c.rtts, t.c.reason, t.c.extra)  # fmt: skip
        last_id = after_id
        while True:
            cond = t.c.id > last_id if where is None else where & (t.c.id > last_id)
            q = select(*cols).where(cond).order_by(t.c.id).limit(chunk)  # type: ignore[call-overload]
            with self._guarded("reading", "stored results", bulk), self.engine.connect() as conn:
                if bulk:
                    self.allow_bulk(conn)
                rows = conn.execute(q).all()
            if not rows:
                return
            for row_id, site, dev, *columns in rows:
                yield row_id, site, dev, _result(*columns)
            last_id = rows[-1][0]

    def max_result_id(self) -> int:
        """The highest result row id written so far (0: none); O(log rows), the primary key."""
        t = ProbeResultRow.__table__  # type: ignore[attr-defined]
        with self._guarded("reading", "the latest result id"), self.engine.connect() as conn:
            return int(conn.execute(select(func.max(t.c.id))).scalar() or 0)

    def ever_up(self, site_id: str, device: str, kind: str) -> bool:
        """Whether this device ever answered this kind (one device's rows, its index)."""
        r, c = ProbeResultRow, ResultChunkRow
        q = select(r.id).where(r.site_id == site_id, r.device == device, r.kind == kind, r.ok)
        packed = select(c.hour).where(c.site_id == site_id, c.device == device, c.kind == kind,
                                      c.oks > 0)  # fmt: skip
        with self._guarded("reading", f"results of {site_id}/{device}"), Session(self.engine) as s:
            return any(s.exec(query.limit(1)).first() is not None for query in (q, packed))

    def results(
        self,
        site_id: str,
        device: str | None,
        since: float,
        limit: int = 1000,
        before: ResultKey | None = None,
    ) -> list[ProbeResultRow]:
        """A site's (or one device's) results at or after ``since``, newest first (by start,
        then device and kind): the rows written and those still queued, without writing
        anything. ``before`` (a row's :func:`result_key`) gives the page after that row."""

        def wanted(row: dict[str, Any]) -> bool:
            key = (row["ts"], row["device"], row["kind"])
            return (
                row["site_id"] == site_id and row["ts"] >= since and device in (None, row["device"])
            ) and (before is None or key < before)

        queued = self._queued(ProbeResultRow.__tablename__, wanted)  # first: see _queued
        t = ProbeResultRow
        q = select(t).where(t.site_id == site_id, t.ts >= since)
        if device is not None:
            q = q.where(t.device == device)
        if before is not None:
            q = q.where(_before_sql(before))
        q = q.order_by(t.ts.desc(), t.device.desc(), t.kind.desc()).limit(limit)  # type: ignore[attr-defined]
        with self._guarded("reading", f"results of {site_id}"), Session(self.engine) as s:
            stored = list(s.exec(q).all())
        raw = {result_key(r) for r in stored}
        packed = self._packed_page(site_id, device, since, limit, before)
        stored += [r for r in packed if result_key(r) not in raw]  # a replay raced compaction
        seen = {result_key(r) for r in stored}
        fresh = [t(**r) for r in queued if (r["ts"], r["device"], r["kind"]) not in seen]
        return sorted(stored + fresh, key=result_key, reverse=True)[:limit]

    def _packed_page(
        self, site_id: str, device: str | None, since: float, limit: int, before: ResultKey | None
    ) -> list[ProbeResultRow]:
        """The newest ``limit`` packed results of :meth:`results` (at least: whole hours)."""
        c = ResultChunkRow.__table__  # type: ignore[attr-defined]
        where = c.c.site_id == site_id
        if device is not None:
            where = where & (c.c.device == device)
        until = math.nextafter(before[0], math.inf) if before is not None else math.inf
        found: list[ProbeResultRow] = []
        full_at: int | None = None  # the hour in which ``limit`` rows were reached
        for _site, dev, kind, row in chunk_results(self, where, since, until, newest_first=True):
            hour = hour_of(row["ts"])
            if full_at is not None and hour < full_at:
                break
            if before is None or (row["ts"], dev, kind) < before:
                found.append(ProbeResultRow(site_id=site_id, device=dev, kind=kind, **row))
            if full_at is None and len(found) >= limit:
                full_at = hour
        return found

    def devices_ever_up(self) -> set[tuple[str, str, str]]:
        """(site, device, probe kind) of every kind that ever got an answer from a device."""
        r, c = ProbeResultRow, ResultChunkRow
        with self._guarded("reading", "devices ever up", bulk=True), self.engine.connect() as s:
            self.allow_bulk(s)
            q = select(r.site_id, r.device, r.kind).where(r.ok).distinct()
            packed = select(c.site_id, c.device, c.kind).where(c.oks > 0).distinct()
            return {(a, b, k) for query in (q, packed) for a, b, k in s.execute(query).all()}

    def latest_verdicts(self) -> dict[str, VerdictChange]:
        with self._guarded("reading", "latest verdicts"), Session(self.engine) as s:
            newest = select(func.max(VerdictChangeRow.id)).group_by(VerdictChangeRow.site_id)
            rows = s.exec(select(VerdictChangeRow).where(VerdictChangeRow.id.in_(newest))).all()  # type: ignore[union-attr]
        return {r.site_id: _change(r) for r in rows}

    def verdict_history(
        self, site_id: str, limit: int = 100, before: HistoryKey | None = None
    ) -> list[VerdictChange]:
        """A site's verdict changes, newest first: written and still queued, without writing.

        Newest is by ``changed_at``, then row id; rows of schema v2 (no ``changed_at``) come
        last, by id. ``before`` (an item's :func:`history_key`) gives the page after it."""
        v = VerdictChangeRow

        def wanted(row: dict[str, Any]) -> bool:
            at = row.get("changed_at")
            return row["site_id"] == site_id and (before is None or _older(at, None, before))

        queued = self._queued(v.__tablename__, wanted)
        q = select(v).where(v.site_id == site_id)
        if before is not None:
            q = q.where(_older_sql(before))
        q = q.order_by(v.changed_at.desc().nulls_last(), v.id.desc()).limit(limit)  # type: ignore[union-attr]
        with self._guarded("reading", f"verdict history of {site_id}"), Session(self.engine) as s:
            stored = [_change(r) for r in s.exec(q).all()]
        seen = {_dedupe_key(c) for c in stored}
        newest_queued = [_change(VerdictChangeRow(**row)) for row in reversed(queued)]
        fresh = [c for c in newest_queued if _dedupe_key(c) not in seen]
        return sorted(fresh + stored, key=_newest_first)[:limit]  # stable: ties keep queue order

    def verdict_before(self, site_id: str, at: float) -> VerdictChange | None:
        """The site's latest verdict change judged before ``at`` (written ones only)."""
        v = VerdictChangeRow
        q = (select(v).where(v.site_id == site_id, v.changed_at < at)  # type: ignore[operator]
             .order_by(v.changed_at.desc(), v.id.desc()).limit(1))  # type: ignore[union-attr]  # fmt: skip
        with self._guarded("reading", f"verdict history of {site_id}"), Session(self.engine) as s:
            row = s.exec(q).first()
        return _change(row) if row is not None else None

    def rewrite_history(
        self, site_id: str, start: float, end: float, changes: list[VerdictChange]
    ) -> int:
        """Replace the site's verdict changes judged in ``[start, end]`` by ``changes`` (re-
        judged from late results, netmon.history), in one transaction; the rows deleted.

        First the journal's current segment is closed and the queue written, so no segment on
        disk holds a row deleted here: a restart's replay would put it back (its unique key
        no longer there to refuse it)."""
        if self.journal is not None:
            self.journal.seal()
            self.flush()
            self.journal.release(0)
        t = VerdictChangeRow.__table__  # type: ignore[attr-defined]
        rows = [{"site_id": c.site_id, "verdict": c.verdict, "since": c.since,
                 "reasons": json.dumps(c.reasons), "changed_at": c.at} for c in changes]  # fmt: skip
        gone = (t.c.site_id == site_id) & (t.c.changed_at >= start) & (t.c.changed_at <= end)
        with (
            self._guarded("writing", f"re-judged history of {site_id}"),
            self.engine.begin() as conn,
        ):
            if self.fence is not None:  # the leader's alone (netmon.judging): else StoreError
                self.fence(conn)
            deleted = conn.execute(t.delete().where(gone)).rowcount
            if rows:
                conn.execute(self._insert(t.name), rows)
        return int(deleted)

    def verdict_changes(self, after_id: int, limit: int) -> list[VerdictChange]:
        """Every site's written verdict changes with a row id above ``after_id``, oldest first
        (the change feed: a row written later always gets a higher id; queued rows are not
        here until written)."""
        v = VerdictChangeRow
        q = select(v).where(v.id > after_id).order_by(v.id).limit(limit)  # type: ignore[operator,arg-type]
        with self._guarded("reading", "verdict changes"), Session(self.engine) as s:
            return [_change(r) for r in s.exec(q).all()]

    def _queued(self, table: str, wanted: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """The queued rows of ``table`` that ``wanted`` accepts, oldest first.

        Read the queue *before* the database: a row leaves the queue only after its batch is
        committed, so a row missing from this snapshot is already in the database (or newer
        than the read). A row in both, written meanwhile, is dropped by the caller's key.
        ``deque.copy`` runs in C without releasing the GIL: the flush thread cannot pop mid-copy.
        """
        rows = [*self.pending.copy(), *self.queued_elsewhere()]
        return [row for t, row in rows if t == table and wanted(row)]

    def queued(self, table: str) -> list[dict[str, Any]]:
        """Every queued row of ``table``, oldest first (read it before the database)."""
        return self._queued(table, lambda _row: True)

    def reading(self, what: str, bulk: bool = False) -> contextlib.AbstractContextManager[None]:
        """A read of ``what`` guarded as the store's own are (errors, deadline; StoreError);
        ``bulk``: a start-up read, whose connection must be :meth:`allow_bulk`'d."""
        return self._guarded("reading", what, bulk)

    def writing(self, what: str) -> contextlib.AbstractContextManager[None]:
        return self._guarded("writing", what)

    def queued_results(self) -> Iterator[tuple[str, str, ProbeResult]]:
        """The results still queued for the database, oldest first, as (site, device, result):
        what a start with the database unreachable folds from the journal."""
        names = ("kind", "ts", "duration", "ok", "sent", "received", "rtts", "reason", "extra")
        for table, row in self.pending.copy():
            if table == ProbeResultRow.__tablename__:
                yield row["site_id"], row["device"], _result(*(row[n] for n in names))

    @contextlib.contextmanager
    def session(self, doing: Literal["reading", "writing"], what: str) -> Iterator[Session]:
        """A session for another module's own tables (``netmon.auth``, ``netmon.maintenance``):
        its database errors are StoreErrors, bounded and counted like the store's own."""
        with self._guarded(doing, what), Session(self.engine) as s:
            yield s

    @contextlib.contextmanager
    def _guarded(
        self, doing: Literal["reading", "writing"], what: str, bulk: bool = False
    ) -> Iterator[None]:
        """Translate a database error into StoreError, and note the failure (or the recovery)
        of that direction: reads and writes are counted and flagged apart. The block is
        bounded by the deadline (PostgreSQL): past it, the database is taken as hung. A
        ``bulk`` read (start-up, the whole table) has ``Timeouts.bulk`` instead, and must
        ``allow_bulk`` its connection's statement timeout."""
        reading = doing == "reading"
        budget = self.timeouts.bulk + self.timeouts.margin if bulk else None
        watch = self._deadlines.bound(budget) if self._deadlines else contextlib.nullcontext(None)
        try:
            with watch as state:
                yield
        except SQLAlchemyError as exc:
            if reading:
                self.read_errors += 1
                self.read_failing = True
            else:
                self.errors += 1
                self.write_failing = True
            hung = state is not None and state["expired"]
            why = f"no answer within {self.timeouts.deadline:g} s" if hung else describe(exc)
            self.last_error, self.last_error_at = why, time.time()
            raise StoreError(f"{doing} {what} failed: {why}") from exc
        if reading:
            self.read_failing = False
        else:  # the database answers again: a read that failed before no longer says it fails
            self.write_failing = self.read_failing = False

    def allow_bulk(self, conn: Any) -> None:
        """Raise the statement timeout of ``conn``'s transaction to ``Timeouts.bulk``."""
        if conn.dialect.name == "postgresql":
            ms = round(self.timeouts.bulk * 1000)
            conn.execute(text(f"SET LOCAL statement_timeout = {ms}"))

    def _cut_connections(self) -> None:
        """An operation ran past its deadline: the server does not even answer its own
        statement timeout. Shut down the socket of every connection to it (in use or pooled),
        so blocked calls fail now; the pool reconnects (within ``connect``) when asked again."""
        conns = list(self._conns)
        log.warning("database %s gave no answer within %g s: cutting its %d connections",
                    self.safe_url, self.timeouts.deadline, len(conns))  # fmt: skip
        for conn in conns:
            with contextlib.suppress(Exception):  # closed meanwhile, no socket: nothing to cut
                fd = conn.pgconn.socket
                with socket.socket(fileno=os.dup(fd)) as sock:
                    sock.shutdown(socket.SHUT_RDWR)

    @property
    def failing(self) -> bool:
        """The last write or the last read failed (the database is down or refusing), or an
        operation has been waiting past the statement timeout (the database hangs: it is
        failing before the deadline says so)."""
        stalled = self._deadlines is not None and self._deadlines.overdue(self.timeouts.statement)
        return self.write_failing or self.read_failing or stalled

    def prune(self, before: float) -> int:
        """Delete raw results (and packed hours, and coverage) older than ``before``."""
        with self.engine.begin() as conn:
            res = conn.execute(ProbeResultRow.__table__.delete().where(ProbeResultRow.ts < before))  # type: ignore[attr-defined]
            conn.execute(CoverageRow.__table__.delete().where(CoverageRow.slot < before))  # type: ignore[attr-defined]
            prune_chunks(conn, before)
            return int(res.rowcount or 0)

    def close(self) -> None:
        self._readers.shutdown(wait=False, cancel_futures=True)
        self.engine.dispose()
        if self.journal is not None:
            self.journal.close()


_SPILLABLE: dict[str, type[SQLModel]] = {
    ProbeResultRow.__tablename__: ProbeResultRow,
    VerdictChangeRow.__tablename__: VerdictChangeRow,
    CoverageRow.__tablename__: CoverageRow,
}


def _is_spill(name: str) -> bool:
    return name.endswith((".jsonl", ".jsonl.tmp"))


def _spilled_row(line: bytes) -> tuple[str, dict[str, Any]] | None:
    """One spill line as (table, row); None if it is torn, corrupt, or not a row the table
    takes (a row the database would refuse would fail every batch it is in, forever)."""
    try:
        item = json.loads(line)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        return None
    if not isinstance(item, dict) or not isinstance(item.get("row"), dict):
        return None
    table, given = str(item.get("table")), item["row"]
    model = _SPILLABLE.get(table)
    fields = {k: v for k, v in model.model_fields.items() if k != "id"} if model else {}
    if not fields or not set(given) <= set(fields):
        return None
    row = {}
    for name, info in fields.items():
        value = given.get(name, None if info.is_required() else info.default)
        if not _fits(value, SQLModel.metadata.tables[table].columns[name]):
            return None
        row[name] = value
    return table, row


def _fits(value: object, column: Any) -> bool:
    """Whether the database takes ``value`` in ``column`` (type, NULL, length)."""
    if value is None:
        return bool(column.nullable)
    kind = column.type.impl if isinstance(column.type, TypeDecorator) else column.type
    if isinstance(kind, String):
        return isinstance(value, str) and (kind.length is None or len(value) <= kind.length)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return isinstance(value, bool) and isinstance(kind, Boolean)
    return isinstance(kind, Float) or (isinstance(kind, Integer) and isinstance(value, int))


def _fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _findings_json(found: Findings | None) -> str:
    """A result's findings for the ``extra`` column ("" when it has none)."""
    return json.dumps(found.to_json(), separators=(",", ":")) if found is not None else ""


def describe(exc: SQLAlchemyError) -> str:
    """The driver's own message, first line only: no SQL, no parameters, no help link."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def _result(
    kind: str,
    ts: float,
    duration: float,
    ok: bool,
    sent: int,
    received: int,
    rtts: str,
    reason: str,
    extra: str,
) -> ProbeResult:
    """A stored (or queued) row's columns as the result it was."""
    rt = tuple(json.loads(rtts)) if rtts and rtts != "[]" else ()
    found = KINDS[kind].decode(extra) if extra and kind in KINDS else None
    return ProbeResult(kind, bool(ok), ts, duration, sent, received, rt, reason, found)  # fmt: skip


def _packed(kind: str, row: dict[str, Any]) -> ProbeResult:
    """A packed row (netmon.compaction) as the result it was."""
    names = ("ts", "duration", "ok", "sent", "received", "rtts", "reason", "extra")
    return _result(kind, *(row[n] for n in names))


def _change(r: VerdictChangeRow) -> VerdictChange:
    reasons = json.loads(r.reasons or "[]")
    return VerdictChange(r.site_id, r.verdict, r.since, reasons, r.changed_at, r.id)


# A history item's place: (changed_at, row id); either may be None (schema v2 row, queued row).
HistoryKey = tuple[float | None, int | None]


def history_key(c: VerdictChange) -> HistoryKey:
    return c.at, c.row_id


def _newest_first(c: VerdictChange) -> tuple[bool, float, float]:
    """Sort key, ascending = newest first: by changed_at, then id; no changed_at last."""
    return c.at is None, -(c.at or 0.0), -(c.row_id if c.row_id is not None else float("inf"))


def _dedupe_key(c: VerdictChange) -> tuple[Any, ...]:
    """What makes a queued change the copy of a stored one (a journal replayed, a batch
    written twice): the same judging time, verdict and since."""
    return c.at, c.verdict, c.since


def _older(at: float | None, row_id: int | None, before: HistoryKey) -> bool:
    """Whether the item (at, row_id) comes after ``before`` in history order (newest first)."""
    b_at, b_id = before
    if b_at is None:
        return at is None and row_id is not None and b_id is not None and row_id < b_id
    if at is None or at < b_at:
        return True
    return at == b_at and row_id is not None and b_id is not None and row_id < b_id


def _older_sql(before: HistoryKey) -> Any:
    """:func:`_older` as a WHERE clause over verdict_change."""
    v = VerdictChangeRow.__table__.c  # type: ignore[attr-defined]
    b_at, b_id = before
    tie = and_(v.changed_at == b_at, v.id < b_id) if b_id is not None else None
    if b_at is None:
        return and_(v.changed_at.is_(None), v.id < b_id) if b_id is not None else v.id < 0
    clauses = [v.changed_at.is_(None), v.changed_at < b_at]
    return or_(*clauses, *([tie] if tie is not None else []))


# A result's place in a listing, newest first: (start, device, kind), its unique key in a site.
ResultKey = tuple[float, str, str]


def result_key(r: ProbeResultRow) -> ResultKey:
    return r.ts, r.device, r.kind


def _before_sql(before: ResultKey) -> Any:
    """The rows whose :func:`result_key` is below ``before`` (spelled out: no row values)."""
    t = ProbeResultRow.__table__.c  # type: ignore[attr-defined]
    ts, device, kind = before
    same_device = and_(t.device == device, t.kind < kind)
    return or_(t.ts < ts, and_(t.ts == ts, or_(t.device < device, same_device)))
