"""Late results judged into the time they were taken: a site's verdict history re-judged.

A result is *late* when it is taken (``Monitor.record``, once the monitor is ready: not the
results held while it refilled) more than :data:`LATE_AFTER` seconds after its probe ended: a
poller's outbox replayed after a WAN cut (``netmon poll``, netmon.outbox), or results that
waited behind a stalled server. Live, the monitor judged that stretch without them -- a site
cut from the server but fine inside was ``unknown`` (``no_poller``: no data), a site really
down then was not seen down. The history is what reports are made of (netmon.timeline,
netmon.rollup), so it must say what the wire said.

:class:`Rejudger` notes the earliest late result per site. Once a site has had no late result
for :data:`SETTLE` seconds (an outbox being replayed sends a batch every second), the site's
history from that result's start until now is judged again from the stored results -- if it
can differ: a late result failed (a down the live judge never saw), or the site was judged
``unknown`` meanwhile (no poller, no recent data). Late results that only confirm what was
judged (a busy server, a short cut of a healthy site) cost one small read and nothing more.

The re-judge is the very judge that runs live: a shadow :class:`netmon.monitor.Monitor` over
that one site, primed with the results of the policy window before the start and the verdict
in force then, stepping a clock through the stretch every ``evaluate_every`` seconds (the live
period) and folding each result when its probe ended. In one transaction the site's verdict
changes judged in the stretch are replaced by the re-judged ones (netmon.store); the live
status takes the re-judged verdict and its since-time, and the next live evaluation goes on
from there, so the history has no change twice and none missing at the seam. While a site is
re-judged the live evaluation leaves it alone. A store that fails leaves the history as it was
and the site noted as it was (the earliest start, a failure among them): it is tried again at
the next round. Under ``netmon run`` the rewrite first closes the journal's segment and writes
the queue, so a restart's replay cannot bring back a row it deleted. Under ``netmon serve`` with
two servers (netmon.judging) only the leader re-judges, after writing what it judged so far; a
follower forgets what settled (the leader notes the results it tails). Bounds: late results that
never stop (a poller whose clock is behind) are re-judged every :data:`MAX_WAIT`; a stretch
reaches back at most :data:`MAX_STRETCH`.

The replaced rows leave the change feed (``/api/v1/changes``); the re-judged ones are new rows
with higher ids, so a feed reader sees them after the ``unknown`` it already read.

Cost: one re-judge reads the site's results over the stretch plus one policy window and judges
once per step: O(results + stretch / evaluate_every), in a worker thread, one site at a time.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from netmon.errors import StoreError
from netmon.store import VerdictChange
from netmon.verdict import Judgement, Verdict
from probes import ProbeResult

if TYPE_CHECKING:
    from netmon.inventory import Site
    from netmon.monitor import Monitor, SiteStatus

log = logging.getLogger("netmon.history")
LATE_AFTER = 10.0  # seconds after its probe ended: a result taken later is late
SETTLE = 10.0  # seconds without a late result for a site before its history is re-judged
MAX_WAIT = 600.0  # seconds late results may keep coming before their stretch is re-judged
MAX_STRETCH = 86400.0  # seconds a re-judge reaches back at most (the outbox's default age)


@dataclass
class _Late:
    start: float  # the earliest start of a late result not judged into the history yet
    last: float  # when the latest of them was taken
    failed: bool = False  # one of them failed: the live history may lack a down
    first: float = 0.0  # when the first of them was taken

    def merge(self, other: _Late) -> None:
        self.start, self.last = min(self.start, other.start), max(self.last, other.last)
        self.failed = self.failed or other.failed
        self.first = min(self.first, other.first)


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Rejudger:
    """The monitor's late results and the re-judging of the stretches they fall in."""

    def __init__(self, monitor: Monitor, step: float = 5.0) -> None:
        self.monitor = monitor
        self.step = step  # seconds between judgements in a re-judge: the live period
        self.late: dict[str, _Late] = {}
        self.busy: set[str] = set()  # sites being re-judged: the live evaluation waits
        self.rejudged = 0  # stretches re-judged (a metric)
        self.late_results = 0  # results taken late (a metric)

    def note(self, site_id: str, result: ProbeResult, now: float) -> None:
        """Called for every result taken: remember it if it is late."""
        if result.started_at + result.duration >= now - LATE_AFTER:
            return
        self.late_results += 1
        self._add(site_id, _Late(result.started_at, now, not result.ok, now))

    def _add(self, site_id: str, late: _Late) -> None:
        found = self.late.get(site_id)
        if found is None:
            self.late[site_id] = late
        else:
            found.merge(late)

    def due(self, now: float) -> list[tuple[str, _Late]]:
        """The sites whose late results have settled (or have kept coming for MAX_WAIT: a
        poller whose clock is behind sends nothing but late results), taken off the list.
        A stretch reaches back at most MAX_STRETCH (the outbox keeps no more by default)."""
        found = [(s, late) for s, late in self.late.items()
                 if now - late.last >= SETTLE or now - late.first >= MAX_WAIT]  # fmt: skip
        for site_id, late in found:
            del self.late[site_id]
            late.start = max(late.start, now - MAX_STRETCH)
        return found

    async def run_once(self, rewrite: bool = True) -> int:
        """Re-judge every site whose late results have settled; how many were re-judged.
        ``rewrite`` False (a server that does not write the history, netmon.judging): the
        settled ones are only forgotten (the leader notes them too)."""
        due = self.due(self.monitor.clock())
        if not rewrite:
            return 0
        done, failed = 0, []
        for site_id, late in due:
            try:
                done += await self.rewrite(site_id, late.start, late.failed)
            except StoreError as exc:
                self._add(site_id, late)  # tried again at the next round, nothing forgotten
                failed.append((site_id, exc))
        if failed:  # once a round, not once a site: a dead database would flood the log
            log.warning("%d sites' history from late results not re-judged yet (%s: %s); "
                        "tried again", len(failed), failed[0][0], failed[0][1])  # fmt: skip
        return done

    async def rewrite(self, site_id: str, start: float, failed: bool = True) -> bool:
        """Judge the site's history from ``start`` until now again from its stored results
        -- if that can change it: a late result failed, or the site was judged ``unknown``
        meanwhile (no poller, no recent data); else late results only confirm what was judged
        (a down is backdated to its first failed probe anyway): nothing to do, False. A store
        that fails raises StoreError, the history as it was."""
        monitor = self.monitor
        site = monitor.inventory.site(site_id)
        if site is None:
            return False
        self.busy.add(site_id)
        try:
            done = await self._rewrite(site, start, failed)
        except StoreError:
            raise
        except Exception:  # a bug: say so, keep the history as it is, go on with the others
            log.exception("site %s: re-judging its history from late results failed", site_id)
            return False
        finally:
            self.busy.discard(site_id)
        if done is None:
            return False
        changes, final = done
        monitor.status[site_id] = final
        monitor.mark_changed(site_id)  # judged live again from there at the next evaluation
        self.rejudged += 1
        log.info("site %s: history since %.0f re-judged from late results (%d changes)",
                 site_id, start, len(changes))  # fmt: skip
        return True

    async def _rewrite(
        self, site: Site, start: float, failed: bool
    ) -> tuple[list[VerdictChange], SiteStatus] | None:
        monitor, store = self.monitor, self.monitor.store
        await store.flush_async()  # every change judged so far is in the table
        if not await monitor.write_changes():  # netmon.judging: the leader's, written
            raise StoreError(f"site {site.id}: the verdict changes judged so far not written")
        # on the live evaluations' grid, up to the latest: the re-judged changes fall where
        # live ones would have, and the live judge goes on from the last of them
        last = monitor.last_evaluation
        end = last if last >= start else monitor.clock()
        start = end - math.ceil((end - start) / self.step) * self.step
        if not failed and not await asyncio.to_thread(self._unknown_since, site.id, start):
            return None
        changes, final = await asyncio.to_thread(self._rejudge, site, start, end)
        await asyncio.to_thread(store.rewrite_history, site.id, start, end, changes)
        return changes, final

    def _unknown_since(self, site_id: str, start: float) -> bool:
        """Whether the site was judged ``unknown`` at or after ``start`` (or was then)."""
        store = self.monitor.store
        before = store.verdict_before(site_id, start)
        changes = store.verdict_history(site_id, limit=1000)
        judged = [c for c in changes if c.at is not None and c.at >= start]
        return any(c.verdict == "unknown" for c in [*judged, *([before] if before else [])])

    def _rejudge(
        self, site: Site, start: float, end: float
    ) -> tuple[list[VerdictChange], SiteStatus]:
        """The site's verdict changes over ``[start, end]`` and its status at ``end``, judged
        from the stored results (in a worker thread: reads the store, touches no live state)."""
        from netmon.monitor import Monitor, SiteStatus

        live, store = self.monitor, self.monitor.store
        window = live.inventory.policy_for(site).window
        inventory = live.inventory.model_copy(update={"sites": [site]})
        inventory.model_post_init(None)
        clock = _Clock(start)
        shadow = Monitor(inventory, store, clock=clock)
        shadow.quiet = True  # its changes are history, not news: not logged as live ones
        for key, ev in shadow.evidence.items():
            ev.ever_up = key in live.evidence and live.evidence[key].ever_up
        changes: list[VerdictChange] = []
        shadow.note_change = changes.append
        prev = store.verdict_before(site.id, start)
        if prev is not None:
            placeholder = Judgement(Verdict(prev.verdict), ())
            shadow.status[site.id] = SiteStatus(site, placeholder, prev.since, start)
        results = _results(live, site, start - window, end)
        i = 0
        while True:
            while i < len(results) and _ended(results[i][1]) <= clock.now:
                shadow._fold(site.id, *results[i])
                i += 1
            shadow.evaluate()
            if clock.now >= end:
                return changes, shadow.status[site.id]
            clock.now = min(clock.now + self.step, end)


def _ended(result: ProbeResult) -> float:
    return result.started_at + result.duration


def _results(
    monitor: Monitor, site: Site, since: float, end: float
) -> list[tuple[str, ProbeResult]]:
    """The site's results that started in ``[since, end]``, stored and still queued, once
    each, by when their probe ended."""
    seen: set[tuple[str, str, float]] = set()
    out: list[tuple[str, ProbeResult]] = []
    for device, kind in ((d.name, k) for d in site.devices for k in d.kinds):
        for r in monitor.store.device_results(site.id, device, kind, since):
            if r.started_at <= end and (device, kind, r.started_at) not in seen:
                seen.add((device, kind, r.started_at))
                out.append((device, r))
    for sid, device, r in monitor.store.queued_results():
        key = (device, r.kind, r.started_at)
        if sid == site.id and since <= r.started_at <= end and key not in seen:
            seen.add(key)
            out.append((device, r))
    out.sort(key=lambda dr: _ended(dr[1]))
    return out


__all__ = ["LATE_AFTER", "MAX_STRETCH", "MAX_WAIT", "SETTLE", "Rejudger"]
