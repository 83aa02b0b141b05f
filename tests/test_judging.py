"""The judging lease (netmon.judging) in units, on SQLite and PostgreSQL: one leader writes,
a follower folds what the leader's server stored and keeps what it judged, a leader whose
lease was taken is fenced out, and a takeover writes exactly what the history lacks. The whole
thing as real processes is tests/test_two_servers.py."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from netmon import judging
from netmon.errors import ConfigError, StoreError
from netmon.inventory.loader import load_inventory
from netmon.judging import LEASE, Judging, lacking
from netmon.monitor import Monitor
from netmon.outbox import Outbox
from netmon.remote_poller import RemotePoller, poll
from netmon.settings import Settings
from netmon.store import Store, VerdictChange
from probes import Engines, ProbeResult

INVENTORY = """defaults: {interval: 1s, count: 2, timeout: 500ms, spacing: 100ms}
policy: {window: 10m, min_probes: 1}
sites:
  - {id: chc-a, name: CHC A, district: Ranchi, type: chc,
     devices: [{name: wan-1, role: wan, address: 127.84.1.1}]}
  - {id: chc-b, name: CHC B, district: Ranchi, type: chc,
     devices: [{name: wan-1, role: wan, address: 127.84.2.1}]}
"""


def vc(site: str, verdict: str, at: float) -> VerdictChange:
    return VerdictChange(site, verdict, at, [], at)


def verdicts(changes: list[VerdictChange]) -> list[tuple[str, float | None]]:
    return [(c.verdict, c.at) for c in changes]


# --- the alignment (pure) ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("stored", "shadow", "lacks"),
    [
        # the follower judged the leader's last change a little later: only what came after
        ([("ff", 100), ("down", 200)], [("down", 203), ("ff", 300)], [("ff", 300)]),
        # ... or a little earlier
        ([("down", 200)], [("down", 198), ("ff", 300)], [("ff", 300)]),
        # two quick changes the follower saw late: both written already, nothing lacks
        ([("down", 100), ("ff", 103)], [("down", 104), ("ff", 109)], []),
        # a flap after the leader died: both halves lack
        ([("ff", 103)], [("ff", 101), ("down", 110), ("ff", 115)], [("down", 110), ("ff", 115)]),
        # the follower started after the last stored change: what differs from it
        ([("down", 50)], [("ff", 300)], [("ff", 300)]),
        ([("down", 50)], [("down", 300)], []),
        # a new site: its whole history
        ([], [("unknown", 1), ("ff", 5)], [("unknown", 1), ("ff", 5)]),
        # nothing judged by the follower: nothing from it
        ([("ff", 100)], [], []),
    ],
)
def test_the_takeover_writes_only_what_the_history_lacks(
    stored: list[tuple[str, float]], shadow: list[tuple[str, float]], lacks: list[tuple[str, float]]
) -> None:
    history = {"s": [vc("s", v, at) for v, at in stored]} if stored else {}
    got = lacking([vc("s", v, at) for v, at in shadow], history, {"s"})
    assert verdicts(got) == lacks
    assert lacking([vc("gone", "ff", 1.0)], {}, {"s"}) == []  # a site no longer in the inventory


# --- two servers, one database ------------------------------------------------------------
class Server:
    def __init__(self, url: str, inventory: Path, name: str, ttl: float) -> None:
        self.store = Store(url)
        self.store.migrate()
        self.monitor = Monitor(load_inventory(inventory), self.store, Engines())
        self.judging = Judging(self.monitor, self.store, None, ttl, renew_every=0.0, name=name)
        self.monitor.judging = self.judging

    def take(self, site: str, ok: bool, at: float) -> None:
        rtts = (0.01, 0.01) if ok else ()
        self.monitor.record(site, "wan-1", ProbeResult("icmp", ok, at, 0.3, 2, len(rtts), rtts))

    def verdict(self, site: str) -> str:
        return self.monitor.status[site].verdict.value


@pytest.fixture
def servers(database_url: str, tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    (tmp_path / "inventory.yaml").write_text(INVENTORY)
    one = Server(database_url, tmp_path / "inventory.yaml", "one", ttl=30.0)
    two = Server(database_url, tmp_path / "inventory.yaml", "two", ttl=30.0)
    yield one, two
    one.store.close()
    two.store.close()


def stored(store: Store, site: str) -> list[str]:
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT verdict FROM verdict_change WHERE site_id = :s "
                                 "ORDER BY changed_at, id"), {"s": site}).all()  # fmt: skip
    return [r[0] for r in rows]


def expire(store: Store) -> None:
    """The leader's lease runs out (a stall longer than the lease)."""
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE judge_lease SET expires_at = 0 WHERE name = :n"), {"n": LEASE})


async def test_one_leader_writes_a_follower_folds_and_a_takeover_fills_the_gap(
    servers: tuple[Server, Server],
) -> None:
    one, two = servers
    one.monitor.evaluate()
    two.monitor.evaluate()  # the first judgements (unknown): the follower's go to its shadow
    await one.judging.step()
    await two.judging.step()
    assert one.judging.role == "leader" and two.judging.role == "follower"
    assert two.judging.holder == "one" and one.monitor.leads() and not two.monitor.leads()
    assert (one.judging.peers, two.judging.peers) == (0, 1)  # one was alone at its renewal
    now = time.time()
    one.take("chc-a", True, now - 5)  # taken by server one, stored by it ...
    two.take("chc-b", True, now - 5)  # ... and by server two
    await one.store.flush_async()
    await two.store.flush_async()
    for server in (one, two):
        await server.judging.step()  # each folds the other's result, not its own again
        server.monitor.evaluate()
        assert (server.verdict("chc-a"), server.verdict("chc-b")) == ("fully_functional",) * 2
    assert (one.judging.tailed, two.judging.tailed) == (1, 1)
    await one.judging.step()
    assert stored(one.store, "chc-a") == ["unknown", "fully_functional"]
    assert two.judging.shadow and stored(one.store, "chc-b") == ["unknown", "fully_functional"]

    # server one stalls past its lease; chc-a goes down meanwhile (seen by both)
    one.take("chc-a", False, now - 4)
    await one.store.flush_async()
    one.monitor.evaluate()  # the stalled leader's change, not written yet
    assert one.store.verdict_history("chc-a")[0].verdict == "down"  # the API shows it queued
    expire(one.store)
    await two.judging.step()  # two takes the lease and writes the change the history lacks
    assert two.judging.role == "leader" and two.verdict("chc-a") == "down"
    assert stored(two.store, "chc-a") == ["unknown", "fully_functional", "down"]
    assert one.judging.unwritten  # one wakes, sure of its lease by its own clock ...
    await one.judging.write()  # ... but the write is fenced: the lease is two's now
    assert one.judging.role == "follower" and not one.judging.unwritten
    assert stored(two.store, "chc-a") == ["unknown", "fully_functional", "down"]  # not doubled

    two.take("chc-a", True, now - 3)  # back up, judged by the new leader
    await two.store.flush_async()
    two.monitor.evaluate()
    await two.judging.step()
    await one.judging.step()
    one.monitor.evaluate()
    assert one.verdict("chc-a") == two.verdict("chc-a") == "degraded"  # one folded it too
    assert stored(two.store, "chc-a") == ["unknown", "fully_functional", "down", "degraded"]
    assert stored(two.store, "chc-b") == ["unknown", "fully_functional"]
    assert (one.judging.takeovers, two.judging.takeovers) == (1, 1)


async def test_a_clean_stop_lets_the_lease_go(servers: tuple[Server, Server]) -> None:
    one, two = servers
    await one.judging.step()
    await two.judging.step()
    one.monitor.evaluate()  # unknown, both sites: written at the stop
    await one.judging.stop()
    assert stored(one.store, "chc-a") == ["unknown"] and one.judging.role == "follower"
    two.monitor.evaluate()
    await two.judging.step()  # the lease was let go: no wait for it to run out
    assert two.judging.role == "leader" and two.judging.holder == "two"
    assert stored(two.store, "chc-a") == ["unknown"]  # the follower's own copy matched
    assert two.judging.peers == 0  # one's presence went with it: two reads no results back
    two.take("chc-a", True, time.time() - 1)
    await two.store.flush_async()
    await two.judging.step()
    await two.judging.step()
    assert two.judging.cursor == -1 and two.judging.tailed == 0


# --- a poller given several servers ---------------------------------------------------------
async def test_a_poller_given_several_servers_moves_to_the_next_when_one_fails(
    tmp_path: Path,
) -> None:
    box = Outbox(tmp_path / "outbox.db", 1 << 20, 3600.0)
    poller = RemotePoller(Settings(), "http://127.0.0.1:18404, http://127.0.0.1:18405", "t",
                          "central", box)  # fmt: skip
    first = poller.client
    poller._fail_over(first, httpx.HTTPStatusError("503", request=None, response=None))  # type: ignore[arg-type]
    assert poller.server == "http://127.0.0.1:18404"  # an answer, if a bad one: stays
    poller._fail_over(first, httpx.ConnectError("refused"))
    assert poller.server == "http://127.0.0.1:18405" and poller.client is not first
    poller._fail_over(first, httpx.ConnectError("refused"))  # a late failure of the old one
    assert poller.server == "http://127.0.0.1:18405"
    poller._fail_over(poller.client, httpx.ReadTimeout("no answer"))
    assert poller.server == "http://127.0.0.1:18404"  # round again
    await poller.client.aclose()
    box.close()
    with pytest.raises(ConfigError, match="comma separated"):
        poll(Settings(), "http://127.0.0.1:18404,ftp://x", _token(tmp_path), "central", None)


def _token(tmp_path: Path) -> Path:
    path = tmp_path / "p.token"
    path.write_text("netmon_" + "x" * 40 + "\n")
    return path


async def test_a_replay_the_follower_took_is_judged_into_its_time_by_the_leader(
    servers: tuple[Server, Server],
) -> None:
    one, two = servers
    await one.judging.step()  # one leads, alone: it reads no results back
    one.take("chc-b", True, time.time() - 2)
    await one.store.flush_async()
    await one.judging.step()
    await two.judging.step()  # two comes: one notices at its next renewal
    two.monitor.ready = True  # (record notes late results once the monitor is ready)
    two.take("chc-a", True, time.time() - 120)  # a poller's outbox replayed to two
    await two.store.flush_async()
    assert "chc-a" in two.monitor.history.late
    await one.judging.step()  # one learns of two at this renewal ...
    await one.judging.step()  # ... and tails again, from before two's first rows
    assert "chc-a" in one.monitor.history.late and one.judging.tailed == 1  # not its own row
    assert await two.monitor._rejudge_late() == 0  # the follower leaves the history alone
    assert "chc-a" in two.monitor.history.late  # kept: judged there if it ever leads


# --- review findings --------------------------------------------------------------------------
def _cut_off(j: Judging) -> tuple[object, object]:
    """The database becomes unreachable for ``j`` (its lease writes and fenced writes fail)."""
    real = j._claim, j._fenced

    def down(*_a: object) -> object:
        raise StoreError("writing the judging lease failed: connection refused")

    j._claim = down  # type: ignore[method-assign]
    j._fenced = down  # type: ignore[method-assign]
    return real


async def test_a_database_outage_longer_than_an_hour_loses_no_verdict_change(
    tmp_path: Path,
) -> None:
    """netmon serve alone: the database is unreachable for hours; the leader steps down and
    keeps what it judges (a count, not an hour); when the database is back, all is written."""
    (tmp_path / "inv.yaml").write_text(INVENTORY)
    store = Store(f"sqlite:///{tmp_path / 'n.db'}")
    store.migrate()
    now = time.time()
    clock = [now - 10800]  # the monitor's clock: the outage began 3 h ago
    monitor = Monitor(
        load_inventory(tmp_path / "inv.yaml"), store, Engines(), clock=lambda: clock[0]
    )
    j = Judging(monitor, store, None, ttl=60.0)
    await j.step()  # leads: its first judgement (unknown) written
    assert j.leading() and stored(store, "chc-a") == ["unknown"]
    real = _cut_off(j)
    j.valid_until, j._renewed = 0.0, -math.inf  # 60 s without a renewal
    j._step_down("its lease ran out unrenewed")
    # judged during the outage, 2 h and 1.5 h ago: chc-a up for half an hour
    j.add_verdict_change(VerdictChange("chc-a", "fully_functional", now - 7200, [], now - 7200))
    j.add_verdict_change(VerdictChange("chc-a", "unknown", now - 5400, [], now - 5400))
    clock[0] = now
    await j.step()
    j._claim, j._fenced = real  # type: ignore[method-assign]
    j._renewed = -math.inf
    await j.step()  # the database is back: the takeover writes what the history lacks
    assert j.leading()
    assert stored(store, "chc-a") == ["unknown", "fully_functional", "unknown"]
    store.close()


def stored_at(store: Store, site: str) -> list[tuple[str, float]]:
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT verdict, changed_at FROM verdict_change WHERE site_id = "
                                 ":s ORDER BY changed_at, id"), {"s": site}).all()  # fmt: skip
    return [(r[0], round(r[1], 3)) for r in rows]


async def test_a_takeover_does_not_write_back_what_a_rejudge_removed(
    servers: tuple[Server, Server],
) -> None:
    """The leader judged a cut live (unknown, then fully functional) and re-judged it from
    the late results (netmon.history): the site was fine throughout, the two changes removed.
    The follower's shadow still has its own live view of the cut; the leader renews cleanly
    twice after, then dies: the takeover must not write the cut's unknown back."""
    one, two = servers
    now = round(time.time(), 3)
    for server in (one, two):  # their first judgement (unknown), long ago
        server.monitor.clock = lambda: now - 2000
        server.monitor.evaluate()
        server.monitor.clock = time.time
    await one.judging.step()
    await two.judging.step()
    assert one.judging.role == "leader" and two.judging.role == "follower"
    cut = [
        ("fully_functional", now - 1000),
        ("unknown", now - 600),
        ("fully_functional", now - 300),
    ]
    for server in (one, two):  # both judged it live
        for verdict, at in cut:
            server.judging.add_verdict_change(vc("chc-a", verdict, at))
    await one.judging.step()
    assert stored_at(one.store, "chc-a") == [("unknown", now - 2000), *cut]
    one.store.rewrite_history("chc-a", now - 700, now - 200, [])  # the re-judge
    for _ in range(3):  # the leader renews cleanly, the follower reads it
        await one.judging.step()
        await two.judging.step()
    expire(one.store)  # the leader dies
    await two.judging.step()
    assert two.judging.role == "leader"
    history = stored_at(two.store, "chc-a")
    assert history[:2] == [("unknown", now - 2000), cut[0]], history
    assert all(at > now - 15 for _v, at in history[2:]), history  # what two judges now


async def test_a_bug_in_judging_is_logged_and_neither_ends_its_task_nor_the_stop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "inv.yaml").write_text(INVENTORY)
    store = Store(f"sqlite:///{tmp_path / 'n.db'}")
    store.migrate()
    monitor = Monitor(load_inventory(tmp_path / "inv.yaml"), store, Engines())
    j = Judging(monitor, store, None, ttl=60.0, renew_every=0.0)
    monitor.judging = j
    calls = []

    def broken(*_a: object) -> object:
        calls.append(1)
        raise RuntimeError("a bug")

    j._claim = broken  # type: ignore[method-assign]
    await j.step()  # said, not raised
    assert "judging: renewing the judging lease failed" in caplog.text and "a bug" in caplog.text
    real_forget = j._forget_mine
    j._forget_mine = broken  # type: ignore[method-assign]  # outside the parts: the round fails
    task = asyncio.create_task(j.run())
    for _ in range(100):  # the task goes on: rounds after the failed one
        if len(calls) >= 3 or task.done():
            break
        await asyncio.sleep(0.1)
    j._forget_mine = real_forget  # type: ignore[method-assign]
    for _ in range(100):
        if len(calls) >= 5 or task.done():
            break
        await asyncio.sleep(0.1)
    assert not task.done() and len(calls) >= 5
    assert "judging: a round failed" in caplog.text
    task.cancel()

    async def dead() -> None:
        raise RuntimeError("the judging task died")

    monitor._tasks = [asyncio.create_task(dead())]  # a task that died
    await asyncio.sleep(0)
    monitor.record(
        "chc-a", "wan-1", ProbeResult("icmp", True, time.time() - 1, 0.3, 2, 2, (0.01, 0.01))
    )
    await monitor.stop()  # goes on to its final flush
    assert not store.pending and len(list(store.device_results("chc-a", "wan-1", "icmp", 0.0))) == 1
    assert "task" in caplog.text and "the judging task died" in caplog.text
    store.close()


async def test_the_tail_reads_a_bounded_number_of_rows_a_round(
    servers: tuple[Server, Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A follower far behind (2,500 rows of the leader's) folds at most TAIL_CHUNKS x
    TAIL_ROWS a round, the rest the next; a jump in the ids awaits only the newest GAPS_KEPT."""
    monkeypatch.setattr(judging, "TAIL_ROWS", 1000, raising=False)
    monkeypatch.setattr(judging, "TAIL_CHUNKS", 2, raising=False)
    monkeypatch.setattr(judging, "GAPS_KEPT", 50)
    one, two = servers
    await one.judging.step()
    await two.judging.step()  # its tail starts here
    now = time.time()
    for i in range(2500):
        one.take("chc-a", True, now - 50 + i * 0.01)
    await one.store.flush_async()
    await two.judging.step()
    assert two.judging.tailed == 2000 and not two.judging.gaps  # the unread rows are no gaps
    await two.judging.step()
    assert two.judging.tailed == 2500 and not two.judging.gaps
    with one.store.engine.begin() as conn:  # a row 10^6 ids further on
        conn.execute(text(
            "INSERT INTO probe_result (id, site_id, device, kind, ts, duration, ok, sent, "
            "received, rtts, reason, extra) SELECT id + 1000000, site_id, device, kind, "
            "ts + 1, duration, ok, sent, received, rtts, reason, extra FROM probe_result "
            "WHERE id = (SELECT max(id) FROM probe_result)"))  # fmt: skip
    noted = Noted()
    two.judging.gaps = noted
    await two.judging.step()
    assert two.judging.tailed == 2501 and noted.sets <= 50 and len(two.judging.gaps) == 50


class Noted(dict[int, float]):
    """The gaps awaited, counting the ids noted."""

    sets = 0

    def __setitem__(self, key: int, value: float) -> None:
        self.sets += 1
        super().__setitem__(key, value)


async def test_a_rewritten_history_is_the_leaders_alone(servers: tuple[Server, Server]) -> None:
    """Store.rewrite_history (netmon.history) is fenced like the verdict writes: a follower's,
    or a leader's whose lease was taken, is refused (StoreError) and changes nothing."""
    one, two = servers
    await one.judging.step()
    await two.judging.step()
    now = round(time.time(), 3)
    one.judging.add_verdict_change(vc("chc-a", "unknown", now - 600))
    await one.judging.step()
    with pytest.raises(StoreError, match="not the leader"):
        two.store.rewrite_history("chc-a", now - 700, now - 500, [])
    assert ("unknown", now - 600) in stored_at(one.store, "chc-a")
    expire(one.store)
    await two.judging.step()  # two leads now; one, stalled, is sure of its lease still
    assert two.judging.role == "leader" and one.judging.role == "leader"
    with pytest.raises(StoreError, match="not the leader"):
        one.store.rewrite_history("chc-a", now - 700, now - 500, [])
    assert ("unknown", now - 600) in stored_at(one.store, "chc-a")
    assert two.store.rewrite_history("chc-a", now - 700, now - 500, []) == 1  # the leader's
    assert ("unknown", now - 600) not in stored_at(one.store, "chc-a")
