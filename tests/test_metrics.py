"""/metrics: the cached renderer against the uncached reference, promtool on both formats,
gzip and content negotiation, shards, cache invalidation, counters and engine events. No
network but loopback (the engine-events test pings 127.0.0.1); no timing asserts."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_families
from prometheus_client.parser import text_string_to_metric_families

from exporters.prometheus import NetmonRegistry, make_registry
from exporters.render import Scrape
from netmon.api import create_app
from netmon.monitor import Monitor
from netmon.poller_link import LocalPoller
from probes.base import Engines
from probes.icmp_engine import IcmpEngine
from tests.conftest import FakeClock
from tests.test_api import NOW, lost, ok
from tests.test_api import monitor as monitor  # noqa: F401 - the fixture

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
BUNDU_WAN = {
    "site": "chc-bundu",
    "district": "Ranchi",
    "type": "chc",
    "device": "wan-1",
    "role": "wan",
}


def samples(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}  # fmt: skip


def value(got: Samples, name: str, **labels: str) -> float:
    return got[(name, frozenset(labels.items()))]


@pytest.fixture
def clock(monitor: Monitor) -> FakeClock:  # noqa: F811
    assert isinstance(monitor.clock, FakeClock)
    return monitor.clock


@pytest.fixture
def registry(monitor: Monitor) -> NetmonRegistry:  # noqa: F811
    reg = make_registry(monitor, "test", "raw")
    for dev in ("wan-1", "router-1", "sw-1", "ap-1", "ap-2"):  # counted from here on
        monitor.record("mc-rims-ranchi", dev, ok(NOW - 2))
    monitor.record("chc-bundu", "wan-1", lost(NOW - 1))
    monitor.evaluate()
    return reg


@pytest.fixture
async def client(monitor: Monitor, registry: NetmonRegistry):  # type: ignore[no-untyped-def]  # noqa: F811
    app = create_app(monitor, registry)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


def inventory_series(got: Samples) -> Samples:
    return {
        k: v for k, v in got.items() if not k[0].startswith(("process_", "netmon_probe_engine"))
    }


def test_cached_text_is_the_uncached_reference(registry: NetmonRegistry, monitor: Monitor) -> None:  # noqa: F811
    for _ in range(2):  # the second render comes from the cache
        cached = samples(registry.render(Scrape()))
        reference = samples(generate_latest(registry).decode())
        assert inventory_series(cached) == inventory_series(reference)
    monitor.record("chc-bundu", "wan-1", ok(NOW + 1))
    monitor.evaluate()
    assert inventory_series(samples(registry.render(Scrape()))) == inventory_series(
        samples(generate_latest(registry).decode())
    )


def test_counters_count_results_taken_since_start(registry: NetmonRegistry) -> None:
    got = samples(registry.render(Scrape()))
    wan = {**BUNDU_WAN, "kind": "icmp"}
    # the monitor fixture's results came before the registry existed: only the last one counts
    assert value(got, "netmon_device_probes_total", **wan) == 1.0
    assert value(got, "netmon_device_probes_failed_total", **wan) == 1.0
    assert value(got, "netmon_device_echoes_sent_total", **wan) == 3.0
    assert value(got, "netmon_device_echoes_received_total", **wan) == 0.0
    rims = {"site": "mc-rims-ranchi", "district": "Ranchi", "type": "medical_college"}
    assert (
        value(
            got,
            "netmon_device_echoes_received_total",
            **rims,
            device="sw-1",
            role="switch",
            kind="icmp",
        )
        == 3.0
    )
    assert (
        value(
            got,
            "netmon_build_info",
            version="test",
            python=value_label(got, "netmon_build_info", "python"),
        )
        == 1.0
    )
    assert any(name == "process_cpu_seconds_total" for name, _ in got)
    assert value(got, "netmon_config_last_reload_successful") == 1.0  # the start's load
    assert value(got, "netmon_poller_up") == 1.0  # the poller on the monitor's own loop


def value_label(got: Samples, name: str, label: str) -> str:
    return next(dict(labels)[label] for n, labels in got if n == name)


def kept(registry: NetmonRegistry, site: str, device: str) -> tuple[object, tuple[str, ...]]:
    """The renderer's (key, lines) of one device."""
    cache = registry.renderer._sites[site]
    return cache.devices[[d.name for d in cache.site.devices].index(device)]


RIMS_DEVICES = ("wan-1", "router-1", "sw-1", "ap-1", "ap-2")


def test_a_new_result_changes_only_that_devices_lines(
    registry: NetmonRegistry, monitor: Monitor
) -> None:  # noqa: F811
    registry.render(Scrape())
    rims = registry.renderer._sites["mc-rims-ranchi"]
    rims_view = rims.view
    before = {d: kept(registry, "mc-rims-ranchi", d)[1] for d in RIMS_DEVICES}
    bundu_ap = kept(registry, "chc-bundu", "ap-1")[1]
    bundu_wan = kept(registry, "chc-bundu", "wan-1")[1]
    monitor.record("chc-bundu", "wan-1", ok(NOW + 1))
    got = samples(registry.render(Scrape()))
    assert value(got, "netmon_device_up", **BUNDU_WAN) == 1.0
    assert value(got, "netmon_device_probes_total", **BUNDU_WAN, kind="icmp") == 2.0
    assert kept(registry, "chc-bundu", "wan-1")[1] != bundu_wan
    assert kept(registry, "chc-bundu", "ap-1")[1] != bundu_ap  # its parent is up again
    ap1 = {**BUNDU_WAN, "device": "ap-1", "role": "ap"}
    assert value(got, "netmon_device_reachable_via_parent", **ap1) == 1.0
    assert rims.view is rims_view  # a site with no new result is not even looked at again
    for dev in RIMS_DEVICES:
        assert kept(registry, "mc-rims-ranchi", dev)[1] is before[dev]
    monitor.record("mc-rims-ranchi", "ap-2", ok(NOW + 2))
    registry.render(Scrape())
    assert rims.view is not rims_view
    for dev in RIMS_DEVICES:  # a new view, but only the device with the result re-rendered
        assert (kept(registry, "mc-rims-ranchi", dev)[1] is before[dev]) == (dev != "ap-2")


def test_a_result_leaving_the_window_shows_without_a_new_result(
    registry: NetmonRegistry, monitor: Monitor, clock: FakeClock
) -> None:  # noqa: F811
    """A site's kept view lasts until its next time boundary, no longer: bundu's wan-1 has
    ok at NOW-30, lost at NOW-10 and NOW-1 (15 s buckets of a 1 h window)."""
    avail = "netmon_device_window_availability_ratio"
    assert value(samples(registry.render(Scrape())), avail, **BUNDU_WAN) == pytest.approx(1 / 3)
    bundu = registry.renderer._sites["chc-bundu"]
    assert bundu.until == pytest.approx(NOW - 15 + 3600, abs=0.01)  # [NOW-30, NOW-15) leaves
    clock.now = bundu.until + 0.5
    got = samples(registry.render(Scrape()))
    assert value(got, avail, **BUNDU_WAN) == 0.0
    assert inventory_series(got) == inventory_series(samples(generate_latest(registry).decode()))


def test_window_gauges_can_be_left_out(registry: NetmonRegistry) -> None:
    names = {n for n, _ in samples(registry.render(Scrape(window_gauges=False)))}
    assert "netmon_device_up" in names and "netmon_device_probes_total" in names
    assert not {n for n in names if n.startswith("netmon_device_window_")}


@pytest.mark.parametrize("openmetrics", [False, True])
def test_output_passes_promtool(registry: NetmonRegistry, openmetrics: bool) -> None:
    """promtool 2.42 reads the text format only: on OpenMetrics it parses every line but
    lints "X_total no help text", because an OpenMetrics counter's HELP names the family X
    (spec). That one lint is accepted, and only for counters whose family has its HELP."""
    if shutil.which("promtool") is None:
        pytest.fail("promtool (Debian: prometheus) is not installed")
    text = registry.render(Scrape(openmetrics=openmetrics))
    proc = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    problems = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    if openmetrics:
        assert text.endswith("# EOF\n") and text.count("# EOF") == 1
        families = {f.name: f.type for f in om_families(text)}  # strict parser: raises if invalid
        assert proc.returncode in (0, 3), problems  # 3: lint findings, no parse error
        for line in problems:
            name, _, finding = line.partition(" ")
            assert (
                finding == "no help text" and families.get(name.removesuffix("_total")) == "counter"
            ), line
            assert f"# HELP {name.removesuffix('_total')} " in text
    else:
        assert proc.returncode == 0, problems


async def test_negotiation_and_gzip(client: httpx.AsyncClient) -> None:
    plain = await client.get("/metrics", headers={"Accept-Encoding": "identity"})
    assert plain.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "content-encoding" not in plain.headers and "# EOF" not in plain.text
    om = await client.get(
        "/metrics",
        headers={"Accept": "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"},
    )
    assert om.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert om.text.endswith("# EOF\n")
    refused = await client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text;q=0, text/plain"}
    )
    assert refused.headers["content-type"].startswith("text/plain")
    raw = client.build_request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
    zipped = await client.send(raw, stream=True)
    body = await zipped.aread()  # httpx decodes; check the wire bytes too
    assert (
        zipped.headers["content-encoding"] == "gzip" and "Accept-Encoding" in zipped.headers["vary"]
    )
    assert samples(body.decode()).keys() == samples(plain.text).keys()
    assert gzip.decompress(b"".join([c async for c in _raw(client)])).startswith(b"# HELP")


async def _raw(client: httpx.AsyncClient):  # type: ignore[no-untyped-def]
    async with client.stream("GET", "/metrics", headers={"Accept-Encoding": "gzip"}) as resp:
        async for chunk in resp.aiter_raw():
            yield chunk


async def test_shard_holds_only_its_district(client: httpx.AsyncClient) -> None:
    got = samples(
        (await client.get("/metrics", params={"district": "ranchi", "scope": "inventory"})).text
    )
    assert got and {dict(labels).get("district") for _, labels in got} == {"Ranchi"}
    assert ("netmon_results_taken_total", frozenset()) not in got
    khunti = samples((await client.get("/metrics", params={"district": "Khunti"})).text)
    assert {dict(labels)["site"] for n, labels in khunti if n.startswith("netmon_site_")} == {
        "chc-unwired"
    }
    assert not [n for n, _ in khunti if n.startswith("netmon_device_")]  # a site with no devices
    one = samples((await client.get("/metrics", params={"site": "chc-bundu", "type": "chc"})).text)
    assert {
        dict(labels).get("site")
        for n, labels in one
        if n.startswith(("netmon_site_", "netmon_device_"))
    } == {"chc-bundu"}
    own = samples((await client.get("/metrics", params={"scope": "own"})).text)
    assert ("netmon_results_taken_total", frozenset()) in own
    assert not [n for n, _ in own if n.startswith(("netmon_device_", "netmon_site_"))]


async def test_unknown_shard_is_a_problem(client: httpx.AsyncClient) -> None:
    resp = await client.get("/metrics", params={"district": ["Ranchi", "Atlantis"]})
    assert resp.status_code == 404 and resp.headers["content-type"] == "application/problem+json"
    assert "'Atlantis'" in resp.json()["detail"]
    assert (await client.get("/metrics", params={"scope": "everything"})).status_code == 422


async def test_loading_serves_own_metrics_only(client: httpx.AsyncClient, monitor: Monitor) -> None:  # noqa: F811
    monitor.ready = False
    got = samples((await client.get("/metrics")).text)
    assert ("netmon_results_taken_total", frozenset()) in got
    assert not [n for n, _ in got if n.startswith("netmon_device_")]


def _engine() -> IcmpEngine:
    try:
        return IcmpEngine.open("dgram")
    except Exception:  # no unprivileged ICMP here: raw needs root
        return IcmpEngine.open("raw")


async def test_engine_events_are_exported_by_name(monitor: Monitor, tmp_path: Path) -> None:  # noqa: F811
    engine = _engine()
    try:
        await engine.burst("127.0.0.1", count=2, spacing=0.05, timeout=1.0)
        monitor.poller = LocalPoller(monitor.record, Engines({"icmp": engine}))
        got = samples(make_registry(monitor, "t", "x").render(Scrape(inventory=False)))
    finally:
        engine.close()
    events = {
        dict(labels)["event"]: v
        for (n, labels), v in got.items()
        if n == "netmon_probe_engine_events_total"
    }
    assert events["sent"] == 2.0 and events["received"] == 2.0
    assert {"foreign", "late", "kernel_drops", "send_errors", "send_retries"} <= events.keys()
