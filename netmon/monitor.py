"""The monitor: inventory → scheduler → probes → store → verdict, in one asyncio process.

``Monitor`` owns the moving parts and the in-memory view the API and metrics read:
per-device rolling windows (``netmon.window``), the latest result per device, and the current
verdict per site with its since-time. At start-up the windows are refilled from the store, so a
restart does not forget the last 24 hours.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from netmon.errors import StoreError
from netmon.inventory import Device, Inventory, Site
from netmon.scheduler import Job, Scheduler
from netmon.snmp_view import (
    ControllerView,
    SnmpEvidence,
    SnmpFacts,
    controller_view,
    effective_summaries,
    facts,
    snmp_settings,
)
from netmon.store import Store, VerdictChange
from netmon.verdict import Judgement, Verdict, judge
from netmon.window import DeviceSummary, DeviceWindow
from probes.base import ProbeContext, ProbeParams, ProbeResult, Target, run_probe

log = logging.getLogger("netmon.monitor")

DeviceKey = tuple[str, str]  # (site id, device name)


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
class SiteView:
    summaries: dict[str, DeviceSummary]  # by device name
    snmp: dict[str, SnmpEvidence]  # SNMP-polled devices only
    controllers: ControllerView  # what the site's controllers report about its APs


@dataclass(frozen=True, slots=True)
class ProbeJob:
    site: Site
    device: Device
    kind: str
    params: ProbeParams
    meta: dict[str, Any] = field(default_factory=dict, repr=False)


class Monitor:
    def __init__(
        self,
        inventory: Inventory,
        store: Store,
        ctx: ProbeContext,
        clock: Callable[[], float] = time.time,
        flush_every: float = 1.0,
        spill_dir: Path | None = None,
        retention: float | None = None,
    ) -> None:
        self.inventory = inventory
        self.store = store
        self.ctx = ctx
        self.clock = clock
        self.flush_every = flush_every
        self.spill_dir = spill_dir
        self.retention = retention  # seconds of raw results kept in the store; None: forever
        self.windows: dict[DeviceKey, DeviceWindow] = {}  # ICMP reachability
        self.snmp: dict[DeviceKey, SnmpEvidence] = {}
        self.status: dict[str, SiteStatus] = {}
        self.scheduler = Scheduler(self._probe)
        self.results_taken = 0
        self.last_evaluation = 0.0
        self.ready = False  # set once history is refilled and the first verdicts are in
        self._tasks: list[asyncio.Task[None]] = []
        self._was_up: dict[tuple[str, str, str], bool] = {}  # (site, device, probe kind)
        self._make_windows()

    # --- set-up -----------------------------------------------------------------------------
    def load_history(self) -> int:
        """Refill the windows from the store and restore each site's verdict since-time."""
        for key in self.store.devices_ever_up():
            if key in self.windows:
                self.windows[key].ever_up = True
        horizon = self.clock() - max((self._window(s) for s in self.inventory.sites), default=0)
        n = 0
        for site_id, device, result in self.store.results_since(horizon):
            n += self._fold(site_id, device, result)
        for site_id, change in self.store.latest_verdicts().items():
            site = self.inventory.site(site_id)
            if site is not None:
                placeholder = Judgement(Verdict(change.verdict), ())
                self.status[site_id] = SiteStatus(site, placeholder, change.since, change.since)
        return n

    def _window(self, site: Site) -> float:
        return self.inventory.policy_for(site).window

    def _make_windows(self) -> None:
        """A window per device; existing ones (a reload) keep their evidence."""
        old, self.windows = self.windows, {}
        old_snmp, self.snmp = self.snmp, {}
        for site in self.inventory.sites:
            for dev in site.devices:
                key = (site.id, dev.name)
                if "snmp" in dev.kinds:
                    ev = old_snmp.get(key)
                    keep = ev is not None and ev.polls.window == self._window(site)
                    self.snmp[key] = ev if keep and ev else SnmpEvidence(self._window(site))
                window = old.get(key)
                if window is None or window.window != self._window(site):
                    window = DeviceWindow(self._window(site))
                    if key in old:  # its policy window changed: start a new one, keep ever_up
                        window.ever_up = old[key].ever_up
                self.windows[key] = window

    def reload(self, inventory: Inventory) -> None:
        """Switch to a new inventory without resetting devices that stay."""
        self.inventory = inventory
        before = set(self.snmp)
        self._make_windows()
        for site_id, device in before - set(self.snmp):
            if self.ctx.snmp is not None:  # the poller keeps rate and reboot state per device
                self.ctx.snmp.forget(Target(site_id, device, ""))
        sites = {s.id: s for s in inventory.sites}
        self.status = {k: v for k, v in self.status.items() if k in sites}
        self.scheduler.update(self.jobs())
        self.evaluate()
        log.info("inventory reloaded: %d sites, %d devices", len(sites), len(self.windows))

    def jobs(self) -> list[Job]:
        out: list[Job] = []
        snmp = self.inventory.snmp.defaults
        snmp_params = ProbeParams(count=1, timeout=snmp.max_poll_time, spacing=snmp.timeout)
        for site in self.inventory.sites:
            eff = self.inventory.probe_settings(site)
            params = ProbeParams(count=eff.count, timeout=eff.timeout, spacing=eff.spacing)
            for dev in site.devices:
                if "icmp" in dev.kinds:
                    out.append(Job((site.id, dev.name, "icmp"), eff.interval, ProbeJob(site, dev, "icmp", params)))
                if "snmp" in dev.kinds:
                    job = ProbeJob(site, dev, "snmp", snmp_params, {"snmp": snmp_settings(self.inventory, dev)})
                    out.append(Job((site.id, dev.name, "snmp"), snmp.interval, job))
        return out

    # --- the flow ---------------------------------------------------------------------------
    async def _probe(self, job: Job) -> None:
        pj = job.payload
        assert isinstance(pj, ProbeJob)
        target = Target(pj.site.id, pj.device.name, pj.device.address or "", pj.device.role, pj.meta)
        result = await run_probe(pj.kind, self.ctx, target, pj.params)
        self.record(pj.site.id, pj.device.name, result)

    def record(self, site_id: str, device: str, result: ProbeResult) -> None:
        """Take one result: queue it for the store and fold it into the device's window."""
        self.store.add_result(site_id, device, result)
        self.results_taken += 1
        self._fold(site_id, device, result)
        self._log_transition((site_id, device), result)

    def _fold(self, site_id: str, device: str, result: ProbeResult) -> bool:
        """Add a result to its device's window, unless it fell in announced maintenance."""
        key = (site_id, device)
        target = self.snmp.get(key) if result.kind == "snmp" else self.windows.get(key)
        if target is None:
            return False
        site = self.inventory.site(site_id)
        if site is not None and site.maintenance and site.in_maintenance(result.started_at):
            if isinstance(target, DeviceWindow):
                target.close_outage(result.started_at)  # maintenance time is not outage time
            return False
        target.add(result)
        return True

    def _log_transition(self, key: DeviceKey, result: ProbeResult) -> None:
        """Log a device going down or coming back once per probe kind, not every poll."""
        kind_key = (*key, result.kind)
        was = self._was_up.get(kind_key)
        self._was_up[kind_key] = result.ok
        if was is not None and was != result.ok:
            what = "" if result.kind == "icmp" else f" ({result.kind})"
            state = "up again" if result.ok else f"DOWN: {result.reason}"
            log.info("%s/%s%s %s", key[0], key[1], what, state)

    def view(self, site: Site, now: float) -> SiteView:
        """Everything known about a site's devices now: reachability, SNMP, controllers' APs."""
        icmp = {d.name: self.windows[(site.id, d.name)].summary(now) for d in site.devices}
        snmp = self.site_snmp(site)
        if not snmp:
            return SiteView(icmp, snmp, ControllerView({}, {}, []))
        controllers = controller_view(site, snmp)
        return SiteView(effective_summaries(site, icmp, snmp, controllers, now), snmp, controllers)

    def summaries(self, site: Site, now: float) -> dict[str, DeviceSummary]:
        """Each device's reachability over the window (ICMP, SNMP and controllers combined)."""
        return self.view(site, now).summaries

    def site_snmp(self, site: Site) -> dict[str, SnmpEvidence]:
        return {d.name: self.snmp[(site.id, d.name)] for d in site.devices if (site.id, d.name) in self.snmp}

    def snmp_facts(self, site: Site, now: float) -> dict[str, SnmpFacts]:
        return {name: facts(site.device(name), ev, now)  # type: ignore[arg-type]
                for name, ev in self.site_snmp(site).items()}  # fmt: skip

    def evaluate(self) -> list[VerdictChange]:
        """Judge every site now; record and return the verdict changes."""
        now = self.clock()
        changes: list[VerdictChange] = []
        for site in self.inventory.sites:
            policy = self.inventory.policy_for(site)
            j = judge(site, policy, self.summaries(site, now), {"snmp": self.snmp_facts(site, now)})
            prev = self.status.get(site.id)
            since = prev.since if prev and prev.verdict == j.verdict else (j.outage_since or now)
            self.status[site.id] = SiteStatus(site, j, since, now)
            if prev is None or prev.verdict != j.verdict:
                change = VerdictChange(site.id, j.verdict.value, since, [asdict(r) for r in j.reasons])
                self.store.add_verdict_change(change)
                changes.append(change)
                if prev is not None:
                    log.info("site %s: %s -> %s", site.id, prev.verdict.value, j.verdict.value)
        self.last_evaluation = now
        return changes

    # --- running ----------------------------------------------------------------------------
    async def start(self, evaluate_every: float = 5.0) -> None:
        if self.spill_dir is not None and self.spill_dir.is_dir():
            spilled = self.store.load_spills(self.spill_dir)
            if spilled:
                log.warning("queued %d rows saved by an earlier run that could not write them", spilled)
        loaded = await asyncio.to_thread(self.load_history)
        log.info("refilled windows with %d stored results", loaded)
        self.evaluate()
        self.scheduler.update(self.jobs())
        self._tasks = [
            asyncio.create_task(self.scheduler.run_forever(), name="scheduler"),
            asyncio.create_task(self._every(self.flush_every, self._flush), name="flush"),
            asyncio.create_task(self._every(evaluate_every, self._evaluate), name="evaluate"),
        ]
        if self.retention is not None:
            self._tasks.append(asyncio.create_task(self._every(3600.0, self.prune), name="prune"))
        self.ready = True

    async def _every(self, seconds: float, fn: Callable[[], object]) -> None:
        while True:
            await asyncio.sleep(seconds)
            result = fn()
            if asyncio.iscoroutine(result):
                await result

    async def prune(self) -> int:
        """Delete stored results older than the retention (never inside a policy window)."""
        if self.retention is None:
            return 0
        longest = max((self._window(s) for s in self.inventory.sites), default=0.0)
        before = self.clock() - max(self.retention, longest)
        try:
            n = await asyncio.to_thread(self.store.prune, before)
        except SQLAlchemyError as exc:
            log.error("pruning old results failed: %s", exc)
            return 0
        if n:
            log.info("pruned %d results older than the %.0f-day retention", n, self.retention / 86400)
        return n

    async def _evaluate(self) -> None:
        self.evaluate()

    async def _flush(self) -> None:
        try:
            await self.store.flush_async()
        except StoreError as exc:
            log.error("%s; %d rows kept for retry", exc, len(self.store.pending))

    async def stop(self) -> None:
        """Stop probing, then write every pending result (retrying a few times)."""
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await self.scheduler.stop()
        self.evaluate()
        for attempt in range(3):
            try:
                await self.store.flush_async()
                return
            except StoreError as exc:
                log.error("final flush attempt %d failed: %s", attempt + 1, exc)
                await asyncio.sleep(1.0)
        if self.spill_dir is not None:
            path = self.store.spill(self.spill_dir)
            log.error("database unreachable: %d rows saved to %s, loaded at next start",
                      len(self.store.pending), path)  # fmt: skip
        else:
            log.error("%d results could not be written at shutdown", len(self.store.pending))
