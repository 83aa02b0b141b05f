"""Rollout progress: per local day and group of sites, how many sites count, how many were
fully functional that day, how many never were yet, and the days left to the deadline; and the
per-site figures ``/api/v1/sites`` carries (first fully functional day, 30-day availability).

A site is **fully functional on a day** when its :func:`netmon.timeline.fully_functional_ratio`
that day is at least the inventory's ``report.day_threshold`` (0.95); a day with nothing
observed (no_data, maintenance) is not. A site **counts** on the days from its
``commissioned`` date on (every day without one). **Never fully functional** on a day: a site
that counts and was fully functional on no day from the start of what was read (the rollout's
start, else the window's) up to and including that one.

The seconds come from :func:`netmon.rollup.site_accounts` (final site_day rows, live arithmetic
elsewhere). :func:`good_days` and :func:`progress_rows` are the plain computation; the API
answers the same rows through the bitsets of :mod:`netmon.progress_index` (tested equal). The site figures are two SQL queries over site_day rows, cached for a minute.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from netmon.errors import StoreError
from netmon.rollup import Seconds, SiteDayRow, local_date
from netmon.timeline import fully_functional_ratio

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from netmon.inventory.models import Rollout, Site
    from netmon.store import Store

log = logging.getLogger("netmon.progress")
FIGURES_EVERY = 60.0  # seconds the /sites figures are served from memory before a re-read
AVAILABILITY_DAYS = 30


@dataclass(frozen=True, slots=True)
class ProgressRow:
    day: dt.date
    group: str
    sites: int  # counted that day (commissioned on or before it, or with no commissioned date)
    fully_functional: int  # of those, fully functional that day
    never_fully_functional: int  # of those, fully functional on no day read up to this one
    days_to_deadline: int | None  # negative after the deadline; None without a rollout


def good_days(
    accounts: Mapping[str, Sequence[tuple[dt.date, Seconds]]], threshold: float
) -> dict[str, set[dt.date]]:
    """Per site, the days it was fully functional (ratio that day ≥ ``threshold``)."""
    out: dict[str, set[dt.date]] = {}
    for site_id, days in accounts.items():
        out[site_id] = {
            day
            for day, s in days
            if (r := fully_functional_ratio(s)) is not None and r >= threshold
        }
    return out


def progress_rows(
    sites: Sequence[Site],
    group_of: Callable[[Site], str],
    good: Mapping[str, set[dt.date]],
    days: Sequence[dt.date],
    rollout: Rollout | None,
) -> list[ProgressRow]:
    """One row per day of ``days`` and group (groups by name); ``good`` from :func:`good_days`
    over every day read (``days`` and those before them)."""
    first = {i: min(d) for i, d in good.items() if d}
    groups: dict[str, list[Site]] = {}
    for site in sites:
        groups.setdefault(group_of(site), []).append(site)
    rows = []
    for day in days:
        for name, members in sorted(groups.items()):
            counted = [s for s in members if s.commissioned is None or s.commissioned <= day]
            ever = [s for s in counted if (f := first.get(s.id)) is not None and f <= day]
            rows.append(ProgressRow(
                day=day, group=name, sites=len(counted),
                fully_functional=sum(day in good.get(s.id, ()) for s in counted),
                never_fully_functional=len(counted) - len(ever),
                days_to_deadline=(rollout.deadline - day).days if rollout else None,
            ))  # fmt: skip
    return rows


# --- the figures of /api/v1/sites ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SiteFigures:
    first_fully_functional: dict[str, dt.date] = field(default_factory=dict)
    availability_30d: dict[str, float | None] = field(default_factory=dict)


def read_figures(store: Store, threshold: float, today: dt.date) -> SiteFigures:
    """From the site_day rows: per site the first day with a fully_functional_ratio ≥
    ``threshold``, and the availability of the 30 local days up to ``today`` (as last rolled;
    days without a row are no data). Two queries, each grouped by site."""
    t = SiteDayRow.__table__  # type: ignore[attr-defined]
    judged = t.c.fully_functional + t.c.degraded + t.c.down + t.c.not_installed
    first = (
        select(t.c.site_id, func.min(t.c.day))
        .where(judged > 0, t.c.fully_functional >= judged * threshold)
        .group_by(t.c.site_id)
    )
    since = (today - dt.timedelta(days=AVAILABILITY_DAYS - 1)).isoformat()
    recent = (
        select(t.c.site_id, func.sum(t.c.down), func.sum(judged))
        .where(t.c.day >= since, t.c.day <= today.isoformat())
        .group_by(t.c.site_id)
    )
    with store.reading("rollups"), store.engine.connect() as conn:
        firsts = {i: dt.date.fromisoformat(d) for i, d in conn.execute(first)}
        sums = list(conn.execute(recent))
    ratios = {i: (1.0 - down / seen if seen else None) for i, down, seen in sums}
    return SiteFigures(firsts, ratios)


class FiguresCache:
    """The site figures, read at most once every ``every`` seconds (of the monitor's clock), so
    /api/v1/sites stays a read from memory: while one request reads them, the others get the
    figures read before. A failed read keeps the figures it had (logged once, not each minute)
    and is tried again after ``every``; before the store is migrated there are none."""

    def __init__(self, every: float = FIGURES_EVERY) -> None:
        self.every = every
        self.figures = SiteFigures()
        self.read_at: float | None = None
        self.failing = False
        self._key: tuple[float, str] | None = None
        self._lock = asyncio.Lock()

    def _fresh(self, now: float, key: tuple[float, str]) -> bool:
        return (
            self.read_at is not None and key == self._key and 0 <= now - self.read_at < self.every
        )

    async def get(self, store: Store, threshold: float, tz: ZoneInfo, now: float) -> SiteFigures:
        key = (threshold, tz.key)
        if self._fresh(now, key) or not store.migrated:
            return self.figures
        if self._lock.locked() and key == self._key:
            return self.figures  # being read: the last ones meanwhile
        async with self._lock:
            if self._fresh(now, key):
                return self.figures
            if key != self._key:
                self.figures = SiteFigures()
            try:
                today = local_date(now, tz)
                self.figures = await store.read_async(read_figures, store, threshold, today)
                self.failing = False
            except StoreError as exc:
                if not self.failing:
                    log.warning("site figures: %s; kept the last ones, tried each minute", exc)
                self.failing = True
            self.read_at, self._key = now, key
        return self.figures
