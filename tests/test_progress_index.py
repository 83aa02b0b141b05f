"""netmon.progress_index against the slow path it replaces, on random data over a real store
(SQLite and PostgreSQL): site_day rows final, not final or missing, ratios on the threshold,
commissioned dates, raw coverage and verdict changes for the days accounted live; compared
after the first read and again after rows are rolled anew (the incremental read)."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, inspect, text

from netmon.api.routes.availability import total
from netmon.inventory.models import Maintenance, Rollout, Site
from netmon.progress import good_days
from netmon.progress import progress_rows as slow_rows
from netmon.progress_index import (
    ProgressIndex,
    Today,
    good_masks,
    progress_rows,
    site_totals,
    warm,
)
from netmon.rollup import (
    SLOT,
    CoverageRow,
    ensure_indexes,
    live_days,
    site_accounts,
    write_rows,
)
from netmon.store import Store, VerdictChange, VerdictChangeRow
from netmon.timeline import STATES, day_bounds, days

IST = ZoneInfo("Asia/Kolkata")
INDEXES = ("ix_site_day_day", "ix_site_day_rolled_at")
FIRST = dt.date(2026, 10, 1)
DAYS = 14
THRESHOLD = 0.95
ROLLOUT = Rollout(start=FIRST, deadline=FIRST + dt.timedelta(days=15))


def make_sites(rng: random.Random, n: int) -> list[Site]:
    kinds = ("chc", "district_hospital", "medical_college")
    return [Site(id=f"s-{i:03d}", name=f"Site {i}", district=f"D{rng.randrange(4)}",
                 type=rng.choice(kinds),
                 commissioned=rng.choice([None, FIRST + dt.timedelta(days=rng.randrange(DAYS))]))
            for i in range(n)]  # fmt: skip


def seconds(rng: random.Random) -> dict[str, float]:
    """A day's seconds: often exactly on the threshold, sometimes nothing observed."""
    s = dict.fromkeys(STATES, 0.0)
    shape = rng.randrange(5)
    if shape == 0:  # exactly 95 %
        s["fully_functional"], s["degraded"] = 0.95 * 80000, 0.05 * 80000
    elif shape == 1:  # nothing judged
        s["no_data"], s["maintenance"] = 80000.0, 6400.0
    else:
        for k in STATES:
            s[k] = rng.choice([0.0, rng.uniform(0, 86400), 1e-7, 3600.0])
        s["fully_functional"] = rng.choice([s["fully_functional"], 86400.0 - sum(s.values())])
    return s


def site_day_rows(rng: random.Random, sites: list[Site], now: float) -> list[dict[str, Any]]:
    rows = []
    for k in range(DAYS):
        day = FIRST + dt.timedelta(days=k)
        end = day_bounds(day, IST)[1]
        for site in sites:
            fate = rng.random()
            if k in (9, DAYS - 3) and fate < 0.1:
                continue  # no row: the day is live for any request with this site
            late = k >= DAYS - 2 or (k == 6 and fate < 0.1)  # rolled before the day ended
            rolled = (
                end - rng.choice([0.5, rng.uniform(1, 80000)])
                if late
                else (
                    end + rng.choice([0.0, rng.uniform(0, 5e5)])  # final from the day's end on
                )
            )
            rows.append({"site_id": site.id, "day": day.isoformat(), "district": site.district,
                         "type": site.type, **seconds(rng), "rolled_at": min(rolled, now)})  # fmt: skip
    return rows


def raw_tables(
    rng: random.Random, store: Store, sites: list[Site], start: float, end: float
) -> None:
    """Coverage with a few gaps (netmon stopped) and a few verdict changes per site, for the
    days accounted live."""
    gaps = [(g, g + rng.uniform(60, 7200)) for g in (rng.uniform(start, end) for _ in range(6))]
    slots = [{"slot": s} for s in range(int(start) // SLOT * SLOT, int(end), SLOT)
             if not any(a <= s < b for a, b in gaps)]  # fmt: skip
    verdicts = ("fully_functional", "degraded", "down", "unknown")
    changes = []
    for site in sites:
        for at in sorted(rng.uniform(start - 86400, end) for _ in range(rng.randrange(1, 6))):
            changes.append({"site_id": site.id, "verdict": rng.choice(verdicts),
                            "since": at - rng.uniform(0, 600), "changed_at": at})  # fmt: skip
    with store.engine.begin() as conn:
        for i in range(0, len(slots), 5000):
            conn.execute(insert(CoverageRow.__table__), slots[i : i + 5000])  # type: ignore[attr-defined]
        conn.execute(insert(VerdictChangeRow.__table__), changes)  # type: ignore[attr-defined]


def slow(store: Store, sites: list[Site], read_lo: float, lo: float, hi: float) -> list[Any]:
    accounts = site_accounts(store, sites, IST, read_lo, hi)
    shown = [d for d, _lo, _hi in days(lo, hi, IST)]
    rows = slow_rows(sites, lambda s: s.district, good_days(accounts, THRESHOLD), shown, ROLLOUT)
    return [{k: getattr(r, k) for k in r.__slots__} for r in rows]  # the API's rows


def fast(
    index: ProgressIndex, store: Store, sites: list[Site], read_lo: float, lo: float, hi: float
) -> list[Any]:
    good = good_masks(index, store, sites, read_lo, hi)
    shown = [d for d, _lo, _hi in days(lo, hi, IST)]
    return progress_rows(index, sites, lambda s: s.district, good, shown, ROLLOUT)


def windows(rng: random.Random, now: float) -> list[tuple[float, float, float]]:
    """(read from, window start, window end): whole days, a partial last day, one day, and
    one that starts and ends inside days (as availability may ask)."""
    start = day_bounds(FIRST, IST)[0]
    mid = day_bounds(FIRST + dt.timedelta(days=7), IST)[0]
    odd = start + 86400 * rng.randrange(1, 5) + rng.uniform(1, 86000)
    return [(start, start, now), (start, mid, now), (mid, mid, mid + 86400),
            (start, start + 86400 * rng.randrange(1, 10), now), (odd, odd, mid + 4000.5)]  # fmt: skip


def compare(
    rng: random.Random, index: ProgressIndex, store: Store, sites: list[Site], now: float
) -> int:
    compared = 0
    subsets = [sites, [s for s in sites if s.district == "D1"], rng.sample(sites, 7), []]
    for chosen in subsets:
        for read_lo, lo, hi in windows(rng, now):
            assert fast(index, store, chosen, read_lo, lo, hi) == slow(
                store, chosen, read_lo, lo, hi
            )
            mine = site_totals(index, store, chosen, lo, hi)
            theirs = {i: total(d) for i, d in site_accounts(store, chosen, IST, lo, hi).items()}
            assert mine.keys() == theirs.keys()
            for i, s in theirs.items():
                assert mine[i] == pytest.approx(s, rel=1e-12, abs=1e-6), i
            compared += 1
    return compared


def test_the_index_answers_as_the_slow_path_on_random_data(database_url: str) -> None:
    rng = random.Random(20261203)
    store = Store(database_url)
    store.migrate()
    with store.engine.begin() as conn:  # a database from before the indexes
        for name in INDEXES:
            conn.execute(text(f"DROP INDEX {name}"))
    ensure_indexes(store)
    ensure_indexes(store)  # idempotent
    assert set(INDEXES) <= {ix["name"] for ix in inspect(store.engine).get_indexes("site_day")}
    sites = make_sites(rng, 24)
    last_end = day_bounds(FIRST + dt.timedelta(days=DAYS - 1), IST)[1]
    now = last_end - 30000  # inside the last day: today is live
    write_rows(store, site_day_rows(rng, sites, now))
    raw_tables(rng, store, sites, last_end - 3 * 86400, now)
    index = ProgressIndex(IST, THRESHOLD)
    assert compare(rng, index, store, sites, now) == 20
    read = index.rows_read
    assert read > 0.9 * len(sites) * DAYS
    # rows rolled anew (some turn final, some flip good/not good); only those are read again
    again = [r for r in site_day_rows(rng, sites, now + 10) if rng.random() < 0.2]
    assert index.seen is not None
    for r in again:
        r["rolled_at"] = max(r["rolled_at"], index.seen + 0.5)
    write_rows(store, again)
    compare(rng, index, store, sites, now)
    assert index.rows_read == read + len(again)
    store.close()


def test_a_build_cut_short_goes_on_at_the_next_request(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The build reads CHUNK_DAYS days at a time; a read that fails (the store's deadline)
    keeps the chunks done, and the next refresh reads only the rest."""
    from netmon.errors import StoreError
    from netmon.progress_index import ProgressIndex as Index

    rng = random.Random(3)
    store = Store(f"sqlite:///{tmp_path / 'n.db'}")
    store.migrate()
    sites = make_sites(rng, 6)
    now = day_bounds(FIRST + dt.timedelta(days=DAYS), IST)[0] + 600
    write_rows(store, site_day_rows(rng, sites, now))
    monkeypatch.setattr("netmon.progress_index.CHUNK_DAYS", 4)
    index, calls = Index(IST, THRESHOLD), []
    chunk = Index._chunk

    def failing_once(self: Index, s: Store, first: str, last: str) -> int:
        calls.append(first)
        if len(calls) == 2:
            raise StoreError("reading rollups failed: no answer within 12 s")
        return chunk(self, s, first, last)

    monkeypatch.setattr(Index, "_chunk", failing_once)
    with pytest.raises(StoreError):
        index.refresh(store)
    assert not index.built
    index.refresh(store)
    assert index.built and calls == [calls[0], calls[1], calls[1], *calls[3:]]
    assert len(calls) == 1 + (DAYS + 3) // 4  # the second chunk read twice, the others once
    start = day_bounds(FIRST, IST)[0]
    assert fast(index, store, sites, start, start, now) == slow(store, sites, start, start, now)
    store.close()


def test_a_site_added_later_leaves_the_others_rows_alone(tmp_path: Any) -> None:
    """Days before a site joined the inventory have no row for it: it is accounted live
    (nothing in the raw tables: no data), the others keep their final rows (their raw results
    are long pruned: accounted live they would be no data too)."""
    store = Store(f"sqlite:///{tmp_path / 'n.db'}")
    store.migrate()
    old, new = make_sites(random.Random(1), 2)
    end = day_bounds(FIRST, IST)[1]
    seconds = {**dict.fromkeys(STATES, 0.0), "fully_functional": 86000.0, "down": 400.0}
    write_rows(store, [{"site_id": old.id, "day": FIRST.isoformat(), "district": old.district,
                        "type": old.type, **seconds, "rolled_at": end + 60}])  # fmt: skip
    start = day_bounds(FIRST, IST)[0]
    found = site_accounts(store, [old, new], IST, start, end)
    assert found[old.id] == [(FIRST, seconds)]
    assert found[new.id] == [(FIRST, {**dict.fromkeys(STATES, 0.0), "no_data": 86400.0})]
    index = ProgressIndex(IST, THRESHOLD)
    assert good_masks(index, store, [old, new], start, end) == {FIRST: 1 << index.bits[old.id]}
    assert site_totals(index, store, [old, new], start, end) == {
        i: d[0][1] for i, d in found.items()
    }
    store.close()


def test_today_kept_between_requests_answers_as_live_days(database_url: str) -> None:
    """netmon.progress_index.Today over a day that goes on: after each step (coverage on, a
    gap, a gap filled late, changes stored, retroactive, queued then flushed, one that begins
    after an earlier request's end, maintenance announced, an earlier end) its seconds are
    live_days' exactly, and only the sites something happened to are accounted anew."""
    rng = random.Random(7)
    store = Store(database_url)
    store.migrate()
    sites = make_sites(rng, 30)
    lo = day_bounds(FIRST + dt.timedelta(days=3), IST)[0]
    t = lo + 3600.0
    raw_tables(rng, store, sites, lo - 3600, t)
    today = Today(IST)

    def check(hi: float) -> int:
        before = today.accounted
        mine = today.seconds(store, sites, lo, hi)
        live = live_days(store, sites, IST, lo, hi)
        assert mine == {i: acc[0][1].seconds for i, acc in live.items()}
        assert [len(acc) for acc in live.values()] == [1] * len(sites)
        return today.accounted - before

    def cover(a: float, b: float) -> None:
        with store.engine.begin() as conn:
            rows = [{"slot": s} for s in range(int(a) // SLOT * SLOT, int(b), SLOT)]
            conn.execute(insert(CoverageRow.__table__).prefix_with("OR IGNORE")  # type: ignore[attr-defined]
                         if store.engine.dialect.name == "sqlite" else insert(CoverageRow.__table__),  # type: ignore[attr-defined]
                         rows)  # fmt: skip

    def change(site: Site, verdict: str, since: float, at: float) -> None:
        store.add_verdict_change(VerdictChange(site.id, verdict, since, [], at=at))

    assert check(t) == len(sites)
    cover(t, t + 600)
    assert check(t + 599.5) == 0  # nothing new: every site's tail added
    cover(t + 600, t + 1200)
    change(sites[0], "down", t + 300, t + 700)  # judged late: claims time before the last end
    change(sites[1], "degraded", t + 800, t + 800)
    store.flush()
    assert check(t + 1200) == 2
    change(sites[2], "down", t + 1100, t + 1250)  # queued, not yet stored
    assert check(t + 1250) == 1
    store.flush()
    assert check(t + 1260) == 1  # the same change, now stored
    cover(t + 1500, t + 2400)  # no coverage for [t + 1260, t + 1500): the tails cut
    assert check(t + 1800) == 0
    cover(t + 1260, t + 1500)  # coverage filled before the last end: all anew
    assert check(t + 1900) == len(sites)
    assert check(t + 1000) == len(sites)  # an earlier end
    change(sites[3], "down", t + 1500, t + 1500)  # begins after the last end (t + 1000)
    store.flush()
    # kept up to t + 1000: the new change and the stored one that begins at t + 1100 (sites[2])
    assert check(t + 2000) == 2

    def announce(site: int, a: float, b: float) -> None:
        window = Maintenance(start=dt.datetime.fromtimestamp(a, IST),
                             end=dt.datetime.fromtimestamp(b, IST), reason="BSNL work")  # fmt: skip
        sites[site] = sites[site].model_copy(update={"maintenance": [window]})

    announce(4, t + 1950, t + 1990)  # before the kept end (t + 2000): that site anew
    assert check(t + 2300) == 1
    announce(5, t + 2350, t + 2380)  # inside the new tail: added to the kept seconds
    assert check(t + 2400) == 0
    assert check(t + 2405) == 0  # the slot of t + 2400 not yet written (netmon writes it late)
    cover(t + 2400, t + 2410)
    assert check(t + 2408) == 0  # it is now: the seconds kept ended before that slot
    store.close()


def test_the_start_up_warm_builds_the_index_and_accounts_today(database_url: str) -> None:
    rng = random.Random(3)
    store = Store(database_url)
    store.migrate()
    sites = make_sites(rng, 12)
    last_end = day_bounds(FIRST + dt.timedelta(days=DAYS - 1), IST)[1]
    now = last_end - 30000
    write_rows(store, site_day_rows(rng, sites, now))
    raw_tables(rng, store, sites, last_end - 3 * 86400, now)
    index = ProgressIndex(IST, THRESHOLD)
    assert warm(index, store, sites, now) > 0.9 * len(sites) * DAYS and index.built
    assert index.today.accounted == len(sites)
    start = day_bounds(FIRST, IST)[0]
    read = index.rows_read
    assert fast(index, store, sites, start, start, now + 5) == slow(
        store, sites, start, start, now + 5
    )
    assert (index.rows_read, index.today.accounted) == (read, len(sites))  # only 5 s added
    store.close()
