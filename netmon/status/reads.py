"""What the status board reads from the store, and the cache that keeps it for a minute.

Everything comes from what netmon already keeps: the site_day rollups (``netmon.rollup``:
seconds per state per site and local day; today, and yesterday until its final roll, are
accounted live from the same raw tables the rollup reads), the outages of a page's sites (``netmon.rollup.outages_of``, one read of the changes for
all of them), and the
per-day count of fully functional sites (netmon.progress's day rule, as SQL over site_day).
Blocking functions: run them with ``store.read_async``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, select

from netmon.errors import StoreError
from netmon.rollup import SiteDayRow, local_date, outages_of, site_accounts
from netmon.timeline import STATES, Outage, day_bounds

if TYPE_CHECKING:
    from netmon.inventory import Inventory, Site
    from netmon.store import Store

log = logging.getLogger("netmon.status")
READ_EVERY = 60.0  # seconds a page's store reads are served from memory
Days = dict[str, dict[str, float]]  # day (YYYY-MM-DD) -> seconds per state


def read_days(
    store: Store, sites: Sequence[Site], tz: ZoneInfo, first: dt.date, now: float
) -> dict[str, Days]:
    """Per site, the seconds per state of each day ``first`` .. today (``now``'s local day):
    the rolled days from site_day (a day without a row is absent: no data); today, and
    yesterday until its final roll, accounted live from the raw tables to ``now``
    (netmon.rollup.site_accounts), so an outage of this morning makes today red at once, not
    after the next roll (every minute, and not in netmon's first minute)."""
    ids = [s.id for s in sites]
    out: dict[str, Days] = {i: {} for i in ids}
    today = local_date(now, tz)
    t = SiteDayRow.__table__  # type: ignore[attr-defined]
    q = select(t.c.site_id, t.c.day, *(t.c[k] for k in STATES)).where(
        t.c.site_id.in_(ids), t.c.day >= first.isoformat(),
        t.c.day <= (today - dt.timedelta(days=2)).isoformat())  # fmt: skip
    with store.reading("rollups"), store.engine.connect() as conn:
        for site_id, day, *seconds in conn.execute(q):  # plain tuples: 18,000 rows a district
            out[site_id][day] = dict(zip(STATES, map(float, seconds), strict=True))
    recent = max(first, today - dt.timedelta(days=1))
    for site_id, accounts in site_accounts(
        store, sites, tz, day_bounds(recent, tz)[0], now
    ).items():
        for day, live in accounts:
            out[site_id][day.isoformat()] = dict(live)
    return out


def coded(raw: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    """A stored change's reasons as JSON keys (criterion, device): outages merged across
    changes keep each reason once, and the page words them in its language."""
    keys = ({"criterion": r.get("criterion"), "device": r.get("device"),
             "message": r.get("message")} for r in raw)  # fmt: skip
    return tuple(json.dumps(k, sort_keys=True) for k in keys)


def read_outages(
    store: Store, sites: Sequence[Site], start: float, end: float
) -> dict[str, list[Outage]]:
    """Per site, its outages inside ``[start, end)``, reasons :func:`coded`."""
    return outages_of(store, sites, start, end, reasons=coded)


def read_progress(
    store: Store, inventory: Inventory, threshold: float, first: dt.date, last: dt.date
) -> dict[str, int]:
    """Per day ``first`` .. ``last`` that has been rolled, how many of the inventory's sites
    were fully functional (their fully_functional_ratio that day ≥ ``threshold``), from the
    days they count on (``commissioned``) — one grouped query, and one for the sites
    commissioned late. A day without any site_day row is absent (today before its first
    roll: not yet known, never 0)."""
    t = SiteDayRow.__table__  # type: ignore[attr-defined]
    judged = t.c.fully_functional + t.c.degraded + t.c.down + t.c.not_installed
    good = and_(judged > 0, t.c.fully_functional >= judged * threshold)
    days = (t.c.day >= first.isoformat(), t.c.day <= last.isoformat())
    ids = [s.id for s in inventory.sites]
    late = {s.id: s.commissioned.isoformat() for s in inventory.sites
            if s.commissioned is not None and s.commissioned > first}  # fmt: skip
    per_day = (select(t.c.day, func.sum(case((good, 1), else_=0)))
               .where(*days, t.c.site_id.in_(ids)).group_by(t.c.day))  # fmt: skip
    early = select(t.c.site_id, t.c.day).where(good, *days, t.c.site_id.in_(list(late)))
    with store.reading("rollups"), store.engine.connect() as conn:
        counts = {day: int(n) for day, n in conn.execute(per_day)}
        before = [(i, day) for i, day in conn.execute(early) if day < late[i]] if late else []
    for _site, day in before:  # fully functional before it counts: not counted
        counts[day] -= 1
    return counts


class Reads:
    """Each page's store reads, kept by key and read again when ``every`` seconds (of the
    monitor's clock) have passed: the first request for a key waits for its read (a burst
    waits for the same one); after that a request never waits for the store — it gets what
    was read last while one background task reads again (a failed read keeps the last one,
    logged, and is tried again by the next request)."""

    def __init__(self, every: float = READ_EVERY) -> None:
        self.every = every
        self._kept: dict[Any, tuple[float, Any]] = {}
        self._locks: dict[Any, asyncio.Lock] = {}
        self._refreshing: dict[Any, asyncio.Task[None]] = {}

    async def get(self, key: Any, now: float, read: Callable[[], Awaitable[Any]]) -> Any:
        kept = self._kept.get(key)
        if kept is not None:
            stale = not 0 <= now - kept[0] < self.every
            if stale and key not in self._refreshing:
                self._refreshing[key] = asyncio.create_task(self._refresh(key, now, read))
            return kept[1]
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            kept = self._kept.get(key)
            if kept is None:
                kept = self._keep(key, now, await read())
            return kept[1]

    def _keep(self, key: Any, now: float, value: Any) -> tuple[float, Any]:
        if len(self._kept) > 256:  # districts and sites asked for: bounded
            self._kept.clear()
        self._kept[key] = (now, value)
        return self._kept[key]

    async def _refresh(self, key: Any, now: float, read: Callable[[], Awaitable[Any]]) -> None:
        try:
            self._keep(key, now, await read())
        except StoreError as exc:
            log.warning("status board: %s not read again, the last read is kept: %s", key, exc)
        finally:
            del self._refreshing[key]
