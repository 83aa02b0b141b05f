"""The HTTP API and /metrics, through httpx against the ASGI app, on results recorded by the
monitor (no network). /metrics is checked by the real ``promtool check metrics``."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporters.prometheus import make_registry
from netmon.api import create_app
from netmon.inventory import load_inventory
from netmon.monitor import Monitor
from netmon.store import Store
from probes.base import Engines, ProbeResult
from tests.conftest import INVENTORIES, FakeClock

NOW = 1_800_000_000.0


def ok(ts: float, rtt: float = 0.012) -> ProbeResult:
    return ProbeResult("icmp", True, ts, 0.3, 3, 3, (rtt, rtt + 0.002, rtt + 0.001))


def lost(ts: float) -> ProbeResult:
    return ProbeResult("icmp", False, ts, 0.6, 3, 0, (), "no reply to 3 echoes")


@pytest.fixture
def monitor(tmp_path: Path) -> Monitor:
    store = Store(f"sqlite:///{tmp_path / 'api.db'}")
    store.migrate()
    m = Monitor(load_inventory(INVENTORIES / "valid-small.yaml"), store, Engines(), FakeClock(NOW))
    for dev in ("wan-1", "router-1", "sw-1", "ap-1", "ap-2"):
        m.record("mc-rims-ranchi", dev, ok(NOW - 5))
    m.record("chc-bundu", "wan-1", ok(NOW - 30))
    m.record("chc-bundu", "wan-1", lost(NOW - 10))
    m.record("chc-bundu", "ap-1", lost(NOW - 10))
    m.evaluate()
    m.ready = True  # what start() does once history is refilled
    return m


@pytest.fixture
async def client(monitor: Monitor):  # type: ignore[no-untyped-def]
    app = create_app(monitor, make_registry(monitor, "test", "raw"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


async def test_sites_lists_every_site_with_verdict(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/v1/sites")).json()
    assert body["count"] == 3
    by_id = {s["id"]: s for s in body["data"]}
    assert by_id["mc-rims-ranchi"]["verdict"] == "fully_functional"
    assert by_id["mc-rims-ranchi"]["reasons"] == []
    bundu = by_id["chc-bundu"]
    assert bundu["verdict"] == "down"
    assert [r["criterion"] for r in bundu["reasons"]] == ["uplink_down"]
    assert bundu["reasons"][0]["device"] == "wan-1"
    outage_start = datetime.fromtimestamp(NOW - 10, UTC).isoformat().replace("+00:00", "Z")
    assert bundu["since"] == outage_start  # the outage began, not when it was judged
    assert by_id["chc-unwired"]["verdict"] == "not_installed"
    assert set(bundu) >= {"id", "name", "district", "type", "verdict", "reasons", "since"}


@pytest.mark.parametrize(
    ("query", "ids"),
    [
        ("district=Ranchi", {"mc-rims-ranchi", "chc-bundu"}),
        ("district=ranchi&type=chc", {"chc-bundu"}),
        ("verdict=not_installed", {"chc-unwired"}),
        ("district=Khunti&verdict=down", set()),
    ],
)
async def test_site_filters(client: httpx.AsyncClient, query: str, ids: set[str]) -> None:
    body = (await client.get(f"/api/v1/sites?{query}")).json()
    assert {s["id"] for s in body["data"]} == ids and body["count"] == len(ids)


async def test_bad_filter_is_422(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/sites?type=hospital")).status_code == 422


async def test_site_detail_has_devices_with_latest_results(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/v1/sites/chc-bundu")).json()
    devices = {d["name"]: d for d in body["device_list"]}
    assert devices["wan-1"]["state"] == "down"
    assert devices["ap-1"]["state"] == "unreachable_parent"
    assert devices["wan-1"]["last"]["reason"] == "no reply to 3 echoes"
    assert devices["wan-1"]["window"]["probes"] == 2
    assert devices["wan-1"]["window"]["availability_ratio"] == 0.5
    rims = (await client.get("/api/v1/sites/mc-rims-ranchi")).json()
    wan = next(d for d in rims["device_list"] if d["name"] == "wan-1")
    assert wan["last"]["rtt_avg_seconds"] == pytest.approx(0.013)
    assert wan["last"]["loss_ratio"] == 0.0


async def test_unknown_site_is_a_404_problem(client: httpx.AsyncClient) -> None:
    resp = await client.get("/api/v1/sites/nowhere")
    assert resp.status_code == 404
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json() == {
        "type": "urn:netmon:problem:not_found", "title": "Not found", "status": 404,
        "detail": "no site with id 'nowhere'", "instance": "/api/v1/sites/nowhere", "error": "not_found",
    }  # fmt: skip
    assert (await client.get("/api/v1/sites/nowhere/history")).status_code == 404


async def test_history_shows_verdict_changes(client: httpx.AsyncClient, monitor: Monitor) -> None:
    monitor.record("chc-bundu", "wan-1", ok(NOW + 1))
    monitor.record("chc-bundu", "ap-1", ok(NOW + 1))
    monitor.evaluate()
    body = (await client.get("/api/v1/sites/chc-bundu/history")).json()
    assert [c["verdict"] for c in body["data"]] == ["degraded", "down"]


async def test_summary_by_district_and_type(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/v1/summary")).json()
    assert (body["sites"], body["fully_functional"]) == (3, 1)
    assert body["percent_fully_functional"] == pytest.approx(33.3)
    ranchi = next(g for g in body["by_district"] if g["key"] == "Ranchi")
    assert (ranchi["sites"], ranchi["fully_functional"], ranchi["percent_fully_functional"]) == (
        2,
        1,
        50.0,
    )
    chc = next(g for g in body["by_type"] if g["key"] == "chc")
    assert chc["by_verdict"]["down"] == 1 and chc["by_verdict"]["not_installed"] == 1


async def test_healthz_and_openapi(client: httpx.AsyncClient) -> None:
    health = (await client.get("/healthz")).json()
    assert health["status"] == "ok" and health["store"]["pending"] > 0
    assert health["store"]["status"] == "ok" and health["store"]["last_error"] is None
    spec = (await client.get("/openapi.json")).json()
    assert "/api/v1/summary" in spec["paths"]


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (smp.name, frozenset(smp.labels.items())): smp.value
        for fam in text_string_to_metric_families(text)
        for smp in fam.samples
    }


async def test_metrics_content(client: httpx.AsyncClient) -> None:
    got = samples((await client.get("/metrics")).text)
    bundu = {"site": "chc-bundu", "district": "Ranchi", "type": "chc"}

    def value(name: str, **labels: str) -> float:
        return got[(name, frozenset(labels.items()))]

    assert value("netmon_device_up", **bundu, device="wan-1", role="wan") == 0.0
    assert value("netmon_device_loss_ratio", **bundu, device="wan-1", role="wan") == 1.0
    assert (
        value("netmon_device_window_availability_ratio", **bundu, device="wan-1", role="wan") == 0.5
    )
    assert value("netmon_site_verdict", **bundu, verdict="down") == 1.0
    assert value("netmon_site_verdict", **bundu, verdict="fully_functional") == 0.0
    assert value("netmon_site_devices", **bundu, role="ap", state="unreachable_parent") == 1.0
    assert value("netmon_device_reachable_via_parent", **bundu, device="ap-1", role="ap") == 0.0
    rims = {"site": "mc-rims-ranchi", "district": "Ranchi", "type": "medical_college"}
    assert value("netmon_device_rtt_seconds", **rims, device="wan-1", role="wan") == pytest.approx(
        0.013
    )
    assert value("netmon_site_fully_functional", **rims) == 1.0
    assert value("netmon_site_reasons", **bundu, criterion="uplink_down") == 1.0
    assert value("netmon_site_policy_threshold", **rims, threshold="ap_min_up_ratio") == 0.8
    assert value("netmon_site_policy_threshold", **bundu, threshold="rtt_p95_max") == 0.12
    assert value("netmon_results_taken_total") == 8.0
    assert value("netmon_info", icmp_mode="raw", version="test") == 1.0
    assert not any(
        name == "netmon_device_up" and ("site", "chc-unwired") in labels for name, labels in got
    )


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (Debian: prometheus) not installed"
)
async def test_metrics_pass_promtool(client: httpx.AsyncClient) -> None:
    text = (await client.get("/metrics")).text
    proc = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


async def test_device_results_are_the_stored_evidence(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/v1/sites/chc-bundu/devices/wan-1/results")).json()
    assert body["count"] == 2
    newest, oldest = body["data"]
    assert (newest["ok"], newest["received"], newest["reason"]) == (
        False,
        0,
        "no reply to 3 echoes",
    )
    assert (oldest["ok"], oldest["sent"], oldest["received"]) == (True, 3, 3)
    assert oldest["rtt_max_seconds"] == pytest.approx(0.014)
    since = datetime.fromtimestamp(NOW - 20, UTC).isoformat()
    recent = (
        await client.get("/api/v1/sites/chc-bundu/devices/wan-1/results", params={"since": since})
    ).json()
    assert recent["count"] == 1
    assert (await client.get("/api/v1/sites/chc-bundu/devices/nope/results")).status_code == 404


async def test_api_says_loading_until_history_is_refilled(
    client: httpx.AsyncClient, monitor: Monitor
) -> None:
    monitor.ready = False
    resp = await client.get("/api/v1/sites")
    assert resp.status_code == 503 and resp.headers["retry-after"] == "5"
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert (body["error"], body["status"], body["type"]) == (
        "loading",
        503,
        "urn:netmon:problem:loading",
    )
    assert (await client.get("/healthz")).json()["status"] == "loading"
    names = {f.name for f in text_string_to_metric_families((await client.get("/metrics")).text)}
    assert "netmon_results_taken" in names and "netmon_device_up" not in names
    monitor.ready = True
    assert (await client.get("/api/v1/sites")).status_code == 200
