"""Availability against known faults, in the facility lab with a real ``netmon run`` (root).

Two lab sites probed every 2 s. The uplink of one is cut for a known 20 s: that many ``down``
seconds (± two probe intervals), one outage of that length with its reason. The other is cut as
long, inside a maintenance window announced in the inventory: maintenance seconds, no outage,
availability 1.0. Then netmon is stopped for 20 s and started again on the same database: that
stretch is ``no_data`` for every site, neither down nor up.
"""

from __future__ import annotations

import datetime as dt
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from netmon.lab import Lab
from netmon.lab.model import parse_scenario
from netmon.lab.runner import NetmonProcess
from netmon.rollup import SLOT
from tests.lab.conftest import wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow]
CUT = 12.0  # seconds each uplink is cut
INTERVAL = 2.0  # the lab's probe interval
STOPPED = 25.0  # seconds netmon is not running
# How far a measured edge may be off: an outage starts with the first probe that lost echoes
# (up to one interval early) and ends when the next evaluation (every 5 s) sees the uplink
# answer again. With the production interval (60 s) that is within one probe interval; the
# lab probes every 2 s, faster than the monitor evaluates.
EDGE = 5.0 + INTERVAL


def scenario(site: str) -> str:
    return f"""
id: {site}
description: availability drill
site:
  id: {site}
  name: CHC {site} (lab)
  district: Ranchi
  type: chc
  devices:
    - {{name: wan-1, role: wan}}
    - {{name: ap-01, role: ap, parent: wan-1}}
"""


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()


def availability(server: NetmonProcess, site: str, start: float, end: float) -> dict[str, Any]:
    query = urllib.parse.urlencode({"from": iso(start), "to": iso(end)})
    body: dict[str, Any] = server.get(f"/api/v1/sites/{site}/availability?{query}")
    return body


def verdict(server: NetmonProcess, site: str) -> str:
    return str(server.get(f"/api/v1/sites/{site}")["verdict"])


def announce(inventory: Path, site: str, start: float, end: float) -> None:
    """Add a maintenance window to one site of the lab's inventory."""
    doc = yaml.safe_load(inventory.read_text())
    (entry,) = [s for s in doc["sites"] if s["id"] == site]
    entry["maintenance"] = [{"start": iso(start), "end": iso(end), "reason": "BSNL work"}]
    inventory.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_known_cuts_maintenance_and_netmon_downtime_are_reported_as_such(
    start_lab: Callable[..., Lab], tmp_path: Path
) -> None:
    lab = start_lab([parse_scenario(scenario("av-cut")), parse_scenario(scenario("av-mnt"))],
                    tmp_path / "lab")  # fmt: skip
    window_start = time.time() + 22  # netmon judges both sites before it
    announce(lab.inventory_path, "av-mnt", window_start, window_start + CUT + 30)
    workdir = tmp_path / "netmon"
    workdir.mkdir()
    db = f"sqlite:///{workdir / 'netmon.db'}"

    def start() -> NetmonProcess:
        server = NetmonProcess(lab.inventory_path, workdir, database_url=db, env=lab.netmon_env)
        server.wait_ready()
        return server

    server = start()
    try:
        both_up = wait_until(
            lambda: all(verdict(server, s) == "fully_functional" for s in ("av-cut", "av-mnt")), 25
        )
        assert both_up, server.log()
        observed_from = time.time()
        assert observed_from < window_start - 2  # some judged time outside the window
        assert wait_until(lambda: time.time() >= window_start + 2, 40)
        cut_at = time.time()
        lab.outage("av-cut/wan-1", CUT)
        lab.outage("av-mnt/wan-1", CUT)
        assert wait_until(lambda: verdict(server, "av-cut") == "down", CUT), server.log()
        # back up: no longer down (degraded while the lost echoes are in its window)
        assert wait_until(lambda: verdict(server, "av-cut") != "down", CUT + 15), server.log()
        time.sleep(4)
        observed_to = time.time()
        cut = availability(server, "av-cut", observed_from, observed_to)
        mnt = availability(server, "av-mnt", observed_from, observed_to)
    finally:
        assert server.stop() == 0, server.log()
    assert cut["seconds"]["down"] == pytest.approx(CUT, abs=EDGE), cut
    (outage,) = cut["outages"]
    assert outage["duration_seconds"] == pytest.approx(CUT, abs=EDGE)
    assert dt.datetime.fromisoformat(outage["start"]).timestamp() == pytest.approx(cut_at, abs=EDGE)
    assert any("wan-1" in r for r in outage["reasons"]), outage
    judged = observed_to - observed_from - cut["seconds"]["no_data"]
    assert cut["availability"] == pytest.approx(1 - cut["seconds"]["down"] / judged)
    assert mnt["seconds"]["down"] == 0 and mnt["outages"] == [], mnt
    assert mnt["seconds"]["maintenance"] >= CUT and mnt["availability"] == 1.0

    stopped_at = time.time()
    time.sleep(STOPPED)
    server = start()
    try:
        assert wait_until(lambda: verdict(server, "av-cut") != "unknown", 30)
        time.sleep(12)  # a coverage slot or two after the restart
        after = {s: availability(server, s, stopped_at, time.time()) for s in ("av-cut", "av-mnt")}
    finally:
        assert server.stop() == 0, server.log()
    for site, body in after.items():
        seconds = body["seconds"]
        # coverage is kept in 10 s slots: the stop and the start each move an edge by < 1 slot
        assert STOPPED - 2 * SLOT <= seconds["no_data"] <= STOPPED + 15, (site, body)
        assert seconds["down"] == 0 and body["outages"] == [], (site, body)
