"""Known data for the status board's tests and bench: a monitor driven on a fake clock over a
real store (the write paths netmon runs: record, evaluate, cover, flush, roll).

Three days from 2026-11-10 (valid-status.yaml), 20 minutes each from 01:00 IST (the rest of
each day netmon is off: no data). On the second day chc-bundu's internet link (wan-1) answers
nothing from 01:05 to 01:15 IST: one outage, reason ``uplink_down`` wan-1. chc-torpa is in
announced maintenance on the third day from 01:00 to 02:00 (all its 20 minutes). After the
third day the clock stops at 01:30 on it; the days are rolled.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from zoneinfo import ZoneInfo

from netmon.inventory import load_inventory
from netmon.monitor import Monitor
from netmon.rollup import Rollups, roll
from netmon.store import Store
from probes.base import Engines, ProbeResult
from tests.conftest import INVENTORIES, FakeClock

IST = ZoneInfo("Asia/Kolkata")
DAY1 = dt.date(2026, 11, 10)
DAYS = [DAY1 + dt.timedelta(days=i) for i in range(3)]
CUT_DAY = DAYS[1]
CUT_SITE = "chc-bundu"


def at(day: dt.date, hour: int, minute: int) -> float:
    return dt.datetime.combine(day, dt.time(hour, minute), IST).timestamp()


CUT = (at(CUT_DAY, 1, 5), at(CUT_DAY, 1, 15))  # wan-1 of chc-bundu answers nothing


def result(ts: float, up: bool) -> ProbeResult:
    if up:
        return ProbeResult("icmp", True, ts, 0.3, 3, 3, (0.01, 0.012, 0.011))
    return ProbeResult("icmp", False, ts, 0.6, 3, 0, (), "no reply to 3 echoes")


def run_for(
    monitor: Monitor, clock: FakeClock, seconds: float, down: Callable[[str, float], bool]
) -> None:
    end = clock.now + seconds
    while clock.now < end:
        now = clock.now
        monitor.cover()
        if int(now) % 20 == 0:
            for site in monitor.inventory.sites:
                monitor.record(site.id, "wan-1", result(now, not down(site.id, now)))
                monitor.record(site.id, "ap-1", result(now, True))
        monitor.evaluate()
        monitor.store.flush()
        clock.advance(10)


def start(store: Store, clock: FakeClock) -> Monitor:
    """A ready monitor of valid-status.yaml on ``clock`` over ``store`` (nothing rolled)."""
    monitor = Monitor(load_inventory(INVENTORIES / "valid-status.yaml"), store, Engines(), clock)
    monitor.rollups = Rollups(IST)
    monitor.ready = True
    return monitor


def drive(store: Store) -> Monitor:
    """The monitor after the three days, its clock stopped at 01:30 IST on the third."""
    clock = FakeClock(at(DAY1, 1, 0))
    monitor = start(store, clock)
    for day in DAYS:
        clock.now = at(day, 1, 0)
        run_for(monitor, clock, 1200, lambda s, t: s == CUT_SITE and CUT[0] <= t < CUT[1])
    clock.now = at(DAYS[2], 1, 30)
    roll(store, monitor.inventory, IST, DAYS[0], DAYS[2], clock.now)
    return monitor
