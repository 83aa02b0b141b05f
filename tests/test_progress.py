"""Rollout progress from a monitor driven on a fake clock over a real store (SQLite and
PostgreSQL): three days of three CHCs (valid-rollout.yaml) — Angara fully functional from day 1
(cut on day 3), Bundu from day 2 after a cut on day 1, Torpa (commissioned on day 2) never —
rolled, then read from /api/v1/progress, its CSV, and /api/v1/sites; and progress recomputed
from the raw tables (``live_days``) by hand equals the endpoint's."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from exporters.prometheus import make_registry
from netmon.api import create_app
from netmon.inventory import load_inventory
from netmon.monitor import Monitor
from netmon.progress import FiguresCache, SiteFigures
from netmon.rollup import Rollups, live_days, roll
from netmon.store import Store
from netmon.timeline import fully_functional_ratio
from probes.base import Engines, ProbeResult
from tests.conftest import INVENTORIES, FakeClock

IST = ZoneInfo("Asia/Kolkata")
DAY1 = dt.date(2026, 11, 10)  # the rollout's start; its deadline is 2026-11-20
DAYS = [DAY1 + dt.timedelta(days=i) for i in range(3)]
URL = "/api/v1/progress"
FIELDS = "day,group,sites,fully_functional,never_fully_functional,days_to_deadline"


def midnight(day: dt.date) -> float:
    return dt.datetime.combine(day, dt.time(), IST).timestamp()


def iso(day: dt.date) -> str:
    return dt.datetime.combine(day, dt.time(), IST).isoformat()


def result(ts: float, up: bool) -> ProbeResult:
    if up:
        return ProbeResult("icmp", True, ts, 0.3, 3, 3, (0.01, 0.012, 0.011))
    return ProbeResult("icmp", False, ts, 0.6, 3, 0, (), "no reply to 3 echoes")


class Drive:
    """The monitor as netmon runs it, 10 s slots: coverage, every site's wan-1 and ap-1 probed
    every 20 s (``down(site, t)`` says when its wan-1 answers nothing), judged, flushed."""

    def __init__(self, store: Store) -> None:
        self.clock = FakeClock(midnight(DAY1) + 3600)
        self.monitor = Monitor(load_inventory(INVENTORIES / "valid-rollout.yaml"), store,
                               Engines(), self.clock)  # fmt: skip
        self.monitor.rollups = Rollups(IST)
        self.monitor.ready = True

    def run(self, seconds: float, down: Callable[[str, float], bool]) -> None:
        end = self.clock.now + seconds
        while self.clock.now < end:
            now = self.clock.now
            self.monitor.cover()
            if int(now) % 20 == 0:
                for site in self.monitor.inventory.sites:
                    self.monitor.record(site.id, "wan-1", result(now, not down(site.id, now)))
                    self.monitor.record(site.id, "ap-1", result(now, True))
            self.monitor.evaluate()
            self.monitor.store.flush()
            self.clock.advance(10)

    def day(self, day: dt.date, cut: set[str]) -> None:
        """20 minutes of ``day`` from 01:00 (the rest of it netmon is off: no data): the sites
        in ``cut`` lose wan-1 for its first 10 minutes, chc-torpa always."""
        self.clock.now = start = midnight(day) + 3600
        self.run(1200, lambda s, t: s == "chc-torpa" or (s in cut and t < start + 600))


def three_days(store: Store) -> Drive:
    d = Drive(store)
    d.day(DAYS[0], cut={"chc-bundu"})
    d.day(DAYS[1], cut=set())
    d.day(DAYS[2], cut={"chc-angara"})
    d.clock.now = midnight(DAYS[2] + dt.timedelta(days=1)) + 600  # day 4: days 1-3 are final
    assert roll(store, d.monitor.inventory, IST, DAYS[0], DAYS[2], d.clock.now) == 9
    return d


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


def table(body: dict[str, Any]) -> dict[tuple[str, str], tuple[int, int, int, int | None]]:
    return {(r["day"], r["group"]): (r["sites"], r["fully_functional"],
            r["never_fully_functional"], r["days_to_deadline"]) for r in body["data"]}  # fmt: skip


async def test_progress_per_day_and_district(
    database_url: str, client_of: Callable[[Monitor], httpx.AsyncClient]
) -> None:
    store = Store(database_url)
    store.migrate()
    d = three_days(store)
    client = client_of(d.monitor)
    window = {"from": iso(DAYS[0]), "to": iso(DAYS[2] + dt.timedelta(days=1))}
    resp = await client.get(URL, params=window)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["rollout"] == {"start": "2026-11-10", "deadline": "2026-11-20"}
    assert body["day_threshold"] == 0.9 and body["by"] == "district"
    assert (body["from"], body["to"]) == ("2026-11-09T18:30:00Z", "2026-11-12T18:30:00Z")
    # (sites, fully functional, never fully functional, days to the deadline)
    assert table(body) == {
        ("2026-11-10", "Khunti"): (0, 0, 0, 10),  # Torpa is commissioned on the 11th
        ("2026-11-10", "Ranchi"): (2, 1, 1, 10),  # Bundu was cut
        ("2026-11-11", "Khunti"): (1, 0, 1, 9),
        ("2026-11-11", "Ranchi"): (2, 2, 0, 9),
        ("2026-11-12", "Khunti"): (1, 0, 1, 8),
        ("2026-11-12", "Ranchi"): (2, 1, 0, 8),  # Angara cut, but fully functional before
    }
    assert [r["day"] for r in body["data"]] == sorted(r["day"] for r in body["data"])
    state = (await client.get(URL, params={**window, "by": "state"})).json()
    assert [(r["day"], r["sites"], r["fully_functional"], r["never_fully_functional"])
            for r in state["data"]] == [("2026-11-10", 2, 1, 1), ("2026-11-11", 3, 2, 1),
                                        ("2026-11-12", 3, 1, 1)]  # fmt: skip
    store.close()


async def test_never_fully_functional_reads_back_to_the_rollouts_start(
    database_url: str, client_of: Callable[[Monitor], httpx.AsyncClient]
) -> None:
    store = Store(database_url)
    store.migrate()
    d = three_days(store)
    client = client_of(d.monitor)
    body = (await client.get(URL, params={"period": "2026-11-12", "district": "ranchi"})).json()
    assert table(body) == {("2026-11-12", "Ranchi"): (2, 1, 0, 8)}  # Angara: the 10th and 11th
    by_type = (await client.get(URL, params={"period": "2026-11-12", "by": "type"})).json()
    assert table(by_type) == {("2026-11-12", "chc"): (3, 1, 1, 8)}
    default = (await client.get(URL)).json()  # the rollout's start to today (day 4, so far)
    assert [r["day"] for r in default["data"] if r["group"] == "Ranchi"] == [
        "2026-11-10", "2026-11-11", "2026-11-12", "2026-11-13"]  # fmt: skip
    assert default["data"][-1]["days_to_deadline"] == 7
    store.close()


async def test_without_a_rollout_days_to_deadline_is_null_and_the_window_30_days(
    database_url: str, client_of: Callable[[Monitor], httpx.AsyncClient]
) -> None:
    store = Store(database_url)
    store.migrate()
    d = three_days(store)
    d.monitor.inventory = d.monitor.inventory.model_copy(update={"rollout": None})
    body = (await client_of(d.monitor).get(URL, params={"by": "state"})).json()
    assert body["rollout"] is None
    assert len(body["data"]) == 31  # 30 days back from now: the days it touches
    assert {r["days_to_deadline"] for r in body["data"]} == {None}
    ours = {r["day"]: r for r in body["data"]}
    # counted from the window's start (30 days back), which is before the rollout's days
    assert (
        ours["2026-11-12"]["fully_functional"],
        ours["2026-11-12"]["never_fully_functional"],
    ) == (1, 1)
    assert ours["2026-11-01"]["sites"] == 2  # Angara (commissioned that day) and Bundu
    assert ours["2026-10-31"]["sites"] == 1  # Bundu, which has no commissioned date
    store.close()


async def test_csv_and_bad_requests(
    database_url: str, client_of: Callable[[Monitor], httpx.AsyncClient]
) -> None:
    store = Store(database_url)
    store.migrate()
    d = three_days(store)
    client = client_of(d.monitor)
    resp = await client.get(URL, params={"period": "2026-11-11", "format": "csv"})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/csv")
    assert resp.content.startswith("\ufeff".encode())
    lines = resp.content.decode("utf-8-sig").splitlines()
    assert lines == [FIELDS, "2026-11-11,Khunti,1,0,1,9", "2026-11-11,Ranchi,2,2,0,9"]
    accept = await client.get(URL, params={"period": "2026-11-11"}, headers={"accept": "text/csv"})
    assert accept.content == resp.content
    for params, field in (({"period": "2026-13"}, "query.period"), ({"by": "site"}, "query.by"),
                          ({"from": iso(DAYS[1]), "to": iso(DAYS[0])}, "query.from"),
                          ({"from": "2025-01-01T00:00:00Z", "to": "2026-11-12T00:00:00Z"},
                           "query.from")):  # fmt: skip
        bad = await client.get(URL, params=params)
        assert bad.status_code == 422, params
        assert bad.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in bad.json()["errors"]] == [field]
    store.close()


async def test_sites_carry_their_first_fully_functional_day_and_30_day_availability(
    database_url: str, client_of: Callable[[Monitor], httpx.AsyncClient]
) -> None:
    store = Store(database_url)
    store.migrate()
    d = Drive(store)
    d.day(DAYS[0], cut={"chc-bundu"})
    d.day(DAYS[1], cut=set())
    d.day(DAYS[2], cut={"chc-angara"})
    d.clock.now = midnight(DAYS[2]) + 86400 + 600
    client = client_of(d.monitor)
    before = (await client.get("/api/v1/sites")).json()["data"]  # nothing rolled yet
    assert [(s["first_fully_functional"], s["availability_30d"]) for s in before] == [
        (None, None)] * 3  # fmt: skip
    roll(store, d.monitor.inventory, IST, DAYS[0], DAYS[2], d.clock.now)
    d.clock.advance(59)
    assert (await client.get("/api/v1/sites")).json()["data"] == before  # served from memory
    d.clock.advance(2)  # a minute after they were read, the figures are read again
    sites = {s["id"]: s for s in (await client.get("/api/v1/sites")).json()["data"]}
    firsts = {i: s["first_fully_functional"] for i, s in sites.items()}
    assert firsts == {"chc-angara": "2026-11-10", "chc-bundu": "2026-11-11", "chc-torpa": None}
    whole = {"from": iso(DAYS[0]), "to": iso(DAYS[2] + dt.timedelta(days=1))}
    for site_id, site in sites.items():
        got = await client.get(f"/api/v1/sites/{site_id}/availability", params=whole)
        assert site["availability_30d"] == pytest.approx(got.json()["availability"])
    assert sites["chc-torpa"]["availability_30d"] < 0.05
    assert "availability_30d" not in (await client.get("/api/v1/sites/chc-bundu")).json()
    store.close()


def by_hand(d: Drive, first: dt.date, last: dt.date) -> dict[tuple[str, str], tuple[int, ...]]:
    """Progress by district from the raw tables, counted the plain way: for each day and
    site, whether it counts, is fully functional, or was on some day since the rollout."""
    inv = d.monitor.inventory
    assert inv.rollout is not None
    start, end = midnight(inv.rollout.start), midnight(last + dt.timedelta(days=1))
    live = live_days(d.monitor.store, inv.sites, IST, start, end)
    ok = {(s.id, day): (r := fully_functional_ratio(acc.seconds)) is not None
          and r >= inv.report.day_threshold for s in inv.sites for day, acc in live[s.id]}  # fmt: skip
    out: dict[tuple[str, str], tuple[int, ...]] = {}
    day = first
    while day <= last:
        for district in {s.district for s in inv.sites}:
            here = [s for s in inv.sites if s.district == district
                    and (s.commissioned is None or s.commissioned <= day)]  # fmt: skip
            ff = sum(ok[(s.id, day)] for s in here)
            ever = sum(any(v for (i, x), v in ok.items() if i == s.id and x <= day) for s in here)
            out[(day.isoformat(), district)] = (len(here), ff, len(here) - ever,
                                                (inv.rollout.deadline - day).days)  # fmt: skip
        day += dt.timedelta(days=1)
    return out


async def test_progress_recomputed_from_the_raw_tables_equals_the_endpoint(
    database_url: str, client_of: Callable[[Monitor], httpx.AsyncClient]
) -> None:
    store = Store(database_url)
    store.migrate()
    d = three_days(store)
    body = (await client_of(d.monitor).get(URL, params={
        "from": iso(DAYS[1]), "to": iso(DAYS[2] + dt.timedelta(days=1))})).json()  # fmt: skip
    assert table(body) == by_hand(d, DAYS[1], DAYS[2])
    assert len(body["data"]) == 4
    store.close()


async def test_site_figures_survive_a_failing_store_and_are_not_read_again_each_request(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'never-made' / 'netmon.db'}")
    store.migrated = True  # as if the directory went away after start-up
    cache = FiguresCache()
    for now in (1000.0, 1030.0, 1070.0):
        assert await cache.get(store, 0.95, IST, now) == SiteFigures()
    assert store.read_errors == 2  # at 1000 and 1070: once a minute, not each request
    assert len([r for r in caplog.records if "site figures" in r.message]) == 1  # logged once
    (tmp_path / "never-made").mkdir()
    store.migrate()
    assert await cache.get(store, 0.95, IST, 1100.0) == SiteFigures()  # within the minute
    assert (await cache.get(store, 0.95, IST, 1131.0), cache.failing) == (SiteFigures(), False)
    store.close()
