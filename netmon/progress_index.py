"""The fast path of the rollout progress (GET /api/v1/progress) and of grouped availability
(GET /api/v1/availability): the site_day rows kept in memory as bitsets.

Each site gets a bit (the inventory's order first, then any other site found in site_day).
Per local day of the report time zone the index keeps two Python ints used as bitsets:

- ``final``: the sites whose site_day row of that day is final (rolled at or after the day's
  end: what :func:`netmon.rollup.site_accounts` takes from the table);
- ``good``: of those, the sites fully functional that day (the row's fully_functional_ratio at
  least ``report.day_threshold``, the arithmetic of :func:`netmon.timeline.fully_functional_ratio`
  in IEEE doubles: its ``judged`` sum, :func:`netmon.timeline.judged_seconds`, is computed in
  SQL in the same order of additions).

**Built** once, from every site_day row: at start-up, in a thread beside the server
(:func:`warm`, ``netmon serve``), else at the first request. Per day, in SQL, the earliest
rolled_at and the ids of the sites with a row and of those fully functional, joined
(``group_concat``/``string_agg``); a day with a row not yet final is read row by row. O(rows),
~1.8 M for 5,000 sites x a year, 31 days a read, so a build cut by the store's 12 s deadline
goes on from where it stopped at the next request. **Kept up to date** by reading only the rows rolled
since the newest one read (``rolled_at >`` it, on the index ``ix_site_day_rolled_at``): the
monitor re-rolls yesterday and today each minute, so the first request after a roll reads 2 x
sites rows and the others none. A row committed with a ``rolled_at`` older than one already
read (``netmon rollup rebuild`` racing the monitor's own roll) is seen at the next start.
A new threshold or time zone builds a new index.

**A request** over D days, G groups and N sites: O(N) for the masks of the sites asked, of each
group and of the sites commissioned by each day; then O(D x G) operations on N-bit ints (AND,
OR, ``int.bit_count``: N/64 machine words each). "Never fully functional yet" is the running
OR of the ``good`` masks. A site without a final row of a day (every site today; a site added
to the inventory after that day) is accounted live from the raw tables for that day, exactly
as ``site_accounts`` does (one read for all of them), so the answer is the slow path's, row
for row (tests/test_progress_index.py compares them on random data, SQLite and PostgreSQL).
The day a window ends in, from its midnight (today), comes from :class:`Today`: each site's
live seconds kept from the last request, only the time since then added to them.
Memory: 2 x N/8 bytes a day (1.3 KB for 5,000 sites; 0.5 MB for a year).

Grouped availability uses the same ``final`` masks to know which days to sum in SQL (per site,
on ``ix_site_day_day``) and which to account live: the same seconds as ``site_accounts``
summed by ``total``, up to the order of float additions (SQL sums them in its own order).
"""

from __future__ import annotations

import datetime as dt
import gc
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func, or_, select

from netmon.rollup import (
    SLOT,
    Seconds,
    SiteDayRow,
    api_windows,
    live_days,
    maintenance_of,
    read_coverage,
    site_accounts,
    slot_of,
)
from netmon.store import VerdictChangeRow
from netmon.timeline import (
    STATES,
    Change,
    Interval,
    account,
    day_bounds,
    days,
    fully_functional_ratio,
)

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from netmon.inventory.models import Rollout, Site
    from netmon.store import Store

DaySpan = tuple[dt.date, float, float]
Missing = dict[dt.date, tuple[DaySpan, int]]  # per day: its span, the sites to account live
CHUNK_DAYS = 31  # days of site_day aggregated in one read while the index is built


def _judged() -> Any:
    """fully_functional_ratio's denominator, added in its order (sum of STATES, then less
    no_data and maintenance)."""
    t = SiteDayRow.__table__  # type: ignore[attr-defined]
    total = t.c[STATES[0]]
    for state in STATES[1:]:
        total = total + t.c[state]
    return total - t.c.no_data - t.c.maintenance


class ProgressIndex:
    """Per local day, the sites with a final row and those fully functional (see above)."""

    def __init__(self, tz: ZoneInfo, threshold: float) -> None:
        self.tz, self.threshold = tz, threshold
        self.bits: dict[str, int] = {}  # site id -> its bit
        self.final: dict[dt.date, int] = {}
        self.good: dict[dt.date, int] = {}
        self.seen: float | None = None  # the newest rolled_at read
        self.built = False
        self.rows_read = 0
        self._todo: list[tuple[str, str]] | None = None  # the chunks of days left to build
        self._began: float | None = None
        self._powers: dict[str, int] = {}  # site id -> 1 << its bit, while building
        self.lock = threading.Lock()
        self._ends: dict[str, tuple[dt.date, float]] = {}
        self.today = Today(tz)  # the live seconds of the day a window ends in

    def mask(self, site_ids: Iterable[str]) -> int:
        bits = self.bits
        out = 0
        for site_id in site_ids:
            out |= 1 << bits.setdefault(site_id, len(bits))
        return out

    def _end(self, day: str) -> tuple[dt.date, float]:
        found = self._ends.get(day)
        if found is None:
            date = dt.date.fromisoformat(day)
            found = self._ends[day] = (date, day_bounds(date, self.tz)[1])
        return found

    def apply(self, rows: Iterable[Sequence[Any]]) -> int:
        """Fold (site_id, day, rolled_at, fully_functional, judged) rows in; how many."""
        n, seen, threshold, bits = 0, self.seen, self.threshold, self.bits
        final, good = self.final, self.good
        for site_id, day, rolled_at, ff, judged in rows:
            date, end = self._end(day)
            bit = 1 << bits.setdefault(site_id, len(bits))
            if rolled_at >= end:
                final[date] = final.get(date, 0) | bit
                ok = judged > 0 and ff / judged >= threshold
                good[date] = good.get(date, 0) | bit if ok else good.get(date, 0) & ~bit
            else:
                final[date] = final.get(date, 0) & ~bit
                good[date] = good.get(date, 0) & ~bit
            seen = rolled_at if seen is None or rolled_at > seen else seen
            n += 1
        self.seen, self.rows_read = seen, self.rows_read + n
        return n

    def refresh(self, store: Store) -> int:
        """Read the rows rolled since the newest one read (the first time: build)."""
        if not self.built:
            return self._build(store)
        t = SiteDayRow.__table__  # type: ignore[attr-defined]
        q = select(t.c.site_id, t.c.day, t.c.rolled_at, t.c.fully_functional, _judged())
        if self.seen is not None:
            q = q.where(t.c.rolled_at > self.seen)
        with store.reading("rollups"), store.engine.connect() as conn:
            return self.apply(conn.execute(q))

    def _build(self, store: Store) -> int:
        """Every day's masks, CHUNK_DAYS days a read (a read cut by the store's deadline keeps
        the chunks done: the next request goes on from there); then ``seen`` is the newest
        rolled_at there was when the build began."""
        if self._todo is None:
            self._todo, self._began = _chunks(store)
        n = 0
        while self._todo:
            n += self._chunk(store, *self._todo[0])
            self._todo.pop(0)
        self.built, self.seen, self._powers = True, self._began, {}
        return n

    def _chunk(self, store: Store, first: str, last: str) -> int:
        """The days ``first`` .. ``last`` aggregated in SQL: per day the first rolled_at, the
        sites with a row and those fully functional. A day whose rows are all final takes
        its masks from those lists; the others are read row by row (:meth:`apply`)."""
        t = SiteDayRow.__table__  # type: ignore[attr-defined]
        judged = _judged()
        ratio_ok = t.c.fully_functional / judged >= self.threshold
        good_id = case((judged > 0, case((ratio_ok, t.c.site_id))))
        join = func.string_agg if store.engine.dialect.name == "postgresql" else func.group_concat
        q = select(t.c.day, func.min(t.c.rolled_at), func.count(), join(t.c.site_id, ","),
                   join(good_id, ",")).where(t.c.day >= first, t.c.day <= last)  # fmt: skip
        with store.reading("rollups"), store.engine.connect() as conn:
            found = conn.execute(q.group_by(t.c.day)).all()
        mixed, n = [], 0
        for day, earliest, count, ids, goods in found:
            date, end = self._end(day)
            if earliest >= end:
                self.final[date], self.good[date] = self._mask_of(ids), self._mask_of(goods)
                n += count
            else:
                mixed.append(day)
        self.rows_read += n
        if mixed:  # apply() counts its own rows
            q = select(t.c.site_id, t.c.day, t.c.rolled_at, t.c.fully_functional, judged)
            with store.reading("rollups"), store.engine.connect() as conn:
                n += self.apply(conn.execute(q.where(t.c.day.in_(mixed))))
        return n

    def _mask_of(self, ids: str | None) -> int:
        """The mask of a comma-joined list of site ids (distinct: their sum is their OR)."""
        if not ids:
            return 0
        names = ids.split(",")
        powers = self._powers
        for name in names:
            if name not in powers:
                powers[name] = 1 << self.bits.setdefault(name, len(self.bits))
        return sum(map(powers.__getitem__, names))

    def split(self, want: int, spans: Sequence[DaySpan]) -> tuple[dict[dt.date, int], Missing]:
        """Per day of the spans, the ``good`` mask of the sites of ``want`` with a final row
        (whole days only); and per day the sites of ``want`` without one, to account live."""
        done: dict[dt.date, int] = {}
        missing: Missing = {}
        for span in spans:
            day, lo, hi = span
            if (lo, hi) == day_bounds(day, self.tz):
                done[day] = self.good.get(day, 0) & want
                if lacking := want & ~self.final.get(day, 0):
                    missing[day] = (span, lacking)
            else:
                done[day], missing[day] = 0, (span, want)
        return done, missing


def _chunks(store: Store) -> tuple[list[tuple[str, str]], float | None]:
    """The days site_day holds, CHUNK_DAYS at a time, and the newest rolled_at."""
    t = SiteDayRow.__table__  # type: ignore[attr-defined]
    q = select(func.min(t.c.day), func.max(t.c.day), func.max(t.c.rolled_at))
    with store.reading("rollups"), store.engine.connect() as conn:
        first, last, newest = conn.execute(q).one()
    if first is None:
        return [], None
    chunks, day, end = [], dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    while day <= end:
        upto = day + dt.timedelta(days=CHUNK_DAYS - 1)
        chunks.append((day.isoformat(), upto.isoformat()))
        day = upto + dt.timedelta(days=1)
    return chunks, newest


EXACT = (2.0**30, 2.0**31)  # Unix seconds 2004-2038: one ulp (2**-22 s), see Today


@dataclass
class _Kept:
    """One site's part of :class:`Today`."""

    rows: list[tuple[int, float, float, str]]  # its stored changes (id, at, since, verdict), by id
    upto: float = 0.0  # seconds kept for [lo, upto)
    seconds: Seconds | None = None
    end: float = 0.0  # the end of the window its changes were read for
    queued: tuple[tuple[str, float, float], ...] = ()  # its queued changes then
    changes: list[Change] = field(default_factory=list)  # its changes then (read_changes')
    maintenance: list[Interval] = field(default_factory=list)  # inside [lo, upto)
    dirty: bool = True  # a change stored since


class Today:
    """The live seconds of one day (today, as the windows that end now have it) kept between
    requests: what netmon.rollup.live_days gives for the span ``[lo, hi)`` of a day from its
    midnight, without reading and accounting every site again each time.

    It keeps, per site, the verdict changes :func:`netmon.rollup.read_changes` would read
    (stored ones: all since ``lo``, and then only those with a higher id), the seconds up to
    ``upto`` (the start of the coverage slot before the last request's end: netmon writes a
    slot's row a few seconds after it began, so the seconds after it are added to each answer,
    not kept), and the coverage over ``[lo, upto)``. A later request adds to a site's kept
    seconds only those since ``upto`` (the state the site was in then;
    :func:`netmon.timeline.account` where coverage or maintenance cut that span) and accounts
    it anew when anything of ``[lo, upto)`` may differ: a change stored or
    queued since (an outage judged late claims time before ``upto``), a change that begins
    in ``[upto, hi)``, other maintenance, an earlier ``hi``. Coverage that changed before
    ``upto``, another day, or times outside :data:`EXACT` start it over. The sums are the
    slow path's exactly: every second is a difference of two Unix times of one binade (exact
    in IEEE doubles, a multiple of 2**-22), and sums of those below 2**31 are exact too, in
    any order.
    """

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self.lo: float | None = None
        self.upto = 0.0  # the latest end accounted (coverage over [lo, upto) is self.covered)
        self.top = 0  # the newest verdict_change id read
        self.covered: list[Interval] = []
        self.sites: dict[str, _Kept] = {}
        self.lock = threading.Lock()
        self.accounted = 0  # sites accounted from their day's start (tests, bench)

    def seconds(
        self, store: Store, sites: Sequence[Site], lo: float, hi: float
    ) -> dict[str, Seconds]:
        """Per site its seconds over ``[lo, hi)``: ``live_days(...)[id][0][1].seconds``."""
        if not (EXACT[0] <= lo < hi < EXACT[1]):
            live = live_days(store, sites, self.tz, lo, hi)  # one day: one account a site
            return {site_id: acc[0][1].seconds for site_id, acc in live.items()}
        with self.lock:
            covered = read_coverage(store, lo, max(hi, self.upto) if lo == self.lo else hi)
            if lo != self.lo or _clip(covered, lo, self.upto) != self.covered:
                self._start(store, lo)
            else:
                self._read_new(store)
            posted = api_windows(store, lo, hi)
            queued = _queued(store)
            settled = max(lo, min(hi, slot_of(hi) - SLOT))
            out = {s.id: self._account(s, covered, posted, queued, hi, settled) for s in sites}
            if settled > self.upto:
                self.upto, self.covered = settled, _clip(covered, lo, settled)
            return out

    def _start(self, store: Store, lo: float) -> None:
        """Every site's stored changes as read_changes has them from ``lo`` on."""
        t = VerdictChangeRow.__table__  # type: ignore[attr-defined]
        at = func.coalesce(t.c.changed_at, t.c.since)
        last = select(func.max(t.c.id)).where(at <= lo).group_by(t.c.site_id)
        q = select(t.c.id, t.c.site_id, at, t.c.since, t.c.verdict)
        q = q.where(or_(t.c.id.in_(last), at > lo)).order_by(t.c.id)
        with store.reading("verdict changes"), store.engine.connect() as conn:
            found = conn.execute(q).all()
        self.lo, self.upto, self.covered, self.sites, self.top = lo, lo, [], {}, 0
        self._add(found)

    def _read_new(self, store: Store) -> None:
        t = VerdictChangeRow.__table__  # type: ignore[attr-defined]
        at = func.coalesce(t.c.changed_at, t.c.since)
        q = select(t.c.id, t.c.site_id, at, t.c.since, t.c.verdict).where(t.c.id > self.top)
        with store.reading("verdict changes"), store.engine.connect() as conn:
            self._add(conn.execute(q.order_by(t.c.id)).all())

    def _add(self, found: Sequence[Any]) -> None:
        for row_id, site_id, at, since, verdict in found:
            kept = self.sites.setdefault(site_id, _Kept([]))
            kept.rows.append((row_id, at, since, verdict))
            kept.dirty = True
            self.top = max(self.top, row_id)

    def _account(self, site: Site, covered: list[Interval], posted: dict[str, list[Interval]],
                 queued: dict[str, list[tuple[str, float, float]]], hi: float,
                 settled: float) -> Seconds:  # fmt: skip
        """The site's seconds over ``[lo, hi)``: those kept up to ``upto`` (when nothing
        before it may have changed; else none, from ``lo``), those of ``[upto, settled)``
        added and kept, and those of ``[settled, hi)`` added to the answer only (a
        coverage slot is written at most a few seconds after it began)."""
        assert self.lo is not None
        lo, kept = self.lo, self.sites.setdefault(site.id, _Kept([]))
        mnt = maintenance_of(site, lo, hi, posted.get(site.id, ()))
        mine, upto, seconds = tuple(queued.get(site.id, ())), kept.upto, kept.seconds
        if (seconds is not None and not kept.dirty and kept.end <= hi and mine == kept.queued
                and _clip(mnt, lo, upto) == kept.maintenance
                and not any(a > lo and kept.end <= since < hi for _i, a, since, _v in kept.rows)):  # fmt: skip
            changes, seconds = kept.changes, dict(seconds)  # the same changes as then
        else:
            changes, seconds, upto = _changes_of(kept.rows, mine, lo, hi), None, lo
            self.accounted += 1
        if seconds is None or settled > upto:
            seconds = _plus(seconds, _span(changes, covered, mnt, upto, max(upto, settled)))
            upto = max(upto, settled)
        kept.upto, kept.seconds, kept.queued, kept.dirty = upto, seconds, mine, False
        kept.changes, kept.end, kept.maintenance = changes, hi, _clip(mnt, lo, upto)
        return (
            _plus(seconds, _span(changes, covered, mnt, upto, hi)) if hi > upto else dict(seconds)
        )


def _span(changes: Sequence[Change], covered: Sequence[Interval], mnt: Sequence[Interval],
          a: float, b: float) -> Seconds:  # fmt: skip
    """account(...).seconds over ``[a, b)``; covered throughout, without maintenance and once
    every change has begun, the one state's ``b - a`` (what account() finds, cheaper)."""
    cov, windows = _clip(covered, a, b), _clip(mnt, a, b)
    state = _state_after(changes, a) if cov == [(a, b)] and not windows else None
    if state is not None:
        out = dict.fromkeys(STATES, 0.0)
        out[state] = b - a
        return out
    return dict(account(changes, cov, windows, a, b).seconds)


def _plus(kept: Seconds | None, more: Seconds) -> Seconds:
    """``kept`` + ``more`` per state (exact: see Today); ``more`` alone without ``kept``."""
    if kept is None:
        return more
    return {k: kept[k] + more[k] for k in kept}


def _state_after(changes: Sequence[Change], t: float) -> str | None:
    """The state timeline() gives every instant after ``t`` (while covered and out of
    maintenance): the last change's, once every change has begun (None: one begins later)."""
    if not changes:
        return "no_data"
    if max(c.since for c in changes) > t:
        return None
    verdict = changes[-1].verdict
    return verdict if verdict in STATES else "no_data"


def _clip(intervals: Sequence[Interval], lo: float, hi: float) -> list[Interval]:
    return [(max(a, lo), min(b, hi)) for a, b in intervals if b > lo and a < hi]


def _queued(store: Store) -> dict[str, list[tuple[str, float, float]]]:
    """Per site its queued verdict changes (verdict, since, changed_at), oldest first."""
    out: dict[str, list[tuple[str, float, float]]] = {}
    for r in store.queued(VerdictChangeRow.__tablename__):
        out.setdefault(r["site_id"], []).append((r["verdict"], r["since"], r["changed_at"]))
    return out


def _changes_of(rows: Sequence[tuple[int, float, float, str]],
                queued: Sequence[tuple[str, float, float]], lo: float, hi: float) -> list[Change]:  # fmt: skip
    """A site's changes as read_changes(store, [site], lo, hi) has them (without reasons): the
    stored change in force at ``lo``, the stored ones after it that begin before ``hi`` (by
    id), then the queued ones not stored."""
    in_force = max((i for i, a, _s, _v in rows if a <= lo), default=None)
    picked = [(a, s, v) for i, a, s, v in rows if i == in_force or (a > lo and s < hi)]
    seen = {a for a, _s, _v in picked}
    mine = [q for q in queued if q[2] not in seen]
    return [Change(v, s) for _a, s, v in picked] + [Change(v, s) for v, s, _a in mine]


class Indexes:
    """The API's one index, made again when the threshold or the time zone changes."""

    def __init__(self) -> None:
        self.index: ProgressIndex | None = None
        self._lock = threading.Lock()

    def of(self, tz: ZoneInfo, threshold: float) -> ProgressIndex:
        with self._lock:
            index = self.index
            if index is None or (index.tz.key, index.threshold) != (tz.key, threshold):
                index = self.index = ProgressIndex(tz, threshold)
            return index


def _fresh(
    index: ProgressIndex, store: Store, sites: Sequence[Site], spans: Sequence[DaySpan]
) -> tuple[dict[dt.date, int], Missing]:
    """Under the index's lock: its rows brought up to date, then :meth:`ProgressIndex.split`."""
    with index.lock:
        _refresh(index, store, sites)
        return index.split(index.mask(s.id for s in sites), spans)


def _refresh(index: ProgressIndex, store: Store, sites: Sequence[Site]) -> int:
    if not index.built:
        index.mask(s.id for s in sites)  # the inventory's order for the first bits
    return index.refresh(store)


def warm(
    index: ProgressIndex, store: Store, sites: Sequence[Site], now: float | None = None
) -> int:
    """Build the index as the first request would (blocking: a thread's work), so that the
    first request after a start finds it built, and with ``now`` account today up to it
    (:class:`Today`: a window to now then adds only the time since): ``netmon serve`` runs it
    at start-up (netmon.api.app.warm_up). The rows read; StoreError as a request would have
    it (the first request then goes on from where it stopped)."""
    with index.lock:
        n = _refresh(index, store, sites)
    if now is not None:
        midnight = day_bounds(dt.datetime.fromtimestamp(now, index.tz).date(), index.tz)[0]
        if midnight < now:
            index.today.seconds(store, sites, midnight, now)
    gc.collect()  # the build's garbage (millions of objects) collected now, not in a request
    return n


def good_masks(
    index: ProgressIndex, store: Store, sites: Sequence[Site], start: float, end: float
) -> dict[dt.date, int]:
    """Per local day of ``[start, end)``, the mask of ``sites`` fully functional that day (what
    netmon.progress.good_days finds over site_accounts), in date order. The sites and days
    without a final row are accounted live as site_accounts does: a window that ends inside a
    day that began in it (today) takes that day from :class:`Today`; the other days, one read
    of the raw tables for those sites, from the first such day to the end of the last."""
    if end <= start:
        return {}
    done, missing = _fresh(index, store, sites, days(start, end, index.tz))
    last = max(missing, default=None)
    if last is not None and missing[last][0][1] == day_bounds(last, index.tz)[0] < end:
        (_day, lo, hi), mask = missing.pop(last)
        needy = [s for s in sites if mask >> index.bits[s.id] & 1]
        for site_id, seconds in index.today.seconds(store, needy, lo, hi).items():
            ratio = fully_functional_ratio(seconds)
            if ratio is not None and ratio >= index.threshold:
                done[last] |= 1 << index.bits[site_id]
    if missing:
        _live(index, store, sites, missing, done)
    return dict(sorted(done.items()))


def _live(index: ProgressIndex, store: Store, sites: Sequence[Site], missing: Missing,
          done: dict[dt.date, int]) -> None:  # fmt: skip
    """The ``missing`` days' masks in ``done``, from the raw tables (netmon.rollup.live_days)."""
    lacking = 0
    for _span, mask in missing.values():
        lacking |= mask
    needy = [s for s in sites if lacking >> index.bits[s.id] & 1]
    spans = [span for span, _mask in missing.values()]
    lo, hi = min(s[1] for s in spans), max(s[2] for s in spans)
    live = live_days(store, needy, index.tz, lo, hi)
    for site in needy:
        bit = 1 << index.bits[site.id]
        for day, acc in live[site.id]:
            if day in missing and missing[day][1] & bit:
                ratio = fully_functional_ratio(acc.seconds)
                if ratio is not None and ratio >= index.threshold:
                    done[day] |= bit


def _groups(
    index: ProgressIndex, sites: Sequence[Site], group_of: Callable[[Site], str]
) -> tuple[list[tuple[str, int]], int, list[tuple[dt.date, int]]]:
    """The mask of each group (by name), of the sites without a commissioned date, and the
    bit of each other site with its date (oldest first)."""
    groups: dict[str, int] = {}
    always, later = 0, []
    for site in sites:
        bit, name = 1 << index.bits[site.id], group_of(site)
        groups[name] = groups.get(name, 0) | bit
        if site.commissioned is None:
            always |= bit
        else:
            later.append((site.commissioned, bit))
    later.sort(key=lambda c: c[0])
    return sorted(groups.items()), always, later


def progress_rows(
    index: ProgressIndex,
    sites: Sequence[Site],
    group_of: Callable[[Site], str],
    good: dict[dt.date, int],
    shown: Sequence[dt.date],
    rollout: Rollout | None,
) -> list[dict[str, Any]]:
    """netmon.progress.progress_rows over the masks of :func:`good_masks` (every day read, in
    date order; ``shown`` among them), as the API's rows: one per shown day and group."""
    named, always, later = _groups(index, sites, group_of)
    wanted = set(shown)
    rows: list[dict[str, Any]] = []
    ever, counted_all, k = 0, always, 0
    counted = [(n, c := m & always, c.bit_count()) for n, m in named]
    for day, mask in good.items():
        ever |= mask
        if k < len(later) and later[k][0] <= day:  # sites commissioned: the groups' counts
            while k < len(later) and later[k][0] <= day:
                counted_all, k = counted_all | later[k][1], k + 1
            counted = [(n, c := m & counted_all, c.bit_count()) for n, m in named]
        if day not in wanted:
            continue
        left = (rollout.deadline - day).days if rollout else None
        rows += [{"day": day, "group": name, "sites": n,
                  "fully_functional": (c & mask).bit_count(),
                  "never_fully_functional": n - (c & ever).bit_count(),
                  "days_to_deadline": left} for name, c, n in counted]  # fmt: skip
    return rows


def site_totals(
    index: ProgressIndex, store: Store, sites: Sequence[Site], start: float, end: float
) -> dict[str, Seconds]:
    """Per site, its seconds over ``[start, end)``: ``total(site_accounts(...))``, with the
    days final for every site summed in SQL (one grouped query) and the others from
    site_accounts."""
    out = {s.id: dict.fromkeys(STATES, 0.0) for s in sites}
    if end <= start:
        return out
    done, missing = _fresh(index, store, sites, days(start, end, index.tz))
    final = sorted(day for day in done if day not in missing)
    if final:
        for site_id, *sums in _sums(store, final, list(missing)):
            if site_id in out:
                out[site_id] = {k: float(v) for k, v in zip(STATES, sums, strict=True)}
    if missing:
        for site_id, found in site_accounts(store, sites, index.tz, start, end, final).items():
            seconds = out[site_id]
            for _day, day_seconds in found:
                for k, v in day_seconds.items():
                    seconds[k] += v
    return out


def _sums(store: Store, final: Sequence[dt.date], other: Sequence[dt.date]) -> list[Any]:
    """Per site, its seconds in each state summed over the days ``final[0]`` .. ``final[-1]``
    less the ``other`` days."""
    t = SiteDayRow.__table__  # type: ignore[attr-defined]
    q = select(t.c.site_id, *(func.sum(t.c[k]) for k in STATES)).where(
        t.c.day >= final[0].isoformat(), t.c.day <= final[-1].isoformat()
    )
    skipped = [d.isoformat() for d in other if final[0] < d < final[-1]]
    if skipped:
        q = q.where(t.c.day.not_in(skipped))
    with store.reading("rollups"), store.engine.connect() as conn:
        return list(conn.execute(q.group_by(t.c.site_id)))


def progress(
    index: ProgressIndex,
    store: Store,
    sites: Sequence[Site],
    group_of: Callable[[Site], str],
    window: tuple[float, float, float],
    rollout: Rollout | None,
) -> list[dict[str, Any]]:
    """The progress rows of the days of ``[lo, hi)``, "never fully functional" counted from
    ``read_from`` (``window`` is (read_from, lo, hi)): one call, for the store's reader thread."""
    read_from, lo, hi = window
    good = good_masks(index, store, sites, read_from, hi)
    shown = [day for day, _lo, _hi in days(lo, hi, index.tz)]
    return progress_rows(index, sites, group_of, good, shown, rollout)
