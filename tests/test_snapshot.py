"""netmon.snapshot: a restart restores the judged state from the snapshot plus the results stored
after its cut, and gives exactly what a full re-read of the window gives (and what a monitor that
never stopped has). Damaged, foreign or stale files fall back to the full re-read with a warning.

Randomized histories (seeded) as the scheduler makes them: each (device, kind) probed on its own
interval, results taken in the order they complete (so a probe running when the snapshot is taken
is taken after it), flushed to the store at random moments (so rows are still queued at the
snapshot), ICMP, SNMP and HTTP results, outages, announced maintenance. Real SQLite stores; no
timing asserts.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
import os
import pickle
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporters.prometheus import make_registry
from netmon.api import create_app
from netmon.inventory import Inventory, parse_inventory
from netmon.monitor import Monitor
from netmon.settings import Settings
from netmon.snapshot import FILE_NAME, MAGIC, Snapshotter
from netmon.store import Store
from probes.base import Engines, ProbeResult
from probes.http import HttpFindings
from tests.conftest import FakeClock
from tests.test_e2e import free_port, wait_for
from tests.test_incremental_judge import _devices, _iso, _snmp

T0 = 1_800_000_000.0
Key = tuple[str, str, str]


def inventory_yaml(seed: int, sites: int, window: float, span: float, works: bool = True) -> str:
    """Sites of every shape (uplinks, switches, SNMP controllers, APs), some with an HTTP check
    and (``works``) some with announced maintenance inside ``span`` seconds from T0."""
    rng = random.Random(seed)
    lines = [f"policy: {{window: {window:g}s, max_outage: 90s, max_outages: 2, min_probes: 2}}",
             "snmp:", "  credentials:", "    lab: {version: 2c, community: public}", "sites:"]  # fmt: skip
    for i in range(sites):
        lines += [f"  - id: site-{i}", f"    name: Site {i}", "    district: Ranchi",
                  "    type: phc"]  # fmt: skip
        if rng.random() < 0.3 and works:
            start = T0 + rng.uniform(0, span)
            lines += ["    maintenance:", f"      - {{start: '{_iso(start)}', "
                      f"end: '{_iso(start + rng.uniform(60, 600))}', reason: works}}"]  # fmt: skip
        lines.append("    devices:")
        lines += [f"      - {d}" for d in _devices(rng, i)]
        if rng.random() < 0.4:
            lines.append(f"      - {{name: web-1, role: router, probes: [http], parent: up-1, "
                         f"http: {{url: 'http://127.60.{i}.7/'}}}}")  # fmt: skip
    return "\n".join(lines) + "\n"


class Probes:
    """Every (site, device, kind) probed every 10-60 s, each probe taking 0.05-8 s; results
    come out in the order probes end, each key's in the order they started."""

    def __init__(self, seed: int, inv: Inventory) -> None:
        self.rng = random.Random(seed + 1000)
        self.up: dict[Key, bool] = {}
        self.queue: list[tuple[float, float, Key]] = []  # (ends, started, key)
        self.next_start: dict[Key, tuple[float, float]] = {}  # (next start, interval)
        for site in inv.sites:
            for dev in site.devices:
                for kind in dev.kinds:
                    key = (site.id, dev.name, kind)
                    interval = self.rng.choice([10.0, 20.0, 30.0, 60.0])
                    self._schedule(key, T0 + self.rng.uniform(0, interval), interval)

    def _schedule(self, key: Key, start: float, interval: float) -> None:
        duration = self.rng.uniform(0.05, 8.0)
        heapq.heappush(self.queue, (start + duration, start, key))
        self.next_start[key] = (start + max(interval, duration + 0.01), interval)

    def until(self, now: float) -> Iterator[tuple[str, str, ProbeResult]]:
        """The results of the probes that ended by ``now`` (the next probe of a key starts after
        its previous one ended, as the scheduler does)."""
        while self.queue and self.queue[0][0] <= now:
            _ends, started, key = heapq.heappop(self.queue)
            yield key[0], key[1], self._result(key, started)
            nxt, interval = self.next_start[key]
            self._schedule(key, nxt, interval)

    def _result(self, key: Key, ts: float) -> ProbeResult:
        rng = self.rng
        if key not in self.up or rng.random() < 0.08:
            self.up[key] = rng.random() < 0.8
        up = self.up[key]
        if key[2] == "snmp":
            return _snmp(rng, ts) if up else ProbeResult("snmp", False, ts, 2.0, 1, 0, (), "no")
        if key[2] == "http":
            found = HttpFindings(up, "http://x/", 200 if up else 500, 0.05, 0.06,
                                 reason="" if up else "HTTP status 500")  # fmt: skip
            return ProbeResult("http", up, ts, 0.06, 1, 1, (0.05,), found.reason, found)
        if not up:
            return ProbeResult("icmp", False, ts, 5.0, 5, 0, (), "no reply to 5 echoes")
        got = 5 if rng.random() < 0.95 else rng.randint(1, 4)
        rtts = tuple(round(rng.uniform(0.001, 0.09), 7) for _ in range(got))  # as stored
        return ProbeResult("icmp", True, ts, 4.0, 5, got, rtts)


@dataclass
class Run:
    """One netmon run: a monitor over a store file, fed by ``Probes`` as time passes."""

    monitor: Monitor
    clock: FakeClock
    snapshot: Snapshotter

    @classmethod
    def start(cls, db: Path, inv: Inventory, clock: FakeClock, snapshot: bool = True) -> Run:
        store = Store(f"sqlite:///{db}")
        store.migrate()
        monitor = Monitor(inv, store, Engines(), clock)
        snap = Snapshotter(db.parent / FILE_NAME)
        monitor.snapshot = snap if snapshot else None
        monitor.load_history()
        monitor.evaluate()
        monitor.ready = True
        return cls(monitor, clock, snap)

    def advance(
        self, probes: Probes, until: float, rng: random.Random, twin: Run | None = None
    ) -> None:
        """Take results up to ``until``, evaluating every 5 s and flushing now and then (the
        ``twin`` takes the same results at the same times)."""
        while self.clock.now < until:
            now = min(until, self.clock.now + 5.0)
            results = list(probes.until(now))
            for run in (self, twin) if twin is not None else (self,):
                run.clock.now = now
                for site, dev, r in results:
                    run.monitor.record(site, dev, r)
                run.monitor.evaluate()
                if rng.random() < 0.3:
                    run.monitor.store.flush()


def picture(m: Monitor) -> dict[str, Any]:
    """Everything the API and /metrics show of each site now (not when it was evaluated)."""
    now = m.clock()
    out: dict[str, Any] = {}
    for site in m.inventory.sites:
        st, view = m.status[site.id], m.view(site, now)
        out[site.id] = (st.judgement, st.since, view.summaries, view.views,
                        m.facts(site, view, now))  # fmt: skip
    return out


def restarted(db: Path, inv: Inventory, now: float, snapshot: bool) -> Monitor:
    return Run.start(db, inv, FakeClock(now), snapshot).monitor


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "netmon.snapshot" and r.levelno == logging.WARNING]  # fmt: skip


# --- a restart gives what the full re-read gives --------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
async def test_restore_equals_the_full_reread_and_the_monitor_that_never_stopped(
    tmp_path: Path, seed: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Within one window (the full re-read then sees everything): snapshot mid-way, 15 more
    minutes of results (some queued at the snapshot, some probes running across it), a crash
    after the last flush; the restored monitor equals both references."""
    caplog.set_level(logging.INFO)
    inv = parse_inventory(inventory_yaml(seed, 10, 3600.0, 1500.0))
    rng, probes = random.Random(seed), Probes(seed, inv)
    live = Run.start(tmp_path / "netmon.db", inv, FakeClock(T0), snapshot=True)
    live.advance(probes, T0 + 1500.0, rng)
    assert live.monitor.store.pending  # rows still queued at the snapshot
    in_flight = [q for q in probes.queue if q[1] < live.clock.now]
    assert in_flight  # probes that started before the snapshot and end after it
    assert await live.snapshot.take(live.monitor) is not None
    live.advance(probes, T0 + 2400.0, rng)
    live.monitor.store.flush()  # then the process dies: no snapshot at stop
    now = live.clock.now

    full = restarted(tmp_path / "netmon.db", inv, now, snapshot=False)
    caplog.clear()
    restored = restarted(tmp_path / "netmon.db", inv, now, snapshot=True)
    assert any("restored" in r.getMessage() for r in caplog.records), caplog.text
    assert picture(restored) == picture(full) == picture(live.monitor)
    verdicts = {st.verdict.value for st in restored.status.values()}
    assert len(verdicts) >= 2, verdicts  # a varied history


@pytest.mark.parametrize("seed", range(3))
async def test_restore_over_many_windows_equals_the_monitor_that_never_stopped(
    tmp_path: Path, seed: int
) -> None:
    """Windows of 10 minutes over 50 minutes: evidence leaves the window on both sides of the
    cut, outages straddle its start. The full re-read knows less here (it sees one window), so
    the reference is the monitor that never stopped; restored twice in a row."""
    inv = parse_inventory(inventory_yaml(seed, 8, 600.0, 3000.0))
    rng, probes = random.Random(seed), Probes(seed, inv)
    live = Run.start(tmp_path / "netmon.db", inv, FakeClock(T0))
    for stop in (900.0, 1900.0):
        live.advance(probes, T0 + stop, rng)
        await live.snapshot.take(live.monitor)
    live.advance(probes, T0 + 2500.0, rng)
    live.monitor.store.flush()
    second = Run.start(tmp_path / "netmon.db", inv, FakeClock(live.clock.now))
    assert picture(second.monitor) == picture(live.monitor)
    live.monitor.store = Store("sqlite://")  # the one that never stopped writes elsewhere now
    live.monitor.store.migrate()
    second.advance(probes, T0 + 3000.0, rng, twin=live)
    assert picture(second.monitor) == picture(live.monitor)
    await second.monitor.stop()  # the snapshot at stop, then the final flush
    third = restarted(tmp_path / "netmon.db", inv, second.clock.now, snapshot=True)
    assert picture(third) == picture(second.monitor)


async def test_no_result_is_lost_or_counted_twice_across_cuts(tmp_path: Path) -> None:
    """Probe counts equal the results taken, through a snapshot with rows still queued, a
    crash, a restore, a clean stop with its snapshot, and another restore."""
    seed = 7
    inv = parse_inventory(inventory_yaml(seed, 6, 86400.0, 10.0, works=False))
    rng, probes = random.Random(seed), Probes(seed, inv)
    taken: dict[Key, int] = {}

    def count(site: str, device: str, r: ProbeResult) -> None:
        taken[(site, device, r.kind)] = taken.get((site, device, r.kind), 0) + 1

    def probes_in(m: Monitor) -> dict[Key, int]:
        summaries = {k: ev.summary(m.clock()) for k, ev in m.evidence.items()}
        return {k: s.probes for k, s in summaries.items() if s is not None and s.probes}

    run = Run.start(tmp_path / "netmon.db", inv, FakeClock(T0))
    run.monitor.listeners.append(count)
    run.advance(probes, T0 + 600.0, rng)
    await run.snapshot.take(run.monitor)
    run.advance(probes, T0 + 900.0, rng)
    run.monitor.store.flush()
    reachable = {k: n for k, n in taken.items() if k[2] != "http"}  # http says nothing of it
    assert probes_in(run.monitor) == reachable
    second = Run.start(tmp_path / "netmon.db", inv, FakeClock(run.clock.now))
    assert probes_in(second.monitor) == reachable
    second.monitor.listeners.append(count)
    second.advance(probes, T0 + 1200.0, rng)
    await second.monitor.stop()
    third = restarted(tmp_path / "netmon.db", inv, second.clock.now, snapshot=True)
    assert probes_in(third) == {k: n for k, n in taken.items() if k[2] != "http"}


# --- inventory changes between runs ----------------------------------------------------------------


async def test_inventory_change_drops_adds_and_rereads_changed_windows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Next run: one site gone, one device gone, a device the last run did not probe (its rows
    are in the store from before), one site with another policy window. Equal to the full
    re-read of the new inventory; a change of most windows falls back to the full re-read."""
    seed = 3
    base = inventory_yaml(seed, 12, 3600.0, 100.0)
    before_inv = parse_inventory(base)
    rng, probes = random.Random(seed), Probes(seed, before_inv)
    run = Run.start(tmp_path / "netmon.db", before_inv, FakeClock(T0))
    run.advance(probes, T0 + 1200.0, rng)
    for ts in (T0 + 100.0, T0 + 700.0):  # the newcomer's rows, written by an older run
        r = ProbeResult("icmp", True, ts, 1.0, 5, 5, (0.002,) * 5)
        run.monitor.store.add_result("site-1", "ap-new", r)
    await run.monitor.stop()

    text = base.replace("  - id: site-0\n", "  - id: site-x\n")  # site-0 gone, site-x new
    at = text.index("    devices:\n", text.index("  - id: site-1\n")) + len("    devices:\n")
    newcomer = "      - {name: ap-new, role: ap, address: 127.61.0.1, parent: sw-1}\n"
    text = text[:at] + newcomer + text[at:]
    text = text.replace("  - id: site-2\n    name: Site 2\n",
                        "  - id: site-2\n    name: Site 2\n    policy: {window: 30m}\n")  # fmt: skip
    after = parse_inventory(text)
    assert after.policy_for(after.sites[2]).window == 1800.0
    caplog.set_level(logging.INFO)
    now = run.clock.now
    full = restarted(tmp_path / "netmon.db", after, now, snapshot=False)
    caplog.clear()
    restored = restarted(tmp_path / "netmon.db", after, now, snapshot=True)
    assert "re-read" in caplog.text and not warnings(caplog), caplog.text
    assert picture(restored) == picture(full)
    assert not any(k[0] == "site-0" for k in restored.evidence)
    assert restored.evidence[("site-1", "ap-new", "icmp")].summary(now).probes == 2  # type: ignore[union-attr]

    caplog.clear()
    wider = parse_inventory(text.replace("window: 3600s", "window: 7200s"))
    again = restarted(tmp_path / "netmon.db", wider, now, snapshot=True)
    assert any("new or changed" in w for w in warnings(caplog)), caplog.text
    assert picture(again) == picture(restarted(tmp_path / "netmon.db", wider, now, False))


# --- damaged, foreign and stale files --------------------------------------------------------------


def _rewrite_header(data: bytes, **changes: Any) -> bytes:
    end = data.index(b"\n", len(MAGIC))
    header = json.loads(data[len(MAGIC) : end])
    header.update(changes)
    return MAGIC + json.dumps(header).encode() + data[end:]


def _hostile(data: bytes) -> bytes:
    """A well-formed file (sizes, CRC) whose part would call os.system when unpickled."""
    import zlib

    end = data.index(b"\n", len(MAGIC))
    header = json.loads(data[len(MAGIC) : end])
    parts = [pickle.dumps(("statuses", {})), pickle.dumps([(("a", "b", "icmp"), os.system, 1.0)])]
    header.update(parts=[len(p) for p in parts], crc32=zlib.crc32(b"".join(parts)))
    return MAGIC + json.dumps(header).encode() + b"\n" + b"".join(parts)


DAMAGE = {
    "truncated": lambda d: d[: len(d) // 2],
    "one byte flipped": lambda d: d[:-100] + bytes([d[-100] ^ 0x40]) + d[-99:],
    "empty": lambda d: b"",
    "foreign": lambda d: b"\x89PNG\r\n\x1a\n" + d[8:200],
    "bad header": lambda d: MAGIC + b"{not json\n" + d[len(MAGIC) + 10 :],
    "other format": lambda d: _rewrite_header(d, format=999),
    "other version": lambda d: _rewrite_header(d, netmon="0.0.0"),
    "other store": lambda d: _rewrite_header(d, store="sqlite:///elsewhere.db"),
    "code changed": lambda d: _rewrite_header(d, code={"netmon.window": "0" * 16}),
    "store reset": lambda d: _rewrite_header(d, row_id=10**9),
    "older than the window": lambda d: _rewrite_header(d, taken_at=T0 - 86400.0),
    "hostile pickle": _hostile,
}


@pytest.mark.parametrize("damage", list(DAMAGE))
async def test_a_bad_snapshot_is_a_warning_and_the_full_reread(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    inv = parse_inventory(inventory_yaml(5, 4, 3600.0, 100.0))
    rng, probes = random.Random(5), Probes(5, inv)
    run = Run.start(tmp_path / "netmon.db", inv, FakeClock(T0))
    run.advance(probes, T0 + 900.0, rng)
    await run.monitor.stop()
    path = tmp_path / FILE_NAME
    path.write_bytes(DAMAGE[damage](path.read_bytes()))
    now = run.clock.now
    full = restarted(tmp_path / "netmon.db", inv, now, snapshot=False)
    caplog.clear()
    caplog.set_level(logging.INFO)
    restored = restarted(tmp_path / "netmon.db", inv, now, snapshot=True)
    assert len(warnings(caplog)) == 1 and "re-reading the window" in warnings(caplog)[0]
    assert "Traceback" not in caplog.text
    assert picture(restored) == picture(full)


async def test_a_directory_in_its_place_and_an_unwritable_folder_are_log_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    inv = parse_inventory(inventory_yaml(6, 2, 3600.0, 10.0))
    (tmp_path / FILE_NAME).mkdir()
    caplog.set_level(logging.INFO)
    run = Run.start(tmp_path / "netmon.db", inv, FakeClock(T0))
    assert len(warnings(caplog)) == 1
    blocked = tmp_path / "file"
    blocked.write_text("")
    run.monitor.snapshot = Snapshotter(blocked / "sub" / FILE_NAME)  # its folder cannot exist
    assert await run.monitor.snapshot.take(run.monitor) is None
    assert "snapshot not written" in caplog.text


def test_no_snapshot_is_the_full_reread_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    run = Run.start(tmp_path / "netmon.db", parse_inventory(inventory_yaml(1, 2, 60.0, 1.0)),
                    FakeClock(T0))  # fmt: skip
    assert not warnings(caplog) and "no snapshot at" in caplog.text
    assert run.monitor.status  # judged from the (empty) store


async def test_a_monitor_still_loading_is_never_saved(tmp_path: Path) -> None:
    inv = parse_inventory(inventory_yaml(2, 2, 600.0, 1.0))
    store = Store(f"sqlite:///{tmp_path / 'netmon.db'}")
    store.migrate()
    monitor = Monitor(inv, store, Engines(), FakeClock(T0))
    assert await Snapshotter(tmp_path / FILE_NAME).take(monitor) is None
    assert not (tmp_path / FILE_NAME).exists()


# --- settings and the first scrape -----------------------------------------------------------------


def test_snapshot_every_setting() -> None:
    assert Settings.from_env({"NETMON_DATA_DIR": "/srv/n"}).snapshot_every == 300.0
    env = {"NETMON_DATA_DIR": "/srv/n", "NETMON_SNAPSHOT_EVERY": "0"}
    assert Settings.from_env(env).snapshot_every == 0.0
    with pytest.raises(Exception, match="NETMON_SNAPSHOT_EVERY"):
        Settings.from_env({**env, "NETMON_SNAPSHOT_EVERY": "-5"})


async def test_a_scrape_during_loading_waits_for_the_restored_site_series(tmp_path: Path) -> None:
    """Prometheus's first scrape of a restarting netmon gets the site series (held while the
    monitor loads, up to its scrape timeout); a plain GET is answered at once, without them."""
    inv = parse_inventory(inventory_yaml(4, 3, 3600.0, 10.0))
    store = Store(f"sqlite:///{tmp_path / 'netmon.db'}")
    store.migrate()
    monitor = Monitor(inv, store, Engines(), FakeClock(T0))
    monitor.evaluate()
    app = create_app(monitor, make_registry(monitor, "test", "none"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        plain = await c.get("/metrics")
        assert "netmon_site_verdict" not in plain.text and "netmon_results_taken" in plain.text
        asyncio.get_running_loop().call_later(0.2, setattr, monitor, "ready", True)
        held = await c.get("/metrics", headers={"X-Prometheus-Scrape-Timeout-Seconds": "10"})
    assert "netmon_site_verdict{" in held.text


# --- the real process ------------------------------------------------------------------------------


@pytest.mark.slow
def test_netmon_run_restarts_from_its_snapshot(tmp_path: Path) -> None:
    """SIGTERM writes the snapshot; the next run restores it (no re-read) and serves the same
    verdicts and since-times."""
    config = tmp_path / "inventory.yaml"
    config.write_text("defaults: {interval: 1s, count: 2, timeout: 300ms, spacing: 100ms}\n"
                      "policy: {window: 5m, min_probes: 2}\nsites:\n"
                      "  - {id: a, name: A, district: Ranchi, type: chc, devices: "
                      "[{name: wan-1, role: wan, address: 127.10.1.1}]}\n")  # fmt: skip
    port = free_port()
    env = {**os.environ, "NETMON_DATA_DIR": str(tmp_path), "NETMON_LOG_LEVEL": "info"}
    cmd = [sys.executable, "-m", "netmon.cli", "run", "--config", str(config), "--port", str(port)]
    base = f"http://127.0.0.1:{port}"

    def run_once(log: Path) -> dict[str, tuple[str, str]]:
        with log.open("w") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
            try:

                def verdicts() -> dict[str, tuple[str, str]] | None:
                    data = httpx.get(f"{base}/api/v1/sites", timeout=5).json().get("data", [])
                    got = {s["id"]: (s["verdict"], s["since"]) for s in data}
                    return got if got.get("a", ("",))[0] == "fully_functional" else None

                seen = wait_for(verdicts)
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(30) == 0
                return seen  # type: ignore[no-any-return]
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)

    first = run_once(tmp_path / "first.log")
    assert (tmp_path / FILE_NAME).is_file()
    second = run_once(tmp_path / "second.log")
    log = (tmp_path / "second.log").read_text()
    assert "restored 1 evidence objects from the snapshot" in log, log
    assert "refilled windows" in log and "re-reading" not in log
    assert second == first  # the verdict and its since survive the restart
