"""What netmon remembers of time: coverage and daily rollups per site (SQLite and PostgreSQL).

- ``coverage``: one row per 10 s slot in which netmon ran with its poller connected, queued and
  journaled like results (so a database outage loses none, a replay adds none twice). Time
  without a row is ``no_data`` for every site (netmon.timeline). Pruned with the raw results.
- ``site_day``: per site and local day (``NETMON_REPORT_TIMEZONE``, default Asia/Kolkata) the
  seconds in each state of :data:`netmon.timeline.STATES`, keyed (site, day) and upserted: the
  monitor re-rolls yesterday and today every minute (an outage judged after midnight still
  lands in its day), after a restart from the last day it rolled; ``netmon rollup rebuild``
  recomputes any range from the raw tables. A row rolled after its day ended is final and is
  what reports read; anything else is computed live from the same tables, the same way.
  Kept forever (a row per site and day).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Column, Index, LargeBinary, Row, and_, func, inspect, or_, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlmodel import Field, SQLModel

from netmon.chunks import HOUR_FLOATS, HOUR_INTS, pack_hours, unpack_hours
from netmon.timeline import (
    STATES,
    Account,
    Change,
    Interval,
    account,
    day_bounds,
    days,
    merge,
    reasons_of,
    timeline,
)

if TYPE_CHECKING:
    from netmon.inventory.models import Inventory, Site
    from netmon.store import Store

log = logging.getLogger("netmon.rollup")
SLOT = 10  # seconds of one coverage row
ROLL_EVERY = 60.0  # seconds between the monitor's rollups of yesterday and today
CATCH_UP_DAYS = 40  # at most this many days re-rolled after a restart (raw results: 35 days)
HOURS_EVERY = 300.0  # seconds between rolls of the device hours (this hour and the last)
CATCH_UP_HOURS = 48  # at most this many device hours re-rolled after a restart
HOURLY_DAYS = 400.0  # device hours kept (NETMON_ROLLUP_HOURLY_DAYS; 0: forever)


class CoverageRow(SQLModel, table=True):
    __tablename__ = "coverage"

    slot: int = Field(primary_key=True)  # Unix seconds, a multiple of SLOT


class SiteDayRow(SQLModel, table=True):
    __tablename__ = "site_day"

    site_id: str = Field(primary_key=True, max_length=64)
    day: str = Field(primary_key=True, max_length=10, index=True)  # YYYY-MM-DD, report zone
    district: str = Field(max_length=128)  # the site's district that day (not indexed: v5)
    type: str = Field(max_length=32)
    fully_functional: float = 0.0  # seconds in each state (netmon.timeline.STATES)
    degraded: float = 0.0
    down: float = 0.0
    not_installed: float = 0.0
    maintenance: float = 0.0
    no_data: float = 0.0
    rolled_at: float = Field(index=True)  # Unix seconds; at or after the day's end: final


class DeviceDayRow(SQLModel, table=True):
    """One device's hourly figures of one kind over one UTC day, packed (netmon.chunks.
    pack_hours: per hour probes, failed, sent, received, rtt_min/avg/max, outage seconds;
    exact). One row a device day instead of 24: a year of 5,000 devices is 1.8 M rows, not
    44 M. Kept ``NETMON_ROLLUP_HOURLY_DAYS`` (whole days); read with :func:`read_hours`."""

    __tablename__ = "device_day"
    __table_args__ = (Index("ix_device_day_day", "day"),)

    site_id: str = Field(primary_key=True, max_length=64)
    device: str = Field(primary_key=True, max_length=64)
    kind: str = Field(primary_key=True, max_length=16)
    day: int = Field(primary_key=True)  # Unix seconds, a multiple of 86400 (a UTC day)
    last_hour: int  # the latest hour in the blob
    blob: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


# the indexes of site_day, for a database made before create_all knew them (netmon.progress_index)
INDEXES = (
    "CREATE INDEX IF NOT EXISTS ix_site_day_day ON site_day (day)",
    "CREATE INDEX IF NOT EXISTS ix_site_day_rolled_at ON site_day (rolled_at)",
)


def ensure_indexes(store: Store) -> None:
    """The indexes the reports read site_day by, on a database created before them."""
    with store.writing("rollup indexes"), store.engine.begin() as conn:
        for statement in INDEXES:
            conn.execute(text(statement))


def slot_of(ts: float) -> int:
    return int(ts // SLOT * SLOT)


# --- reading the raw tables -------------------------------------------------------------------
def read_coverage(store: Store, start: float, end: float) -> list[Interval]:
    """When netmon ran inside ``[start, end)``: stored slots and those still queued, merged."""
    t = CoverageRow.__table__  # type: ignore[attr-defined]
    q = select(t.c.slot).where(t.c.slot > start - SLOT, t.c.slot < end)
    queued = [r["slot"] for r in store.queued(CoverageRow.__tablename__)]
    with store.reading("coverage"), store.engine.connect() as conn:
        slots = list(conn.execute(q).scalars())
    spans = merge((s, s + SLOT) for s in {*slots, *queued} if start - SLOT < s < end)
    return [(max(a, start), min(b, end)) for a, b in spans]


def read_changes(
    store: Store,
    site_ids: Collection[str] | None,
    start: float,
    end: float,
    reasons: Callable[[Sequence[dict[str, Any]]], tuple[str, ...]] = reasons_of,
) -> dict[str, list[Change]]:
    """Per site, oldest first: the change in force at ``start`` and every later one that
    claims time before ``end`` (an outage judged after ``end`` that began before it too);
    ``reasons`` makes a change's reasons from the stored ones (default: their messages)."""
    from netmon.store import VerdictChangeRow

    t = VerdictChangeRow.__table__  # type: ignore[attr-defined]
    at = func.coalesce(t.c.changed_at, t.c.since)
    last = select(func.max(t.c.id)).where(at <= start)
    q = select(t.c.site_id, t.c.verdict, t.c.since, t.c.reasons, at)
    if site_ids is not None:
        last, q = last.where(t.c.site_id.in_(site_ids)), q.where(t.c.site_id.in_(site_ids))
    q = q.where(or_(t.c.id.in_(last.group_by(t.c.site_id)), and_(at > start, t.c.since < end)))
    queued = store.queued(VerdictChangeRow.__tablename__)
    with store.reading("verdict changes"), store.engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(q.order_by(t.c.id))]
    seen = {(r[0], r[4]) for r in rows}
    for r in queued:
        key = (r["site_id"], r["changed_at"])
        if key not in seen and (site_ids is None or r["site_id"] in site_ids):
            rows.append((r["site_id"], r["verdict"], r["since"], r["reasons"], r["changed_at"]))
    out: dict[str, list[Change]] = {}
    for site_id, verdict, since, stored, _at in rows:
        out.setdefault(site_id, []).append(Change(verdict, since, reasons(_loads(stored))))
    return out


def _loads(text: str | None) -> list[dict[str, Any]]:
    value = json.loads(text or "[]")
    return value if isinstance(value, list) else []


def maintenance_of(
    site: Site, start: float, end: float, extra: Iterable[Interval] = ()
) -> list[Interval]:
    """The site's announced windows over ``[start, end)`` (recurring ones expanded) and
    ``extra``, merged."""
    return merge([*site.maintenance_spans(start, end), *extra])


def api_windows(store: Store, start: float, end: float) -> dict[str, list[Interval]]:
    """Per site, the maintenance windows posted to the API that overlap ``[start, end)`` (the
    monitor holds only those inside its policy windows; a report may look further back)."""
    from netmon.maintenance import load_windows

    out: dict[str, list[Interval]] = {}
    for w in load_windows(store, start):
        if w.start.timestamp() < end:
            out.setdefault(w.site_id, []).append((w.start.timestamp(), w.end.timestamp()))
    return out


def _clip(intervals: Sequence[Interval], lo: float, hi: float) -> list[Interval]:
    return [(max(a, lo), min(b, hi)) for a, b in intervals if b > lo and a < hi]


# --- live accounts ----------------------------------------------------------------------------
def live_days(
    store: Store, sites: Sequence[Site], tz: ZoneInfo, start: float, end: float
) -> dict[str, list[tuple[dt.date, Account]]]:
    """Per site, each local day of ``[start, end)`` accounted from the raw tables."""
    covered = read_coverage(store, start, end)
    changes = read_changes(store, [s.id for s in sites], start, end)
    posted = api_windows(store, start, end)
    spans = [(day, lo, hi, _clip(covered, lo, hi)) for day, lo, hi in days(start, end, tz)]
    out: dict[str, list[tuple[dt.date, Account]]] = {}
    for site in sites:
        mnt = maintenance_of(site, start, end, posted.get(site.id, ()))
        mine = changes.get(site.id, [])
        out[site.id] = [(day, account(mine, cov, _clip(mnt, lo, hi), lo, hi))
                        for day, lo, hi, cov in spans]  # fmt: skip
    return out


def outages(store: Store, site: Site, start: float, end: float) -> list[Any]:
    """The site's outages inside ``[start, end)``: see :func:`outages_of`."""
    return outages_of(store, [site], start, end)[site.id]


def outages_of(
    store: Store,
    sites: Sequence[Site],
    start: float,
    end: float,
    reasons: Callable[[Sequence[dict[str, Any]]], tuple[str, ...]] = reasons_of,
) -> dict[str, list[Any]]:
    """Per site, its outages inside ``[start, end)``: its down spans, less the time netmon
    was not running and the maintenance inside them (one read of the changes for all the
    sites; coverage read only where one was down). ``reasons`` as :func:`read_changes`."""
    changes = read_changes(store, [s.id for s in sites], start, end, reasons=reasons)
    posted = api_windows(store, start, end)
    out: dict[str, list[Any]] = {}
    for site in sites:
        mine = changes.get(site.id, [])
        mnt = maintenance_of(site, start, end, posted.get(site.id, ()))
        found: list[Any] = []
        for span in timeline(mine, start, end):
            if span.verdict == "down":
                covered = read_coverage(store, span.start, span.end)
                clipped = _clip(mnt, span.start, span.end)
                found.extend(account(mine, covered, clipped, span.start, span.end).outages)
        out[site.id] = found
    return out


# --- the rollup table -------------------------------------------------------------------------
def site_day_rows(
    store: Store, inventory: Inventory, tz: ZoneInfo, first: dt.date, last: dt.date, now: float
) -> list[dict[str, Any]]:
    """The site_day rows of every site for the local days ``first`` .. ``last`` (to ``now``)."""
    start, end = day_bounds(first, tz)[0], min(day_bounds(last, tz)[1], now)
    if end <= start:
        return []
    rows = []
    accounts = live_days(store, inventory.sites, tz, start, end)
    for site in inventory.sites:
        for day, acc in accounts[site.id]:
            rows.append({"site_id": site.id, "day": day.isoformat(), "district": site.district,
                         "type": site.type, **acc.seconds, "rolled_at": now})  # fmt: skip
    return rows


def write_rows(store: Store, rows: list[dict[str, Any]]) -> int:
    """Upsert site_day rows (the same day rolled again replaces its row)."""
    return _upsert(store, SiteDayRow.__table__, rows, ("site_id", "day"))  # type: ignore[attr-defined]


def stored_days(
    store: Store, site_ids: Collection[str] | None, first: dt.date, last: dt.date
) -> list[Row[Any]]:
    """The site_day rows of ``first`` .. ``last``, as plain rows (``row.site_id``, ``row.down``,
    ...): building a SiteDayRow model per row was 90 % of site_accounts over 500 sites × 90 days."""
    t = SiteDayRow.__table__  # type: ignore[attr-defined]
    q = select(t).where(t.c.day >= first.isoformat(), t.c.day <= last.isoformat())
    if site_ids is not None:
        q = q.where(t.c.site_id.in_(site_ids))
    with store.reading("rollups"), store.engine.connect() as conn:
        return list(conn.execute(q))


def last_rolled_day(store: Store) -> dt.date | None:
    with store.reading("rollups"), store.engine.connect() as conn:
        day = conn.execute(select(func.max(SiteDayRow.day))).scalar()
    return dt.date.fromisoformat(day) if day else None


def local_date(ts: float, tz: ZoneInfo) -> dt.date:
    return dt.datetime.fromtimestamp(ts, tz).date()


def roll(
    store: Store, inventory: Inventory, tz: ZoneInfo, first: dt.date, last: dt.date, now: float
) -> int:
    """Recompute and upsert the site_day rows of ``first`` .. ``last``."""
    return write_rows(store, site_day_rows(store, inventory, tz, first, last, now))


class Rollups:
    """The monitor's rollup task: yesterday and today each minute; after a start, every day
    from the last one rolled (at most CATCH_UP_DAYS back). Device hours: this hour and the
    last every HOURS_EVERY seconds (after a start, from the last one rolled, at most
    CATCH_UP_HOURS back); older than ``hourly_days`` pruned."""

    def __init__(
        self, tz: ZoneInfo, every: float = ROLL_EVERY, hourly_days: float = HOURLY_DAYS
    ) -> None:
        self.tz = tz
        self.every = every
        self.hourly_days = hourly_days
        self.hours_at = -math.inf  # when device hours were last rolled
        self.caught_up = False
        self.rolled = 0  # rows written
        self.last_rolled_at: float | None = None

    def run_once(self, store: Store, inventory: Inventory, now: float) -> int:
        """Blocking (run it in a thread); StoreError when the database is away."""
        if not store.migrated:
            return 0
        today = local_date(now, self.tz)
        first = today - dt.timedelta(days=1)
        if not self.caught_up:
            ensure_indexes(store)
            last = last_rolled_day(store)
            if last is not None:
                first = min(first, max(last, today - dt.timedelta(days=CATCH_UP_DAYS)))
        n = roll(store, inventory, self.tz, first, today, now)
        if now - self.hours_at >= HOURS_EVERY:
            n += self._roll_hours(store, now)
        self.caught_up, self.rolled, self.last_rolled_at = True, self.rolled + n, now
        return n

    def _roll_hours(self, store: Store, now: float) -> int:
        first = int(now // 3600 * 3600) - 3600
        if not self.caught_up:
            last = last_hour(store)
            if last is not None:
                first = min(first, max(int(last), first - CATCH_UP_HOURS * 3600))
        n = write_hours(store, device_hour_rows(store, first, now))
        if self.hourly_days > 0:
            prune_rollups(store, now - self.hourly_days * 86400)
        self.hours_at = now
        return n


def rebuild(
    store: Store,
    inventory: Inventory,
    tz: ZoneInfo,
    first: dt.date,
    last: dt.date,
) -> Iterable[tuple[dt.date, int]]:
    """Re-roll ``first`` .. ``last`` one day at a time (its site days and the device hours
    inside it), yielding (day, rows) as each is done."""
    day = first
    while day <= last:
        lo, hi = day_bounds(day, tz)
        now = time.time()
        hours = device_hour_rows(
            store, int(lo // 3600 * 3600), min(math.ceil(hi / 3600) * 3600, now)
        )
        yield day, roll(store, inventory, tz, day, day, now) + write_hours(store, hours)
        day += dt.timedelta(days=1)


# --- device hours -------------------------------------------------------------------------
def device_hour_rows(store: Store, first_hour: int, end: float) -> list[dict[str, Any]]:
    """The device_hour rows of the results started from ``first_hour`` up to ``end``, raw and
    packed alike (netmon.compaction), read an hour at a time. A failed result's outage lasts
    until the device's next result in the range (or its own end), kept inside its hour; the
    sums are exact (``math.fsum``), so the figures do not depend on the order rows are read."""
    hours: dict[tuple[str, str, str, int], _Hour] = {}
    pending: dict[tuple[str, str, str], tuple[_Hour, Any]] = {}  # each key's latest result
    for lo in range(int(first_hour // 3600 * 3600), math.ceil(end), 3600):
        for key, rows in _hour_results(store, max(lo, first_hour), min(lo + 3600, end)).items():
            if key in pending:
                acc, last = pending.pop(key)
                acc.add(last, rows[0][0])
            acc = hours.setdefault((*key, lo), _Hour())
            for row, nxt in zip(rows, rows[1:], strict=False):
                acc.add(row, nxt[0])
            pending[key] = (acc, rows[-1])
    for acc, last in pending.values():
        acc.add(last, last[0] + last[1])
    return [{"site_id": s, "device": d, "kind": k, "hour": h, **acc.figures()}
            for (s, d, k, h), acc in hours.items()]  # fmt: skip


HOUR_COLUMNS = ("ts", "duration", "ok", "sent", "received", "rtt_min", "rtt_avg", "rtt_max")


def _hour_results(store: Store, lo: float, hi: float) -> dict[tuple[str, str, str], list[Any]]:
    """Per (site, device, kind), its results started in ``[lo, hi)`` as tuples of
    :data:`HOUR_COLUMNS`, by start: the raw rows and the packed ones."""
    from netmon.compaction import chunk_results
    from netmon.store import ProbeResultRow

    t = ProbeResultRow.__table__  # type: ignore[attr-defined]
    q = select(t.c.site_id, t.c.device, t.c.kind, *(t.c[n] for n in HOUR_COLUMNS))
    out: dict[tuple[str, str, str], list[Any]] = {}
    with store.reading("hourly figures"), store.engine.connect() as conn:
        for site, dev, kind, *values in conn.execute(q.where(t.c.ts >= lo, t.c.ts < hi)):
            out.setdefault((site, dev, kind), []).append(tuple(values))
    for site, dev, kind, row in chunk_results(store, None, lo, hi):
        out.setdefault((site, dev, kind), []).append(tuple(row[n] for n in HOUR_COLUMNS))
    for key, rows in out.items():  # a raw row also packed (a replay that raced compaction): once
        rows.sort(key=lambda r: r[0])
        out[key] = [r for i, r in enumerate(rows) if i == 0 or r[0] != rows[i - 1][0]]
    return out


class _Hour:
    """One device hour's figures, added a result at a time (see :func:`device_hour_rows`)."""

    def __init__(self) -> None:
        self.probes = self.failed = self.sent = self.received = self.weight = 0
        self.rtt_min: float | None = None
        self.rtt_max: float | None = None
        self.weighted: list[float] = []  # rtt_avg x received of each result with an average
        self.outage: list[float] = []  # seconds of each failed result

    def add(self, row: Any, until: float) -> None:
        ts, _duration, ok, sent, received, rtt_min, rtt_avg, rtt_max = row
        self.probes += 1
        self.sent += sent
        self.received += received
        if not ok:
            self.failed += 1
            self.outage.append(until - ts)
        if rtt_min is not None:
            self.rtt_min = rtt_min if self.rtt_min is None else min(self.rtt_min, rtt_min)
        if rtt_max is not None:
            self.rtt_max = rtt_max if self.rtt_max is None else max(self.rtt_max, rtt_max)
        if rtt_avg is not None:
            self.weighted.append(rtt_avg * received)
            self.weight += received

    def figures(self) -> dict[str, Any]:
        """The hour's row. The average RTT is kept to 0.1 µs, as the RTTs are, and the outage
        seconds to 1 µs: a device day packs them in a few bits each (netmon.chunks), where
        their full float bits would take eight bytes."""
        avg = round(math.fsum(self.weighted) / self.weight, 7) if self.weight else None
        return {"probes": self.probes, "failed": self.failed, "sent": self.sent,
                "received": self.received, "rtt_min": self.rtt_min, "rtt_avg": avg,
                "rtt_max": self.rtt_max,
                "outage_seconds": round(min(math.fsum(self.outage), 3600.0), 6)}  # fmt: skip


DayKey = tuple[str, str, str, int]  # (site, device, kind, UTC day)


HOURS_BATCH = 500  # device days read, merged and written back a transaction


def write_hours(store: Store, rows: list[dict[str, Any]]) -> int:
    """Upsert device hours (an hour rolled again replaces its figures): each one's device
    day read, merged and written back, :data:`HOURS_BATCH` device days a transaction (a
    5,000-device roll in one ran past the store's deadline on PostgreSQL). The hours written."""
    new: dict[DayKey, dict[int, dict[str, Any]]] = {}
    for r in rows:
        key = (r["site_id"], r["device"], r["kind"], r["hour"] // 86400 * 86400)
        new.setdefault(key, {})[r["hour"]] = {k: r[k] for k in ("hour", *HOUR_INTS, *HOUR_FLOATS)}
    keys = sorted(new)
    for i in range(0, len(keys), HOURS_BATCH):
        _write_days(store, {k: new[k] for k in keys[i : i + HOURS_BATCH]})
    return len(rows)


def _write_days(store: Store, new: dict[DayKey, dict[int, dict[str, Any]]]) -> None:
    """Merge these device days' new hours into the stored ones: one transaction."""
    t = DeviceDayRow.__table__  # type: ignore[attr-defined]
    days, sites = {k[3] for k in new}, {k[0] for k in new}
    q = select(t.c.site_id, t.c.device, t.c.kind, t.c.day, t.c.blob)
    with store.writing(f"{len(new)} device days"), store.engine.begin() as conn:
        for site, dev, kind, day, blob in conn.execute(
            q.where(t.c.day.in_(days), t.c.site_id.in_(sites))
        ):
            if (old := (site, dev, kind, day)) in new:
                new[old] = {h["hour"]: h for h in unpack_hours(blob)} | new[old]
        out = [{"site_id": s_, "device": d, "kind": k, "day": day, "last_hour": max(hours),
                "blob": pack_hours(list(hours.values()))}
               for (s_, d, k, day), hours in new.items()]  # fmt: skip
        _upsert_in(conn, t, out, ("site_id", "device", "kind", "day"))


def read_hours(store: Store, first_hour: float, end: float) -> list[dict[str, Any]]:
    """The stored device hours from ``first_hour`` up to ``end``, as the rows
    :func:`device_hour_rows` makes (site_id, device, kind, hour and the figures)."""
    t = DeviceDayRow.__table__  # type: ignore[attr-defined]
    q = select(t.c.site_id, t.c.device, t.c.kind, t.c.blob)
    q = q.where(t.c.day > first_hour - 86400, t.c.day < end)
    with store.reading("hourly figures"), store.engine.connect() as conn:
        found = conn.execute(q.order_by(t.c.day, t.c.site_id, t.c.device, t.c.kind)).all()
    return [{"site_id": s_, "device": d, "kind": k, **h}
            for s_, d, k, blob in found for h in unpack_hours(blob)
            if first_hour <= h["hour"] < end]  # fmt: skip


def last_hour(store: Store) -> int | None:
    """The latest device hour stored (None: none)."""
    t = DeviceDayRow.__table__  # type: ignore[attr-defined]
    newest = select(func.max(t.c.day)).scalar_subquery()
    with store.reading("hourly figures"), store.engine.connect() as conn:
        last = conn.execute(select(func.max(t.c.last_hour)).where(t.c.day == newest)).scalar()
    return None if last is None else int(last)


def _upsert(store: Store, table: Any, rows: list[dict[str, Any]], keys: Sequence[str]) -> int:
    """Insert ``rows``, replacing those whose ``keys`` are already stored."""
    if not rows:
        return 0
    with store.writing(f"{len(rows)} rollup rows"), store.engine.begin() as conn:
        _upsert_in(conn, table, rows, keys)
    return len(rows)


def _upsert_in(
    conn: Connection, table: Any, rows: list[dict[str, Any]], keys: Sequence[str]
) -> None:
    ins = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(table)
    update = {c.name: ins.excluded[c.name] for c in table.columns if c.name not in keys}
    stmt = ins.on_conflict_do_update(index_elements=list(keys), set_=update)
    for i in range(0, len(rows), 2000):
        conn.execute(stmt, rows[i : i + 2000])


def migrate_device_hours(conn: Connection) -> None:
    """Schema v4: the device_hour rows of an older netmon packed a device day a row."""
    if not inspect(conn).has_table("device_hour"):
        return
    names = ("site_id", "device", "kind", "hour", *HOUR_INTS, *HOUR_FLOATS)
    q = text(f"SELECT {', '.join(names)} FROM device_hour ORDER BY site_id, device, kind, hour")
    days: dict[DayKey, list[dict[str, Any]]] = {}
    for row in conn.execute(q):
        r = dict(zip(names, row, strict=True))
        days.setdefault(
            (r["site_id"], r["device"], r["kind"], r["hour"] // 86400 * 86400), []
        ).append(r)
    out = [{"site_id": s_, "device": d, "kind": k, "day": day,
            "last_hour": max(h["hour"] for h in hours), "blob": pack_hours(hours)}
           for (s_, d, k, day), hours in days.items()]  # fmt: skip
    _upsert_in(conn, DeviceDayRow.__table__, out, ("site_id", "device", "kind", "day"))  # type: ignore[attr-defined]
    conn.execute(text("DROP TABLE device_hour"))


def prune_rollups(store: Store, before: float) -> int:
    """Delete the device days that ended at or before ``before`` (whole days; daily site rows
    are kept forever): the device days deleted."""
    t = DeviceDayRow.__table__  # type: ignore[attr-defined]
    with store.writing("old hourly figures"), store.engine.begin() as conn:
        return int(conn.execute(t.delete().where(t.c.day + 86400 <= before)).rowcount or 0)


# --- reports: rolled days where final, live days elsewhere ------------------------------------
Seconds = dict[str, float]


def site_accounts(
    store: Store,
    sites: Sequence[Site],
    tz: ZoneInfo,
    start: float,
    end: float,
    skip: Collection[dt.date] = (),
) -> dict[str, list[tuple[dt.date, Seconds]]]:
    """Per site, the seconds of each local day of ``[start, end)`` but those in ``skip``: the
    site's final site_day row of a whole day where it has one, else the day accounted live
    (the same arithmetic), one site at a time: a site without a row (added to the inventory
    later) is accounted live alone, the others keep their rows."""
    out: dict[str, list[tuple[dt.date, Seconds]]] = {s.id: [] for s in sites}
    spans = [span for span in days(start, end, tz) if span[0] not in skip] if end > start else []
    if not spans:
        return out
    ids = [s.id for s in sites]
    stored = {(r.site_id, r.day): r for r in stored_days(store, ids, spans[0][0], spans[-1][0])}
    final: dict[tuple[str, dt.date], Seconds] = {}
    for day, lo, hi in spans:
        d0, d1 = day_bounds(day, tz)
        for i in ids if (lo, hi) == (d0, d1) else ():
            row = stored.get((i, day.isoformat()))
            if row is not None and row.rolled_at >= d1:
                final[i, day] = {k: float(getattr(row, k)) for k in STATES}
    live = _live_rest(store, sites, tz, spans, final)
    for i in ids:
        out[i] = [(day, final[i, day] if (i, day) in final else live[i][day])
                  for day, _lo, _hi in spans]  # fmt: skip
    return out


def _live_rest(
    store: Store,
    sites: Sequence[Site],
    tz: ZoneInfo,
    spans: Sequence[tuple[dt.date, float, float]],
    final: Collection[tuple[str, dt.date]],
) -> dict[str, dict[dt.date, Seconds]]:
    """Per site, the seconds of its ``spans`` days not in ``final``: one read of the raw
    tables for the sites that need one, from the first such day to the end of the last."""
    need = [(site, span) for site in sites for span in spans if (site.id, span[0]) not in final]
    if not need:
        return {}
    needy = list({site.id: site for site, _span in need}.values())
    first, last = min(span[1] for _s, span in need), max(span[2] for _s, span in need)
    found = live_days(store, needy, tz, first, last)
    return {i: {day: acc.seconds for day, acc in accounts} for i, accounts in found.items()}
