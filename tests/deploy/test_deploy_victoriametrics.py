"""Metrics past one Prometheus: Prometheus remote-writes to VictoriaMetrics, the dashboards read
VictoriaMetrics, and the sharded scrape configs split the targets as they say.

The live test runs a real netmon (two healthy ICMP-only sites on loopback: every 127.x.y.z
answers ping on Linux), a real Prometheus with deploy/prometheus/prometheus-victoriametrics.yml
(only targets, ports and intervals changed, as in test_deploy_live.py) and a real
victoria-metrics (Debian's package), each its own process on loopback with its own data
directory in tmp_path. It then asks VictoriaMetrics, not Prometheus, the "Sites by verdict" query
of the state overview dashboard (a recording rule's series, so rule results travel too) and every
other dashboard query, with the template variables resolved against VictoriaMetrics as Grafana
would with the "netmon VictoriaMetrics" data source picked. A second live test runs
prometheus-shard-district.yml on two Prometheus servers, one district each, into one
VictoriaMetrics: each server holds its own district's site, VictoriaMetrics both, and every
dashboard query again has data there.

The sharding configs are checked with ``promtool check service-discovery``, which runs the file
discovery and the relabelling without scraping anything (``promtool check config`` checks every
deploy/prometheus/*.yml in test_deploy_prometheus.py).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from test_deploy_live import (
    Prom,
    _get_text,
    dashboard_queries,
    resolve_variables,
    substitute,
    write_prometheus_config,
)
from test_deploy_prometheus import promtool

if TYPE_CHECKING:  # pytest imports tests/deploy/conftest.py as "conftest"
    from collections.abc import Callable

    from conftest import Bench

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = Path("deploy/prometheus")
VM_CONFIG = "prometheus-victoriametrics.yml"
SHARD_CONFIGS = ["prometheus-shard-hashmod.yml", "prometheus-shard-district.yml"]
# id, district, type: two healthy ICMP-only sites in two districts (the district shards' test)
SITES = [("chc-vm-ranchi", "Ranchi", "chc"), ("dh-vm-dumka", "Dumka", "district_hospital")]
PICKED = ("netmon-state-overview.json", "Sites by verdict")  # the dashboard query asked first
WAIT = 90.0  # seconds, at most, for data to reach VictoriaMetrics; normally about 10


def load(repo: Path, name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((repo / PROMETHEUS / name).read_text()))


def test_victoriametrics_config_is_prometheus_yml_plus_remote_write(repo: Path) -> None:
    conf, base = load(repo, VM_CONFIG), load(repo, "prometheus.yml")
    (target,) = conf.pop("remote_write")
    assert target["url"] == "http://127.0.0.1:8428/api/v1/write"
    assert conf == base, "prometheus-victoriametrics.yml differs from prometheus.yml"


@pytest.mark.parametrize("name", SHARD_CONFIGS)
def test_shard_configs_are_the_bundle_but_the_netmon_job(repo: Path, name: str) -> None:
    conf, base = load(repo, name), load(repo, VM_CONFIG)
    shard = conf["global"]["external_labels"].pop("prometheus_shard")
    assert shard, name  # tells the shards' series apart in VictoriaMetrics
    jobs = {j["job_name"]: j for j in conf.pop("scrape_configs")}
    base_jobs = {j["job_name"]: j for j in base.pop("scrape_configs")}
    assert conf == base, f"{name}: differs from {VM_CONFIG} outside scrape_configs"
    netmon, base_netmon = jobs.pop("netmon"), base_jobs.pop("netmon")
    assert jobs == base_jobs, name
    for key in ("scrape_interval", "scrape_timeout", "metrics_path"):
        assert netmon[key] == base_netmon[key], (name, key)


def kept_targets(
    which: Callable[..., str], config: Path, cwd: Path
) -> list[tuple[str, str, str | None]]:
    """(scope, district, shard label) of each netmon target the config keeps after relabelling."""
    out = promtool(
        which, "check", "service-discovery", "--timeout=2s", str(config), "netmon", cwd=cwd
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return sorted(
        (
            t["labels"]["__param_scope"],
            t["labels"].get("__param_district", ""),
            t["labels"]["shard"],
        )
        for t in json.loads(out.stdout)
        if t["labels"]
    )


def all_targets(repo: Path) -> list[tuple[str, str, str | None]]:
    groups = yaml.safe_load((repo / PROMETHEUS / "file_sd/netmon-districts.yml").read_text())
    return sorted(
        (
            g["labels"]["__param_scope"],
            g["labels"].get("__param_district", ""),
            g["labels"]["shard"],
        )
        for g in groups
        for _ in g["targets"]
    )


def test_hashmod_shards_split_the_targets_without_overlap(
    which: Callable[..., str], repo: Path, tmp_path: Path
) -> None:
    targets = all_targets(repo)
    districts = {d for _, d, _ in targets if d}
    assert len(districts) == 24 and len({s for *_, s in targets}) == len(targets)
    conf = load(repo, "prometheus-shard-hashmod.yml")
    job = next(j for j in conf["scrape_configs"] if j["job_name"] == "netmon")
    hashmod, keep = job["relabel_configs"]
    modulus = hashmod["modulus"]
    assert modulus == 2 and keep["regex"] == conf["global"]["external_labels"]["prometheus_shard"]
    job["file_sd_configs"] = [{"files": [str(repo / PROMETHEUS / "file_sd/netmon-districts.yml")]}]
    shards = []
    for number in range(modulus):  # every server of the set: the same file, its own number
        keep["regex"] = str(number)
        path = tmp_path / f"shard-{number}.yml"
        path.write_text(yaml.safe_dump(conf, sort_keys=False))
        shards.append(kept_targets(which, path, tmp_path))
    assert all(shards), f"a shard scrapes nothing: {shards}"
    assert sorted(t for s in shards for t in s) == targets  # each target exactly once


def test_district_shard_keeps_its_districts_and_netmon_itself(
    which: Callable[..., str], repo: Path
) -> None:
    kept = kept_targets(which, Path("prometheus-shard-district.yml"), repo / PROMETHEUS)
    assert kept == [
        ("inventory", "Gumla", "gumla"),
        ("inventory", "Khunti", "khunti"),
        ("inventory", "Ranchi", "ranchi"),
        ("own", "", "own"),
    ]


def write_inventory(path: Path) -> None:
    sites = []
    for block, (site_id, district, ftype) in enumerate(SITES, start=211):
        devices = [
            {"name": "wan-1", "role": "wan", "address": f"127.{block}.1.1"},
            {"name": "ap-01", "role": "ap", "address": f"127.{block}.6.1", "parent": "wan-1"},
        ]
        sites.append(
            {
                "id": site_id,
                "name": site_id,
                "district": district,
                "type": ftype,
                "devices": devices,
            }
        )
    inventory = {
        "state": "Jharkhand",
        "defaults": {"interval": "2s", "count": 3, "spacing": "100ms", "timeout": "500ms"},
        "sites": sites,
    }
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))


@pytest.mark.slow
def test_dashboard_queries_answered_by_victoriametrics_from_prometheus_remote_write(
    bench: Bench,
) -> None:
    netmon_port = start_netmon(bench)
    vm = start_victoriametrics(bench)
    prom = start_prometheus(bench, "prometheus", VM_CONFIG, netmon_port, vm.base)
    queries = dashboard_queries(bench.repo)
    wait_for_sites(bench, vm, len(SITES))
    assert by_verdict(vm) == by_verdict(prom)  # the same answer from both data sources
    # The series came from netmon through Prometheus (VictoriaMetrics scrapes nothing itself).
    (series,) = vm.query(f'up{{job="netmon", instance="127.0.0.1:{netmon_port}"}}')
    assert series["metric"]["monitor"] == "netmon-noc"  # Prometheus's external label
    empty = every_query_empty_in(vm, queries)
    assert not empty, "dashboard queries VictoriaMetrics answers without data:\n" + "\n".join(empty)


@pytest.mark.slow
def test_two_district_shards_write_one_victoriametrics_that_sees_every_site(
    bench: Bench,
) -> None:
    """prometheus-shard-district.yml on two servers, one district each (the first also keeps
    netmon's own series): each Prometheus has its district's site, VictoriaMetrics both."""
    netmon_port = start_netmon(bench)
    vm = start_victoriametrics(bench)
    groups = yaml.safe_load((bench.repo / PROMETHEUS / "file_sd/netmon-districts.yml").read_text())
    districts = {d for _, d, _ in SITES}
    targets = [
        dict(g, targets=[f"127.0.0.1:{netmon_port}"])
        for g in groups
        if g["labels"].get("__param_district", "") in districts | {""}
    ]
    assert len(targets) == 1 + len(districts)  # every test district is in the shipped list
    file_sd = bench.tmp_path / "netmon-districts.yml"
    file_sd.write_text(yaml.safe_dump(targets, sort_keys=False))
    (first, _, _), (second, _, _) = SITES
    servers = {}
    for name, regex in (
        ("a", f"own;|inventory;({SITES[0][1]})"),
        ("b", f"inventory;({SITES[1][1]})"),
    ):

        def shard(conf: dict[str, Any], name: str = name, regex: str = regex) -> None:
            conf["global"]["external_labels"]["prometheus_shard"] = name
            job = next(j for j in conf["scrape_configs"] if j["job_name"] == "netmon")
            del job["static_configs"]  # the targets come from the file, as shipped
            job["file_sd_configs"] = [{"files": [str(file_sd)]}]
            (keep,) = job["relabel_configs"]
            keep["regex"] = regex

        servers[name] = start_prometheus(
            bench,
            f"prometheus-{name}",
            "prometheus-shard-district.yml",
            netmon_port,
            vm.base,
            shard,
        )
    wait_for_sites(bench, vm, len(SITES))
    for name, site in (("a", first), ("b", second)):
        ff = servers[name].query("netmon_site_fully_functional")
        assert [r["metric"]["site"] for r in ff] == [site], name  # its own district only
    per_shard = vm.query("count by (prometheus_shard) (netmon_site_fully_functional)")
    assert {r["metric"]["prometheus_shard"]: r["value"][1] for r in per_shard} == {
        "a": "1",
        "b": "1",
    }
    assert [r["metric"]["prometheus_shard"] for r in vm.query("netmon_build_info")] == ["a"]
    empty = every_query_empty_in(vm, dashboard_queries(bench.repo))
    assert not empty, "dashboard queries VictoriaMetrics answers without data:\n" + "\n".join(empty)


def picked_query(repo: Path) -> tuple[list[dict[str, Any]], str]:
    """The template variables of the PICKED dashboard and the PICKED panel's query."""
    variables, exprs = dashboard_queries(repo)[PICKED[0]]
    return variables, next(expr for title, expr, _ in exprs if title == PICKED[1])


def by_verdict(source: Prom) -> dict[str, float]:
    """The PICKED query's answer, with "All" for every variable: sites per verdict."""
    variables, expr = picked_query(REPO)
    query = substitute(expr, resolve_variables(source, variables, True, {}))
    return {r["metric"]["verdict"]: float(r["value"][1]) for r in source.query(query)}


def wait_for_sites(bench: Bench, source: Prom, sites: int) -> None:
    """Until the PICKED dashboard query counts ``sites`` fully functional sites in ``source``."""

    def counted() -> bool:
        try:
            return by_verdict(source).get("fully_functional") == sites
        except AssertionError:  # no label values yet: the variables cannot resolve
            return False

    try:
        bench.wait_for(counted, f"{sites} fully functional sites in {source.base}", WAIT)
    except pytest.fail.Exception:
        logs = "\n".join(
            f"{log.name}:\n{log.read_text()[-2000:]}" for log in bench.tmp_path.glob("*.log")
        )
        pytest.fail(f"{source.base}: {by_verdict(source)}\n{logs}")


def start_netmon(bench: Bench) -> int:
    """netmon on the loopback inventory, serving /metrics; its port."""
    inventory = bench.tmp_path / "inventory.yaml"
    write_inventory(inventory)
    port = bench.free_port()
    netmon = bench.processes.start(
        "netmon",
        [sys.executable, "-m", "netmon.cli", "run", "--config", str(inventory), "--host",
         "127.0.0.1", "--port", str(port), "--database-url",
         f"sqlite:///{bench.tmp_path / 'netmon.db'}"],
        cwd=bench.repo,
    )  # fmt: skip

    def serves() -> bool:
        if netmon.poll() is not None:
            log = bench.processes.log(netmon)
            if "CAP_NET_RAW" in log or "ping_group_range" in log:  # netmon's IcmpUnavailable advice
                pytest.skip(f"netmon cannot open an ICMP socket here:\n{log}")
            pytest.fail(f"netmon exited with {netmon.returncode}:\n{log}")
        return "netmon_site_fully_functional" in _get_text(f"http://127.0.0.1:{port}/metrics")

    bench.wait_for(serves, "netmon to serve /metrics", timeout=30)
    return port


def start_victoriametrics(bench: Bench) -> Prom:
    """victoria-metrics on loopback with its data in tmp_path, answering /health."""
    binary, port = bench.which("victoria-metrics"), bench.free_port()
    proc = bench.processes.start(
        "victoria-metrics",
        [
            binary,
            f"-storageDataPath={bench.tmp_path / 'victoria-metrics'}",
            f"-httpListenAddr=127.0.0.1:{port}",
            "-retentionPeriod=400d",  # as docs/deploy.md and compose.victoriametrics.yaml
            "-search.latencyOffset=1s",  # default 30 s: the newest samples hidden that long
            "-search.disableCache",  # the test polls: no cached empty answer
            "-loggerLevel=WARN",
        ],
    )

    def healthy() -> bool:
        assert proc.poll() is None, f"victoria-metrics exited:\n{bench.processes.log(proc)}"
        return _get_text(f"http://127.0.0.1:{port}/health").strip() == "OK"

    bench.wait_for(healthy, "VictoriaMetrics to answer /health", timeout=30)
    return Prom(f"http://127.0.0.1:{port}", bench.http)


def start_prometheus(
    bench: Bench,
    name: str,
    source: str,
    netmon_port: int,
    vm_base: str,
    edit: Callable[[dict[str, Any]], None] | None = None,
) -> Prom:
    """Prometheus with deploy/prometheus/``source`` (as test_deploy_live.py adapts it, then
    ``edit``), remote-writing to ``vm_base``; its own directory in tmp_path; ready."""
    workdir, port = bench.tmp_path / name, bench.free_port()
    workdir.mkdir()
    config = write_prometheus_config(bench.repo, workdir, netmon_port, port, source=source)
    conf = yaml.safe_load(config.read_text())
    (remote,) = conf["remote_write"]
    remote["url"] = remote["url"].replace("http://127.0.0.1:8428", vm_base)
    remote["queue_config"]["batch_send_deadline"] = "1s"
    if edit:
        edit(conf)
    config.write_text(yaml.safe_dump(conf, sort_keys=False))
    proc = bench.processes.start(
        name,
        [bench.which("prometheus"), f"--config.file={config}",
         f"--storage.tsdb.path={workdir / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
         "--log.level=warn"],
    )  # fmt: skip

    def ready() -> bool:
        assert proc.poll() is None, f"{name} exited:\n{bench.processes.log(proc)}"
        return _get_text(f"http://127.0.0.1:{port}/-/ready").startswith("Prometheus")

    bench.wait_for(ready, f"{name} to be ready", timeout=30)
    return Prom(f"http://127.0.0.1:{port}", bench.http)


def every_query_empty_in(source: Prom, queries: dict[str, Any]) -> list[str]:
    """Every dashboard query without data from ``source`` (polled until the rules have run), for
    the first values and for "All"; panels that declare a noValue text (SNMP, reasons) may be
    empty, as in test_deploy_live.py, since these sites have neither."""
    deadline = time.monotonic() + WAIT
    while True:
        empty = []
        for name, (variables, exprs) in queries.items():
            for use_all in (False, True):
                values = resolve_variables(source, variables, use_all, {})
                for title, expr, has_no_value_text in exprs:
                    query = substitute(expr, values)
                    if not has_no_value_text and not source.query(query):
                        empty.append(f"{name} / {title}: {query}")
        if not empty or time.monotonic() > deadline:
            return empty
        time.sleep(1)
