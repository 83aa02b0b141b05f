"""Late results judged into their time (netmon.history), on SQLite and PostgreSQL.

A poller cut from the server for ten minutes replays its outbox when the WAN is back; the
server re-judges the cut's stretch from the replayed results. The reference is the same
results taken live by a monitor that was never cut: afterwards both histories (and so every
report made of them) say the same -- fully functional where the site was fine inside, down
for the interval it really was down -- and the seam has no change twice or missing.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from exporters.prometheus import make_registry
from netmon.errors import StoreError
from netmon.fleet import Fleet, Heartbeat
from netmon.history import MAX_WAIT, SETTLE, Rejudger
from netmon.inventory.loader import load_inventory
from netmon.journal import Journal
from netmon.monitor import Monitor
from netmon.store import Store, VerdictChange
from netmon.timeline import Change, account
from probes import Engines, ProbeResult
from tests.conftest import INVENTORIES, FakeClock

NOW = 1_800_000_000.0
SITE = "chc-bundu"  # wan-1 and ap-1, probed every 20 s
STEP = 5.0  # the monitor's evaluation period
CUT = (300.0, 900.0)  # seconds after NOW: the WAN between poller and server is cut
END = 1500.0


def result(at: float, ok: bool) -> ProbeResult:
    if ok:
        return ProbeResult("icmp", True, at, 0.3, 3, 3, (0.01, 0.012, 0.011))
    return ProbeResult("icmp", False, at, 1.2, 3, 0, (), "no reply")


def probes(
    down: tuple[float, float] | None, devices: tuple[str, ...] = ("wan-1", "ap-1")
) -> list[tuple[float, str, ProbeResult]]:
    """(when it ended, device, result) for both devices every 20 s; ``devices`` down inside
    ``down``."""
    out = []
    for i in range(int(END // 20)):
        for n, device in enumerate(("wan-1", "ap-1")):
            at = NOW + i * 20 + n
            hit = down is not None and NOW + down[0] <= at < NOW + down[1]
            ok = not (hit and device in devices)
            r = result(at, ok)
            out.append((at + r.duration, device, r))
    return out


@pytest.fixture
def stores(tmp_path: Path, database_url: str) -> Iterator[tuple[Store, Store]]:
    cut, reference = Store(database_url), Store(f"sqlite:///{tmp_path / 'reference.db'}")
    for s in (cut, reference):
        s.migrate()
    yield cut, reference
    for s in (cut, reference):
        s.close()


def history(store: Store) -> list[VerdictChange]:
    store.flush()
    return sorted(store.verdict_history(SITE, limit=1000), key=lambda c: (c.at or 0, c.since))


def judged(changes: list[VerdictChange], start: float) -> list[tuple[str, float]]:
    """(verdict, since) of the changes that hold after ``start`` (the one in force then too)."""
    before = [c for c in changes if c.since <= start]
    kept = before[-1:] + [c for c in changes if c.since > start]
    return [(c.verdict, round(c.since, 1)) for c in kept]


async def run_reference(store: Store, feed: list[tuple[float, str, ProbeResult]]) -> None:
    clock = FakeClock(NOW)
    monitor = Monitor(load_inventory(INVENTORIES / "valid-small.yaml"), store, Engines(), clock)
    pending = iter(feed)
    item = next(pending, None)
    while clock() < NOW + END:
        clock.advance(STEP)
        while item is not None and item[0] <= clock():
            monitor.record(SITE, item[1], item[2])
            item = next(pending, None)
        monitor.evaluate()


async def run_cut(
    store: Store, feed: list[tuple[float, str, ProbeResult]], wan_cut: tuple[float, float]
) -> Monitor:
    """The same results through a fleet whose only poller is cut during ``wan_cut``: none
    arrives then (and no heartbeat); at the end of the cut the outbox is replayed at once."""
    clock = FakeClock(NOW)
    monitor = Monitor(load_inventory(INVENTORIES / "valid-small.yaml"), store, Engines(), clock)
    fleet = Fleet(monitor.record, store, failover_delay=60.0, clock=clock)
    fleet.on_change = monitor.rejudge
    monitor.poller = fleet
    monitor.ready = True  # what start() does once the history is refilled
    await fleet.start(monitor.inventory)
    beat = Heartbeat("central", "test", 1, NOW)
    await fleet.heartbeat("p1", beat)
    batch, n = [], 0
    pending = iter(feed)
    item = next(pending, None)
    while clock() < NOW + END:
        clock.advance(STEP)
        cut = NOW + wan_cut[0] <= clock() < NOW + wan_cut[1]
        while item is not None and item[0] <= clock():
            batch.append(item)
            item = next(pending, None)
        if not cut:
            await fleet.heartbeat("p1", beat)
            rows = [encode(site_device_result) for site_device_result in batch]
            n += 1
            await fleet.take("p1", f"b{n}", rows)
            batch = []
        await fleet.refresh()
        monitor.evaluate()
        await monitor.history.run_once()
    await fleet.stop()
    return monitor


def encode(item: tuple[float, str, ProbeResult]) -> list[object]:
    from netmon.channel import encode_result

    return encode_result(SITE, item[1], item[2])


@pytest.mark.parametrize(
    ("wan_cut", "down"),
    [(CUT, None), (CUT, (500.0, 620.0)), ((300.0, 345.0), (305.0, 330.0))],
    ids=["fine-inside", "down-inside", "shorter-than-failover-down-inside"],
)
async def test_a_cut_replayed_is_judged_as_if_nothing_had_been_cut(
    stores: tuple[Store, Store], wan_cut: tuple[float, float], down: tuple[float, float] | None
) -> None:
    cut_store, ref_store = stores
    feed = probes(down)
    await run_reference(ref_store, feed)
    monitor = await run_cut(cut_store, feed, wan_cut)
    assert monitor.history.rejudged == 1 and monitor.history.late_results > 0
    ref, got = history(ref_store), history(cut_store)
    start = NOW + 200  # both judged the site by then (the fleet began with no poller)
    assert judged(got, start) == judged(ref, start)
    assert "unknown" not in {v for v, _ in judged(got, start)}  # the no_poller gap is gone
    if down is not None:  # down for the interval it was: from the first lost probe
        downs = [c for c in got if c.verdict == "down"]
        assert len(downs) == 1 and downs[0].since == pytest.approx(NOW + down[0], abs=20)
    # every second of the cut in the same state as the reference's: availability identical
    covered = [(NOW, NOW + END)]
    accounts = [account(_changes(h), covered, [], NOW + 200, NOW + END) for h in (got, ref)]
    assert accounts[0].seconds == accounts[1].seconds
    assert len({(c.at, c.since) for c in got}) == len(got)  # no change written twice


def _changes(changes: list[VerdictChange]) -> list[Change]:
    return [Change(c.verdict, c.since) for c in changes]


async def test_late_results_wait_until_the_replay_settles_and_rejudge_only_what_can_change(
    stores: tuple[Store, Store],
) -> None:
    store = stores[0]
    clock = FakeClock(NOW)
    monitor = Monitor(load_inventory(INVENTORIES / "valid-small.yaml"), store, Engines(), clock)
    monitor.record(SITE, "wan-1", result(NOW - 300, True))  # before start(): held, not late
    monitor.ready = True
    monitor.evaluate()
    monitor.record(SITE, "wan-1", result(NOW - 120, True))  # taken two minutes late
    monitor.record(SITE, "wan-1", result(NOW - 1, True))  # on time: not late
    assert monitor.history.late_results == 1
    assert await monitor.history.run_once() == 0  # still replaying, perhaps
    clock.advance(SETTLE)
    # late but fine, and never unknown since: what was judged stands, nothing re-judged
    assert await monitor.history.run_once() == 0 and monitor.history.late == {}
    monitor.record(SITE, "ap-1", result(NOW - 100, False))  # late and failed: re-judged
    clock.advance(SETTLE)
    assert await monitor.history.run_once() == 1 and monitor.history.late == {}
    text = generate_latest(make_registry(monitor, "test", "raw")).decode().splitlines()
    assert "netmon_late_results_total 2.0" in text and "netmon_history_rejudged_total 1.0" in text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("seed", range(12))
async def test_random_cuts_and_faults_are_judged_as_the_uncut_reference(
    stores: tuple[Store, Store], seed: int
) -> None:
    """Random WAN cuts (30 s to 11 min) over random outages of either device, shorter or
    longer than the cut, inside it or across its edges: the same history and accounts."""
    rnd = random.Random(seed)
    cut_from = rnd.uniform(200, 700)
    wan_cut = (cut_from, min(cut_from + rnd.uniform(30, 660), END - 100))
    a = rnd.uniform(wan_cut[0] - 60, wan_cut[1])
    down = (a, a + rnd.uniform(10, 200))
    cut_store, ref_store = stores
    feed = probes(down, devices=rnd.choice([("wan-1",), ("ap-1",), ("wan-1", "ap-1")]))
    await run_reference(ref_store, feed)
    await run_cut(cut_store, feed, wan_cut)
    ref, got = history(ref_store), history(cut_store)
    start = NOW + 200
    assert judged(got, start) == judged(ref, start), (wan_cut, down)
    covered = [(NOW, NOW + END)]
    accounts = [account(_changes(h), covered, [], start, NOW + END) for h in (got, ref)]
    assert accounts[0].seconds == accounts[1].seconds


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_store_error_during_the_rejudge_is_retried_with_the_failure(
    stores: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database blinks once at the first re-judge of a short cut with a down inside: the
    retry still knows a late result failed (and the earliest start), so the down is written."""
    cut_store, ref_store = stores
    feed = probes((305.0, 330.0))
    await run_reference(ref_store, feed)
    real, calls = cut_store.rewrite_history, []

    def blinking(*args: Any, **kwargs: Any) -> int:
        calls.append(args)
        if len(calls) == 1:
            raise StoreError("writing re-judged history failed: connection reset")
        return real(*args, **kwargs)

    monkeypatch.setattr(cut_store, "rewrite_history", blinking)
    monitor = await run_cut(cut_store, feed, (300.0, 345.0))
    assert len(calls) == 2 and monitor.history.rejudged == 1
    start = NOW + 200
    assert judged(history(cut_store), start) == judged(history(ref_store), start)


async def test_a_rejudged_history_stays_rejudged_after_a_kill(tmp_path: Path) -> None:
    """netmon run journals verdict changes: the rows a re-judge deletes must not come back from
    the journal's segments at the next start (a kill -9 right after the re-judge)."""
    url = f"sqlite:///{tmp_path / 'netmon.db'}"
    store = Store(url, journal=Journal(tmp_path / "journal"))
    store.open_journal()
    store.migrate()
    clock = FakeClock(NOW)
    monitor = Monitor(load_inventory(INVENTORIES / "valid-small.yaml"), store, Engines(), clock)
    monitor.ready = True
    for t in range(0, 300, 20):  # fine, then nothing: unknown (no recent data) for a while
        clock.now = NOW + t
        monitor.record(SITE, "wan-1", result(NOW + t - 0.5, True))
        monitor.evaluate()
    clock.now = NOW + 1000
    monitor.evaluate()
    store.flush()
    store.journal.sync()  # type: ignore[union-attr]
    for t in range(300, 1000, 20):  # then the results of that stretch, late: a failure inside
        monitor.record(SITE, "wan-1", result(NOW + t, t != 500))
    clock.advance(SETTLE)
    monitor.last_evaluation = clock.now
    assert await monitor.history.run_once() == 1
    after = [(c.verdict, c.since) for c in store.verdict_history(SITE, limit=100)]
    # kill -9 here: no close; the next start replays what is on disk
    again = Store(url, journal=Journal(tmp_path / "journal"))
    again.open_journal()
    again.flush()
    assert [(c.verdict, c.since) for c in again.verdict_history(SITE, limit=100)] == after
    again.close()


async def test_late_results_that_never_stop_are_rejudged_in_bounded_stretches(
    stores: tuple[Store, Store],
) -> None:
    """A poller whose clock is 15 s behind sends nothing but late results: the site never
    settles, so its stretch is re-judged every MAX_WAIT, never more than that at once."""
    store = stores[0]
    clock = FakeClock(NOW)
    monitor = Monitor(load_inventory(INVENTORIES / "valid-small.yaml"), store, Engines(), clock)
    monitor.ready = True
    monitor.evaluate()
    stretches = []
    real = monitor.history.rewrite

    async def spy(site_id: str, start: float, failed: bool = True) -> bool:
        stretches.append(clock() - start)
        return await real(site_id, start, failed)

    monitor.history.rewrite = spy  # type: ignore[method-assign]
    for i in range(int(3 * MAX_WAIT / 20)):
        clock.advance(20.0)
        monitor.record(SITE, "wan-1", result(clock() - 15.0, i % 50 != 7))
        monitor.evaluate()
        await monitor.history.run_once()
    assert len(stretches) >= 2 and max(stretches) <= MAX_WAIT + 60, stretches


async def test_a_live_change_during_another_sites_rejudge_is_written_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """netmon serve's leader (netmon.judging): site B comes back live while site A's stretch is
    re-judged; B's own re-judge, next in the round, first writes what the leader judged but had
    not written, so B's change is not left to land inside B's re-judged stretch twice."""
    from tests.test_judging import INVENTORY, Server, stored

    (tmp_path / "inv.yaml").write_text(INVENTORY)
    one = Server(f"sqlite:///{tmp_path / 'n.db'}", tmp_path / "inv.yaml", "one", ttl=30.0)
    m, j = one.monitor, one.judging
    now = time.time()
    for s in ("chc-a", "chc-b"):
        one.take(s, True, now - 300)
    m.evaluate()
    await j.step()
    assert j.leading()
    m.ready = True
    for s in ("chc-a", "chc-b"):
        one.take(s, False, now - 100)  # a replayed outbox: late, failed
    m.evaluate()
    await j.step()
    for late in m.history.late.values():
        late.last -= 20  # settled
    real = Rejudger._rejudge

    def slow(self: Rejudger, site: Any, start: float, end: float) -> Any:
        if site.id == "chc-a":
            time.sleep(0.6)  # a long stretch
        return real(self, site, start, end)

    monkeypatch.setattr(Rejudger, "_rejudge", slow)

    async def live() -> None:
        await asyncio.sleep(0.2)
        one.take("chc-b", True, time.time() - 0.5)
        m.evaluate()

    await asyncio.gather(m._rejudge_late(), live())
    await j.step()
    got = stored(one.store, "chc-b")
    assert len(got) >= 2 and not [a for a, b in itertools.pairwise(got) if a == b], got
