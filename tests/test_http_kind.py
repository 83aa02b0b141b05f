"""The http kind through the seam: inventory, monitor, verdict rule and metrics, then
``netmon run`` against a real local server whose status flips between 500 and 200."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from netmon.inventory import load_inventory
from netmon.monitor import Monitor
from netmon.store import Store
from netmon.verdict import Criterion, Verdict
from probes import KINDS, Engines, ProbeResult
from probes.http import HttpFindings, HttpSettings, TlsFindings
from tests.conftest import INVENTORIES, FakeClock
from tests.http_servers import Server, serve
from tests.test_e2e import free_port, wait_for

DAY = 86400.0


def test_valid_inventory_gives_http_devices_their_settings() -> None:
    inv = load_inventory(INVENTORIES / "valid-http.yaml")
    site = inv.sites[0]
    wlc, his = site.device("wlc-1"), site.device("his")
    assert wlc is not None and his is not None
    assert wlc.kinds == ["icmp", "http"] and his.kinds == ["icmp", "http"]
    settings = his.http  # type: ignore[attr-defined]
    assert isinstance(settings, HttpSettings)
    assert settings.expect_status == ("2xx", "302") and settings.max_latency == 3.0
    job = KINDS["http"].job(inv, site, his)
    assert job.interval == 120.0 and job.params.deadline == 11.0
    assert site.device("wan-1").kinds == ["icmp"]  # type: ignore[union-attr]
    cloud = site.device("his-cloud")  # its URL names the target: no address needed
    assert cloud is not None and cloud.kinds == ["http"] and cloud.address is None


# --- the rule, with results recorded into a real Monitor ---------------------------------------

INVENTORY = """
defaults: {interval: 10s, count: 3, timeout: 500ms, spacing: 100ms}
policy: {window: 5m, min_probes: 1}
sites:
  - id: mc-rims-ranchi
    name: RIMS Ranchi
    district: Ranchi
    type: medical_college
    devices:
      - {name: wan-1, role: wan, address: 127.10.1.1}
      - {name: wlc-1, role: controller, address: 127.10.4.1, parent: wan-1,
         http: {url: "https://127.10.4.1/", max_latency: 1s, cert_min_days: 14}}
"""


@pytest.fixture
def monitor(tmp_path: Path, clock: FakeClock) -> Monitor:
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY)
    store = Store(f"sqlite:///{tmp_path / 'netmon.db'}")
    store.migrate()
    return Monitor(load_inventory(path), store, Engines(), clock)


def ping(monitor: Monitor, device: str, ok: bool) -> None:
    rtts = (0.001,) * 3 if ok else ()
    result = ProbeResult("icmp", ok, monitor.clock(), 0.2, 3, len(rtts), rtts)
    monitor.record("mc-rims-ranchi", device, result)


def http(monitor: Monitor, ok: bool = True, latency: float = 0.05, days: float = 90.0) -> None:
    now = monitor.clock()
    tls = TlsFindings(verified=True, not_after=now + days * DAY, days_left=days)
    status, reason = (200, "") if ok else (500, "HTTP status 500, expected 200")
    found = HttpFindings(ok, "https://127.10.4.1/", status, latency, latency, tls=tls,
                         error=None if ok else "http_status", reason=reason)  # fmt: skip
    result = ProbeResult("http", ok, now, latency, 1, 1, (latency,), reason, found)
    monitor.record("mc-rims-ranchi", "wlc-1", result)


def reasons(monitor: Monitor) -> dict[str, tuple[float | None, float | None]]:
    monitor.evaluate()
    j = monitor.status["mc-rims-ranchi"].judgement
    return {r.criterion: (r.measured, r.threshold) for r in j.reasons}


def test_http_failures_degrade_the_site_and_clear(monitor: Monitor, clock: FakeClock) -> None:
    ping(monitor, "wan-1", True)
    ping(monitor, "wlc-1", True)
    http(monitor)
    assert reasons(monitor) == {}
    assert monitor.status["mc-rims-ranchi"].verdict is Verdict.FULLY_FUNCTIONAL
    clock.advance(10)
    http(monitor, ok=False)
    assert reasons(monitor) == {Criterion.HTTP_CHECK: (None, None)}
    assert monitor.status["mc-rims-ranchi"].verdict is Verdict.DEGRADED
    [reason] = monitor.status["mc-rims-ranchi"].judgement.reasons
    assert reason.message == (
        "wlc-1 https://127.10.4.1/: HTTP status 500, expected 200 (1 of 2 checks failed in the window)"
    )
    assert reason.device == "wlc-1"
    clock.advance(10)
    http(monitor)
    assert reasons(monitor) == {}


def test_http_never_decides_reachability(monitor: Monitor, clock: FakeClock) -> None:
    ping(monitor, "wan-1", True)
    ping(monitor, "wlc-1", True)
    http(monitor, ok=False)
    site = monitor.inventory.sites[0]
    assert monitor.summaries(site, clock())["wlc-1"].is_up  # ping says up; http cannot say down
    ping(monitor, "wlc-1", False)
    # Down by ping: reported as controller_down, the failing web page adds nothing.
    assert set(reasons(monitor)) == {Criterion.CONTROLLER_DOWN}


def test_latency_and_certificate_in_their_units(monitor: Monitor, clock: FakeClock) -> None:
    ping(monitor, "wan-1", True)
    ping(monitor, "wlc-1", True)
    for latency in (0.2, 1.5, 0.3):
        http(monitor, latency=latency, days=5.0)
        clock.advance(10)
    found = reasons(monitor)
    assert found[Criterion.HTTP_LATENCY] == (1.5, 1.0)  # seconds, p95 of 3 checks = the slowest
    measured, threshold = found[Criterion.TLS_CERT_EXPIRING]
    assert threshold == 14 * DAY and measured == 5 * DAY - 10  # seconds left, now
    assert Criterion.HTTP_CHECK not in found


def test_metrics_hook(monitor: Monitor, clock: FakeClock) -> None:
    from exporters.counters import DeviceCounters
    from exporters.prometheus import NetmonCollector

    monitor.ready = True
    http(monitor, ok=False, latency=0.25, days=3.0)
    families = {f.name: f for f in NetmonCollector(monitor, DeviceCounters()).collect()}
    value = {name: families[name].samples[0].value for name in (
        "netmon_http_up", "netmon_http_status_code", "netmon_http_latency_seconds",
        "netmon_http_cert_expiry_seconds", "netmon_http_failures_in_window")}  # fmt: skip
    assert value == {
        "netmon_http_up": 0.0,
        "netmon_http_status_code": 500.0,
        "netmon_http_latency_seconds": 0.25,
        "netmon_http_cert_expiry_seconds": 3 * DAY,
        "netmon_http_failures_in_window": 1.0,
    }
    assert families["netmon_http_up"].samples[0].labels["device"] == "wlc-1"


# --- end to end: netmon run against a real server -------------------------------------------

E2E_INVENTORY = """
defaults: {{interval: 1s, count: 2, timeout: 500ms, spacing: 100ms}}
policy: {{window: 1m, min_probes: 1}}
sites:
  - id: mc-rims-ranchi
    name: RIMS Ranchi
    district: Ranchi
    type: medical_college
    devices:
      - {{name: wan-1, role: wan, address: 127.10.1.1}}
      - {{name: wlc-1, role: controller, address: 127.10.4.1, parent: wan-1,
         http: {{url: "http://127.0.0.1:{port}/toggle", interval: 1s, timeout: 2s}}}}
"""


@pytest.fixture
def web() -> Iterator[Server]:
    with serve() as server:
        yield server


@pytest.mark.slow
def test_netmon_run_reports_and_clears_http_check(web: Server, tmp_path: Path) -> None:
    config = tmp_path / "inventory.yaml"
    config.write_text(E2E_INVENTORY.format(port=web.port))
    port = free_port()
    log = (tmp_path / "netmon.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "netmon.cli", "run", "--config", str(config), "--port", str(port),
         "--database-url", f"sqlite:///{tmp_path / 'netmon.db'}"],
        stdout=log, stderr=subprocess.STDOUT, text=True, env={**os.environ, "NETMON_LOG_LEVEL": "info", "NETMON_DATA_DIR": str(tmp_path)},
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/api/v1/sites/mc-rims-ranchi"

    def site(verdict: str) -> dict | None:  # type: ignore[type-arg]
        body = httpx.get(base, timeout=5).json()
        return body if body.get("verdict") == verdict else None

    try:
        web.app.status = 500
        body = wait_for(lambda: site("degraded"))
        [reason] = body["reasons"]
        assert reason["criterion"] == "http_check" and reason["device"] == "wlc-1"
        assert "HTTP status 500, expected 200" in reason["message"]
        web.app.status = 200
        assert wait_for(lambda: site("fully_functional"))["reasons"] == []
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        up = [s for f in text_string_to_metric_families(metrics) if f.name == "netmon_http_up"
              for s in f.samples]  # fmt: skip
        assert [s.value for s in up] == [1.0]
        assert web.app.requests >= 2
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
