"""Restart without a blackout: the server's judged state saved to a file, restored at start.

Without it a restart refills every window by re-reading and re-folding the raw results of the
whole policy window (5,000 devices x 24 h is 7.2 M rows: over a minute of 503 "loading" and no
site series). Instead, every ``snapshot_every`` seconds (``NETMON_SNAPSHOT_EVERY``, default 300;
0: no snapshot is written or read) and at a clean stop, the server writes what it has judged to
``<data dir>/state.snapshot`` (:data:`FILE_NAME`):

* every evidence object (per site, device and probe kind, so its ``ever_up`` too), each with
  the ``started_at`` of the latest result folded into it (``Monitor.folded_until``);
* every site's status (judgement, since, evaluated at);
* the cut: the highest stored result row id, read before the first evidence is taken.

At start (``Monitor.load_history``) the snapshot is loaded and only what the store holds after
the cut is folded. A missing, foreign, damaged, truncated, out-of-date or unusable file is one
log line and the full re-read, never a traceback.

The cut: no result lost, none counted twice
    ``row_id`` is read (``Store.max_result_id``) *before* any evidence is taken, and each
    evidence object is taken together with its ``folded_until`` in one step on the loop. At
    start the rows with an id above ``row_id`` are read (a primary-key range) and a row is
    folded iff its ``started_at`` is later than its evidence's ``folded_until``. Exact because

    1. every row with an id up to ``row_id`` was folded before that id was read: a result is
       folded when it is taken and queued for the store in the same step (``Monitor.record``),
       rows reach the store only from that queue, and one writer at a time commits them, so
       ids grow with commits (SQLite's rowid; PostgreSQL's sequence under the store's lock);
    2. the results of one (site, device, kind) are taken in the order they started (the
       scheduler never runs two probes of one job at once): a result taken before its evidence
       was saved started at or before ``folded_until``, one taken after started later.

    So rows that were still queued (or being written) when the snapshot was taken, which get
    ids above the cut, are skipped; a probe that started before the snapshot and was taken
    after it is folded. A result taken out of order for its key after the snapshot would be
    skipped (missing from the window, never counted twice). Any lower ``row_id`` is exact too,
    only slower: when the store cannot be read at a snapshot, the previous cut is used.

Inventory changes between runs
    Evidence of a key no longer in the inventory is dropped. A key the snapshot lacks (a new
    device or kind), or whose policy window or evidence type changed, is re-read from the store
    alone (its device's index), like the full re-read would; when more than a quarter of the
    keys need that (e.g. the default window changed), the whole window is re-read instead.

File
    ``netmon-snapshot`` line; one JSON header line (format number, netmon version, a hash of
    the source of every netmon/probes module loaded, snapshot time, cut, store URL without
    password, part sizes, CRC-32 of the parts); then pickled parts (statuses, then evidence in
    chunks of :data:`CHUNK`). Written to a temporary file, fsync'd, renamed over the old one.
    A file written by another format, version or code, for another store, older than the
    window, or whose CRC or size does not match is refused. Loading allows only classes of the
    netmon and probes modules whose source hash matches, plus ``deque`` and ``Counter``.

Cost (measured with ``bench/restart.py``; 5,000 devices x 24 h, 240 buckets each)
    Taking: O(evidence) pickling on the loop, in steps of :data:`CHUNK` evidence objects with
    the loop free between steps; the file is written in a worker thread. Restoring: O(evidence)
    unpickling plus O(rows after the cut). The collector is paused while unpickling and the
    restored objects are then frozen (``gc.freeze``): they are long-lived and hold no cycles,
    and a full collection over them would stall the loop (~0.7 s at 5,000 devices).
"""

from __future__ import annotations

import asyncio
import copyreg
import functools
import gc
import hashlib
import importlib
import io
import json
import logging
import os
import pickle
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netmon import __version__
from netmon.errors import StoreError
from netmon.verdict import Judgement, Verdict
from netmon.window import _Bucket  # pickled by its constructor arguments (see _reduce_bucket)

if TYPE_CHECKING:
    from netmon.monitor import EvidenceKey, Monitor
    from probes.base import Evidence

log = logging.getLogger("netmon.snapshot")

FORMAT = 1  # bump when what the parts hold changes shape
MAGIC = b"netmon-snapshot\n"
FILE_NAME = "state.snapshot"
CHUNK = 50  # evidence objects pickled per step on the loop (~25 ms at 240 buckets each)
MAX_MISSING = 0.25  # share of keys re-read alone before the whole window is re-read instead
_PACKAGES = ("netmon", "probes")
_ALLOWED = {("collections", "deque"), ("collections", "Counter")}

Saved = tuple["Evidence", float | None]  # evidence, started_at of the latest result folded


class Refused(Exception):
    """The snapshot cannot be used; the message says why (logged, then the full re-read)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A snapshot as read back."""

    taken_at: float
    row_id: int  # every stored result with an id up to this was folded into ``evidence``
    evidence: dict[EvidenceKey, Saved]
    statuses: dict[str, tuple[Judgement, float, float]]  # site -> judgement, since, evaluated


@dataclass(frozen=True, slots=True)
class Stats:
    """What taking one snapshot cost (logged; read by bench/restart.py)."""

    evidence: int
    size: int  # bytes
    capture: float  # seconds of pickling on the loop, in steps
    longest_step: float  # the longest the loop was held at once
    write: float  # seconds writing in a worker thread


class Snapshotter:
    """Takes snapshots of one monitor's state (periodically and at stop) and restores one."""

    def __init__(self, path: Path, every: float = 300.0) -> None:
        self.path = path
        self.every = every  # seconds between periodic snapshots
        self.last: Stats | None = None
        self._row_id = 0  # the latest cut read from the store (a valid cut later, too)
        self._taken = 0  # snapshots captured (their order)
        self._written = 0  # the latest one on disk
        self.cut = 0  # the cut of the latest one this process wrote (netmon.compaction packs
        # no row above it: a restart refolds those by id)
        self._lock = threading.Lock()  # one writer; an older capture never replaces a newer
        code_hashes()  # hash the code now, while the files are the code that runs

    # --- taking -----------------------------------------------------------------------------
    async def run(self, monitor: Monitor) -> None:
        """Take a snapshot every ``every`` seconds, forever."""
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.take(monitor)
            except Exception:  # a bug here must not end the snapshots, nor the server
                log.exception("taking a snapshot failed")

    async def take(self, monitor: Monitor) -> Stats | None:
        """Save the monitor's state; never raises (a failure is logged, the old file stays)."""
        if not monitor.ready:
            return None  # windows still being refilled are never saved
        try:
            self._row_id = await asyncio.to_thread(monitor.store.max_result_id)
        except StoreError as exc:
            log.warning("snapshot: %s; using the previous cut (row %d)", exc, self._row_id)
        self._taken += 1
        seq, row_id, taken_at = self._taken, self._row_id, monitor.clock()
        parts, count, capture, longest = await _capture(monitor)
        header: dict[str, Any] = {"format": FORMAT, "netmon": __version__, "code": code_hashes(),
                                  "taken_at": taken_at, "row_id": row_id, "evidence": count,
                                  "store": monitor.store.safe_url}  # fmt: skip
        started = time.perf_counter()
        try:
            size = await asyncio.to_thread(self._write, seq, header, parts)
        except OSError as exc:
            log.error("snapshot not written to %s: %s", self.path, exc.strerror or exc)
            return None
        self.last = Stats(count, size, capture, longest, time.perf_counter() - started)
        log.info("snapshot of %d evidence objects written to %s: %.1f MB, %.2f s on the loop "
                 "(at most %.0f ms at once), %.2f s writing", count, self.path, size / 1e6,
                 capture, longest * 1e3, self.last.write)  # fmt: skip
        return self.last

    def _write(self, seq: int, header: dict[str, Any], parts: list[bytes]) -> int:
        """Header with the parts' sizes and CRC, temporary file, fsync, rename over the old
        one, fsync the directory: the bytes written."""
        header["parts"] = [len(p) for p in parts]
        header["crc32"] = functools.reduce(lambda crc, p: zlib.crc32(p, crc), parts, 0)
        head = MAGIC + json.dumps(header).encode() + b"\n"
        with self._lock:
            if seq < self._written:
                return 0  # a newer snapshot is on disk already
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            with tmp.open("wb") as out:
                out.write(head)
                for part in parts:
                    out.write(part)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
            fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            self._written = seq
            self.cut = int(header["row_id"])
        return len(head) + sum(header["parts"])

    # --- restoring --------------------------------------------------------------------------
    def restore(self, monitor: Monitor, offline: bool = False) -> int | None:
        """Load the snapshot into ``monitor`` (evidence still empty) and fold what the store
        holds after its cut: the number of results folded. ``None``, with one log line saying
        why, when it cannot be used: the caller re-reads the window. A store failure is raised
        (the re-read would fail too). Runs in a worker thread before probing starts.

        ``offline``: the database cannot be read (netmon starts while it is down). The
        snapshot's evidence and statuses are taken as they are: the rows stored after its cut
        are not folded (a gap of at most ``every`` seconds in the windows), keys it lacks start
        empty."""
        started = time.perf_counter()
        try:
            snap = self.read(monitor.store.safe_url)
            plan = _plan(monitor, snap, offline)
        except FileNotFoundError:
            log.info("no snapshot at %s: re-reading the window from the store", self.path)
            return None
        except Refused as exc:
            log.warning("snapshot %s not used (%s): re-reading the window", self.path, exc)
            return None
        except StoreError:
            raise
        except Exception as exc:  # a damaged or foreign file: whatever unpickling raised
            log.warning("snapshot %s unreadable (%s: %s): re-reading the window", self.path,
                        type(exc).__name__, str(exc)[:200])  # fmt: skip
            return None
        try:
            folded, reread = _install(monitor, snap, *plan, offline)
        except StoreError:
            _reset(monitor)  # nothing half-restored is left behind
            raise
        except Exception:
            _reset(monitor)
            log.warning("restoring the snapshot failed: re-reading the window", exc_info=True)
            return None
        log.info("restored %d evidence objects from the snapshot taken %.0f s ago, folded %d "
                 "results stored after it, re-read %d devices' evidence alone: %.2f s",
                 len(plan[0]), monitor.clock() - snap.taken_at, folded, reread,
                 time.perf_counter() - started)  # fmt: skip
        return folded

    def read(self, store_url: str) -> Snapshot:
        """The snapshot on disk, checked (:class:`Refused` says why one cannot be used)."""
        data = self.path.read_bytes()
        header, payload = _split(data)
        for key, want in (("format", FORMAT), ("netmon", __version__), ("store", store_url)):
            if header.get(key) != want:
                raise Refused(f"{key} {header.get(key)!r}, not {want!r}")
        sizes = header.get("parts")
        if not isinstance(sizes, list) or sum(sizes) != len(payload) or not sizes:
            raise Refused(f"{len(payload)} bytes of parts, the header says {sizes}: truncated")
        if zlib.crc32(payload) != header.get("crc32"):
            raise Refused("CRC-32 mismatch: the file is damaged")
        code = header.get("code")
        enabled = gc.isenabled()
        gc.disable()  # millions of small objects: collections meanwhile cost more than loading
        try:
            loaded = list(_load_parts(payload, sizes, code if isinstance(code, dict) else {}))
            gc.freeze()  # long-lived, no cycles: no later collection need scan them (~0.7 s)
        finally:
            if enabled:
                gc.enable()
        kind, statuses = loaded[0]
        if kind != "statuses" or not isinstance(statuses, dict):
            raise Refused("no statuses part")
        evidence: dict[EvidenceKey, Saved] = {}
        for part in loaded[1:]:
            evidence.update((key, (ev, until)) for key, ev, until in part)
        return Snapshot(float(header["taken_at"]), int(header["row_id"]), evidence, statuses)


# --- pickling ---------------------------------------------------------------------------------
def _reduce_counter(c: Counter[Any]) -> tuple[Any, ...]:
    """A Counter rebuilt without calling its __init__ (loading in C, not Python)."""
    return copyreg.__newobj__, (Counter,), None, None, iter(c.items())  # type: ignore[attr-defined]


def _reduce_bucket(b: _Bucket) -> tuple[Any, ...]:
    """A window bucket as its constructor's arguments (half the loading time of its state)."""
    return _Bucket, (b.start, b.probes, b.up, b.sent, b.received, b.sent_up, b.received_up, b.hist)


class _Pickler(pickle.Pickler):
    dispatch_table = {**copyreg.dispatch_table, Counter: _reduce_counter, _Bucket: _reduce_bucket}


def _dumps(obj: object) -> bytes:
    out = io.BytesIO()
    _Pickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return out.getvalue()


def _dumps_chunk(items: list[tuple[EvidenceKey, Evidence, float | None]]) -> bytes:
    """One chunk of evidence; an object that cannot be pickled is left out (its key is then
    re-read from the store at start), with a warning."""
    try:
        return _dumps(items)
    except Exception:  # which error depends on the object
        kept = []
        for item in items:
            try:
                _dumps(item)
            except Exception as exc:
                log.warning("snapshot leaves out %s: %s", item[0], exc)
                continue
            kept.append(item)
        return _dumps(kept)


async def _capture(monitor: Monitor) -> tuple[list[bytes], int, float, float]:
    """The statuses, then the evidence in chunks, each chunk pickled in one step on the loop
    (so each evidence object is saved with its ``folded_until``), the loop free between."""
    statuses = {k: (st.judgement, st.since, st.evaluated_at) for k, st in monitor.status.items()}
    parts = [_dumps(("statuses", statuses))]
    keys = list(monitor.evidence)
    count, capture, longest = 0, 0.0, 0.0
    for i in range(0, len(keys), CHUNK):
        started = time.perf_counter()
        items = [(k, ev, monitor.folded_until.get(k))
                 for k in keys[i : i + CHUNK] if (ev := monitor.evidence.get(k)) is not None]  # fmt: skip
        parts.append(_dumps_chunk(items))
        count += len(items)
        step = time.perf_counter() - started
        capture, longest = capture + step, max(longest, step)
        await asyncio.sleep(0)
    return parts, count, capture, longest


class _Unpickler(pickle.Unpickler):
    """Only netmon's and probes' classes whose code is the code that saved them."""

    def __init__(self, data: bytes, code: dict[str, str]) -> None:
        super().__init__(io.BytesIO(data))
        self.code = code

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        if module.partition(".")[0] not in _PACKAGES:
            raise Refused(f"{module}.{name} is not a netmon class")
        found = super().find_class(module, name)
        if self.code.get(module) != source_hash(module):
            raise Refused(f"the code of {module} changed since the snapshot was taken")
        if not isinstance(found, type):
            raise Refused(f"{module}.{name} is not a class")
        return found


def _split(data: bytes) -> tuple[dict[str, Any], bytes]:
    if not data.startswith(MAGIC):
        raise Refused("not a netmon snapshot")
    end = data.find(b"\n", len(MAGIC))
    try:
        header = json.loads(data[len(MAGIC) : end]) if end > 0 else None
    except ValueError:
        header = None
    if not isinstance(header, dict):
        raise Refused("its header is unreadable")
    return header, data[end + 1 :]


def _load_parts(payload: bytes, sizes: list[int], code: dict[str, str]) -> Iterator[Any]:
    at = 0
    for size in sizes:
        yield _Unpickler(payload[at : at + size], code).load()
        at += size


@functools.cache
def source_hash(module: str) -> str:
    """A short hash of a module's source file (``-``: none to read)."""
    path = getattr(sys.modules.get(module) or importlib.import_module(module), "__file__", None)
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16] if path else "-"
    except OSError:
        return "-"


def code_hashes() -> dict[str, str]:
    """The source hash of every netmon and probes module loaded (a saved class's code)."""
    names = [n for n in list(sys.modules) if n.partition(".")[0] in _PACKAGES]
    return {name: source_hash(name) for name in sorted(names)}


# --- restoring --------------------------------------------------------------------------------
def _plan(
    monitor: Monitor, snap: Snapshot, offline: bool = False
) -> tuple[dict[EvidenceKey, Saved], list[EvidenceKey]]:
    """Which keys take the snapshot's evidence and which are re-read alone (nothing changed
    yet); :class:`Refused` when the snapshot is too old, from another store, or too unlike
    the inventory to be worth it."""
    windows = [monitor.inventory.policy_for(s).window for s in monitor.inventory.sites]
    age = monitor.clock() - snap.taken_at
    if windows and age > max(windows):
        raise Refused(f"taken {age:.0f} s ago, longer than the window")
    stored = snap.row_id if offline else monitor.store.max_result_id()
    if stored < snap.row_id:
        raise Refused(f"the store's results end at row {stored}, the snapshot's at {snap.row_id}")
    restored: dict[EvidenceKey, Saved] = {}
    missing: list[EvidenceKey] = []
    for key, fresh in monitor.evidence.items():
        saved = snap.evidence.get(key)
        if saved is not None and type(saved[0]) is type(fresh) and saved[0].window == fresh.window:
            restored[key] = saved
        else:
            missing.append(key)
    if len(missing) > MAX_MISSING * len(monitor.evidence):
        raise Refused(f"{len(missing)} of {len(monitor.evidence)} evidence keys are new or "
                      "changed (inventory or policy window)")  # fmt: skip
    return restored, missing


def _install(
    monitor: Monitor,
    snap: Snapshot,
    restored: dict[EvidenceKey, Saved],
    missing: list[EvidenceKey],
    offline: bool = False,
) -> tuple[int, int]:
    """Put the saved evidence and statuses in place, fold the rows after the cut, re-read the
    missing keys: (results folded, keys re-read). ``offline``: the first step only."""
    for key, (ev, until) in restored.items():
        monitor.evidence[key] = ev
        if until is not None:
            monitor.folded_until[key] = until
    _restore_statuses(monitor, snap, offline)
    if offline:
        return 0, 0
    folded = 0
    for site_id, device, r in monitor.store.results_after(snap.row_id):
        key = (site_id, device, r.kind)
        if key not in restored:
            continue  # not in the inventory, or re-read below
        until = monitor.folded_until.get(key)
        if until is None or r.started_at > until:
            folded += monitor._fold(site_id, device, r)
    for key in missing:
        folded += _reread(monitor, key, snap.evidence.get(key))
    return folded, len(missing)


def _reread(monitor: Monitor, key: EvidenceKey, saved: Saved | None) -> int:
    """One key's window from the store, as the full re-read folds it."""
    site_id, device, kind = key
    site = monitor.inventory.site(site_id)
    assert site is not None  # the key is one of the monitor's evidence keys
    since = monitor.clock() - monitor.inventory.policy_for(site).window
    n = sum(monitor._fold(site_id, device, r) for r in monitor.store.device_results(*key, since))
    ev = monitor.evidence[key]
    if not ev.ever_up and ((saved is not None and saved[0].ever_up) or monitor.store.ever_up(*key)):
        ev.ever_up = True
    return n


def _restore_statuses(monitor: Monitor, snap: Snapshot, offline: bool = False) -> None:
    """Each site's saved status; the store's latest verdict change where it says otherwise
    (a change recorded after the snapshot), as the full re-read takes it."""
    from netmon.monitor import SiteStatus

    latest = {} if offline else monitor.store.latest_verdicts()
    for site in monitor.inventory.sites:
        change, saved = latest.get(site.id), snap.statuses.get(site.id)
        if saved is not None and (
            change is None
            or (change.verdict == saved[0].verdict.value and change.since == saved[1])
        ):
            monitor.status[site.id] = SiteStatus(site, *saved)
        elif change is not None:
            placeholder = Judgement(Verdict(change.verdict), ())
            monitor.status[site.id] = SiteStatus(site, placeholder, change.since, change.since)


def _reset(monitor: Monitor) -> None:
    """Back to empty evidence and no statuses (a restore that failed half way)."""
    monitor.evidence = {}
    monitor.status = {}
    monitor.folded_until.clear()
    monitor._make_evidence()
