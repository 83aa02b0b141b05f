"""deploy/grafana/: dashboards match their generator, read the data source their "datasource"
variable picks (the provisioned Prometheus by default, or VictoriaMetrics), have the
template variables the NOC filters by, and query only metrics and recordings that exist.
(tests/deploy/test_deploy_live.py runs every query against a real Prometheus.)"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

DASHBOARDS = Path("deploy/grafana/dashboards")


def generator(repo: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_dashboards", repo / "deploy/grafana/make_dashboards.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load(repo: Path) -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted((repo / DASHBOARDS).glob("*.json"))}


def panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    stack = list(dash["panels"])
    while stack:
        p = stack.pop(0)
        out.append(p)
        stack += p.get("panels", [])
    return out


def datasource_uid(repo: Path, name: str = "prometheus") -> str:
    conf = yaml.safe_load(
        (repo / f"deploy/grafana/provisioning/datasources/{name}.yaml").read_text()
    )
    (ds,) = conf["datasources"]
    assert ds["type"] == "prometheus"  # VictoriaMetrics answers the Prometheus query API
    return str(ds["uid"])


# Every panel, target and query variable reads the data source the "datasource" variable picks.
PICKED = "${datasource}"


def test_dashboards_default_to_prometheus_and_offer_victoriametrics(repo: Path) -> None:
    provisioned = {
        datasource_uid(repo, "prometheus"): True,
        datasource_uid(repo, "victoriametrics"): False,
    }
    assert list(provisioned) == ["netmon-prometheus", "netmon-victoriametrics"]
    defaults = {}
    for path in sorted((repo / "deploy/grafana/provisioning/datasources").glob("*.yaml")):
        for ds in yaml.safe_load(path.read_text())["datasources"]:
            defaults[ds["uid"]] = ds.get("isDefault", False)
    assert defaults == provisioned  # one default, and only these two
    for name, dash in load(repo).items():
        var = dash["templating"]["list"][0]
        assert var["type"] == "datasource" and var["name"] == "datasource", name
        assert var["query"] == "prometheus", name  # lists every Prometheus-API source
        assert var["current"]["value"] == "netmon-prometheus", name


def test_dashboards_match_their_generator(repo: Path) -> None:
    rendered = generator(repo).render()
    on_disk = {p.name: p.read_text() for p in (repo / DASHBOARDS).glob("*.json")}
    assert rendered == on_disk, "run: python deploy/grafana/make_dashboards.py"


def test_three_dashboards_with_unique_uids(repo: Path) -> None:
    dashes = load(repo)
    assert set(dashes) == {"netmon-state-overview.json", "netmon-site.json", "netmon-health.json"}
    uids = [d["uid"] for d in dashes.values()]
    assert len(set(uids)) == len(uids)


@pytest.mark.parametrize(
    ("name", "variables"),
    [
        ("netmon-state-overview.json", ["district", "type"]),
        ("netmon-site.json", ["district", "type", "site"]),
        ("netmon-health.json", ["instance"]),
    ],
)
def test_template_variables(repo: Path, name: str, variables: list[str]) -> None:
    dash = load(repo)[name]
    picker, *found = dash["templating"]["list"]
    assert picker["name"] == "datasource"
    assert [v["name"] for v in found] == variables
    for var in found:
        assert var["type"] == "query" and var["datasource"]["uid"] == PICKED
        assert re.fullmatch(r"label_values\(.+, " + var["name"] + r"\)", var["query"]), var["query"]
    # Each variable filters panels, or narrows a later variable (district and type narrow site).
    used = " ".join(
        [t["expr"] for p in panels(dash) for t in p.get("targets", [])]
        + [v["query"] for v in found]
    )
    for var in variables:
        assert f"${var}" in used, f"{name}: ${var} is never used"


def test_panels_use_the_picked_datasource_and_fit_the_grid(repo: Path) -> None:
    uid = PICKED
    for name, dash in load(repo).items():
        ids = [p["id"] for p in panels(dash)]
        assert len(ids) == len(set(ids)), name
        for p in panels(dash):
            g = p["gridPos"]
            assert g["x"] >= 0 and g["x"] + g["w"] <= 24, (name, p["title"])
            if p["type"] == "row":
                continue
            assert p["datasource"]["uid"] == uid, (name, p["title"])
            assert p["targets"], (name, p["title"])
            for t in p["targets"]:
                assert t["datasource"]["uid"] == uid and t["expr"].strip(), (name, p["title"])


def test_dashboards_query_only_exported_metrics_and_existing_recordings(
    repo: Path,
    recorded_names: set[str],
    exported_metrics: set[str],
    metric_names: Callable[[str], set[str]],
) -> None:
    unknown = []
    for name, dash in load(repo).items():
        for p in panels(dash):
            for t in p.get("targets", []):
                expr = t["expr"]
                unknown += [
                    (name, p["title"], m) for m in metric_names(expr) if m not in exported_metrics
                ]
                for rec in re.findall(r"\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b", expr):
                    if rec not in recorded_names:
                        unknown.append((name, p["title"], rec))
    assert not unknown, unknown


def test_overview_covers_district_type_worst_sites_and_progress(repo: Path) -> None:
    dash = load(repo)["netmon-state-overview.json"]
    exprs = " ".join(t["expr"] for p in panels(dash) for t in p.get("targets", []))
    assert "sum by (district)" in exprs and "sum by (type)" in exprs
    assert "bottomk(" in exprs
    assert any(p["type"] == "timeseries" for p in panels(dash))


def test_dashboard_provider_points_where_compose_mounts_the_dashboards(repo: Path) -> None:
    provider = yaml.safe_load(
        (repo / "deploy/grafana/provisioning/dashboards/netmon.yaml").read_text()
    )
    (prov,) = provider["providers"]
    compose = yaml.safe_load((repo / "deploy/compose/compose.yaml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"../grafana/dashboards:{prov['options']['path']}:ro" in mounts
    assert "../grafana/provisioning:/etc/grafana/provisioning:ro" in mounts


# What may legitimately be absent for a selection: SNMP series (sites or netmon without an
# SNMP-polled device or controller) and verdict reasons (every selected site fully functional).
MAY_BE_ABSENT = re.compile(
    r"\b(netmon_device_snmp_\w+|netmon_device_uptime_seconds|netmon_device_reboots_in_window"
    r"|netmon_interface_\w+|netmon_ap_\w+|site:netmon_ap_\w+:\w+|netmon_site_reasons)\b"
)


def test_only_snmp_and_reason_panels_declare_no_value(repo: Path) -> None:
    """tests/deploy/test_deploy_live.py lets a noValue panel be empty for selections without SNMP
    or without problems: keep that exemption for panels whose every query needs such series."""
    with_no_value = []
    for name, dash in load(repo).items():
        for p in panels(dash):
            if p["type"] == "row" or not p["fieldConfig"]["defaults"].get("noValue"):
                continue
            with_no_value.append(p["title"])
            for t in p["targets"]:
                assert MAY_BE_ABSENT.search(t["expr"]), (name, p["title"], t["expr"])
    assert "Why sites are not fully functional" in with_no_value
    assert "SNMP poll health" in with_no_value


def test_site_dashboard_shows_what_snmp_adds(repo: Path) -> None:
    exprs = " ".join(
        t["expr"] for p in panels(load(repo)["netmon-site.json"]) for t in p.get("targets", [])
    )
    for metric in (
        "netmon_ap_up",
        "netmon_ap_clients",
        "netmon_interface_oper_up",
        "netmon_interface_receive_bits_per_second",
        "netmon_interface_transmit_bits_per_second",
        "netmon_device_uptime_seconds",
        "netmon_device_reboots_in_window",
        "netmon_device_snmp_up",
        "netmon_device_snmp_poll_duration_seconds",
    ):
        assert metric in exprs, metric
    overview = " ".join(
        t["expr"]
        for p in panels(load(repo)["netmon-state-overview.json"])
        for t in p.get("targets", [])
    )
    assert "sum by (criterion) (netmon_site_reasons" in overview
