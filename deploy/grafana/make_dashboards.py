"""Generate the netmon Grafana dashboards in ``dashboards/`` (next to this script).

Run ``python deploy/grafana/make_dashboards.py`` after editing a panel here; never hand-edit the
JSON (tests/deploy/ checks that the files match this script). Standard library only.

Dashboards (all on the provisioned Prometheus data source, uid ``netmon-prometheus``):

    netmon-state-overview  the state at a glance: fully functional by district and facility type,
                           why sites are not fully functional, worst sites, every site's verdict,
                           progress over time
    netmon-site            one site: verdict and its history, availability, devices, loss, RTT,
                           access points (also as the wireless controller reports them), uplink
                           interfaces, SNMP poll health, uptime and reboots
    netmon-health          netmon itself: scrape, probe cycle, SNMP polls, store, rule evaluation

Every panel query returns series while every site is healthy (sums, counts and ``or vector(0)``
where a zero is meaningful), so an empty panel always means a broken query or a missing scrape.
Two kinds of panels are empty by nature for some selections and say so with ``noValue``: SNMP
panels for a site (or netmon) without SNMP-polled devices, and the "why not fully functional"
panels while every selected site is fully functional. tests/deploy/test_deploy_live.py runs every
query against a real Prometheus scraping netmon (with an SNMP-polled controller at a degraded
site): every query must return data there, and elsewhere only ``noValue`` panels may be empty.
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


NO_SNMP = "No SNMP-polled device here"
NO_CONTROLLER = "No wireless controller polled here"
NO_REASONS = "None: every selected site is fully functional"


def yes_no(no: str = "no", yes: str = "yes") -> list[dict[str, Any]]:
    """Value mappings for 0/1 gauges."""
    return [
        {
            "type": "value",
            "options": {"0": {"text": no, "color": "red"}, "1": {"text": yes, "color": "green"}},
        }
    ]


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
        row("Why not fully functional"),
        panel(
            "bargauge",
            "Why sites are not fully functional",
            [
                target(
                    f"sort_desc(sum by (criterion) (netmon_site_reasons{{{SEL}}}))",
                    "{{criterion}}",
                    instant=True,
                ),
            ],
            w=8,
            h=10,
            description=(
                "Reasons by verdict criterion (netmon/verdict.py), summed over the selected sites: "
                "e.g. uplink_loss, ap_up_ratio, uplink_interface_down, device_rebooted, "
                "snmp_no_answer. The API (/api/v1/sites/<site>) names device, figure and threshold."
            ),
            defaults={"noValue": NO_REASONS, "color": {"mode": "fixed", "fixedColor": "orange"}},
            options={
                "orientation": "horizontal",
                "displayMode": "basic",
                "reduceOptions": {"calcs": ["lastNotNull"]},
            },
        ),
        panel(
            "table",
            "Sites not fully functional and why",
            [
                target(
                    f"max by (site, district, type, criterion) (netmon_site_reasons{{{SEL}}})",
                    table=True,
                ),
            ],
            w=8,
            h=10,
            defaults={"noValue": NO_REASONS},
            transformations=[
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True},
                        "renameByName": {"Value": "reasons"},
                    },
                },
                {"id": "sortBy", "options": {"sort": [{"field": "site"}]}},
            ],
        ),
        panel(
            "timeseries",
            "Reasons over time, by criterion",
            [target(f"sum by (criterion) (netmon_site_reasons{{{SEL}}})", "{{criterion}}")],
            w=8,
            h=10,
            defaults={
                "noValue": NO_REASONS,
                "custom": {"stacking": {"mode": "normal"}, "fillOpacity": 40},
            },
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

    def iface(metric: str) -> str:
        """``metric`` may carry its own matchers: ``name{a="b"}``."""
        name, _, rest = metric.partition("{")
        matchers = SITE + (", " + rest.rstrip("}") if rest else "")
        return f"max by (device, interface) ({name}{{{matchers}}})"

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
        row("Access points as the controllers report them (SNMP)"),
        panel(
            "stat",
            "Access points on the controllers",
            [
                target(
                    f'sum(max by (ap) (netmon_ap_up{{{SITE}, known="true"}}))',
                    "associated",
                    instant=True,
                ),
                target(
                    f'count(max by (ap) (netmon_ap_up{{{SITE}, known="true"}}))',
                    "inventoried APs reported",
                    instant=True,
                ),
                target(
                    f'count(max by (ap) (netmon_ap_up{{{SITE}, known="false"}}))'
                    f" or on () (0 * count(netmon_ap_up{{{SITE}}}))",
                    "not in the inventory",
                    instant=True,
                ),
            ],
            w=8,
            h=5,
            description="Inventoried APs the site's wireless controllers report associated, and "
            "APs they report that the inventory lacks (NetmonUnknownAccessPoints).",
            defaults={"noValue": NO_CONTROLLER},
            options={
                "reduceOptions": {"calcs": ["lastNotNull"]},
                "textMode": "value_and_name",
                "colorMode": "none",
            },
        ),
        panel(
            "stat",
            "Wi-Fi clients now",
            [target(f"sum(site:netmon_ap_clients:sum{{{SITE}}})", "clients", instant=True)],
            w=4,
            h=5,
            defaults={"noValue": NO_CONTROLLER},
            options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "none"},
        ),
        panel(
            "timeseries",
            "Share of inventoried APs associated (controller)",
            [
                target(f"avg(site:netmon_ap_up:avg{{{SITE}}})", "now"),
                target(f"avg(site:netmon_ap_up:avg1h{{{SITE}}})", "1 h average"),
            ],
            w=6,
            h=5,
            defaults=percent(noValue=NO_CONTROLLER),
        ),
        panel(
            "timeseries",
            "Wi-Fi clients by controller",
            [target(f"sum by (controller) (netmon_ap_clients{{{SITE}}})", "{{controller}}")],
            w=6,
            h=5,
            defaults={"noValue": NO_CONTROLLER, "min": 0},
        ),
        panel(
            "table",
            "Access points the controllers report",
            [
                target(f"max by (controller, ap, known) (netmon_ap_up{{{SITE}}})", table=True),
                target(f"max by (controller, ap, known) (netmon_ap_clients{{{SITE}}})", table=True),
            ],
            w=16,
            h=12,
            description="known = false: the controller reports an AP the inventory lacks.",
            defaults={"noValue": NO_CONTROLLER},
            transformations=[
                {"id": "merge", "options": {}},
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True},
                        "renameByName": {"Value #A": "associated", "Value #B": "clients"},
                    },
                },
                {"id": "sortBy", "options": {"sort": [{"field": "associated"}]}},
            ],
            overrides=[
                {
                    "matcher": {"id": "byName", "options": "associated"},
                    "properties": [
                        {"id": "mappings", "value": yes_no()},
                        {"id": "custom.cellOptions", "value": {"type": "color-text"}},
                    ],
                },
            ],
        ),
        panel(
            "bargauge",
            "Busiest access points",
            [
                target(
                    f"topk(10, max by (ap) (netmon_ap_clients{{{SITE}}}))", "{{ap}}", instant=True
                ),
            ],
            w=8,
            h=12,
            defaults={"noValue": NO_CONTROLLER, "min": 0},
            options={"orientation": "horizontal", "reduceOptions": {"calcs": ["lastNotNull"]}},
        ),
        row("Uplink interfaces (SNMP)"),
        panel(
            "state-timeline",
            "Interface link state",
            [
                target(
                    f"max by (device, interface) (netmon_interface_oper_up{{{SITE}}})",
                    "{{device}} {{interface}}",
                ),
            ],
            w=12,
            h=8,
            description="Per SNMP-polled device: the inventory's uplink_interfaces first, then "
            "enabled ports, at most 64 per device. An uplink interface enabled but down is the "
            "verdict reason uplink_interface_down (NetmonUplinkInterfaceDown).",
            defaults={"noValue": NO_SNMP, "mappings": yes_no("down", "up")},
            options={"showValue": "never", "mergeValues": True},
        ),
        panel(
            "table",
            "Interfaces",
            [
                target(iface("netmon_interface_oper_up"), table=True),
                target(iface("netmon_interface_admin_up"), table=True),
                target(iface("netmon_interface_receive_bits_per_second"), table=True),
                target(iface("netmon_interface_transmit_bits_per_second"), table=True),
                target(iface('netmon_interface_errors{direction="in"}'), table=True),
                target(iface('netmon_interface_errors{direction="out"}'), table=True),
                target(
                    f"max by (device, interface) (increase(netmon_interface_flaps_total{{{SITE}}}[$__range]))",
                    table=True,
                ),
            ],
            w=12,
            h=8,
            defaults={"noValue": NO_SNMP},
            transformations=[
                {"id": "merge", "options": {}},
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True},
                        "renameByName": {
                            "Value #A": "link",
                            "Value #B": "enabled",
                            "Value #C": "in",
                            "Value #D": "out",
                            "Value #E": "in errors",
                            "Value #F": "out errors",
                            "Value #G": "flaps in range",
                        },
                    },
                },
            ],
            overrides=[
                {
                    "matcher": {"id": "byRegexp", "options": "^(link|enabled)$"},
                    "properties": [
                        {"id": "mappings", "value": yes_no()},
                        {"id": "custom.cellOptions", "value": {"type": "color-text"}},
                    ],
                },
                {
                    "matcher": {"id": "byRegexp", "options": "^(in|out)$"},
                    "properties": [{"id": "unit", "value": "bps"}],
                },
            ],
        ),
        panel(
            "timeseries",
            "Interface traffic (out below zero)",
            [
                target(
                    iface("netmon_interface_receive_bits_per_second"), "{{device}} {{interface}} in"
                ),
                target(
                    iface("netmon_interface_transmit_bits_per_second"),
                    "{{device}} {{interface}} out",
                ),
            ],
            w=12,
            h=9,
            unit="bps",
            defaults={"noValue": NO_SNMP},
            overrides=[
                {
                    "matcher": {"id": "byRegexp", "options": " out$"},
                    "properties": [{"id": "custom.transform", "value": "negative-Y"}],
                }
            ],
        ),
        panel(
            "timeseries",
            "Interface errors between polls",
            [
                target(
                    f"sum by (device, interface, direction) (netmon_interface_errors{{{SITE}}})",
                    "{{device}} {{interface}} {{direction}}",
                ),
            ],
            w=12,
            h=9,
            defaults={"noValue": NO_SNMP, "min": 0},
        ),
        row("SNMP poll health, uptime and reboots"),
        panel(
            "table",
            "SNMP poll health",
            [
                target(dev("netmon_device_snmp_up"), table=True),
                target(dev("netmon_device_snmp_poll_duration_seconds"), table=True),
                target(dev("netmon_device_uptime_seconds"), table=True),
                target(dev("netmon_device_reboots_in_window"), table=True),
            ],
            w=12,
            h=8,
            description="SNMP agent answering (NetmonSnmpNotAnswering after 15 minutes while the "
            "device answers ping), last poll duration, sysUpTime, and reboots inside the verdict "
            "window (verdict reason device_rebooted above the site's max_reboots).",
            defaults={"noValue": NO_SNMP},
            transformations=[
                {"id": "merge", "options": {}},
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True},
                        "renameByName": {
                            "Value #A": "SNMP answers",
                            "Value #B": "poll duration",
                            "Value #C": "uptime",
                            "Value #D": "reboots in window",
                        },
                    },
                },
            ],
            overrides=[
                {
                    "matcher": {"id": "byName", "options": "SNMP answers"},
                    "properties": [
                        {"id": "mappings", "value": yes_no()},
                        {"id": "custom.cellOptions", "value": {"type": "color-text"}},
                    ],
                },
                {
                    "matcher": {"id": "byRegexp", "options": "^(poll duration|uptime)$"},
                    "properties": [{"id": "unit", "value": "s"}],
                },
            ],
        ),
        panel(
            "state-timeline",
            "SNMP agent answering",
            [target(f"max by (device) (netmon_device_snmp_up{{{SITE}}})", "{{device}}")],
            w=12,
            h=8,
            defaults={"noValue": NO_SNMP, "mappings": yes_no("no answer", "answers")},
            options={"showValue": "never", "mergeValues": True},
        ),
        panel(
            "timeseries",
            "SNMP poll duration",
            [target(dev("netmon_device_snmp_poll_duration_seconds"), "{{device}}")],
            w=8,
            h=8,
            unit="s",
            defaults={"noValue": NO_SNMP},
        ),
        panel(
            "timeseries",
            "Device uptime",
            [target(dev("netmon_device_uptime_seconds"), "{{device}}")],
            w=8,
            h=8,
            unit="s",
            description="sysUpTime at each poll: a drop to near zero is a reboot.",
            defaults={"noValue": NO_SNMP},
        ),
        panel(
            "timeseries",
            "Reboots in the verdict window",
            [target(dev("netmon_device_reboots_in_window"), "{{device}}")],
            w=8,
            h=8,
            defaults={"noValue": NO_SNMP, "min": 0, "decimals": 0},
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
        panel(
            "timeseries",
            "SNMP-polled devices answering",
            [
                target(f"sum(netmon_device_snmp_up{{{inst}}})", "answering"),
                target(f"count(netmon_device_snmp_up{{{inst}}})", "polled"),
            ],
            w=6,
            h=8,
            defaults={"noValue": NO_SNMP, "min": 0},
        ),
        panel(
            "timeseries",
            "SNMP poll duration, slowest device",
            [
                target(
                    f"max(netmon_device_snmp_poll_duration_seconds{{{inst}}})",
                    "slowest",
                ),
            ],
            w=6,
            h=8,
            unit="s",
            description="Compare with snmp.defaults.max_poll_time in the inventory.",
            defaults={"noValue": NO_SNMP},
        ),
        row("Store"),
        panel(
            "timeseries",
            "Write backlog",
            [target(f"netmon_store_pending_results{{{inst}}}", "{{instance}}")],
            w=8,
            h=8,
            description="Rows waiting for the database; netmon drops the oldest beyond its capacity "
            "(netmon_store_pending_capacity, 2,000,000 by default).",
        ),
        panel(
            "timeseries",
            "Write backlog, share of capacity",
            [
                target(
                    f"netmon_store_pending_results{{{inst}}}"
                    f" / on (job, instance) netmon_store_pending_capacity{{{inst}}}",
                    "{{instance}}",
                ),
            ],
            w=8,
            h=8,
            description="NetmonStoreBacklog fires above 10 % while growing; at 100 % the oldest "
            "rows are dropped.",
            defaults={
                "unit": "percentunit",
                "min": 0,
                "max": 1,
                "thresholds": {
                    "mode": "absolute",
                    "steps": [{"color": "green", "value": None}, {"color": "red", "value": 0.1}],
                },
            },
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
            w=8,
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
