"""deploy/compose/: no container engine runs here, so check that the file parses, wires the four
services to the same configuration files the other tests prove, and references only files that
exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

COMPOSE = Path("deploy/compose/compose.yaml")
# Layered on compose.yaml (docker compose -f compose.yaml -f compose.victoriametrics.yaml).
VM_OVERRIDE = Path("deploy/compose/compose.victoriametrics.yaml")


def load(repo: Path) -> dict[str, Any]:
    return yaml.safe_load((repo / COMPOSE).read_text())


def test_four_services_on_host_network(repo: Path) -> None:
    services = load(repo)["services"]
    assert set(services) == {"netmon", "prometheus", "alertmanager", "grafana"}
    for name, svc in services.items():
        assert svc["network_mode"] == "host", name  # so 127.0.0.1 targets in the configs hold


@pytest.mark.parametrize("path", [COMPOSE, VM_OVERRIDE])
def test_bind_mounts_and_build_files_exist(repo: Path, path: Path) -> None:
    base = repo / COMPOSE.parent
    compose = yaml.safe_load((repo / path).read_text())
    named = set(compose.get("volumes") or {})
    for name, svc in compose["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source in named:
                continue
            assert source.startswith("."), (name, volume)
            assert (base / source).exists(), f"{name}: {source} does not exist"
        if "build" in svc:
            context = base / svc["build"]["context"]
            assert context.is_dir()
            dockerfile = context / svc["build"]["dockerfile"]
            assert dockerfile.is_file()
            for line in dockerfile.read_text().splitlines():
                if line.startswith("COPY ") and "--from=" not in line:  # --from: another stage
                    for src in line.split()[1:-1]:
                        if "*" not in src:
                            assert (context / src).exists(), f"Dockerfile: COPY {src}: missing"


def test_services_use_the_tested_configs(repo: Path) -> None:
    services = load(repo)["services"]
    prom, am = services["prometheus"], services["alertmanager"]
    assert "../prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prom["volumes"]
    assert "../prometheus/rules:/etc/prometheus/rules:ro" in prom["volumes"]
    assert "--web.listen-address=127.0.0.1:9090" in prom["command"]
    assert "../alertmanager/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro" in am["volumes"]
    assert "--web.listen-address=127.0.0.1:9093" in am["command"]
    netmon = services["netmon"]
    assert netmon["environment"]["NETMON_PORT"] == "8000"
    assert netmon["command"][-1] == "/etc/netmon/inventory.yaml"
    assert any(v.endswith(":/etc/netmon/inventory.yaml:ro") for v in netmon["volumes"])


def test_images_are_pinned(repo: Path) -> None:
    for name, svc in load(repo)["services"].items():
        if "image" in svc and "build" not in svc:
            assert re.search(r":v?\d+\.\d+\.\d+$", svc["image"]), (name, svc["image"])


def test_victoriametrics_override_wires_prometheus_to_it(repo: Path) -> None:
    """The override adds VictoriaMetrics where the remote_write config and the Grafana data
    source expect it, and swaps only Prometheus's config (volumes merge by their target)."""
    override = yaml.safe_load((repo / VM_OVERRIDE).read_text())["services"]
    base = load(repo)["services"]
    assert set(override) == {"victoriametrics", "prometheus", "grafana"}
    vm = override["victoriametrics"]
    assert vm["network_mode"] == "host" and re.search(r":v\d+\.\d+\.\d+$", vm["image"])
    assert "-httpListenAddr=127.0.0.1:8428" in vm["command"]
    assert "-retentionPeriod=400d" in vm["command"]
    remote = yaml.safe_load((repo / "deploy/prometheus/prometheus-victoriametrics.yml").read_text())
    assert remote["remote_write"][0]["url"].startswith("http://127.0.0.1:8428/")
    source = yaml.safe_load(
        (repo / "deploy/grafana/provisioning/datasources/victoriametrics.yaml").read_text()
    )
    assert source["datasources"][0]["url"] == "http://127.0.0.1:8428"
    prom = override["prometheus"]
    assert prom["volumes"] == [
        "../prometheus/prometheus-victoriametrics.yml:/etc/prometheus/prometheus.yml:ro"
    ]
    # The same flags as compose.yaml's Prometheus but a shorter retention (still > 30 days).
    flags = {f.split("=")[0]: f for f in prom["command"]}
    base_flags = {f.split("=")[0]: f for f in base["prometheus"]["command"]}
    assert set(flags) == set(base_flags)
    assert {k: v for k, v in flags.items() if "retention" not in k} == {
        k: v for k, v in base_flags.items() if "retention" not in k
    }
    retention = flags["--storage.tsdb.retention.time"].split("=")[1]
    assert retention.endswith("d") and int(retention[:-1]) > 30
    assert "victoriametrics" in prom["depends_on"]
