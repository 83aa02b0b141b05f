"""A site agent cut from its server, in the facility lab (root): nothing lost, judged in time.

``netmon serve`` and one ``netmon poll`` per site (its group is its site: a site agent), each
agent talking to the server through a TCP forwarder on loopback that the test cuts for
:data:`CUT` seconds (``NETMON_LAB_CUT`` overrides it: the closing note's 10-minute run). Inside
the cut, one site's uplink really goes down for :data:`OUTAGE` seconds; the other's uplink
loses a fifth of its echoes all along. Live, both are ``unknown`` (``no_poller``) once the
agents' leases run out; afterwards -- the outboxes replayed, the stretch re-judged
(netmon.history) -- the cut is no_data for neither: the first was down for the outage and
fully functional around it, the second degraded by its loss, as if nothing had been cut.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from netmon.lab import Lab
from netmon.lab.model import parse_scenario
from netmon.lab.netns import die_with_parent
from netmon.lab.runner import NetmonProcess, free_port
from tests.lab.conftest import wait_until
from tests.netmon_process import stop_all

pytestmark = [pytest.mark.root, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
CUT = float(os.environ.get("NETMON_LAB_CUT", "40"))  # seconds the agents cannot reach the server
OUTAGE = 12.0  # seconds rp-down's uplink is down, inside the cut
FAILOVER = 6.0  # NETMON_FAILOVER_DELAY: an agent's lease runs out this long after its last beat
EDGE = 5.0 + 2.0  # an outage's edges: one evaluation (5 s) and one lab probe interval (2 s)
SITES = {"rp-down": "", "rp-lossy": "{loss: 0.2}"}


def scenario(site: str, faults: str) -> str:
    wan = f"{{name: wan-1, role: wan, faults: {faults}}}" if faults else "{name: wan-1, role: wan}"
    return f"""
id: {site}
description: a site agent cut from its server
site:
  id: {site}
  name: CHC {site} (lab)
  district: Ranchi
  type: chc
  devices:
    - {wan}
    - {{name: ap-01, role: ap, parent: wan-1}}
"""


class Wan:
    """A TCP forwarder on loopback between the agents and the server, which can be cut."""

    def __init__(self, target: int) -> None:
        self.target, self.port = target, free_port()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.restore()

    def restore(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and reset the open ones (a WAN cut, seen from both ends)."""
        assert self._listener is not None
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                if listener.fileno() == -1:
                    return
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(a: socket.socket, b: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := a.recv(65536):
            b.sendall(data)
    for s in (a, b):
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()


def ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """``start(name, *args)``: a ``netmon`` process logging to tmp_path/<name>.log."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str, *args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (tmp_path / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "netmon.cli", *args], cwd=ROOT,
                                    env=env, stdout=log, stderr=log,
                                    preexec_fn=die_with_parent)  # fmt: skip
        procs.append(proc)
        return proc

    yield start
    stop_all(procs, grace=20.0)


def test_a_site_agent_cut_from_its_server_is_judged_as_if_nothing_had_been_cut(
    start_lab: Callable[..., Lab], agents: Callable[..., subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    lab = start_lab([parse_scenario(scenario(s, f)) for s, f in SITES.items()], tmp_path / "lab")
    doc = yaml.safe_load(lab.inventory_path.read_text())
    for entry in doc["sites"]:
        entry["poller_group"] = entry["id"]  # a site agent: the site's own poller group
    lab.inventory_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    work = tmp_path / "netmon"
    work.mkdir()
    db = f"sqlite:///{work / 'netmon.db'}"
    extra = {**lab.netmon_env, "NETMON_FAILOVER_DELAY": str(FAILOVER),
             "NETMON_SNAPSHOT_EVERY": "0", "NETMON_LOG_LEVEL": "info"}  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETMON_")}
    env.update(extra, PYTHONPATH=str(ROOT))
    tokens = {}
    for site in SITES:
        made = subprocess.run([sys.executable, "-m", "netmon.cli", "token", "create", "--name",
                               f"agent-{site}", "--scope", "poller", "--database-url", db],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
                              check=True)  # fmt: skip
        tokens[site] = tmp_path / f"{site}.token"
        tokens[site].write_text(made.stdout)
    server = NetmonProcess(lab.inventory_path, work, database_url=db, env=extra, role="serve")
    server.wait_ready()
    wan = Wan(server.port)
    try:
        for site in SITES:
            agents(f"agent-{site}", "poll", "--server", f"http://127.0.0.1:{wan.port}",
                   "--token-file", str(tokens[site]), "--group", site,
                   env={**env, "NETMON_DATA_DIR": str(tmp_path / f"agent-{site}")})  # fmt: skip
        assert wait_until(lambda: verdicts(server) == {"rp-down": "fully_functional",
                                                       "rp-lossy": "degraded"}, 60), server.log()  # fmt: skip
        cut_from = time.time()
        wan.cut()
        assert wait_until(lambda: set(verdicts(server).values()) == {"unknown"}, FAILOVER + 15)
        seen_live = {s: reasons(server, s) for s in SITES}
        assert wait_until(lambda: time.time() >= cut_from + FAILOVER + 8, 20)
        outage_at = time.time()
        lab.outage("rp-down/wan-1", OUTAGE)
        assert wait_until(lambda: time.time() >= cut_from + CUT, CUT + 5)
        wan.restore()
        cut_to = time.time()
        judged = lambda: all(  # noqa: E731
            availability(server, s, cut_from, cut_to)["seconds"]["no_data"] < SLOT_EDGE
            for s in SITES
        )
        assert wait_until(judged, 60), server.log()
        after = {s: availability(server, s, cut_from, cut_to) for s in SITES}
        history = {s: server.get(f"/api/v1/sites/{s}/history?limit=100")["data"] for s in SITES}
    finally:
        wan.cut()
        assert server.stop() == 0, server.log()
    assert seen_live == {s: ["no_poller"] for s in SITES}  # live: not watched, not down
    down, lossy = after["rp-down"], after["rp-lossy"]
    assert down["seconds"]["down"] == pytest.approx(OUTAGE, abs=EDGE), down
    (outage,) = down["outages"]
    assert ts(outage["start"]) == pytest.approx(outage_at, abs=EDGE)
    assert any("wan-1" in r for r in outage["reasons"]), outage
    assert down["seconds"]["fully_functional"] + down["seconds"]["degraded"] >= CUT - OUTAGE - EDGE
    assert lossy["seconds"]["degraded"] >= CUT - SLOT_EDGE and lossy["outages"] == [], lossy
    for site, items in history.items():  # the cut's history: no unknown left in it
        during = [c for c in items if cut_from < ts(c["since"]) < cut_to]
        assert "unknown" not in {c["verdict"] for c in during}, (site, items)
    lossy_reasons = {r["criterion"] for c in history["rp-lossy"] for r in c["reasons"]}
    assert "uplink_loss" in lossy_reasons, history["rp-lossy"]
    print(f"\ncut {CUT:.0f} s: rp-down {down['seconds']} / rp-lossy {lossy['seconds']}")


SLOT_EDGE = 2.0  # seconds of no_data the cut's edges may keep (the first beat after the cut)


def verdicts(server: NetmonProcess) -> dict[str, str]:
    try:
        return {s["id"]: s["verdict"] for s in server.get("/api/v1/sites")["data"]}
    except OSError:
        return {}


def reasons(server: NetmonProcess, site: str) -> list[str]:
    return [r["criterion"] for r in server.get(f"/api/v1/sites/{site}")["reasons"]]


def availability(server: NetmonProcess, site: str, start: float, end: float) -> dict[str, Any]:
    query = urllib.parse.urlencode({"from": iso(start), "to": iso(end)})
    body: dict[str, Any] = server.get(f"/api/v1/sites/{site}/availability?{query}")
    return body
