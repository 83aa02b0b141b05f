"""The write-ahead journal: every row queued for the database is on disk within a second.

The store queues results in memory and writes them in batches; without this file a kill -9 (or
a power cut) during a database outage lost every result taken during the outage. Now each row
queued (:meth:`Journal.append`) is also appended to a segment file in ``<data dir>/journal``,
and deleted from disk only once the database has committed it (:meth:`Journal.release`).

Durability (the fsync policy)
    Appended rows are buffered and written and fsynced together by :meth:`Journal.sync`, which
    the monitor calls every ``sync_every`` seconds (1 s) in a worker
    thread, and at stop. So a kill -9 or a power cut loses at most the rows of the last second;
    a database that hangs never delays the journal (it has its own thread and timer).

Segments
    ``journal-<segment number, 20 digits>.log`` (numbered on from the last run's, so the
    names sort in the order rows were taken): one row per line, ``<CRC-32, 8 hex> <JSON>``
    (``{"table": …, "row": …}``, the legacy spill format). A segment is closed when it reaches
    ``segment_bytes`` (rotation: the next segment is created and the folder fsynced before any
    row goes into it) and removed once every row in it has been committed or dropped.

Recovery (:meth:`Journal.open`, at start)
    Every segment is read in order and its rows re-queued. A torn tail (a write cut by a kill
    or a full disk: a last line without its newline or with a bad CRC) is truncated with a
    warning and counted (``torn``); a corrupt line elsewhere is skipped, counted and logged
    (``corrupt``). Never a crash. Re-queued rows that the database already had (committed just
    before the kill, their segment not yet removed) are ignored by its unique key on
    (site, device, kind, started_at) — replay is idempotent.

Bounds
    At most ``max_bytes`` on disk (1 GiB; ``NETMON_JOURNAL_MAX_MB``): past it the oldest
    segments are removed, their rows counted in ``dropped`` and logged (they stay queued in
    memory, up to the store's own bound).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("netmon.journal")
Row = tuple[str, dict[str, Any]]  # (table, column values)
PREFIX, SUFFIX = "journal-", ".log"


@dataclass(slots=True)
class _Segment:
    path: Path
    first: int  # the row number of its first row
    rows: int = 0
    size: int = 0

    @property
    def end(self) -> int:
        """One past the row number of its last row."""
        return self.first + self.rows


def encode(table: str, row: dict[str, Any]) -> bytes:
    """One journal line: the CRC-32 of the JSON, a space, the JSON, a newline."""
    body = json.dumps({"table": table, "row": row}, separators=(",", ":")).encode()
    return b"%08x %s\n" % (zlib.crc32(body), body)


def decode(line: bytes) -> bytes | None:
    """The JSON of one journal line (without its newline), or None if its CRC does not match."""
    crc, _, body = line.partition(b" ")
    try:
        return body if len(crc) == 8 and int(crc, 16) == zlib.crc32(body) else None
    except ValueError:
        return None


class Journal:
    """The rows queued for the database, on disk in append-only segments (module docstring)."""

    def __init__(
        self,
        directory: Path,
        segment_bytes: int = 1 << 20,
        max_bytes: int = 1 << 30,
        sync_every: float = 1.0,
    ) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
        self.sync_every = sync_every
        self.torn = 0  # torn tails truncated at open
        self.corrupt = 0  # corrupt lines skipped at open
        self.dropped = 0  # rows removed from disk by the size bound before they were committed
        self.failing = False  # the last write to the journal failed (disk full, read-only)
        self.last_error: str | None = None
        self._segments: list[_Segment] = []  # oldest first; the last one takes appends
        self._buffer: list[Row] = []  # appended, not yet written
        self._next = 0  # the row number of the next row appended
        self._released = 0  # rows before this number are committed (or dropped): not needed
        self._lock = threading.Lock()  # the buffer and the segment list (loop vs. threads)
        self._io = threading.Lock()  # one sync at a time
        self._fd: int | None = None
        self._number = 0  # the file number of the next segment

    # --- start ------------------------------------------------------------------------------
    def open(self, take: Callable[[bytes], Row | None]) -> list[Row]:
        """Read every segment left by an earlier run, repairing torn tails; the rows, oldest
        first, that ``take`` accepts (it checks a line's JSON, as for spill files). They keep
        their segments (numbered from 0) until released; new rows go to a new segment."""
        self.directory.mkdir(parents=True, exist_ok=True)
        rows: list[Row] = []
        for path in sorted(self.directory.glob(f"{PREFIX}*{SUFFIX}")):
            number = path.name.removeprefix(PREFIX).removesuffix(SUFFIX)
            self._number = max(self._number, int(number) + 1 if number.isdigit() else 0)
            found = self._recover(path, take)
            if found:
                self._segments.append(_Segment(path, len(rows), len(found), path.stat().st_size))
                rows.extend(found)
            else:
                path.unlink()
        self._next = len(rows)
        if rows:
            log.warning("journal: %d rows of an earlier run not yet in the database, re-queued",
                        len(rows))  # fmt: skip
        self._rotate()
        return rows

    def _recover(self, path: Path, take: Callable[[bytes], Row | None]) -> list[Row]:
        data = path.read_bytes()
        lines = data.split(b"\n")
        tail = lines.pop()  # b"" when the file ends with a newline
        if tail or (lines and decode(lines[-1]) is None):
            bad = tail if tail else lines.pop()
            keep = len(data) - len(bad) - (0 if tail else 1)
            with path.open("r+b") as f:
                f.truncate(keep)
                os.fsync(f.fileno())
            self.torn += 1
            log.warning("journal %s: torn tail of %d bytes truncated (a write cut short)",
                        path.name, len(data) - keep)  # fmt: skip
        rows = []
        for number, line in enumerate(lines, 1):
            body = decode(line)
            row = take(body) if body is not None else None
            if row is None:
                self.corrupt += 1
                log.warning("journal %s:%d: corrupt line skipped", path.name, number)
            else:
                rows.append(row)
        return rows

    # --- running ----------------------------------------------------------------------------
    def append(self, table: str, row: dict[str, Any]) -> None:
        """Take one row (written at the next :meth:`sync`)."""
        with self._lock:
            self._buffer.append((table, row))

    def sync(self) -> int:
        """Write and fsync the rows appended since the last sync (worker thread); the number
        written. A failed write (disk full) is logged and flagged; its rows stay in memory,
        queued for the database, and the journal starts a fresh segment."""
        with self._io:
            with self._lock:
                rows, self._buffer = self._buffer, []
            if not rows or self._fd is None:
                return 0
            try:
                self._write(rows)
            except OSError as exc:
                self._failed(exc, len(rows))
                return 0
            self.failing = False
            self._bound()
            return len(rows)

    def _write(self, rows: list[Row]) -> None:
        data = b"".join(encode(t, r) for t, r in rows)
        assert self._fd is not None
        seg = self._segments[-1]
        view = memoryview(data)
        while view:  # a full disk may write part of it, then fail
            view = view[os.write(self._fd, view) :]
        os.fsync(self._fd)
        with self._lock:
            seg.rows += len(rows)
            seg.size += len(data)
            self._next += len(rows)
        if seg.size >= self.segment_bytes:
            self._rotate()

    def seal(self) -> None:
        """Close the current segment now (after writing what is buffered): every row taken
        before is in a closed segment, removed as soon as the database has all of its rows.
        Rows the store deletes later (a re-judged history, netmon.history) must not come back
        from the journal at a restart."""
        with self._io:
            with self._lock:
                rows, self._buffer = self._buffer, []
            if self._fd is None:
                with self._lock:
                    self._buffer[:0] = rows
                return
            try:
                if rows:
                    self._write(rows)
            except OSError as exc:
                self._failed(exc, len(rows))  # a new segment already
                return
            try:
                self._rotate()
            except OSError:
                self._close_fd()

    def _failed(self, exc: OSError, lost: int) -> None:
        """A write failed part way: the segment may end torn. Leave it to the recovery and
        go on in a new one; the rows not journaled are still queued in memory."""
        if not self.failing:
            log.error("journal: cannot write %d rows to %s (%s); they stay queued in memory",
                      lost, self.directory, exc.strerror or exc)  # fmt: skip
        self.failing, self.last_error = True, f"{type(exc).__name__}: {exc.strerror or exc}"
        with self._lock:
            self._next += lost  # their row numbers are used: release counts them
        try:
            self._rotate()
        except OSError:
            self._close_fd()

    def release(self, upto: int) -> None:
        """Rows numbered below ``upto`` are committed to the database (or dropped from the
        queue): remove the segments that hold only such rows."""
        with self._lock:
            self._released = max(self._released, upto)
            done = [s for s in self._segments[:-1] if s.end <= self._released]
            self._segments = [s for s in self._segments if s not in done]
        for seg in done:
            _unlink(seg.path)

    def _bound(self) -> None:
        """Remove the oldest segments past ``max_bytes``, counting their rows still needed."""
        with self._lock:
            gone = []
            while len(self._segments) > 1 and self.size > self.max_bytes:
                gone.append(self._segments.pop(0))
        for seg in gone:
            lost = max(0, seg.end - max(seg.first, self._released))
            self.dropped += lost
            log.error("journal over %d MiB: %s removed, %d rows not yet in the database no "
                      "longer on disk", self.max_bytes >> 20, seg.path.name, lost)  # fmt: skip
            _unlink(seg.path)

    @property
    def size(self) -> int:
        """Bytes on disk in all segments."""
        return sum(s.size for s in self._segments)

    @property
    def backlog(self) -> int:
        """Rows on disk or buffered not yet committed to the database."""
        with self._lock:
            oldest = self._segments[0].first if self._segments else self._next
            return self._next + len(self._buffer) - max(self._released, oldest)

    def _rotate(self) -> None:
        """Close the current segment and create the next (its name: the next row number)."""
        self._close_fd()
        path = self.directory / f"{PREFIX}{self._number:020d}{SUFFIX}"
        self._number += 1
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        _fsync_dir(self.directory)
        with self._lock:
            self._segments.append(_Segment(path, self._next))

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        """Write what is buffered, then close. When the database has every row, no segment is
        left (a clean stop replays nothing); otherwise an empty last segment is removed."""
        self.sync()
        with self._io:
            self._close_fd()
            with self._lock:
                done = self._released >= self._next and not self._buffer
                gone = self._segments if done else [s for s in self._segments[-1:] if not s.rows]
                self._segments = [s for s in self._segments if s not in gone]
            for seg in gone:
                _unlink(seg.path)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.error("journal: cannot remove %s: %s", path, exc.strerror or exc)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
