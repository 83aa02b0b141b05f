"""Rollups and availability from a monitor driven on a fake clock over a real store (SQLite and
PostgreSQL): a cut of known length is that many down seconds and one outage; netmon's own
downtime is no_data; maintenance is never down; the rolled rows equal the live arithmetic and
survive being rolled again."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from zoneinfo import ZoneInfo

import httpx
import pytest

from exporters.prometheus import make_registry
from netmon.api import create_app
from netmon.auth import Caller
from netmon.inventory import load_inventory
from netmon.inventory.models import Maintenance
from netmon.maintenance import create_window
from netmon.monitor import Monitor
from netmon.rollup import (
    Rollups,
    device_hour_rows,
    live_days,
    read_hours,
    roll,
    stored_days,
    write_hours,
)
from netmon.store import Store
from probes.base import Engines, ProbeResult
from tests.conftest import INVENTORIES, FakeClock

IST = ZoneInfo("Asia/Kolkata")
DAY0 = dt.datetime(2026, 11, 10, tzinfo=IST).timestamp()  # a local midnight
SITE = "chc-bundu"  # wan-1 and ap-1 behind it, probed every 20 s
URL = f"/api/v1/sites/{SITE}/availability"


def result(ts: float, up: bool) -> ProbeResult:
    if up:
        return ProbeResult("icmp", True, ts, 0.3, 3, 3, (0.01, 0.012, 0.011))
    return ProbeResult("icmp", False, ts, 0.6, 3, 0, (), "no reply to 3 echoes")


class Drive:
    """The monitor as netmon runs it, one 10 s slot at a time: coverage noted, the site's
    devices probed every 20 s (``cut`` says when wan-1 answers nothing), judged, flushed."""

    def __init__(self, store: Store) -> None:
        self.clock = FakeClock(DAY0 + 3600)
        inventory = load_inventory(INVENTORIES / "valid-small.yaml")
        self.monitor = Monitor(inventory, store, Engines(), self.clock)
        self.monitor.rollups = Rollups(IST)
        self.monitor.ready = True

    def run(self, seconds: float, cut: Callable[[float], bool] = lambda _t: False) -> None:
        end = self.clock.now + seconds
        while self.clock.now < end:
            now = self.clock.now
            self.monitor.cover()
            if int(now) % 20 == 0:
                for device in ("wan-1", "ap-1"):
                    self.monitor.record(SITE, device, result(now, not cut(now)))
            self.monitor.evaluate()
            self.monitor.store.flush()
            self.clock.advance(10)

    def pause(self, seconds: float) -> None:
        """netmon not running: no coverage, no probes."""
        self.clock.advance(seconds)


@pytest.fixture
async def client_of() -> AsyncIterator[Callable[[Monitor], httpx.AsyncClient]]:
    made: list[httpx.AsyncClient] = []

    def make(monitor: Monitor) -> httpx.AsyncClient:
        app = create_app(monitor, make_registry(monitor, "test", "raw"))
        made.append(httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t"))
        return made[-1]

    yield make
    for c in made:
        await c.aclose()


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, IST).isoformat()


async def test_a_cut_of_known_length_is_that_many_down_seconds_and_one_outage(
    database_url: str, client_of: Callable[[Monitor], httpx.AsyncClient]
) -> None:
    store = Store(database_url)
    store.migrate()
    d = Drive(store)
    start = d.clock.now
    d.run(120)
    cut_at = d.clock.now
    d.run(300, cut=lambda t: cut_at <= t < cut_at + 60)  # wan-1 silent for 60 s of 5 min
    resp = await client_of(d.monitor).get(URL, params={"from": iso(start), "to": iso(d.clock.now)})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["seconds"]["down"] == pytest.approx(60, abs=20)  # ± one probe interval
    (outage,) = body["outages"]
    assert outage["duration_seconds"] == pytest.approx(60, abs=20)
    assert outage["reasons"] and "wan-1" in " ".join(outage["reasons"])
    observed = 420 - body["seconds"]["no_data"]
    assert body["availability"] == pytest.approx(1 - body["seconds"]["down"] / observed)
    assert body["seconds"]["no_data"] <= 20  # the first verdict needs its first probes
    store.close()


async def test_netmon_stopped_for_a_minute_is_no_data_not_down_nor_up(
    database_url: str, client_of: Callable[[Monitor], httpx.AsyncClient]
) -> None:
    store = Store(database_url)
    store.migrate()
    d = Drive(store)
    d.run(200)
    start = d.clock.now
    d.run(60)
    d.pause(60)
    d.run(120)
    resp = await client_of(d.monitor).get(URL, params={"from": iso(start), "to": iso(d.clock.now)})
    seconds = resp.json()["seconds"]
    assert seconds["no_data"] == pytest.approx(60, abs=10)
    assert seconds["down"] == 0
    assert seconds["fully_functional"] == pytest.approx(180, abs=10)
    for other in ("chc-unwired", "mc-rims-ranchi"):  # every site: the monitor was away
        got = await client_of(d.monitor).get(
            f"/api/v1/sites/{other}/availability",
            params={"from": iso(start), "to": iso(d.clock.now)},
        )
        assert got.json()["seconds"]["no_data"] >= 60
    store.close()


async def test_a_cut_inside_announced_maintenance_is_maintenance_and_availability_one(
    database_url: str, client_of: Callable[[Monitor], httpx.AsyncClient]
) -> None:
    store = Store(database_url)
    store.migrate()
    d = Drive(store)
    d.run(120)
    start = d.clock.now
    window = Maintenance(start=dt.datetime.fromtimestamp(start - 5, IST),
                         end=dt.datetime.fromtimestamp(start + 120, IST), reason="BSNL work")  # fmt: skip
    site = d.monitor.inventory.site(SITE)
    assert site is not None
    site.maintenance.append(window)
    d.run(120, cut=lambda t: t < start + 90)
    d.run(60)
    resp = await client_of(d.monitor).get(URL, params={"from": iso(start), "to": iso(d.clock.now)})
    body = resp.json()
    assert body["seconds"]["maintenance"] == pytest.approx(115, abs=10)
    assert body["seconds"]["down"] == 0 and body["outages"] == []
    assert body["availability"] == 1.0
    store.close()


async def test_rolled_days_equal_the_live_arithmetic_and_survive_rolling_again(
    database_url: str, client_of: Callable[[Monitor], httpx.AsyncClient]
) -> None:
    store = Store(database_url)
    store.migrate()
    d = Drive(store)
    d.run(300)
    cut_at = d.clock.now
    d.run(300, cut=lambda t: cut_at <= t < cut_at + 100)
    d.pause(3600)
    d.clock.now = DAY0 + 86400 + 600  # the next day: the first one is final once rolled
    d.run(60)
    inventory = d.monitor.inventory
    first = dt.date(2026, 11, 10)
    assert await d.monitor.roll() > 0
    rows = {(r.site_id, r.day): r for r in stored_days(store, None, first, first)}
    live = live_days(store, inventory.sites, IST, DAY0, DAY0 + 86400)
    for site in inventory.sites:
        ((day, acc),) = live[site.id]
        row = rows[(site.id, day.isoformat())]
        assert {k: getattr(row, k) for k in acc.seconds} == pytest.approx(acc.seconds)
        assert sum(acc.seconds.values()) == pytest.approx(86400)
    assert rows[(SITE, "2026-11-10")].down == pytest.approx(100, abs=20)
    again = roll(store, inventory, IST, first, first, d.clock.now)
    assert again == len(inventory.sites)
    assert len(stored_days(store, None, first, first)) == len(inventory.sites)  # upserted
    whole = {"from": iso(DAY0), "to": iso(DAY0 + 86400)}
    body = (await client_of(d.monitor).get(URL, params=whole)).json()
    assert body["daily"][0]["seconds"]["down"] == pytest.approx(rows[(SITE, "2026-11-10")].down)
    store.close()


async def test_grouped_availability_csv_and_bad_periods(
    database_url: str, client_of: Callable[[Monitor], httpx.AsyncClient]
) -> None:
    store = Store(database_url)
    store.migrate()
    d = Drive(store)
    d.run(120)
    client = client_of(d.monitor)
    body = (await client.get("/api/v1/availability", params={"period": "2026-11-10"})).json()
    assert {g["group"] for g in body["data"]} == {"Ranchi", "Khunti"}
    csv = await client.get("/api/v1/availability", params={"period": "2026-11", "format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.content.startswith("\ufeff".encode())
    header = csv.content.decode("utf-8-sig").splitlines()[0]
    assert header.startswith("group,sites,fully_functional,degraded,down")
    bad = await client.get(URL, params={"period": "2026-13"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.period"
    assert (await client.get("/api/v1/sites/nope/availability")).status_code == 404
    store.close()


async def test_device_hours_count_probes_echoes_and_outage_seconds_idempotently(
    database_url: str,
) -> None:
    store = Store(database_url)
    store.migrate()
    d = Drive(store)  # starts on an hour (DAY0 + 1 h)
    d.run(300)
    cut_at = d.clock.now
    d.run(600, cut=lambda t: cut_at <= t < cut_at + 100)
    now = d.clock.now
    rows = device_hour_rows(store, int(DAY0 + 3600), now)
    assert write_hours(store, rows) == len(rows) == 2  # wan-1 and ap-1 of chc-bundu, one hour
    wan = next(r for r in rows if r["device"] == "wan-1")
    raw = store.results(SITE, "wan-1", DAY0, limit=10_000)
    assert wan["probes"] == len(raw) == 45
    assert wan["failed"] == sum(not r.ok for r in raw) == 5
    assert (wan["sent"], wan["received"]) == (3 * 45, 3 * 40)
    assert wan["rtt_min"] == pytest.approx(0.01) and wan["rtt_max"] == pytest.approx(0.012)
    assert wan["outage_seconds"] == pytest.approx(
        100
    )  # from the first lost probe to the next answer
    again = device_hour_rows(store, int(DAY0 + 3600), now)
    assert write_hours(store, again) == 2
    stored = read_hours(store, DAY0, now)
    assert len(stored) == 2  # upserted, not added
    key = ("site_id", "device", "hour")
    assert sorted(stored, key=lambda r: [r[k] for k in key]) == sorted(
        again, key=lambda r: [r[k] for k in key]
    )
    store.close()


async def test_a_window_posted_to_the_api_counts_in_the_day_long_after_it_ended(
    database_url: str,
) -> None:
    """The monitor holds only the API windows inside its policy windows; a day re-rolled (or
    a report read) later still reads the window from the store: maintenance, not down."""
    store = Store(database_url)
    store.migrate()
    d = Drive(store)
    d.run(120)
    start = d.clock.now
    window = Maintenance(start=dt.datetime.fromtimestamp(start, IST),
                         end=dt.datetime.fromtimestamp(start + 120, IST), reason="BSNL work")  # fmt: skip
    create_window(store, SITE, window, Caller("tracker", frozenset()), "/api", start)
    d.run(120, cut=lambda _t: True)  # cut inside the window, which the monitor never loaded
    d.run(60)
    d.clock.now = DAY0 + 3 * 86400  # days later: the window is long out of any policy window
    first = dt.date(2026, 11, 10)
    roll(store, d.monitor.inventory, IST, first, first, d.clock.now)
    (row,) = [r for r in stored_days(store, [SITE], first, first)]
    assert row.maintenance == pytest.approx(120, abs=1)
    store.close()
