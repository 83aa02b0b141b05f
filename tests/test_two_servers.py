"""Two ``netmon serve`` on one PostgreSQL (netmon.judging): one judging lease, every result
folded by both, the leader killed with SIGKILL -- the verdict history has every change once.

Real processes over loopback: two servers, three pollers (two of the group ``central``, one per
server; one of the group ``edge`` given both servers, the leader first), and a local HTTP
server whose status a test flips (a known fault: the site is ``degraded`` while it answers
500). The fault clears while the leader is dead and before its lease runs out (the test holds
the dead leader's lease until the follower has judged that: a state, not a race): only the
follower saw that change (the edge poller moved to it), and must write it when it takes the
lease. The central poller of the dead server knows no other: its sites go to the other central
poller after ``failover_delay`` (``unknown``, ``no_poller`` meanwhile, never down).

And a leader stalled (SIGSTOP) past its lease while a fault begins: the other takes the lease
and writes the change; the stalled one, woken, steps down and writes nothing.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from netmon.fleet import owner
from tests.netmon_process import stop_all
from tests.test_e2e import wait_for

ROOT = Path(__file__).resolve().parents[1]
PORTS = {"s1": 18401, "s2": 18402}
WEB_PORT = 18403
CENTRAL = [f"chc-{i}" for i in range(1, 7)]
FAULTY = "dh-web"
FAILOVER = 20  # seconds (the dead leader's lease is held by the test until s2 judged the end)
OK, FAULT = "fully_functional", "degraded"

INVENTORY = (
    "defaults: {interval: 1s, count: 2, timeout: 500ms, spacing: 100ms}\n"
    "policy: {window: 1m, min_probes: 1}\nsites:\n"
    + "".join(
        f"  - {{id: {site}, name: CHC {i}, district: Ranchi, type: chc, devices: "
        f"[{{name: wan-1, role: wan, address: 127.83.{i}.1}}]}}\n"
        for i, site in enumerate(CENTRAL, 1)
    )
    + f"  - id: {FAULTY}\n    name: DH web\n    district: Ranchi\n    type: medical_college\n"
    "    poller_group: edge\n    devices:\n"
    "      - {name: wan-1, role: wan, address: 127.83.9.1}\n"
    "      - {name: wlc-1, role: controller, address: 127.83.9.2, parent: wan-1,\n"
    f'         http: {{url: "http://127.0.0.1:{WEB_PORT}/", interval: 1s, timeout: 2s}}}}\n'
)


class Web(http.server.ThreadingHTTPServer):
    """The site's web UI: answers ``status`` (the test flips it)."""

    status = 200


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        body = f"status {self.server.status}".encode()  # type: ignore[attr-defined]
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class Pair:
    """Two servers and their pollers, real processes; every one stopped at the end."""

    def __init__(self, tmp: Path, url: str) -> None:
        self.tmp, self.url = tmp, url
        (tmp / "inventory.yaml").write_text(INVENTORY)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("NETMON_")}
        self.env.update(NETMON_FAILOVER_DELAY=str(FAILOVER), NETMON_LOG_LEVEL="info",
                        NETMON_SNAPSHOT_EVERY="0")  # fmt: skip
        self.procs: dict[str, subprocess.Popen[str]] = {}

    def netmon(self, *args: str) -> str:
        return subprocess.run([sys.executable, "-m", "netmon.cli", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=60, check=True).stdout  # fmt: skip

    def start(self, name: str, *args: str) -> None:
        env = {**self.env, "NETMON_DATA_DIR": str(self.tmp / name)}
        with (self.tmp / f"{name}.log").open("a") as log:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "netmon.cli", *args], cwd=ROOT, env=env, stdout=log,
                stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip

    def serve(self, name: str) -> None:
        self.start(name, "serve", "--config", str(self.tmp / "inventory.yaml"), "--port",
                   str(PORTS[name]), "--database-url", self.url)  # fmt: skip

    def poller(self, name: str, servers: list[str], group: str = "central") -> None:
        token = self.tmp / f"{name}.token"
        token.write_text(self.netmon("token", "create", "--name", name, "--scope", "poller",
                                     "--database-url", self.url))  # fmt: skip
        urls = ",".join(f"http://127.0.0.1:{PORTS[s]}" for s in servers)
        self.start(name, "poll", "--server", urls, "--token-file", str(token), "--group", group)

    def get(self, server: str, path: str) -> Any:
        try:
            r = httpx.get(f"http://127.0.0.1:{PORTS[server]}{path}", timeout=10)
        except httpx.HTTPError:
            return None
        return r.json() if r.status_code == 200 else None

    def role(self, server: str) -> str | None:
        health = self.get(server, "/healthz") or {}
        return health.get("judge") if health.get("status") != "loading" else None

    def verdicts(self, server: str) -> dict[str, str]:
        sites = self.get(server, "/api/v1/sites") or {"data": []}
        return {s["id"]: s["verdict"] for s in sites["data"]}

    def stop(self) -> None:
        stop_all(self.procs.values())

    def lease(self, expires: str) -> str:
        """Set the judging lease's expiry (SQL, the database's clock); its holder."""
        engine = create_engine(self.url)
        with engine.begin() as conn:
            holder = conn.execute(text(f"UPDATE judge_lease SET expires_at = {expires} WHERE "
                                       "name = 'judge' RETURNING holder")).scalar_one()  # fmt: skip
        engine.dispose()
        return str(holder)

    def history(self) -> dict[str, list[tuple[str, list[str], float]]]:
        """Every site's stored verdict changes, oldest first: (verdict, criteria, since)."""
        engine = create_engine(self.url)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT site_id, verdict, reasons, since FROM verdict_change "
                                     "ORDER BY changed_at, id")).all()  # fmt: skip
        engine.dispose()
        found: dict[str, list[tuple[str, list[str], float]]] = {}
        for site, verdict, reasons, since in rows:
            criteria = [r["criterion"] for r in json.loads(reasons or "[]")]
            found.setdefault(site, []).append((verdict, criteria, since))
        return found


@pytest.fixture
def web() -> Iterator[Web]:
    server = Web(("127.0.0.1", WEB_PORT), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def pair(tmp_path: Path, database_url: str) -> Iterator[Pair]:
    work = Pair(tmp_path, database_url)
    work.netmon(
        "token", "create", "--name", "reader", "--scope", "read", "--database-url", database_url
    )  # fmt: skip: the schema, before the servers
    try:
        yield work
    finally:
        work.stop()
        for name in work.procs:
            print(f"--- {name}.log (tail)\n" + (work.tmp / f"{name}.log").read_text()[-3000:])


def _after_first_ok(changes: list[tuple[str, list[str], float]]) -> list[str]:
    verdicts = [v for v, _, _ in changes]
    return verdicts[verdicts.index(OK) :] if OK in verdicts else verdicts


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_two_servers_one_killed_no_verdict_change_lost_or_doubled(pair: Pair, web: Web) -> None:
    pair.serve("s1")
    assert wait_for(lambda: pair.role("s1") == "leader", seconds=40)
    pair.serve("s2")
    assert wait_for(lambda: pair.role("s2") == "follower", seconds=40)
    pair.poller("pA", ["s1"])
    pair.poller("pB", ["s2"])
    pair.poller("pE", ["s1", "s2"], group="edge")
    everything = {*CENTRAL, FAULTY}

    def all_ok(server: str) -> bool:
        found = pair.verdicts(server)
        return set(found) == everything and set(found.values()) == {OK}

    assert wait_for(lambda: all_ok("s1") and all_ok("s2"), seconds=60)  # both fold everything

    web.status = 500  # the fault, judged by the leader
    assert wait_for(lambda: pair.verdicts("s1").get(FAULTY) == FAULT, seconds=30)
    assert wait_for(lambda: pair.verdicts("s2").get(FAULTY) == FAULT, seconds=30)
    assert wait_for(lambda: FAULT in [v for v, _, _ in pair.history().get(FAULTY, [])], seconds=10)
    killed_at = datetime.now().timestamp()
    pair.procs["s1"].send_signal(signal.SIGSTOP)  # it renews no more: its lease is held ...
    hour = "extract(epoch from clock_timestamp()) + 3600"
    assert f":{pair.procs['s1'].pid}:" in pair.lease(hour)  # ... for an hour: s2 must wait
    pair.procs["s1"].send_signal(signal.SIGKILL)
    pair.procs["s1"].wait(10)

    web.status = 200  # the fault ends while nobody may write: the follower must keep it
    assert wait_for(lambda: pair.verdicts("s2").get(FAULTY) == OK, seconds=30)
    assert pair.role("s2") == "follower"  # (the dead leader's lease is held: no race)
    let_go = datetime.now().timestamp()
    pair.lease("0")  # the dead leader's lease runs out
    assert wait_for(lambda: pair.role("s2") == "leader", seconds=FAILOVER + 30)
    took = datetime.now().timestamp() - let_go
    handed = {s for s in CENTRAL if owner(s, ["pA", "pB"]) == "pA"}

    def handed_over() -> bool:  # pA's sites: unknown from its last heartbeat, then pB's
        history = pair.history()
        return all(_after_first_ok(history.get(s, [])) == [OK, "unknown", OK] for s in handed)

    assert wait_for(handed_over, seconds=FAILOVER + 60) and wait_for(lambda: all_ok("s2"), 30)
    handed_at = datetime.now().timestamp() - killed_at

    web.status = 500  # a fault under the new leader, written by it
    assert wait_for(lambda: pair.verdicts("s2").get(FAULTY) == FAULT, seconds=30)
    web.status = 200
    assert wait_for(lambda: pair.verdicts("s2").get(FAULTY) == OK, seconds=30)
    pair.stop()  # SIGTERM: s2 writes its last changes and lets the lease go

    history = pair.history()
    for site, changes in history.items():
        verdicts = [v for v, _, _ in changes]
        assert "down" not in verdicts, (site, changes)  # a dead server is not a site down
        doubled = [a for a, b in zip(verdicts, verdicts[1:], strict=False) if a == b]
        assert not doubled, (site, changes)
    assert _after_first_ok(history[FAULTY]) == [OK, FAULT, OK, FAULT, OK], history[FAULTY]
    assert handed and handed != set(CENTRAL)  # both central pollers served some sites
    for site in CENTRAL:
        expected = [OK, "unknown", OK] if site in handed else [OK]
        assert _after_first_ok(history[site]) == expected, (site, history[site])
    for site in handed:  # unwatched from pA's last heartbeat: the time is no data, not down
        gap = [c for c in history[site] if c[0] == "unknown"][-1]
        assert gap[1] == ["no_poller"] and gap[2] <= killed_at, (site, gap)
    log = (pair.tmp / "s2.log").read_text()
    assert "judging: leader now" in log
    assert "trying the next server, http://127.0.0.1:18402" in (pair.tmp / "pE.log").read_text()
    print(f"\nleader killed: s2 led {took:.1f} s after its lease ran out, every site fully "
          f"functional again {handed_at:.1f} s after the kill (failover_delay {FAILOVER} s)")  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_stalled_leader_writes_nothing_once_its_lease_is_taken(pair: Pair, web: Web) -> None:
    pair.env["NETMON_FAILOVER_DELAY"] = "8"
    pair.serve("s1")
    assert wait_for(lambda: pair.role("s1") == "leader", seconds=40)
    pair.serve("s2")
    assert wait_for(lambda: pair.role("s2") == "follower", seconds=40)
    pair.poller("pB", ["s2"])  # every result reaches s1 only through the store
    pair.poller("pE", ["s2"], group="edge")
    everything = {*CENTRAL, FAULTY}
    assert wait_for(lambda: all(set(pair.verdicts(s).values()) == {OK}
                                and set(pair.verdicts(s)) == everything for s in PORTS), seconds=60)  # fmt: skip

    pair.procs["s1"].send_signal(signal.SIGSTOP)  # the leader stalls ...
    try:
        web.status = 500  # ... while the fault begins: judged by s2, which takes the lease
        assert wait_for(lambda: pair.verdicts("s2").get(FAULTY) == FAULT, seconds=30)
        assert wait_for(lambda: pair.role("s2") == "leader", seconds=40)
    finally:
        pair.procs["s1"].send_signal(signal.SIGCONT)
    s1_log = pair.tmp / "s1.log"
    assert wait_for(lambda: "judging: no longer the leader" in s1_log.read_text(), seconds=30)
    assert wait_for(lambda: pair.verdicts("s1").get(FAULTY) == FAULT, seconds=30)  # folded
    web.status = 200
    assert wait_for(lambda: all(pair.verdicts(s).get(FAULTY) == OK for s in PORTS), seconds=30)
    assert pair.role("s1") == "follower"
    pair.stop()

    history = pair.history()
    for site, changes in history.items():
        verdicts = [v for v, _, _ in changes]
        doubled = [a for a, b in zip(verdicts, verdicts[1:], strict=False) if a == b]
        assert not doubled and "down" not in verdicts, (site, changes)
    assert _after_first_ok(history[FAULTY]) == [OK, FAULT, OK], history[FAULTY]
    assert all(_after_first_ok(history[site]) == [OK] for site in CENTRAL), history
