"""End to end: ``netmon run`` as a subprocess on a small loopback inventory with short
intervals; read the API and /metrics, then SIGTERM and check every result taken was written."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

INVENTORY = """
defaults: {interval: 2s, count: 3, timeout: 500ms, spacing: 100ms}
policy: {window: 5m}
sites:
  - id: mc-rims-ranchi
    name: RIMS Ranchi
    district: Ranchi
    type: medical_college
    devices:
      - {name: wan-1, role: wan, address: 127.10.1.1}
      - {name: core-sw-1, role: switch, address: 127.10.3.1, parent: wan-1}
      - {name: wlc-1, role: controller, address: 127.10.4.1, parent: core-sw-1}
      - {name: ap-001, role: ap, address: 127.10.6.1, parent: core-sw-1}
      - {name: ap-002, role: ap, address: 127.10.6.2, parent: core-sw-1}
  - id: chc-bundu
    name: Community Health Centre, Bundu
    district: Ranchi
    type: chc
    devices:
      - {name: wan-1, role: wan, address: 127.80.1.1}
      - {name: ap-1, role: ap, address: 127.80.6.1, parent: wan-1}
  - id: chc-tamar
    name: Community Health Centre, Tamar
    district: Ranchi
    type: chc
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate, seconds: float = 40.0):  # type: ignore[no-untyped-def]
    """Poll until predicate() returns something truthy; bounded in time and count."""
    deadline = time.monotonic() + seconds
    for _ in range(int(seconds * 4)):
        try:
            value = predicate()
            if value:
                return value
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            break
        time.sleep(0.25)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def netmon(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str], Path]]:
    config = tmp_path / "inventory.yaml"
    config.write_text(INVENTORY)
    db = tmp_path / "netmon.db"
    port = free_port()
    log = (tmp_path / "netmon.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "netmon.cli", "run", "--config", str(config), "--port", str(port),
         "--database-url", f"sqlite:///{db}"],
        stdout=log, stderr=subprocess.STDOUT, text=True, env={**os.environ, "NETMON_LOG_LEVEL": "info", "NETMON_DATA_DIR": str(tmp_path)},
    )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}", proc, db
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()


def test_run_serves_verdicts_and_metrics_then_flushes_on_sigterm(netmon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base, proc, db = netmon

    def settled() -> dict[str, str] | None:
        r = httpx.get(f"{base}/api/v1/sites", timeout=5)
        if r.status_code == 503:  # listening, still loading (the documented first answer)
            return None
        sites = r.json()["data"]
        verdicts = {s["id"]: s["verdict"] for s in sites}
        return (
            verdicts
            if verdicts.get("mc-rims-ranchi") == "fully_functional"
            and verdicts.get("chc-bundu") == "fully_functional"
            else None
        )

    verdicts = wait_for(settled)
    assert verdicts == {"mc-rims-ranchi": "fully_functional", "chc-bundu": "fully_functional",
                        "chc-tamar": "not_installed"}  # fmt: skip

    detail = httpx.get(f"{base}/api/v1/sites/mc-rims-ranchi", timeout=5).json()
    for dev in detail["device_list"]:
        assert dev["state"] == "up"
        assert dev["last"]["sent"] == 3 and dev["last"]["received"] == 3
        assert 0 < dev["last"]["rtt_max_seconds"] < 0.5

    metrics = httpx.get(f"{base}/metrics", timeout=5).text
    up = [
        s
        for f in text_string_to_metric_families(metrics)
        if f.name == "netmon_device_up"
        for s in f.samples
    ]
    assert len(up) == 7 and all(s.value == 1.0 for s in up)
    taken = next(s.value for f in text_string_to_metric_families(metrics)
                 if f.name == "netmon_results_taken" for s in f.samples)  # fmt: skip
    assert taken >= 7
    assert httpx.get(f"{base}/healthz", timeout=5).json()["icmp_mode"] in ("raw", "dgram")

    # SIGHUP reloads the inventory: a broken file is refused, a good one adds a site.
    config = tmp_path / "inventory.yaml"
    config.write_text(INVENTORY + "  - {id: broken\n")
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload refused" in (tmp_path / "netmon.log").read_text())
    config.write_text(
        INVENTORY.replace(
            "  - id: chc-tamar",
            """  - id: chc-angara
    name: Community Health Centre, Angara
    district: Ranchi
    type: chc
    devices: [{name: wan-1, role: wan, address: 127.80.2.1}]
  - id: chc-tamar""",
        )
    )
    proc.send_signal(signal.SIGHUP)

    def angara() -> str | None:
        sites = httpx.get(f"{base}/api/v1/sites?verdict=fully_functional", timeout=5).json()["data"]
        return next((s["id"] for s in sites if s["id"] == "chc-angara"), None)

    wait_for(angara)

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    log = (tmp_path / "netmon.log").read_text()
    assert "stopped;" in log
    assert "reload refused, keeping the running inventory" in log
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT COUNT(*) FROM probe_result").fetchone()[0]
        changes = conn.execute(
            "SELECT COUNT(*) FROM verdict_change WHERE verdict = 'fully_functional'"
        ).fetchone()[0]
    assert rows >= taken  # nothing taken before the scrape was lost at shutdown
    assert changes == 3


def test_run_refuses_broken_inventory(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("sites:\n  - {id: a, name: A, district: Ranchi, type: clinic}\n")
    proc = subprocess.run([sys.executable, "-m", "netmon.cli", "run", "--config", str(config), "--port",
                           str(free_port())], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 78  # EX_CONFIG: systemd does not restart it
    assert f"{config}:2: sites[0].type: Input should be" in proc.stderr
