"""A remote poller's outbox: results the server has not taken yet, on disk (SQLite).

``netmon poll`` (netmon.remote_poller) writes every second's results as one *batch* here before
it tries to send them, and deletes a batch only when the server has answered that it took it.
So a WAN cut, a server restart or a kill -9 of the poller loses nothing already probed: the
batches wait, and are sent again in the order they were taken, each with its id (the server
takes a batch id once: netmon.fleet), carrying the results' own timestamps.

Bounded: past ``max_bytes`` of waiting results, or for batches older than ``max_age``
seconds, the oldest batches are dropped and their results counted (``dropped``, reported in
every heartbeat). The file is a plain SQLite database in WAL mode; each call is one short
transaction, run by the caller off its event loop.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS batch (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    taken_at REAL NOT NULL,
    results INTEGER NOT NULL,
    body TEXT NOT NULL
)
"""


class Outbox:
    def __init__(self, path: Path, max_bytes: int, max_age: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.max_bytes, self.max_age = path, max_bytes, max_age
        self.dropped = 0  # results dropped (too many, too old) since this process started
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(SCHEMA)

    def put(self, items: list[list[Any]], now: float) -> str:
        """Keep one batch; its id. Then trim to the bounds."""
        batch = uuid.uuid4().hex
        body = json.dumps(items, separators=(",", ":"))
        with self._lock:
            self._db.execute("INSERT INTO batch (id, taken_at, results, body) VALUES (?, ?, ?, ?)",
                             (batch, now, len(items), body))  # fmt: skip
            self._trim(now)
        return batch

    def _trim(self, now: float) -> None:
        old = self._db.execute("SELECT COALESCE(SUM(results), 0) FROM batch WHERE taken_at < ?",
                               (now - self.max_age,)).fetchone()[0]  # fmt: skip
        self._db.execute("DELETE FROM batch WHERE taken_at < ?", (now - self.max_age,))
        self.dropped += int(old)
        while True:
            size, seq, results = self._db.execute(
                "SELECT (SELECT COALESCE(SUM(LENGTH(body)), 0) FROM batch), seq, results"
                " FROM batch ORDER BY seq LIMIT 1").fetchone() or (0, None, 0)  # fmt: skip
            if seq is None or size <= self.max_bytes:
                return
            self._db.execute("DELETE FROM batch WHERE seq = ?", (seq,))
            self.dropped += int(results)

    def oldest(self, limit: int = 20) -> list[tuple[int, str, list[list[Any]]]]:
        """The oldest waiting batches: (seq, id, items), oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT seq, id, body FROM batch ORDER BY seq LIMIT ?",
                                    (limit,)).fetchall()  # fmt: skip
        return [(seq, batch, json.loads(body)) for seq, batch, body in rows]

    def done(self, seq: int) -> None:
        """The server took the batch: forget it."""
        with self._lock:
            self._db.execute("DELETE FROM batch WHERE seq = ?", (seq,))

    def waiting(self) -> int:
        """Results waiting to be sent."""
        with self._lock:
            return int(
                self._db.execute("SELECT COALESCE(SUM(results), 0) FROM batch").fetchone()[0]
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()


__all__ = ["Outbox"]
