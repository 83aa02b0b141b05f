"""Generate the netmon Grafana dashboards in ``dashboards/`` (next to this script).

Run ``python deploy/grafana/make_dashboards.py`` after editing a panel here; never hand-edit the
JSON (tests/deploy/ checks that the files match this script). Standard library only.

Dashboards (all on the provisioned Prometheus data source, uid ``netmon-prometheus``):

    netmon-state-overview  the state at a glance: fully functional by district and facility type,
                           worst sites, every site's verdict, progress over time
    netmon-site            one site: verdict and its history, availability, devices, loss, RTT,
                           access points
    netmon-health          netmon itself: scrape, probe cycle, store, rule evaluation

Every panel query returns series while every site is healthy (sums, counts and ``or vector(0)``
where a zero is meaningful), so an empty panel always means a broken query or a missing scrape;
tests/deploy/test_deploy_live.py runs every query against a real Prometheus scraping netmon.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "dashboards"
DS = {"type": "prometheus", "uid": "netmon-prometheus"}
SCHEMA_VERSION = 39

# Label filter shared by every site-level query of the overview.
SEL = 'district=~"$district", type=~"$type"'
SITE = 'site="$site"'

VERDICT_COLORS = {
    "fully_functional": "green",
    "degraded": "orange",
    "down": "red",
    "not_installed": "purple",
    "unknown": "text",
}

Panel = dict[str, Any]


# --- building blocks ---------------------------------------------------------------------------
def target(
    expr: str, legend: str = "", *, instant: bool = False, table: bool = False
) -> dict[str, Any]:
    t: dict[str, Any] = {"datasource": DS, "expr": expr, "legendFormat": legend or "__auto"}
    if instant or table:
        t.update(instant=True, range=False)
    else:
        t.update(instant=False, range=True)
    if table:
        t["format"] = "table"
    return t


def panel(
    kind: str,
    title: str,
    targets: list[dict[str, Any]],
    *,
    w: int,
    h: int,
    unit: str = "",
    description: str = "",
    **extra: Any,
) -> Panel:
    defaults: dict[str, Any] = {"unit": unit} if unit else {}
    defaults.update(extra.pop("defaults", {}))
    p: Panel = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"w": w, "h": h},
        "targets": [dict(t, refId=chr(ord("A") + i)) for i, t in enumerate(targets)],
        "fieldConfig": {"defaults": defaults, "overrides": extra.pop("overrides", [])},
        "options": extra.pop("options", {}),
    }
    p.update(extra)
    return p


def row(title: str) -> Panel:
    return {
        "type": "row",
        "title": title,
        "collapsed": False,
        "panels": [],
        "gridPos": {"w": 24, "h": 1},
    }


def ratio_thresholds() -> dict[str, Any]:
    return {
        "mode": "absolute",
        "steps": [
            {"color": "red", "value": None},
            {"color": "orange", "value": 0.9},
            {"color": "green", "value": 0.99},
        ],
    }


def percent(**extra: Any) -> dict[str, Any]:
    return {
        "unit": "percentunit",
        "min": 0,
        "max": 1,
        "decimals": 1,
        "thresholds": ratio_thresholds(),
        "color": {"mode": "thresholds"},
        **extra,
    }


def verdict_overrides() -> list[dict[str, Any]]:
    return [
        {
            "matcher": {"id": "byName", "options": v},
            "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": c}}],
        }
        for v, c in VERDICT_COLORS.items()
    ]


def query_var(name: str, label: str, query: str, *, multi: bool = True) -> dict[str, Any]:
    v: dict[str, Any] = {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": DS,
        "query": query,
        "definition": query,
        "refresh": 2,
        "sort": 1,
        "multi": multi,
        "includeAll": multi,
        "current": {},
        "options": [],
    }
    if multi:
        v["allValue"] = ".*"
    return v


def layout(panels: list[Panel]) -> list[Panel]:
    """Give panels ids and flow them left to right, top to bottom, on the 24-column grid."""
    x = y = line_h = 0
    for i, p in enumerate(panels, start=1):
        p["id"] = i
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if x + w > 24 or p["type"] == "row":
            x, y, line_h = 0, y + line_h, 0
        p["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
        x, line_h = x + w, max(line_h, h)
        if p["type"] == "row":
            x, y, line_h = 0, y + h, 0
    return panels


def dashboard(
    uid: str,
    title: str,
    description: str,
    panels: list[Panel],
    variables: list[dict[str, Any]],
    *,
    time_from: str = "now-24h",
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["netmon", "noc"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "1m",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": time_from, "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [
            {
                "title": "netmon dashboards",
                "type": "dashboards",
                "tags": ["netmon"],
                "asDropdown": True,
            }
        ],
        "panels": layout(panels),
    }


# --- state overview ----------------------------------------------------------------------------
def overview() -> dict[str, Any]:
    ff = f"netmon_site_fully_functional{{{SEL}}}"
    dt_sum = f"district_type:netmon_sites_fully_functional:sum{{{SEL}}}"
    dt_count = f"district_type:netmon_sites:count{{{SEL}}}"
    verdicts = f"district_type_verdict:netmon_sites:count{{{SEL}}}"
    panels = [
        row("Now"),
        panel(
            "stat",
            "Sites fully functional",
            [
                target(f"sum({ff})", "fully functional", instant=True),
                target(f"count({ff})", "sites", instant=True),
            ],
            w=5,
            h=5,
            description="Sites whose verdict is fully_functional, out of all inventoried sites in the selection.",
            options={
                "reduceOptions": {"calcs": ["lastNotNull"]},
                "textMode": "value_and_name",
                "colorMode": "none",
            },
        ),
        panel(
            "stat",
            "Share fully functional",
            [target(f"sum({ff}) / count({ff})", "now", instant=True)],
            w=4,
            h=5,
            defaults=percent(),
            options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"},
        ),
        panel(
            "stat",
            "Sites by verdict",
            [target(f"sum by (verdict) ({verdicts})", "{{verdict}}", instant=True)],
            w=9,
            h=5,
            overrides=verdict_overrides(),
            options={
                "reduceOptions": {"calcs": ["lastNotNull"]},
                "textMode": "value_and_name",
                "colorMode": "background",
            },
        ),
        panel(
            "stat",
            "Time fully functional (mean of sites)",
            [
                target(
                    f"avg(site:netmon_site_fully_functional:avg24h{{{SEL}}})", "24 h", instant=True
                ),
                target(
                    f"avg(site:netmon_site_fully_functional:avg30d{{{SEL}}})", "30 d", instant=True
                ),
            ],
            w=6,
            h=5,
            defaults=percent(),
            options={"reduceOptions": {"calcs": ["lastNotNull"]}, "textMode": "value_and_name"},
        ),
        row("By district and facility type"),
        panel(
            "bargauge",
            "Fully functional by district",
            [
                target(
                    f"sum by (district) ({dt_sum}) / sum by (district) ({dt_count})",
                    "{{district}}",
                    instant=True,
                ),
            ],
            w=12,
            h=14,
            defaults=percent(),
            options={
                "orientation": "horizontal",
                "displayMode": "lcd",
                "reduceOptions": {"calcs": ["lastNotNull"]},
            },
        ),
        panel(
            "bargauge",
            "Fully functional by facility type",
            [
                target(
                    f"sum by (type) ({dt_sum}) / sum by (type) ({dt_count})",
                    "{{type}}",
                    instant=True,
                ),
            ],
            w=12,
            h=7,
            defaults=percent(),
            options={
                "orientation": "horizontal",
                "displayMode": "lcd",
                "reduceOptions": {"calcs": ["lastNotNull"]},
            },
        ),
        panel(
            "table",
            "District × facility type",
            [
                target(f"sum by (district, type) ({dt_sum})", table=True),
                target(f"sum by (district, type) ({dt_count})", table=True),
            ],
            w=12,
            h=7,
            transformations=[
                {"id": "merge", "options": {}},
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True},
                        "renameByName": {"Value #A": "fully functional", "Value #B": "sites"},
                    },
                },
            ],
        ),
        row("Sites"),
        panel(
            "table",
            "Worst sites: share of the last 24 h fully functional",
            [
                target(
                    f"bottomk(25, avg by (site, district, type) (site:netmon_site_fully_functional:avg24h{{{SEL}}}))",
                    table=True,
                ),
            ],
            w=12,
            h=12,
            defaults=percent(custom={"cellOptions": {"type": "color-background"}}),
            transformations=[
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True},
                        "renameByName": {"Value": "24 h fully functional"},
                    },
                },
                {"id": "sortBy", "options": {"sort": [{"field": "24 h fully functional"}]}},
            ],
        ),
        panel(
            "table",
            "Every site: current verdict and time in it",
            [
                target(
                    f"(time() - max by (site, district, type) (netmon_site_verdict_since_timestamp_seconds{{{SEL}}}))"
                    f" * on (site) group_left (verdict) max by (site, verdict) (netmon_site_verdict{{{SEL}}} == 1)",
                    table=True,
                ),
            ],
            w=12,
            h=12,
            unit="s",
            overrides=[
                {
                    "matcher": {"id": "byName", "options": "verdict"},
                    "properties": [
                        {"id": "custom.cellOptions", "value": {"type": "color-text"}},
                        {
                            "id": "mappings",
                            "value": [
                                {
                                    "type": "value",
                                    "options": {
                                        v: {"color": c, "index": i}
                                        for i, (v, c) in enumerate(VERDICT_COLORS.items())
                                    },
                                }
                            ],
                        },
                    ],
                },
            ],
            transformations=[
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True},
                        "renameByName": {"Value": "in verdict for"},
                    },
                },
                {"id": "sortBy", "options": {"sort": [{"field": "verdict"}]}},
            ],
        ),
        row("Progress over time"),
        panel(
            "timeseries",
            "Share of sites fully functional",
            [
                target(f"sum({ff}) / count({ff})", "all selected sites"),
                target(f"sum by (type) ({dt_sum}) / sum by (type) ({dt_count})", "{{type}}"),
            ],
            w=12,
            h=9,
            defaults=percent(),
        ),
        panel(
            "timeseries",
            "Sites by verdict",
            [target(f"sum by (verdict) ({verdicts})", "{{verdict}}")],
            w=12,
            h=9,
            overrides=verdict_overrides(),
            defaults={
                "custom": {"stacking": {"mode": "normal"}, "fillOpacity": 60, "lineWidth": 0}
            },
        ),
        panel(
            "timeseries",
            "Share of the last 24 h fully functional, by district",
            [
                target(
                    f"avg by (district) (site:netmon_site_fully_functional:avg24h{{{SEL}}})",
                    "{{district}}",
                ),
            ],
            w=24,
            h=9,
            defaults=percent(),
        ),
    ]
    variables = [
        query_var("district", "District", "label_values(netmon_site_fully_functional, district)"),
        query_var(
            "type",
            "Facility type",
            'label_values(netmon_site_fully_functional{district=~"$district"}, type)',
        ),
    ]
    return dashboard(
        "netmon-state-overview",
        "netmon: state overview",
        "Is the hospital Wi-Fi fully functional? Every inventoried site, by district and facility type.",
        panels,
        variables,
    )


# --- one site ----------------------------------------------------------------------------------
def site_page() -> dict[str, Any]:
    def dev(metric: str) -> str:
        return f"max by (device, role) ({metric}{{{SITE}}})"

    panels = [
        row("Verdict"),
        panel(
            "stat",
            "Verdict",
            [
                target(
                    f"max by (verdict) (netmon_site_verdict{{{SITE}}} == 1)",
                    "{{verdict}}",
                    instant=True,
                )
            ],
            w=5,
            h=5,
            overrides=verdict_overrides(),
            options={
                "reduceOptions": {"calcs": ["lastNotNull"]},
                "textMode": "name",
                "colorMode": "background",
            },
        ),
        panel(
            "stat",
            "In this verdict for",
            [
                target(
                    f"time() - max(netmon_site_verdict_since_timestamp_seconds{{{SITE}}})",
                    "since",
                    instant=True,
                ),
            ],
            w=4,
            h=5,
            unit="s",
            options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "none"},
        ),
        panel(
            "stat",
            "Time fully functional",
            [
                target(
                    f"avg(site:netmon_site_fully_functional:avg1h{{{SITE}}})", "1 h", instant=True
                ),
                target(
                    f"avg(site:netmon_site_fully_functional:avg24h{{{SITE}}})", "24 h", instant=True
                ),
                target(
                    f"avg(site:netmon_site_fully_functional:avg30d{{{SITE}}})", "30 d", instant=True
                ),
            ],
            w=8,
            h=5,
            defaults=percent(),
            options={"reduceOptions": {"calcs": ["lastNotNull"]}, "textMode": "value_and_name"},
        ),
        panel(
            "stat",
            "Uplink up",
            [
                target(f"avg(site:netmon_uplink_up:avg1h{{{SITE}}})", "1 h", instant=True),
                target(f"avg(site:netmon_uplink_up:avg24h{{{SITE}}})", "24 h", instant=True),
                target(f"avg(site:netmon_uplink_up:avg30d{{{SITE}}})", "30 d", instant=True),
            ],
            w=7,
            h=5,
            defaults=percent(),
            options={"reduceOptions": {"calcs": ["lastNotNull"]}, "textMode": "value_and_name"},
        ),
        panel(
            "state-timeline",
            "Verdict history",
            [
                target(f"max by (verdict) (netmon_site_verdict{{{SITE}}})", "{{verdict}}"),
            ],
            w=24,
            h=6,
            # One row per verdict, coloured in the verdict's colour while it was the verdict.
            overrides=[
                {
                    "matcher": {"id": "byName", "options": v},
                    "properties": [
                        {
                            "id": "mappings",
                            "value": [
                                {
                                    "type": "value",
                                    "options": {
                                        "0": {"text": "", "color": "transparent"},
                                        "1": {"text": v, "color": c},
                                    },
                                }
                            ],
                        }
                    ],
                }
                for v, c in VERDICT_COLORS.items()
            ],
            options={"showValue": "never", "mergeValues": True},
        ),
        row("Devices"),
        panel(
            "table",
            "Devices",
            [
                target(dev("netmon_device_up"), table=True),
                target(dev("netmon_device_reachable_via_parent"), table=True),
                target(dev("netmon_device_window_availability_ratio"), table=True),
                target(dev("netmon_device_window_loss_ratio"), table=True),
                target(dev("netmon_device_window_rtt_p95_seconds"), table=True),
                target(dev("netmon_device_loss_ratio"), table=True),
                target(dev("netmon_device_rtt_seconds"), table=True),
            ],
            w=24,
            h=12,
            transformations=[
                {"id": "merge", "options": {}},
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True},
                        "renameByName": {
                            "Value #A": "up",
                            "Value #B": "parent chain up",
                            "Value #C": "window availability",
                            "Value #D": "window loss",
                            "Value #E": "window RTT p95",
                            "Value #F": "last loss",
                            "Value #G": "last RTT",
                        },
                    },
                },
            ],
            overrides=[
                {
                    "matcher": {
                        "id": "byRegexp",
                        "options": "^(window availability|window loss|last loss)$",
                    },
                    "properties": [{"id": "unit", "value": "percentunit"}],
                },
                {
                    "matcher": {"id": "byRegexp", "options": "^(window RTT p95|last RTT)$"},
                    "properties": [{"id": "unit", "value": "s"}],
                },
                {
                    "matcher": {"id": "byRegexp", "options": "^(up|parent chain up)$"},
                    "properties": [
                        {
                            "id": "mappings",
                            "value": [
                                {
                                    "type": "value",
                                    "options": {
                                        "0": {"text": "no", "color": "red"},
                                        "1": {"text": "yes", "color": "green"},
                                    },
                                }
                            ],
                        },
                        {"id": "custom.cellOptions", "value": {"type": "color-text"}},
                    ],
                },
            ],
        ),
        panel(
            "state-timeline",
            "Device up/down",
            [target(f"max by (device) (netmon_device_up{{{SITE}}})", "{{device}}")],
            w=12,
            h=10,
            defaults={
                "mappings": [
                    {
                        "type": "value",
                        "options": {
                            "0": {"text": "down", "color": "red"},
                            "1": {"text": "up", "color": "green"},
                        },
                    }
                ]
            },
            options={"showValue": "never", "mergeValues": True},
        ),
        panel(
            "timeseries",
            "Devices by role and state",
            [
                target(
                    f"sum by (role, state) (netmon_site_devices{{{SITE}}})", "{{role}} {{state}}"
                ),
            ],
            w=12,
            h=10,
            defaults={"custom": {"stacking": {"mode": "normal"}, "fillOpacity": 40}},
        ),
        row("Access points"),
        panel(
            "bargauge",
            "Access points by state",
            [
                target(
                    f'sum by (state) (netmon_site_devices{{{SITE}, role="ap"}})',
                    "{{state}}",
                    instant=True,
                ),
            ],
            w=8,
            h=8,
            options={"orientation": "horizontal", "reduceOptions": {"calcs": ["lastNotNull"]}},
            overrides=[
                {
                    "matcher": {"id": "byName", "options": s},
                    "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": c}}],
                }
                for s, c in (
                    ("up", "green"),
                    ("down", "red"),
                    ("unreachable_parent", "orange"),
                    ("unknown", "text"),
                )
            ],
        ),
        panel(
            "timeseries",
            "Share of access points up",
            [
                target(
                    f'sum(netmon_site_devices{{{SITE}, role="ap", state="up"}}) / sum(netmon_site_devices{{{SITE}, role="ap"}})'
                    " or sum(netmon_site_devices{" + SITE + ', role="ap"}) * 0',
                    "APs up",
                ),
            ],
            w=16,
            h=8,
            defaults=percent(),
        ),
        row("Loss and round-trip time"),
        panel(
            "timeseries",
            "Loss, last burst",
            [target(dev("netmon_device_loss_ratio"), "{{device}}")],
            w=12,
            h=9,
            unit="percentunit",
            defaults={"min": 0},
        ),
        panel(
            "timeseries",
            "Loss over the verdict window",
            [target(dev("netmon_device_window_loss_ratio"), "{{device}}")],
            w=12,
            h=9,
            unit="percentunit",
            defaults={"min": 0},
        ),
        panel(
            "timeseries",
            "RTT, mean of last burst",
            [target(dev("netmon_device_rtt_seconds"), "{{device}}")],
            w=8,
            h=9,
            unit="s",
        ),
        panel(
            "timeseries",
            "RTT p95 over the verdict window",
            [target(dev("netmon_device_window_rtt_p95_seconds"), "{{device}}")],
            w=8,
            h=9,
            unit="s",
        ),
        panel(
            "timeseries",
            "Jitter, last burst",
            [target(dev("netmon_device_jitter_seconds"), "{{device}}")],
            w=8,
            h=9,
            unit="s",
        ),
        panel(
            "timeseries",
            "Uplink devices up, 1 h average",
            [
                target(f"max by (device) (device:netmon_uplink_up:avg1h{{{SITE}}})", "{{device}}"),
            ],
            w=24,
            h=8,
            defaults=percent(),
        ),
    ]
    variables = [
        query_var("district", "District", "label_values(netmon_site_fully_functional, district)"),
        query_var(
            "type",
            "Facility type",
            'label_values(netmon_site_fully_functional{district=~"$district"}, type)',
        ),
        query_var(
            "site",
            "Site",
            'label_values(netmon_site_fully_functional{district=~"$district", type=~"$type"}, site)',
            multi=False,
        ),
    ]
    return dashboard(
        "netmon-site",
        "netmon: site",
        "One facility: its verdict and history, availability, devices, loss, RTT and access points.",
        panels,
        variables,
        time_from="now-6h",
    )


# --- netmon health -----------------------------------------------------------------------------
def health() -> dict[str, Any]:
    inst = 'instance=~"$instance"'
    panels = [
        row("Scrape"),
        panel(
            "stat",
            "Scraped",
            [target(f'up{{job="netmon", {inst}}}', "{{instance}}", instant=True)],
            w=4,
            h=5,
            defaults={
                "mappings": [
                    {
                        "type": "value",
                        "options": {
                            "0": {"text": "DOWN", "color": "red"},
                            "1": {"text": "UP", "color": "green"},
                        },
                    }
                ]
            },
            options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"},
        ),
        panel(
            "stat",
            "Inventory",
            [
                target(f"sum(netmon_sites{{{inst}}})", "sites", instant=True),
                target(f"sum(netmon_devices{{{inst}}})", "devices", instant=True),
            ],
            w=5,
            h=5,
            options={
                "reduceOptions": {"calcs": ["lastNotNull"]},
                "textMode": "value_and_name",
                "colorMode": "none",
            },
        ),
        panel(
            "stat",
            "Build and ICMP mode",
            [
                target(f"netmon_info{{{inst}}}", "{{version}} · ICMP {{icmp_mode}}", instant=True),
            ],
            w=5,
            h=5,
            options={
                "reduceOptions": {"calcs": ["lastNotNull"]},
                "textMode": "name",
                "colorMode": "none",
            },
        ),
        panel(
            "stat",
            "netmon alerts firing",
            [
                target(
                    'count by (severity) (ALERTS{alertstate="firing", alertname=~"Netmon.*"}) or on () vector(0)',
                    "{{severity}}",
                    instant=True,
                ),
            ],
            w=5,
            h=5,
            options={"reduceOptions": {"calcs": ["lastNotNull"]}, "textMode": "value_and_name"},
            defaults={
                "thresholds": {
                    "mode": "absolute",
                    "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}],
                }
            },
        ),
        panel(
            "stat",
            "Verdicts computed",
            [
                target(
                    f"time() - max(netmon_last_evaluation_timestamp_seconds{{{inst}}})",
                    "seconds ago",
                    instant=True,
                ),
            ],
            w=5,
            h=5,
            unit="s",
            defaults={
                "thresholds": {
                    "mode": "absolute",
                    "steps": [{"color": "green", "value": None}, {"color": "red", "value": 120}],
                }
            },
            options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"},
        ),
        panel(
            "timeseries",
            "Scrape duration",
            [
                target(f'scrape_duration_seconds{{job="netmon", {inst}}}', "{{instance}}"),
            ],
            w=12,
            h=8,
            unit="s",
        ),
        panel(
            "timeseries",
            "Samples per scrape",
            [
                target(f'scrape_samples_scraped{{job="netmon", {inst}}}', "{{instance}}"),
            ],
            w=12,
            h=8,
        ),
        row("Probing"),
        panel(
            "timeseries",
            "Probe cycle lag",
            [target(f"netmon_probe_cycle_lag_seconds{{{inst}}}", "{{instance}}")],
            w=12,
            h=8,
            unit="s",
            description="How late probes start against their schedule (NetmonProbeCycleLagging above 10 s).",
        ),
        panel(
            "timeseries",
            "Probes and results per second",
            [
                target(
                    f"sum(rate(netmon_probes_started_total{{{inst}}}[$__rate_interval]))",
                    "probes started",
                ),
                target(
                    f"sum(rate(netmon_results_taken_total{{{inst}}}[$__rate_interval]))",
                    "results taken",
                ),
                target(
                    f"sum(rate(netmon_results_written_total{{{inst}}}[$__rate_interval]))",
                    "rows written",
                ),
            ],
            w=12,
            h=8,
            unit="ops",
        ),
        panel(
            "timeseries",
            "Probe overruns",
            [
                target(
                    f"sum(increase(netmon_probe_overruns_total{{{inst}}}[$__rate_interval]))",
                    "overruns",
                ),
            ],
            w=12,
            h=8,
            description="Probes still running when due again (should stay at 0).",
        ),
        row("Store"),
        panel(
            "timeseries",
            "Write backlog",
            [target(f"netmon_store_pending_results{{{inst}}}", "{{instance}}")],
            w=12,
            h=8,
            description="Rows waiting for the database; netmon drops the oldest beyond 2,000,000.",
        ),
        panel(
            "timeseries",
            "Store errors and dropped rows",
            [
                target(
                    f"sum(increase(netmon_store_errors_total{{{inst}}}[$__rate_interval]))",
                    "failed writes",
                ),
                target(
                    f"sum(increase(netmon_store_dropped_results_total{{{inst}}}[$__rate_interval]))",
                    "dropped rows",
                ),
            ],
            w=12,
            h=8,
        ),
        row("Prometheus rules"),
        panel(
            "timeseries",
            "Rule group evaluation time",
            [
                target(
                    'max by (rule_group) (prometheus_rule_group_last_duration_seconds{job="prometheus", rule_group=~".*netmon.*"})',
                    "{{rule_group}}",
                ),
            ],
            w=12,
            h=8,
            unit="s",
        ),
        panel(
            "timeseries",
            "Rule evaluation failures",
            [
                target(
                    'sum(increase(prometheus_rule_evaluation_failures_total{job="prometheus", rule_group=~".*netmon.*"}[$__rate_interval]))',
                    "failures",
                ),
            ],
            w=12,
            h=8,
        ),
    ]
    variables = [
        query_var("instance", "netmon instance", 'label_values(up{job="netmon"}, instance)')
    ]
    return dashboard(
        "netmon-health",
        "netmon: health",
        "netmon itself: is it scraped, probing on time, writing its store; are the rules evaluating.",
        panels,
        variables,
        time_from="now-6h",
    )


DASHBOARDS = {
    "netmon-state-overview.json": overview,
    "netmon-site.json": site_page,
    "netmon-health.json": health,
}


def render() -> dict[str, str]:
    return {
        name: json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
        for name, build in DASHBOARDS.items()
    }


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text, encoding="utf-8")
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
