"""The monitor: the server's side of inventory → scheduler → probes → store → verdict.

Probing happens in a poller (``netmon.poller``: scheduler + engines), by default a process of
its own that hands results over the results channel (``netmon.poller_link``); the monitor takes
each result (:meth:`Monitor.record`), stores it and folds it. ``Monitor`` owns the in-memory
view the API and metrics read:
evidence per (site, device, probe kind) (each kind's ``new_evidence``; a result folds into its
own kind's evidence only), and the current verdict per site with its since-time. A device's
reachability is the summary of its best-ranked kind (``ProbeKind.reachability``: icmp, else
snmp), then each kind's site view may correct it (SNMP: APs as their controllers see them).
Nothing here names a kind: the monitor loops over the registry (``probes.KINDS``). At start-up
the evidence is restored from the latest snapshot plus the results stored after it
(``netmon.snapshot``), else refilled from the store, so a restart does not forget the last 24 h.
Maintenance windows posted to the API are read from the store before that (after a flush, if
the database was down at start) and judged as the inventory's own (``netmon.maintenance``):
``announced`` is the inventory as loaded, ``inventory`` the one with those windows added.

Judging is incremental. A fold marks its site changed; :meth:`Monitor.evaluate` re-judges only
the sites with a change or whose next time boundary has passed (the earliest of their
evidence's ``next_boundary`` and ``netmon.verdict.timing.steady_until``), and carries every
other site's judgement and since-time forward unchanged, which is exactly what a full re-judge
would give (``tests/test_incremental_judge.py`` checks it on randomized histories). Cost of one
evaluation: O(sites) to walk the inventory plus O(devices of the re-judged sites), each device
summary O(1) unless it changed (``netmon.window``); at the real rate (one result per device a
minute, an evaluation every 5 s) that is the sites with a fold in the last 5 s, their unchanged
devices served from cache. ``evaluate(full=True)`` (or ``incremental = False``) re-judges every
site from its summaries, as before; so does any evaluation after a load, a reload, or the clock
stepping back. An evidence type without ``next_boundary`` has its site re-judged every time.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from netmon.compaction import Compactor
from netmon.errors import StoreError
from netmon.history import Rejudger
from netmon.inventory import Inventory, Site
from netmon.maintenance import ApiMaintenance, load_windows, with_windows
from netmon.poller_link import LocalPoller, PollerLink
from netmon.rollup import SLOT, Rollups, slot_of
from netmon.store import Store, VerdictChange
from netmon.verdict import Judgement, Verdict, judge
from netmon.verdict.timing import steady_until
from netmon.window import DeviceSummary
from probes import KINDS, Engines, Evidence, ProbeResult
from probes.base import by_reachability

if TYPE_CHECKING:
    from netmon.config import ValidatedConfig
    from netmon.judging import Judging
    from netmon.snapshot import Snapshotter
    from netmon.traps import TrapHints

log = logging.getLogger("netmon.monitor")

EvidenceKey = tuple[str, str, str]  # (site id, device name, probe kind)
WINDOWS_RETRY = 30.0  # seconds between attempts to read the API's maintenance windows


@dataclass(frozen=True, slots=True)
class SiteStatus:
    site: Site
    judgement: Judgement
    since: float
    evaluated_at: float

    @property
    def verdict(self) -> Verdict:
        return self.judgement.verdict


@dataclass(frozen=True, slots=True)
class JudgedView:
    """The view a site was judged from (``Monitor.judged_view``), and until when it holds."""

    site: Site
    view: SiteView
    made: float  # when
    until: float  # its next time boundary (``next_boundary``)
    stamp: tuple[int, int]  # Monitor.stamp of the site then


@dataclass(frozen=True, slots=True)
class SiteView:
    """Everything known about a site's devices at one moment."""

    summaries: dict[str, DeviceSummary]  # reachability by device (best-ranked kind, corrected)
    evidence: dict[str, dict[str, Evidence]]  # by kind name, then device name (shared: read only)
    views: dict[str, object]  # each kind's site-level view (SNMP: the controllers' APs)


class Monitor:
    def __init__(
        self,
        inventory: Inventory,
        store: Store,
        engines: Engines | None = None,
        clock: Callable[[], float] = time.time,
        flush_every: float = 1.0,
        spill_dir: Path | None = None,
        retention: float | None = None,
        poller: PollerLink | None = None,
    ) -> None:
        self.announced = inventory  # as loaded; ``inventory`` adds the API's maintenance windows
        self.inventory = inventory
        self.api_windows: list[ApiMaintenance] = []  # netmon.maintenance
        self.windows_loaded = False  # read from the store yet (retried after flushes until then)
        self._windows_due = -math.inf  # when a flush tries to read them again
        self.store = store
        # where results come from: by default the poller on this loop, with these engines
        self.poller = poller if poller is not None else LocalPoller(self.record, engines)
        self.clock = clock
        self.flush_every = flush_every
        self.spill_dir = spill_dir
        self.retention = retention  # seconds of raw results kept in the store; None: forever
        self.evidence: dict[EvidenceKey, Evidence] = {}  # one per device and probe kind
        self.status: dict[str, SiteStatus] = {}
        self.results_taken = 0
        self.last_evaluation = 0.0
        self.ready = False  # set once history is refilled and the first verdicts are in
        self._tasks: list[asyncio.Task[None]] = []
        self._was_up: dict[EvidenceKey, bool] = {}
        self.incremental = True  # False: every evaluation re-judges every site (the reference)
        self._changed: set[str] = set()  # sites with a fold since they were last judged
        self._due: dict[str, float] = {}  # site -> when a time boundary makes it re-judged
        self._judge_all = True  # after a load or reload: the next evaluation judges every site
        self.last_reload: tuple[bool, float] = (True, clock())  # (applied?, when): SIGHUP reloads
        self._layout: dict[str, tuple[Site, SiteLayout, ByKind]] = {}  # per site, see view()
        self._views: dict[str, JudgedView] = {}  # the view each site was last judged from
        self._stamps: dict[str, int] = {}  # per site, and _generation: see stamp()
        self.listeners: list[Callable[[str, str, ProbeResult], None]] = []  # e.g. metrics counters
        self.folded_until: dict[EvidenceKey, float] = {}  # latest started_at folded, per key
        self.snapshot: Snapshotter | None = None  # saves and restores the state (netmon.snapshot)
        self.rollups: Rollups | None = None  # the daily rollups (netmon.rollup), if rolled here
        self.traps: TrapHints | None = None  # SNMP traps as hints (netmon.traps), if listening
        self.compactor: Compactor | None = None  # packs old raw hours (netmon.compaction)
        self.judging: Judging | None = None  # two servers, one database: who writes (judging)
        self.quiet = False  # True: verdict changes not logged (a re-judge's shadow, history)
        self._covered = -1  # the last coverage slot queued
        self.note_change: Callable[[VerdictChange], None] = store.add_verdict_change
        self.history = Rejudger(self)  # late results judged into their time (netmon.history)
        self._make_evidence()

    # --- set-up -----------------------------------------------------------------------------
    def load_history(self) -> int:
        """Refill the evidence from the store and restore each site's verdict since-time
        (from the snapshot and the results stored after it, if there is a usable one)."""
        if self.snapshot is not None and (n := self.snapshot.restore(self)) is not None:
            self._replaced()
            return n
        for key in self.store.devices_ever_up():
            if key in self.evidence:
                self.evidence[key].ever_up = True
        horizon = self.clock() - max((self._window(s) for s in self.inventory.sites), default=0)
        n = 0
        for site_id, device, result in self.store.results_since(horizon):
            n += self._fold(site_id, device, result)
        for site_id, change in self.store.latest_verdicts().items():
            site = self.inventory.site(site_id)
            if site is not None:
                placeholder = Judgement(Verdict(change.verdict), ())
                self.status[site_id] = SiteStatus(site, placeholder, change.since, change.since)
        self._replaced()
        return n

    def _window(self, site: Site) -> float:
        return self.inventory.policy_for(site).window

    def _make_evidence(self) -> None:
        """Evidence per device and kind; existing ones (a reload) keep what they hold."""
        old, self.evidence = self.evidence, {}
        for site in self.inventory.sites:
            window = self._window(site)
            for dev in site.devices:
                for kind in (KINDS[k] for k in dev.kinds if k in KINDS):
                    key = (site.id, dev.name, kind.name)
                    ev = old.get(key)
                    if ev is None or ev.window != window:  # new, or its policy window changed
                        ev, before = kind.new_evidence(window), ev
                        ev.ever_up = before is not None and before.ever_up
                    self.evidence[key] = ev
        self._replaced()

    def _replaced(self) -> None:
        """Evidence objects were replaced (a load, a reload): judge every site next, from
        views built anew."""
        self._judge_all = True
        self._layout.clear()
        self._views.clear()  # (stale by their stamps already; this forgets removed sites)
        self._generation += 1

    def set_windows(self, windows: list[ApiMaintenance]) -> None:
        """Judge with these API maintenance windows beside the inventory's own (their sites
        are re-judged at the next evaluation)."""
        touched = {w.site_id for w in (*self.api_windows, *windows)}
        self.api_windows = list(windows)
        self.windows_loaded = True
        self.inventory = with_windows(self.announced, self.api_windows)
        for site_id in touched:
            self._touch(site_id)

    async def load_windows(self) -> bool:
        """Read the API's maintenance windows from the store (False, logged, if it fails:
        retried after the next flush that gets through)."""
        horizon = self.clock() - max((self._window(s) for s in self.announced.sites), default=0)
        try:
            windows = await asyncio.to_thread(self._read_windows, horizon)
        except StoreError as exc:
            log.warning("maintenance windows posted to the API not read yet: %s", exc)
            return False
        self.set_windows(windows)
        if windows:
            log.info("%d maintenance windows from the API", len(windows))
        return True

    async def refold(self, site_id: str) -> bool:
        """Re-read one site's window from the store and fold it again under its maintenance
        windows now (a window posted with a start in the past, or withdrawn, changes which of
        the results already folded count). False, logged, if the store fails: the evidence is
        kept as it was. Results written during the read but not in it are missed (seconds)."""
        site = self.inventory.site(site_id)
        if site is None:
            return False
        old = {k: ev for k, ev in self.evidence.items() if k[0] == site_id}
        since = self.clock() - self._window(site)
        try:
            await self.store.flush_async()
            fresh = await asyncio.to_thread(self._reread, site, old, since)
        except StoreError as exc:
            log.warning("site %s not refolded after a maintenance change: %s", site_id, exc)
            return False
        for key, (ev, until) in fresh.items():
            if self.evidence.get(key) is old[key]:  # not reloaded meanwhile
                self.evidence[key] = ev
                self.folded_until[key] = until
        self._layout.pop(site_id, None)
        for sid, device, result in self.store.queued_results():  # taken during the read
            if sid == site_id and result.started_at > fresh.get(
                (sid, device, result.kind), (None, math.inf))[1]:  # fmt: skip
                self._fold(sid, device, result)
        self._touch(site_id)
        return True

    def _reread(
        self, site: Site, old: dict[EvidenceKey, Evidence], since: float
    ) -> dict[EvidenceKey, tuple[Evidence, float]]:
        """New evidence for ``old``'s keys from the stored results since ``since``, each with
        the start of the latest result read (in a worker thread: touches no monitor state)."""
        out: dict[EvidenceKey, tuple[Evidence, float]] = {}
        for key, before in old.items():
            ev = KINDS[key[2]].new_evidence(before.window)
            ev.ever_up = before.ever_up
            until = -math.inf
            for r in self.store.device_results(key[0], key[1], key[2], since):
                until = max(until, r.started_at)
                if site.in_maintenance(r.started_at):
                    ev.close_outage(r.started_at)
                else:
                    ev.add(r)
            out[key] = (ev, until)
        return out

    def _read_windows(self, horizon: float) -> list[ApiMaintenance]:
        if not self.store.migrated:  # down at start, nothing written since: create the tables
            self.store.migrate()
        return load_windows(self.store, horizon)

    async def reload(self, inventory: Inventory, config: ValidatedConfig | None = None) -> None:
        """Switch to a new inventory without resetting devices that stay; the poller probes
        the new one (and reconfigures its engines with ``config``, e.g. new SNMP profiles)."""
        self.announced = inventory
        self.inventory = with_windows(inventory, self.api_windows)
        self._make_evidence()
        sites = {s.id: s for s in inventory.sites}
        self.status = {k: v for k, v in self.status.items() if k in sites}
        await self.poller.assign(inventory, config)
        self.evaluate()
        devices = sum(len(s.devices) for s in inventory.sites)
        log.info("inventory reloaded: %d sites, %d devices", len(sites), devices)

    def record(self, site_id: str, device: str, result: ProbeResult) -> None:
        """Take one result: queue it for the store and fold it into its kind's evidence."""
        self.store.add_result(site_id, device, result)
        self.results_taken += 1
        if self.ready:  # not the results the poller held while the history was refilled
            self.history.note(site_id, result, self.clock())
        self._fold(site_id, device, result)
        for listener in self.listeners:
            listener(site_id, device, result)
        self._log_transition((site_id, device, result.kind), result)

    def _fold(self, site_id: str, device: str, result: ProbeResult) -> bool:
        """Add a result to its device's evidence of its kind, unless in announced maintenance."""
        key = (site_id, device, result.kind)
        ev = self.evidence.get(key)
        if ev is None:
            return False  # a kind the device is not probed by (any more)
        if result.started_at > self.folded_until.get(key, -math.inf):
            self.folded_until[key] = result.started_at  # the snapshot's cut (netmon.snapshot)
        site = self.inventory.site(site_id)
        self._touch(site_id)
        if site is not None and site.maintenance and site.in_maintenance(result.started_at):
            ev.close_outage(result.started_at)  # maintenance time is not outage time
            return False
        ev.add(result)
        return True

    def fold_stored(self, site_id: str, device: str, result: ProbeResult) -> None:
        """Fold a result another server took and stored (netmon.judging): not stored again."""
        self._fold(site_id, device, result)

    def leads(self) -> bool:
        """Whether this server writes the history and does the chores (netmon.judging)."""
        return self.judging is None or self.judging.leading()

    def _log_transition(self, key: EvidenceKey, result: ProbeResult) -> None:
        """Log a device going down or coming back once per probe kind, not every poll."""
        was = self._was_up.get(key)
        self._was_up[key] = result.ok
        if was is not None and was != result.ok:
            state = "up again" if result.ok else f"DOWN: {result.reason}"
            log.info("%s/%s (%s) %s", key[0], key[1], key[2], state)

    def view(self, site: Site, now: float) -> SiteView:
        """Everything known about a site's devices now: reachability, each kind's view."""
        layout = self._layout.get(site.id)
        if layout is None or layout[0] is not site:
            shape = _layout(site)
            layout = self._layout[site.id] = (site, shape, self._evidence_of(site.id, shape))
        evidence = layout[2]  # the same objects as ``evidence``: kept until one is replaced
        seen = _reachability(layout[1], evidence, now)
        views: dict[str, object] = {}
        for kind in KINDS.values():
            view = kind.site_view(site, evidence.get(kind.name, {}), seen, now)
            if view is not None:
                views[kind.name] = view
        return SiteView(seen, evidence, views)

    def judged_view(self, site: Site, now: float) -> JudgedView | None:
        """The view the site was last judged from, if it is still the view now: no result or
        change since, ``now`` before its next time boundary (and not before it was made), no
        re-judge of every site pending. Only ``longest_outage`` of its summaries may have
        moved with the clock since (see ``next_boundary``). None: build one (:meth:`view`)."""
        v = self._views.get(site.id)
        if v is None or v.site is not site or v.stamp != self.stamp(site.id):
            return None
        return v if v.made <= now < v.until else None

    def _evidence_of(self, site_id: str, shape: SiteLayout) -> ByKind:
        evidence: ByKind = {}
        for dev_name, kinds, _ranked in shape:
            for name in kinds:
                ev = self.evidence.get((site_id, dev_name, name))
                if ev is not None:
                    evidence.setdefault(name, {})[dev_name] = ev
        return evidence

    def summaries(self, site: Site, now: float) -> dict[str, DeviceSummary]:
        """Each device's reachability over the window (all kinds and controllers combined)."""
        return self.view(site, now).summaries

    def facts(self, site: Site, view: SiteView, now: float) -> dict[str, dict[str, object]]:
        """What each kind's evidence tells the verdict rules, by kind name then device."""
        out: dict[str, dict[str, object]] = {}
        for name, by_device in view.evidence.items():
            for device, ev in by_device.items():
                dev = site.device(device)
                found = ev.facts(dev, now) if dev is not None else None
                if found is not None:
                    out.setdefault(name, {})[device] = found
        unwatched = self.poller.unwatched_since(site.id)
        if unwatched is not None:  # netmon serve: no remote poller serves it (netmon.fleet)
            out["poller"] = {"": {"since": unwatched, "group": site.poller_group}}
        return out

    def rejudge(self, site_ids: set[str]) -> None:
        """Judge these sites now: their poller came or went (netmon.fleet). Not at the next
        evaluation: a hand-over shorter than its period would leave no trace in the history."""
        for site_id in site_ids:
            self._touch(site_id)
        if self.ready:
            self.evaluate()

    def evaluate(self, full: bool = False) -> list[VerdictChange]:
        """Judge the sites that changed or reached a time boundary (``full``: every site) now;
        record and return the verdict changes. Every site's status is as of now afterwards."""
        now = self.clock()
        full = full or not self.incremental or self._judge_all or now < self.last_evaluation
        changes: list[VerdictChange] = []
        for site in self.inventory.sites:
            prev = self.status.get(site.id)
            if site.id in self.history.busy:  # its history is being re-judged (netmon.history)
                continue
            if (
                full
                or prev is None
                or site.id in self._changed
                or self._due.get(site.id, -math.inf) <= now
            ):
                change = self._judge(site, prev, now)
                if change is not None:
                    changes.append(change)
            else:  # nothing it is judged on has changed: the same judgement, as of now
                self.status[site.id] = SiteStatus(site, prev.judgement, prev.since, now)
        self._changed.clear()
        self._judge_all = False
        self.last_evaluation = now
        return changes

    def _judge(self, site: Site, prev: SiteStatus | None, now: float) -> VerdictChange | None:
        """Judge one site from scratch; note when it must be judged again with no new result."""
        policy = self.inventory.policy_for(site)
        view = self.view(site, now)
        j = judge(site, policy, view.summaries, self.facts(site, view, now), now)
        boundary = next_boundary(view, now)
        self._due[site.id] = min(boundary, steady_until(site, policy, view.summaries, now))
        self._views[site.id] = JudgedView(site, view, now, boundary, self.stamp(site.id))
        since = prev.since if prev and prev.verdict == j.verdict else (j.outage_since or now)
        self.status[site.id] = SiteStatus(site, j, since, now)
        if prev is not None and prev.verdict == j.verdict:
            return None
        change = VerdictChange(site.id, j.verdict.value, since, [asdict(r) for r in j.reasons], now)
        self.note_change(change)  # the store's queue, or the leader's writes (netmon.judging)
        if prev is not None and not self.quiet:
            log.info("site %s: %s -> %s", site.id, prev.verdict.value, j.verdict.value)
        return change

    # --- running ----------------------------------------------------------------------------
    async def start(self, evaluate_every: float = 5.0) -> None:
        await asyncio.to_thread(self._requeue)
        if self.store.migrated:  # else the database was down at start: read after a flush
            await self.load_windows()
        loaded = await self._refill()
        log.info("refilled windows with %d results", loaded)
        self.evaluate()
        await self.poller.start(self.inventory)
        self.history.step = evaluate_every
        self._tasks = [
            asyncio.create_task(self._every(self.flush_every, self._flush), name="flush"),
            asyncio.create_task(self._every(evaluate_every, self._evaluate), name="evaluate"),
            asyncio.create_task(
                self._every(evaluate_every, self._rejudge_late), name="history"
            ),  # fmt: skip
        ]
        if (journal := self.store.journal) is not None:
            sync = functools.partial(asyncio.to_thread, journal.sync)
            self._tasks.append(asyncio.create_task(self._every(journal.sync_every, sync),
                                                   name="journal"))  # fmt: skip
        if self.retention is not None:
            self._tasks.append(asyncio.create_task(self._every(3600.0, self.prune), name="prune"))
        if self.snapshot is not None and self.snapshot.every > 0:
            self._tasks.append(asyncio.create_task(self.snapshot.run(self), name="snapshot"))
        self.cover()
        # twice a slot: a call that wakes late (drift, a busy loop) still lands in every slot
        self._tasks.append(asyncio.create_task(self._every(SLOT / 2, self.cover), name="coverage"))
        if self.rollups is not None:
            self._tasks.append(asyncio.create_task(self._every(self.rollups.every, self.roll),
                                                   name="rollup"))  # fmt: skip
        if self.compactor is not None:
            self._tasks.append(asyncio.create_task(self._every(self.compactor.every,
                                                               self.compact), name="compact"))  # fmt: skip
        if self.judging is not None:
            self._tasks.append(asyncio.create_task(self.judging.run(), name="judging"))
        self.ready = True

    async def _rejudge_late(self) -> int:
        """Late results judged into their time (netmon.history): the leader's chore (a
        follower forgets what settled: the leader notes the results it tails, netmon.judging)."""
        return await self.history.run_once(rewrite=self.leads())

    async def write_changes(self) -> bool:
        """Write the verdict changes judged so far that wait outside the store's queue (the
        leader's, netmon.judging); False if that failed."""
        return self.judging is None or await self.judging.flush()

    def mark_changed(self, site_id: str) -> None:
        """Judge the site at the next evaluation (its status was set from outside)."""
        self._touch(site_id)

    def _touch(self, site_id: str) -> None:
        """The site changed: judged at the next evaluation, its last judged view stale."""
        self._changed.add(site_id)
        self._stamps[site_id] = self._stamps.get(site_id, 0) + 1

    _generation = 0  # times every evidence object was replaced (see stamp)

    def stamp(self, site_id: str) -> tuple[int, int]:
        """Changes whenever what the site is judged from may have: a result folded, its
        evidence re-read (a maintenance change), every evidence replaced (a load, a reload)."""
        return self._generation, self._stamps.get(site_id, 0)

    def cover(self) -> None:
        """Note this slot as covered (netmon ran, its poller connected): see netmon.rollup."""
        slot = slot_of(self.clock())
        if self.poller.covering() and slot != self._covered:
            self.store.add_coverage(slot)
            self._covered = slot

    async def roll(self) -> int:
        """Re-roll yesterday and today (a failure is logged; the next minute tries again)."""
        assert self.rollups is not None
        if not self.leads():
            return 0
        try:
            return await asyncio.to_thread(
                self.rollups.run_once, self.store, self.inventory, self.clock()
            )
        except StoreError as exc:
            log.warning("rollup: %s; tried again in %.0f s", exc, self.rollups.every)
            return 0

    async def compact(self) -> int:
        """Pack the raw hours old enough (netmon.compaction), never a row above the latest
        snapshot's cut (a failure is logged; the next run tries again)."""
        assert self.compactor is not None
        if not self.leads():
            return 0
        snap = self.snapshot
        upto = snap.cut if snap is not None and snap.every > 0 else None
        try:
            return await asyncio.to_thread(self.compactor.run_once, self.store, self.clock(), upto)
        except StoreError as exc:
            log.warning("compaction: %s; tried again in %.0f s", exc, self.compactor.every)
            return 0

    def _requeue(self) -> None:
        """Queue what earlier runs left on disk: the journal's rows, old spill files."""
        replayed = self.store.open_journal()
        spilled = self.store.load_spills(self.spill_dir) if self.spill_dir is not None else 0
        if spilled:
            log.warning("queued %d rows saved by an earlier run that could not write them", spilled)
        if replayed:
            log.info("re-queued %d journaled results", replayed)

    async def _refill(self) -> int:
        """Write what was re-queued, then refill the windows from the store (so they hold it
        too); with the database unreachable, from the snapshot and the queue alone."""
        try:
            await self.store.flush_async()
            return await asyncio.to_thread(self.load_history)
        except StoreError as exc:
            log.error("%s: judging from the snapshot and the results journaled; results are "
                      "journaled until the database returns", exc)  # fmt: skip
            self.evidence, self.status = {}, {}
            self.folded_until.clear()
            self._make_evidence()
            return await asyncio.to_thread(self.load_offline)

    def load_offline(self) -> int:
        """Refill with the database unreachable: the snapshot's state as it was saved (the
        rows stored after its cut are not read), then the results still queued, each folded
        iff it started after what its evidence holds."""
        if self.snapshot is not None:
            self.snapshot.restore(self, offline=True)
        n = 0
        for site_id, device, result in self.store.queued_results():
            until = self.folded_until.get((site_id, device, result.kind))
            if until is None or result.started_at > until:
                n += self._fold(site_id, device, result)
        self._replaced()
        return n

    async def _every(self, seconds: float, fn: Callable[[], object]) -> None:
        while True:
            await asyncio.sleep(seconds)
            result = fn()
            if asyncio.iscoroutine(result):
                await result

    async def prune(self) -> int:
        """Delete stored results older than the retention (never inside a policy window)."""
        if self.retention is None or not self.leads():
            return 0
        longest = max((self._window(s) for s in self.inventory.sites), default=0.0)
        before = self.clock() - max(self.retention, longest)
        try:
            n = await asyncio.to_thread(self.store.prune, before)
        except SQLAlchemyError as exc:
            log.error("pruning old results failed: %s", exc)
            return 0
        if n:
            log.info(
                "pruned %d results older than the %.0f-day retention", n, self.retention / 86400
            )
        return n

    async def _evaluate(self) -> None:
        self.evaluate()

    async def _flush(self) -> None:
        try:
            await self.store.flush_async()
        except StoreError as exc:
            log.error("%s; %d rows kept for retry", exc, len(self.store.pending))
            return
        if not self.windows_loaded and self.clock() >= self._windows_due:
            self._windows_due = self.clock() + WINDOWS_RETRY
            await self.load_windows()

    async def stop(self) -> None:
        """Stop probing (taking every result the poller still has), then write every pending
        result (retrying a few times)."""
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            except Exception:  # a task that died (a bug): said, and the stop goes on
                log.exception("task %s had stopped on an error", t.get_name())
        await self.poller.stop()
        self.evaluate()
        if self.judging is not None:
            await self.judging.stop()  # its last changes written, the lease let go
        if self.snapshot is not None:
            await self.snapshot.take(self)  # its cut covers the rows flushed below
        for attempt in range(3):
            try:
                await self.store.flush_async()
                return
            except StoreError as exc:
                log.error("final flush attempt %d failed: %s", attempt + 1, exc)
                await asyncio.sleep(1.0)
        kept = "kept in the journal, written at the next start" if self.store.journal else "lost"
        log.error("database unreachable at shutdown: %d results %s", len(self.store.pending), kept)


def next_boundary(view: SiteView, now: float) -> float:
    """The earliest time boundary of a site's evidence (``now``: one that announces none).
    Before it, without a new result, the site's summaries change only in ``longest_outage``."""
    due = math.inf
    for by_device in view.evidence.values():
        for ev in by_device.values():
            boundary = getattr(ev, "next_boundary", None)
            due = min(due, boundary(now) if callable(boundary) else now)
    return due


SiteLayout = list[tuple[str, list[str], list[str]]]  # (device, its kinds, reachability order)
ByKind = dict[str, dict[str, Evidence]]  # a site's evidence by kind name, then device name


def _layout(site: Site) -> SiteLayout:
    """Each device's kinds and its reachability kinds best first, worked out once per site
    (``Device.kinds`` and the ranking are not free, and a view is built per judge and scrape)."""
    return [(d.name, d.kinds, [k.name for k in by_reachability(d.kinds)]) for d in site.devices]


def _reachability(
    layout: SiteLayout, evidence: dict[str, dict[str, Evidence]], now: float
) -> dict[str, DeviceSummary]:
    """Each device's summary from the best-ranked kind that has one (icmp, else snmp, ...)."""
    seen: dict[str, DeviceSummary] = {}
    for dev_name, _kinds, ranked in layout:
        for name in ranked:
            ev = evidence.get(name, {}).get(dev_name)
            summary = ev.summary(now) if ev is not None else None
            if summary is not None:
                seen[dev_name] = summary
                break
    return seen
