"""Remote pollers (netmon.fleet, netmon.outbox, netmon.remote_poller): shares, leases, intake,
the no_poller verdict -- in units over SQLite and PostgreSQL -- and the whole thing as real
processes: one ``netmon serve`` on PostgreSQL and three ``netmon poll`` probing loopback, one
killed with SIGKILL; and a server stopped under a poller whose outbox keeps and replays."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import generate_latest

from exporters.prometheus import make_registry
from netmon.channel import encode_result
from netmon.fleet import Fleet, Heartbeat, owner, shares
from netmon.inventory.loader import load_inventory
from netmon.monitor import Monitor
from netmon.outbox import Outbox
from netmon.store import Store
from probes import Engines, ProbeResult
from tests.conftest import INVENTORIES, FakeClock
from tests.netmon_process import stop_all
from tests.test_e2e import free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]
NOW = 1_800_000_000.0


def ok(at: float) -> ProbeResult:
    return ProbeResult("icmp", True, at, 0.3, 3, 3, (0.01, 0.01, 0.01))


# --- shares -----------------------------------------------------------------------------------
def test_rendezvous_moves_only_what_it_must() -> None:
    inventory = load_inventory(INVENTORIES / "valid-small.yaml")
    sites = [s.id for s in inventory.sites]
    three = shares(inventory, {"a": "central", "b": "central", "c": "central"})
    assert set(three) == set(sites) and set(three.values()) <= {"a", "b", "c"}
    two = shares(inventory, {"a": "central", "c": "central"})  # b left
    assert all(two[s] == three[s] for s in sites if three[s] != "b")  # nobody else's moved
    back = shares(inventory, {"a": "central", "b": "central", "c": "central"})
    assert back == three  # the same owners again: no memory, no coordination
    assert shares(inventory, {"a": "district-x"}) == {}  # no live poller of their group
    assert owner("s", []) is None


# --- the outbox -------------------------------------------------------------------------------
def test_outbox_keeps_order_and_its_bounds(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_bytes=10_000, max_age=100.0)
    first = box.put([["s", "d", 1]], NOW)
    second = box.put([["s", "d", 2], ["s", "d", 3]], NOW + 1)
    assert [b for _, b, _ in box.oldest()] == [first, second] and box.waiting() == 3
    seq, _, items = box.oldest(1)[0]
    box.done(seq)
    assert items == [["s", "d", 1]] and box.waiting() == 2
    box.put([["s", "d", 4]], NOW + 150)  # the two older than 100 s go, counted
    assert box.waiting() == 1 and box.dropped == 2
    big = [["s", "d", "x" * 3000]]
    for i in range(5):
        box.put(big, NOW + 151 + i)
    assert box.waiting() == 3 and box.dropped == 2 + 3  # past 10 kB: the oldest go
    box.close()
    again = Outbox(tmp_path / "o.db", max_bytes=10_000, max_age=100.0)  # a restart keeps them
    assert again.waiting() == 3
    again.close()


# --- leases, intake, verdict (units, both databases) ------------------------------------------
@pytest.fixture
def served(database_url: str) -> Iterator[tuple[Monitor, Fleet, FakeClock]]:
    store = Store(database_url)
    store.migrate()
    clock = FakeClock(NOW)
    monitor = Monitor(load_inventory(INVENTORIES / "valid-small.yaml"), store, Engines(), clock)
    fleet = Fleet(monitor.record, store, failover_delay=60.0, clock=clock)
    fleet.on_change = monitor.rejudge
    monitor.poller = fleet
    yield monitor, fleet, clock
    store.close()


def beat(name: str, group: str = "central") -> Heartbeat:
    return Heartbeat(group, "test", 1, NOW)


def verdict(monitor: Monitor, site: str) -> tuple[str, list[str], float]:
    status = monitor.status[site]
    return status.verdict.value, [r.criterion.value for r in status.judgement.reasons], status.since


async def test_no_poller_is_unknown_never_down_and_a_poller_takes_over(
    served: tuple[Monitor, Fleet, FakeClock],
) -> None:
    monitor, fleet, clock = served
    await fleet.start(monitor.inventory)
    monitor.evaluate(full=True)
    assert verdict(monitor, "chc-bundu")[:2] == ("unknown", ["no_poller"])
    sites = await fleet.heartbeat("p1", beat("p1"))
    assert "chc-bundu" in sites and fleet.live == {"p1": "central"}
    taken = await fleet.take("p1", "b1", [encode_result("chc-bundu", "wan-1", ok(clock() - 1))])
    assert taken == (1, 0, False)
    monitor.evaluate()
    assert verdict(monitor, "chc-bundu")[1] != ["no_poller"]
    # p1 stops heart-beating: its lease runs out; with no other poller the site is unwatched
    # from p1's last heartbeat on, not from when the lease ran out
    last = clock()
    clock.advance(61)
    await fleet.refresh()
    monitor.evaluate()
    state, reasons, since = verdict(monitor, "chc-bundu")
    assert (state, reasons, since) == ("unknown", ["no_poller"], last)
    await fleet.stop()


async def test_a_batch_is_taken_once_and_foreign_results_are_rejected(
    served: tuple[Monitor, Fleet, FakeClock],
) -> None:
    monitor, fleet, clock = served
    await fleet.start(monitor.inventory)
    await fleet.heartbeat("p1", beat("p1"))
    await fleet.heartbeat("p2", beat("p2", "district-x"))  # no site is in that group
    rows = [encode_result("chc-bundu", "wan-1", ok(clock() - 2)),
            encode_result("chc-bundu", "no-such-device", ok(clock() - 2)),
            encode_result("no-such-site", "wan-1", ok(clock() - 2)),
            ["not", "a", "result"]]  # fmt: skip
    assert await fleet.take("p1", "b1", rows) == (1, 3, False)
    assert await fleet.take("p1", "b1", rows) == (0, 0, True)  # re-sent: taken once
    assert await fleet.take("p2", "b1", rows[:1]) == (0, 1, False)  # not its group's site
    assert monitor.results_taken == 1
    assert (fleet.counts.taken, fleet.counts.rejected, fleet.counts.duplicate_batches) == (1, 4, 1)
    text = generate_latest(make_registry(monitor, "test", "raw")).decode()
    for line in ("netmon_poller_results_taken_total 1.0", "netmon_poller_results_rejected_total 4.0",
                 "netmon_poller_duplicate_batches_total 1.0", "netmon_pollers_live 2.0"):  # fmt: skip
        assert line in text.splitlines(), line
    await fleet.stop()


# --- real processes ---------------------------------------------------------------------------
SITES = 9
INVENTORY = "defaults: {interval: 1s, count: 2, timeout: 500ms, spacing: 100ms}\n" \
    "policy: {window: 5m, min_probes: 3}\nsites:\n" + "".join(
        f"  - {{id: chc-{i}, name: CHC {i}, district: Ranchi, type: chc, devices: "
        f"[{{name: wan-1, role: wan, address: 127.82.{i}.1}}]}}\n" for i in range(1, SITES + 1)
    )  # fmt: skip


class Fleetwork:
    """A ``netmon serve`` and its pollers, each a real process; stopped at the end."""

    def __init__(self, tmp: Path, database_url: str) -> None:
        self.tmp, self.url, self.port = tmp, database_url, free_port()
        (tmp / "inventory.yaml").write_text(INVENTORY)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("NETMON_")}
        self.env.update(NETMON_FAILOVER_DELAY="6", NETMON_LOG_LEVEL="info",
                        NETMON_SNAPSHOT_EVERY="0")  # fmt: skip
        self.procs: dict[str, subprocess.Popen[str]] = {}

    def netmon(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "netmon.cli", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=60, check=True)  # fmt: skip

    def start(self, name: str, *args: str, data: str | None = None) -> None:
        env = {**self.env, "NETMON_DATA_DIR": str(self.tmp / (data or name))}
        with (self.tmp / f"{name}.log").open("a") as log:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "netmon.cli", *args], cwd=ROOT, env=env, stdout=log,
                stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip

    def serve(self) -> None:
        self.start("server", "serve", "--config", str(self.tmp / "inventory.yaml"), "--port",
                   str(self.port), "--database-url", self.url)  # fmt: skip
        wait_for(lambda: self.get("/healthz") is not None)

    def poller(self, name: str) -> None:
        token = self.tmp / f"{name}.token"
        if not token.exists():
            token.write_text(self.netmon("token", "create", "--name", name, "--scope", "poller",
                                         "--database-url", self.url).stdout)  # fmt: skip
        self.start(name, "poll", "--server", f"http://127.0.0.1:{self.port}", "--token-file",
                   str(token))  # fmt: skip

    def get(self, path: str) -> Any:
        try:
            r = httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=10)
        except httpx.HTTPError:
            return None
        return r.json() if r.status_code == 200 else None

    def verdicts(self) -> dict[str, str]:
        sites = self.get("/api/v1/sites") or {"data": []}
        return {s["id"]: s["verdict"] for s in sites["data"]}

    def pollers(self) -> dict[str, tuple[bool, int]]:
        found = self.get("/api/v1/pollers") or {"data": []}
        return {p["name"]: (p["live"], p["sites"]) for p in found["data"]}

    def stop(self) -> None:
        stop_all(self.procs.values())


@pytest.fixture
def fleetwork(tmp_path: Path, database_url: str) -> Iterator[Fleetwork]:
    work = Fleetwork(tmp_path, database_url)
    work.netmon(
        "token", "create", "--name", "reader", "--scope", "read", "--database-url", database_url
    )  # fmt: skip: the schema made before the server starts
    try:
        yield work
    finally:
        work.stop()


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_killed_poller_hands_its_sites_over_and_none_is_ever_down(fleetwork: Fleetwork) -> None:
    work = fleetwork
    work.serve()
    for name in ("p1", "p2", "p3"):
        work.poller(name)

    def settled() -> bool:  # every poller live with its share, every site judged
        found = work.pollers()
        return (set(work.verdicts().values()) == {"fully_functional"} and len(found) == 3
                and all(live for live, _ in found.values())
                and sum(n for _, n in found.values()) == SITES)  # fmt: skip

    wait_for(settled, seconds=90)
    shares_before = work.pollers()
    victim = max(shares_before, key=lambda p: shares_before[p][1])
    killed_at = time.time()
    work.procs[victim].send_signal(signal.SIGKILL)
    work.procs[victim].wait(10)
    wait_for(lambda: not work.pollers()[victim][0], seconds=30)
    after = work.pollers()
    assert after[victim] == (False, 0)
    assert sum(n for live, n in after.values() if live) == SITES
    wait_for(lambda: set(work.verdicts().values()) == {"fully_functional"}, seconds=30)
    handed_over = time.time() - killed_at

    def gaps() -> list[dict[str, Any]]:  # the changes reach the database within a flush
        changes = work.get("/api/v1/changes?limit=1000")["items"]
        assert "down" not in {c["verdict"] for c in changes}, changes
        return [
            c for c in changes if c["verdict"] == "unknown" and _ts(c["changed_at"]) > killed_at
        ]

    wait_for(lambda: len({c["site_id"] for c in gaps()}) >= shares_before[victim][1], seconds=20)
    assert len(gaps()) == shares_before[victim][1], gaps()  # exactly the victim's sites, once
    for gap in gaps():
        assert [r["criterion"] for r in gap["reasons"]] == ["no_poller"]
        assert _ts(gap["since"]) <= killed_at  # from its last heartbeat, not the lease's end
    print(f"\nkilled {victim} ({shares_before[victim][1]} sites): all fully functional again "
          f"{handed_over:.1f} s later (failover_delay 6 s)")  # fmt: skip


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_server_outage_loses_nothing_the_poller_took(fleetwork: Fleetwork) -> None:
    work = fleetwork
    work.serve()
    work.poller("agent")
    wait_for(lambda: set(work.verdicts().values()) == {"fully_functional"}, seconds=60)
    work.procs["server"].send_signal(signal.SIGTERM)
    assert work.procs["server"].wait(30) == 0
    cut_from = time.time()
    time.sleep(8)  # the cut: the poller goes on probing into its outbox
    cut_to = time.time()
    work.serve()
    wait_for(lambda: work.pollers().get("agent", (False, 0))[0], seconds=30)
    site = "chc-1"
    path = f"/api/v1/sites/{site}/devices/wan-1/results?since={_iso(cut_from)}&limit=1000"

    def replayed() -> list[dict[str, Any]]:
        data = (work.get(path) or {"data": []})["data"]
        return [r for r in data if cut_from + 1 <= _ts(r["at"]) <= cut_to - 1]

    during = wait_for(lambda: len(replayed()) >= 5 and replayed(), seconds=30)
    assert all(r["ok"] for r in during)  # taken during the cut, stored with their own times
    log = (work.tmp / "agent.log").read_text()
    assert "unreachable" in log and "answers: sending the outbox" in log
    assert log.count("unreachable") == 1  # the change of state, once; not every try
