"""A real Prometheus with the bundle's config and rules scrapes a real netmon; every Grafana panel
query then runs through the Prometheus HTTP API and must return series.

netmon probes a small inventory on loopback (every 127.x.y.z answers ping on Linux), so every
site is healthy: the test proves the dashboards show data when nothing is wrong, not only
during an outage. Only what a single fast test needs is changed from the shipped files: targets
and ports, 1 s scrape and rule intervals, no Alertmanager.
"""

from __future__ import annotations

import json
import re
import sys
import time
import urllib.error
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.slow

SITES = [
    # id, district, type, number of APs
    ("mc-test-ranchi", "Ranchi", "medical_college", 4),
    ("dh-test-dumka", "Dumka", "district_hospital", 3),
    ("chc-test-chaibasa", "West Singhbhum", "chc", 2),
]
INTERVALS = {
    "$__rate_interval": "1m",
    "${__rate_interval}": "1m",
    "$__interval": "1m",
    "${__interval}": "1m",
    "$__range": "5m",
    "${__range}": "5m",
}
WAIT = 90.0  # seconds, at most, for data and rules; normally about 15


def write_inventory(path: Path) -> None:
    sites = []
    for block, (site_id, district, ftype, aps) in enumerate(SITES, start=201):
        devices = [
            {"name": "wan-1", "role": "wan", "address": f"127.{block}.1.1"},
            {
                "name": "router-1",
                "role": "router",
                "address": f"127.{block}.2.1",
                "parent": "wan-1",
            },
        ]
        devices += [
            {
                "name": f"ap-{i:02d}",
                "role": "ap",
                "address": f"127.{block}.6.{i}",
                "parent": "router-1",
            }
            for i in range(1, aps + 1)
        ]
        sites.append(
            {
                "id": site_id,
                "name": f"Test {site_id}",
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


def write_prometheus_config(repo: Path, tmp: Path, netmon_port: int, prom_port: int) -> Path:
    conf = yaml.safe_load((repo / "deploy/prometheus/prometheus.yml").read_text())
    conf["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    conf.pop("alerting", None)
    jobs = {j["job_name"]: j for j in conf["scrape_configs"]}
    jobs["netmon"].update(
        scrape_interval="1s",
        scrape_timeout="1s",
        static_configs=[{"targets": [f"127.0.0.1:{netmon_port}"]}],
    )
    jobs["prometheus"]["static_configs"] = [{"targets": [f"127.0.0.1:{prom_port}"]}]
    conf["scrape_configs"] = [jobs["netmon"], jobs["prometheus"]]
    rules = tmp / "rules"
    rules.mkdir()
    for pattern in conf["rule_files"]:
        for path in (repo / "deploy/prometheus").glob(pattern):
            groups = yaml.safe_load(path.read_text())
            for group in groups["groups"]:
                if "interval" in group:
                    group["interval"] = "1s"  # the 5m long-window group, so it runs within the test
            (rules / path.name).write_text(yaml.safe_dump(groups, sort_keys=False))
    conf["rule_files"] = [str(rules / "*.yml")]
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(conf, sort_keys=False))
    return path


class Prom:
    def __init__(self, base: str, http: Callable[..., Any]) -> None:
        self.base = base
        self.http = http

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; raises AssertionError on a query error (bad PromQL, bad matching)."""
        url = f"{self.base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            answer = self.http("GET", url)
        except urllib.error.HTTPError as exc:
            raise AssertionError(
                f"{expr!r}: HTTP {exc.code}: {exc.read().decode(errors='replace')}"
            ) from exc
        assert answer["status"] == "success", (expr, answer)
        result = answer["data"]["result"]
        return result if answer["data"]["resultType"] == "vector" else [{"value": result}]

    def label_values(self, label: str, selector: str) -> list[str]:
        url = f"{self.base}/api/v1/label/{label}/values?" + urllib.parse.urlencode(
            {"match[]": selector}
        )
        return sorted(self.http("GET", url)["data"])


def dashboard_queries(repo: Path) -> dict[str, tuple[list[dict[str, Any]], list[tuple[str, str]]]]:
    """Per dashboard file: its template variables and every (panel title, target expr)."""
    out = {}
    for path in sorted((repo / "deploy/grafana/dashboards").glob("*.json")):
        dash = json.loads(path.read_text())
        exprs = [
            (p["title"], t["expr"]) for p in _panels(dash["panels"]) for t in p.get("targets", [])
        ]
        out[path.name] = (dash["templating"]["list"], exprs)
    return out


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    flat = []
    for p in panels:
        flat.append(p)
        flat += _panels(p.get("panels", []))
    return flat


def substitute(expr: str, values: dict[str, str]) -> str:
    for key, value in INTERVALS.items():
        expr = expr.replace(key, value)
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", values[name]).replace("$" + name, values[name])
    assert "$" not in expr, f"unsubstituted variable in {expr!r}"
    return expr


def resolve_variables(prom: Prom, variables: list[dict[str, Any]], use_all: bool) -> dict[str, str]:
    """Real values for the dashboard's variables, in order, like Grafana: label_values() queries
    with the earlier variables substituted. ``use_all`` picks "All" where the variable allows it."""
    values: dict[str, str] = {}
    for var in variables:
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", var["query"])
        assert m, f"variable {var['name']}: unsupported query {var['query']!r}"
        selector, label = substitute(m.group(1), values), m.group(2)
        found = prom.label_values(label, selector)
        assert found, f"variable {var['name']}: {var['query']!r} returned no values"
        if use_all and var.get("includeAll"):
            values[var["name"]] = var.get("allValue") or "|".join(map(grafana_regex_escape, found))
        else:
            values[var["name"]] = grafana_regex_escape(found[0]) if var.get("multi") else found[0]
    return values


def grafana_regex_escape(value: str) -> str:
    """What Grafana's Prometheus data source puts in a query for a multi-value variable."""
    return re.sub(r"([\\^$*+?.()|{}\[\]])", r"\\\\\1", value)


def empty_panels(prom: Prom, repo: Path) -> list[str]:
    """Every dashboard query that returns no series now, with its substituted variables."""
    empty = []
    for name, (variables, exprs) in dashboard_queries(repo).items():
        for use_all in (False, True):
            try:
                values = resolve_variables(prom, variables, use_all)
            except AssertionError as exc:
                empty.append(f"{name}: {exc}")
                continue
            for title, expr in exprs:
                query = substitute(expr, values)
                if not prom.query(query):
                    empty.append(f"{name} / {title}: {query}")
    return empty


def test_every_dashboard_query_returns_data_from_real_prometheus_scraping_netmon(
    repo: Path,
    tmp_path: Path,
    which: Callable[..., str],
    free_port: Callable[[], int],
    processes: Any,
    http: Callable[..., Any],
    wait_for: Callable[..., Any],
) -> None:
    prometheus = which("prometheus")
    if not (repo / "probes/icmp.py").exists():
        pytest.skip("probes/icmp.py (the ICMP engine netmon run needs) is not in the tree yet")
    inventory = tmp_path / "inventory.yaml"
    write_inventory(inventory)
    netmon_port, prom_port = free_port(), free_port()
    netmon = processes.start(
        "netmon",
        [
            sys.executable,
            "-m",
            "netmon.cli",
            "run",
            "--config",
            str(inventory),
            "--host",
            "127.0.0.1",
            "--port",
            str(netmon_port),
            "--database-url",
            f"sqlite:///{tmp_path / 'netmon.db'}",
        ],
        cwd=repo,
    )

    def netmon_serves() -> bool:
        if netmon.poll() is not None:
            log = processes.log(netmon)
            if "CAP_NET_RAW" in log or "ping_group_range" in log:  # netmon's IcmpUnavailable advice
                pytest.skip(f"netmon cannot open an ICMP socket here:\n{log}")
            pytest.fail(f"netmon exited with {netmon.returncode}:\n{log}")
        return "netmon_site_fully_functional" in _get_text(
            f"http://127.0.0.1:{netmon_port}/metrics"
        )

    wait_for(netmon_serves, "netmon to serve /metrics", timeout=30)

    config = write_prometheus_config(repo, tmp_path, netmon_port, prom_port)
    prom_proc = processes.start(
        "prometheus",
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            "--log.level=warn",
        ],
    )
    base = f"http://127.0.0.1:{prom_port}"

    def prometheus_ready() -> bool:
        assert prom_proc.poll() is None, f"prometheus exited:\n{processes.log(prom_proc)}"
        return _get_text(f"{base}/-/ready").startswith("Prometheus Server is Ready")

    wait_for(prometheus_ready, "Prometheus to be ready", timeout=30)
    prom = Prom(base, http)

    # Healthy means healthy: every site fully functional before the dashboards are judged.
    def all_sites_fully_functional() -> bool:
        got = prom.query(
            "sum(netmon_site_fully_functional) == bool count(netmon_site_fully_functional)"
        )
        count = prom.query("count(netmon_site_fully_functional)")
        return bool(
            got
            and count
            and float(got[0]["value"][1]) == 1
            and float(count[0]["value"][1]) == len(SITES)
        )

    wait_for(
        all_sites_fully_functional, "every site to be fully functional in Prometheus", timeout=WAIT
    )

    # Query errors fail at once; empty results are retried until the rules have data.
    deadline = time.monotonic() + WAIT
    while (empty := empty_panels(prom, repo)) and time.monotonic() < deadline:
        time.sleep(1)
    assert not empty, "panel queries without data:\n" + "\n".join(empty)

    # The shipped rules evaluate cleanly against real netmon data, and nothing fires.
    groups = http("GET", f"{base}/api/v1/rules")["data"]["groups"]
    assert {g["name"] for g in groups} >= {
        "netmon-sites",
        "netmon-self",
        "netmon-availability-long",
        "netmon-rollups",
    }
    bad = [
        (g["name"], r["name"], r.get("lastError"))
        for g in groups
        for r in g["rules"]
        if r["health"] != "ok"
    ]
    assert not bad, bad
    firing = [
        a["labels"]
        for a in http("GET", f"{base}/api/v1/alerts")["data"]["alerts"]
        if a["state"] == "firing"
    ]
    assert not firing, firing
    assert prom.query('up{job="netmon"} == 1'), "netmon target is not up"


def _get_text(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())
