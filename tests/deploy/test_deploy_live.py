"""A real Prometheus with the bundle's config and rules scrapes a real netmon; every Grafana panel
query then runs through the Prometheus HTTP API and must return series.

netmon probes a small inventory on loopback (every 127.x.y.z answers ping on Linux). Two sites are
ICMP only and healthy: the dashboards must show data when nothing is wrong, not only during an
outage. The medical college also has a wireless controller polled over SNMP (snmpsim serving
tests/snmp/data/cisco-wlc.snmprec: 200 APs, every 10th not associated, uplink-1 up, uplink-2
down), so it is honestly degraded: an uplink interface is down and 1 of its 6 inventoried APs is
not associated, and its controller reports 194 APs the inventory lacks. The test checks that
netmon and Prometheus see exactly that, that the matching alerts are pending for that site only,
and that every panel returns data for real values of the template variables:

* with the variables set to the SNMP site (by hand, as the NOC would): every query, also the
  SNMP panels and the "why not fully functional" panels;
* with the first values and with "All" (a site without SNMP): every query except those of
  panels that declare, with Grafana's ``noValue``, why they are empty for such a selection.

Only what a single fast test needs is changed from the shipped files: targets and ports, 1 s
scrape and rule intervals, no Alertmanager.
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
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:  # pytest imports tests/deploy/conftest.py as "conftest"
    from conftest import Bench

pytestmark = pytest.mark.slow

SITES = [
    # id, district, type, number of APs (pinged; the SNMP site's APs are seen via its controller)
    ("mc-test-ranchi", "Ranchi", "medical_college", 0),
    ("dh-test-dumka", "Dumka", "district_hospital", 3),
    ("chc-test-chaibasa", "West Singhbhum", "chc", 2),
]
# The site with the SNMP-polled controller, and the template variable values that select it.
SNMP_SITE = {"district": "Ranchi", "type": "medical_college", "site": "mc-test-ranchi"}
# APs AP-RIMS-005..010 of the recording, known to netmon only through the controller; the
# recording reports every 10th AP not associated, so ap-rims-010 is down: 5 of 6 up < 90 %.
CONTROLLER_APS = [f"ap-rims-{i:03d}" for i in range(5, 11)]
RECORDED_APS = 200
EXPECTED_REASONS = {"uplink_interface_down", "ap_up_ratio"}  # at the SNMP site, nowhere else
# Alerts whose condition holds at the SNMP site; each has a `for` longer than this test, so
# they are pending (never firing) while it runs.
EXPECTED_PENDING = {
    "NetmonSiteDegraded",
    "NetmonAccessPointsDown",
    "NetmonUplinkInterfaceDown",
    "NetmonUnknownAccessPoints",
}
INTERVALS = {
    "$__rate_interval": "1m",
    "${__rate_interval}": "1m",
    "$__interval": "1m",
    "${__interval}": "1m",
    "$__range": "5m",
    "${__range}": "5m",
}
WAIT = 90.0  # seconds, at most, for data and rules; normally about 15


def write_inventory(path: Path, snmp_port: int) -> None:
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
        if site_id == SNMP_SITE["site"]:
            # The only device on 127.0.0.1 (addresses are unique across the inventory).
            devices.append(
                {
                    "name": "wlc-1",
                    "role": "controller",
                    "address": "127.0.0.1",
                    "parent": "wan-1",
                    "snmp": {
                        "credentials": "wlc",
                        "profile": "cisco-wlc",
                        "uplink_interfaces": ["uplink-1", "uplink-2"],
                    },
                }
            )
            devices += [
                {"name": ap, "role": "ap", "parent": "wlc-1", "probes": []} for ap in CONTROLLER_APS
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
        "snmp": {
            # snmpsim: the community names the recording (tests/snmp/data/cisco-wlc.snmprec).
            "credentials": {"wlc": {"version": "2c", "community": "cisco-wlc", "port": snmp_port}},
            "defaults": {"interval": "2s", "timeout": "1s", "retries": 1, "max_poll_time": "5s"},
        },
        "sites": sites,
    }
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))


def write_prometheus_config(
    repo: Path, tmp: Path, netmon_port: int, prom_port: int, source: str = "prometheus.yml"
) -> Path:
    """deploy/prometheus/``source`` for this test: its targets and ports, 1 s intervals."""
    conf = yaml.safe_load((repo / "deploy/prometheus" / source).read_text())
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


Query = tuple[str, str, bool]  # panel title, target expr, the panel declares a noValue text


def dashboard_queries(repo: Path) -> dict[str, tuple[list[dict[str, Any]], list[Query]]]:
    """Per dashboard file: its template variables and every (panel title, target expr, noValue?)."""
    out = {}
    for path in sorted((repo / "deploy/grafana/dashboards").glob("*.json")):
        dash = json.loads(path.read_text())
        exprs = [
            (p["title"], t["expr"], bool(p["fieldConfig"]["defaults"].get("noValue")))
            for p in _panels(dash["panels"])
            for t in p.get("targets", [])
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


def resolve_variables(
    prom: Prom, variables: list[dict[str, Any]], use_all: bool, pick: dict[str, str]
) -> dict[str, str]:
    """Real values for the dashboard's variables, in order, like Grafana: label_values() queries
    with the earlier variables substituted. ``pick`` chooses a value by hand (it must be one the
    query offers); otherwise ``use_all`` picks "All" where the variable allows it, else the first
    value."""
    values: dict[str, str] = {}
    for var in variables:
        if var["type"] == "datasource":  # which server answers: the one ``prom`` talks to
            continue
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", var["query"])
        assert m, f"variable {var['name']}: unsupported query {var['query']!r}"
        selector, label = substitute(m.group(1), values), m.group(2)
        found = prom.label_values(label, selector)
        assert found, f"variable {var['name']}: {var['query']!r} returned no values"
        if var["name"] in pick:
            chosen = pick[var["name"]]
            assert chosen in found, f"variable {var['name']}: {chosen!r} not offered: {found}"
            values[var["name"]] = grafana_regex_escape(chosen) if var.get("multi") else chosen
        elif use_all and var.get("includeAll"):
            values[var["name"]] = var.get("allValue") or "|".join(map(grafana_regex_escape, found))
        else:
            values[var["name"]] = grafana_regex_escape(found[0]) if var.get("multi") else found[0]
    return values


def grafana_regex_escape(value: str) -> str:
    """What Grafana's Prometheus data source puts in a query for a multi-value variable."""
    return re.sub(r"([\\^$*+?.()|{}\[\]])", r"\\\\\1", value)


# (hand-picked variable values, use "All" elsewhere, noValue panels must have data too)
SELECTIONS = [
    (SNMP_SITE, False, True),
    ({"site": SNMP_SITE["site"]}, True, True),
    ({}, False, False),  # first values: Dumka, its district hospital (no SNMP, healthy)
    ({}, True, False),  # All, and the first site of all (no SNMP, healthy)
]


def empty_panels(prom: Prom, repo: Path) -> list[str]:
    """Every dashboard query that returns no series now, with its substituted variables."""
    empty = []
    for name, (variables, exprs) in dashboard_queries(repo).items():
        for pick, use_all, strict in SELECTIONS:
            try:
                values = resolve_variables(prom, variables, use_all, pick)
            except AssertionError as exc:
                empty.append(f"{name}: {exc}")
                continue
            for title, expr, has_no_value_text in exprs:
                if has_no_value_text and not strict:
                    continue
                query = substitute(expr, values)
                if not prom.query(query):
                    empty.append(f"{name} / {title}: {query}")
    return empty


def test_every_dashboard_query_returns_data_from_real_prometheus_scraping_netmon(
    bench: Bench,
) -> None:
    prometheus = bench.which("prometheus")
    from tests.snmp.agents import start_snmpsim  # skips the test if snmpsim is missing

    with start_snmpsim(bench.tmp_path / "snmpsim") as agent:
        _run(bench, prometheus, agent.port)


def _run(bench: Bench, prometheus: str, snmp_port: int) -> None:
    inventory = bench.tmp_path / "inventory.yaml"
    write_inventory(inventory, snmp_port)
    netmon_port, prom_port = bench.free_port(), bench.free_port()
    netmon = bench.processes.start(
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
            f"sqlite:///{bench.tmp_path / 'netmon.db'}",
        ],
        cwd=bench.repo,
    )

    def netmon_serves() -> bool:
        if netmon.poll() is not None:
            log = bench.processes.log(netmon)
            if "CAP_NET_RAW" in log or "ping_group_range" in log:  # netmon's IcmpUnavailable advice
                pytest.skip(f"netmon cannot open an ICMP socket here:\n{log}")
            pytest.fail(f"netmon exited with {netmon.returncode}:\n{log}")
        return "netmon_site_fully_functional" in _get_text(
            f"http://127.0.0.1:{netmon_port}/metrics"
        )

    bench.wait_for(netmon_serves, "netmon to serve /metrics", timeout=30)

    config = write_prometheus_config(bench.repo, bench.tmp_path, netmon_port, prom_port)
    prom_proc = bench.processes.start(
        "prometheus",
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={bench.tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            "--log.level=warn",
        ],
    )
    base = f"http://127.0.0.1:{prom_port}"

    def prometheus_ready() -> bool:
        assert prom_proc.poll() is None, f"prometheus exited:\n{bench.processes.log(prom_proc)}"
        return _get_text(f"{base}/-/ready").startswith("Prometheus Server is Ready")

    bench.wait_for(prometheus_ready, "Prometheus to be ready", timeout=30)
    prom = Prom(base, bench.http)

    # Healthy means healthy, degraded means degraded for the right reasons, before the dashboards
    # are judged: the ICMP-only sites fully functional, the SNMP site degraded by exactly its
    # uplink-2 and its not associated AP.
    expected_ff = {s[0]: 0.0 if s[0] == SNMP_SITE["site"] else 1.0 for s in SITES}

    def verdicts() -> tuple[dict[str, float], set[tuple[str, str]]]:
        ff = {
            r["metric"]["site"]: float(r["value"][1])
            for r in prom.query("netmon_site_fully_functional")
        }
        reasons = {
            (r["metric"]["site"], r["metric"]["criterion"])
            for r in prom.query("netmon_site_reasons > 0")
        }
        return ff, reasons

    expected_reasons = {(SNMP_SITE["site"], c) for c in EXPECTED_REASONS}

    def verdicts_as_expected() -> bool:
        return verdicts() == (expected_ff, expected_reasons)

    try:
        bench.wait_for(
            verdicts_as_expected, "the expected site verdicts in Prometheus", timeout=WAIT
        )
    except pytest.fail.Exception:
        pytest.fail(f"verdicts, reasons: {verdicts()}\nnetmon log:\n{bench.processes.log(netmon)}")
    assert prom.query(
        f'netmon_site_verdict{{site="{SNMP_SITE["site"]}", verdict="degraded"}} == 1'
    ), "the SNMP site is not fully functional, but not degraded either"

    # What the controller reports reaches Prometheus: every recorded AP once, the inventoried
    # ones as known, uplink-2 enabled without link.
    site = f'site="{SNMP_SITE["site"]}"'
    aps = prom.query(f"count by (known) (netmon_ap_up{{{site}}})")
    assert {r["metric"]["known"]: float(r["value"][1]) for r in aps} == {
        "true": len(CONTROLLER_APS),
        "false": RECORDED_APS - len(CONTROLLER_APS),
    }
    down = prom.query(f'netmon_ap_up{{{site}, known="true"}} == 0')
    assert [r["metric"]["ap"] for r in down] == ["ap-rims-010"]
    links = prom.query(f'netmon_interface_oper_up{{{site}, device="wlc-1"}}')
    assert {r["metric"]["interface"]: float(r["value"][1]) for r in links} == {
        "uplink-1": 1.0,
        "uplink-2": 0.0,
    }

    # Query errors fail at once; empty results are retried until the rules have data.
    deadline = time.monotonic() + WAIT
    while (empty := empty_panels(prom, bench.repo)) and time.monotonic() < deadline:
        time.sleep(1)
    assert not empty, "panel queries without data:\n" + "\n".join(empty)

    # The shipped rules evaluate cleanly against real netmon data; the SNMP site's alerts are
    # pending (their `for` outlasts the test), nothing else is pending, nothing fires.
    groups = bench.http("GET", f"{base}/api/v1/rules")["data"]["groups"]
    assert {g["name"] for g in groups} >= {
        "netmon-sites",
        "netmon-devices",
        "netmon-self",
        "netmon-availability-long",
        "netmon-access-points",
        "netmon-rollups",
    }
    bad = [
        (g["name"], r["name"], r.get("lastError"))
        for g in groups
        for r in g["rules"]
        if r["health"] != "ok"
    ]
    assert not bad, bad

    def alerts() -> list[dict[str, Any]]:
        return list(bench.http("GET", f"{base}/api/v1/alerts")["data"]["alerts"])

    def pending_as_expected() -> bool:
        return {(a["labels"]["alertname"], a["labels"].get("site")) for a in alerts()} == {
            (name, SNMP_SITE["site"]) for name in EXPECTED_PENDING
        }

    try:
        bench.wait_for(pending_as_expected, "the SNMP site's alerts to be pending", timeout=30)
    except pytest.fail.Exception:
        pytest.fail(f"alerts: {[(a['labels'], a['state']) for a in alerts()]}")
    now = alerts()
    assert {a["state"] for a in now} == {"pending"}, now
    # Alert values are real figures: 1 uplink port, 1 of 6 APs not up, 194 unknown APs.
    values = {a["labels"]["alertname"]: float(a["value"]) for a in now}
    assert values["NetmonUplinkInterfaceDown"] == 1
    assert values["NetmonAccessPointsDown"] == pytest.approx(1 / len(CONTROLLER_APS))
    assert values["NetmonUnknownAccessPoints"] == RECORDED_APS - len(CONTROLLER_APS)
    assert prom.query('up{job="netmon"} == 1'), "netmon target is not up"


def _get_text(url: str) -> str:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return str(resp.read().decode())
    except urllib.error.HTTPError as exc:
        exc.close()  # its open response would warn (ResourceWarning: an error) when collected
        raise
