"""Generate the netmon Grafana dashboards in ``dashboards/`` (next to this script).

Run ``python deploy/grafana/make_dashboards.py`` after editing a panel here; never hand-edit the
JSON (tests/deploy/ checks that the files match this script). Standard library only.

Dashboards (every query on the data source the ``datasource`` variable picks: by default the
provisioned Prometheus, uid ``netmon-prometheus``; the provisioned VictoriaMetrics, uid
``netmon-victoriametrics``, answers the same PromQL from what Prometheus remote-writes to it):

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
DEFAULT_DS = {"name": "netmon Prometheus", "uid": "netmon-prometheus"}
DS = {"type": "prometheus", "uid": "${datasource}"}
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
Target = dict[str, Any]


# --- building blocks ---------------------------------------------------------------------------
def target(expr: str, legend: str = "", *, instant: bool = False, table: bool = False) -> Target:
    t: Target = {"datasource": DS, "expr": expr, "legendFormat": legend or "__auto"}
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
    targets: list[Target],
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


def last(**extra: Any) -> dict[str, Any]:
    """Panel options that show each series' last value."""
    return {"reduceOptions": {"calcs": ["lastNotNull"]}, **extra}


def stat(
    title: str, targets: list[Target], *, text: str = "", color: str = "", **extra: Any
) -> Panel:
    """A stat panel (5 high); ``text`` and ``color`` set its textMode and colorMode."""
    modes = {"textMode": text} if text else {}
    modes |= {"colorMode": color} if color else {}
    return panel("stat", title, targets, h=5, options=last(**modes), **extra)


def bars(title: str, targets: list[Target], *, display: str = "", **extra: Any) -> Panel:
    """A horizontal bar gauge; ``display`` sets its displayMode."""
    options = {"orientation": "horizontal"} | ({"displayMode": display} if display else {})
    return panel("bargauge", title, targets, options=options | last(), **extra)


def series(title: str, targets: list[Target], **extra: Any) -> Panel:
    return panel("timeseries", title, targets, **extra)


def timeline(title: str, targets: list[Target], **extra: Any) -> Panel:
    options = {"showValue": "never", "mergeValues": True}
    return panel("state-timeline", title, targets, options=options, **extra)


def table(title: str, columns: list[tuple[str, str]], *, sort_by: str = "", **extra: Any) -> Panel:
    """A table of instant queries, one ``(column name, expr)`` each, merged on their labels."""
    steps: list[dict[str, Any]] = []
    if len(columns) == 1:
        rename = {"Value": columns[0][0]}
    else:
        steps.append({"id": "merge", "options": {}})
        rename = {f"Value #{chr(ord('A') + i)}": name for i, (name, _) in enumerate(columns)}
    organize = {"excludeByName": {"Time": True}, "renameByName": rename}
    steps.append({"id": "organize", "options": organize})
    if sort_by:
        steps.append({"id": "sortBy", "options": {"sort": [{"field": sort_by}]}})
    targets = [target(expr, table=True) for _, expr in columns]
    return panel("table", title, targets, transformations=steps, **extra)


def thresholds(*steps: tuple[str, float | None]) -> dict[str, Any]:
    """Absolute thresholds: each ``(color, from value)``, the first from ``None``."""
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in steps]}


def percent(**extra: Any) -> dict[str, Any]:
    return {
        "unit": "percentunit",
        "min": 0,
        "max": 1,
        "decimals": 1,
        "thresholds": thresholds(("red", None), ("orange", 0.9), ("green", 0.99)),
        "color": {"mode": "thresholds"},
        **extra,
    }


def stacked(fill: int, **extra: Any) -> dict[str, Any]:
    """``custom`` field defaults of a stacked time series."""
    return {"stacking": {"mode": "normal"}, "fillOpacity": fill, **extra}


NO_SNMP = "No SNMP-polled device here"
NO_CONTROLLER = "No wireless controller polled here"
NO_REASONS = "None: every selected site is fully functional"


def value_map(options: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"type": "value", "options": options}]


def yes_no(
    no: str = "no", yes: str = "yes", *, colors: tuple[str, str] = ("red", "green")
) -> list[dict[str, Any]]:
    """Value mappings for 0/1 gauges."""
    off, on = colors
    return value_map({"0": {"text": no, "color": off}, "1": {"text": yes, "color": on}})


def override(name: str, *properties: tuple[str, Any]) -> dict[str, Any]:
    """Field properties for the field ``name`` (a regular expression if it ends with ``$``)."""
    matcher = {"id": "byRegexp" if name.endswith("$") else "byName", "options": name}
    return {"matcher": matcher, "properties": [{"id": k, "value": v} for k, v in properties]}


def yes_no_cells(name: str) -> dict[str, Any]:
    """Table columns of 0/1 shown as a coloured no/yes."""
    return override(name, ("mappings", yes_no()), ("custom.cellOptions", {"type": "color-text"}))


def fixed_colors(colors: dict[str, str]) -> list[dict[str, Any]]:
    return [override(v, ("color", {"mode": "fixed", "fixedColor": c})) for v, c in colors.items()]


def datasource_var() -> dict[str, Any]:
    """The dashboard's first variable: which Prometheus-API data source every query reads."""
    current = {"selected": False, "text": DEFAULT_DS["name"], "value": DEFAULT_DS["uid"]}
    return {
        "type": "datasource",
        "name": "datasource",
        "label": "Data source",
        "query": "prometheus",
        "regex": "",
        "refresh": 1,
        "hide": 0,
        "multi": False,
        "includeAll": False,
        "current": current,
        "options": [],
    }


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


def district_and_type_vars() -> list[dict[str, Any]]:
    return [
        query_var("district", "District", "label_values(netmon_site_fully_functional, district)"),
        query_var(
            "type",
            "Facility type",
            'label_values(netmon_site_fully_functional{district=~"$district"}, type)',
        ),
    ]


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
        "templating": {"list": [datasource_var(), *variables]},
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
FF = f"netmon_site_fully_functional{{{SEL}}}"
DT_SUM = f"district_type:netmon_sites_fully_functional:sum{{{SEL}}}"
DT_COUNT = f"district_type:netmon_sites:count{{{SEL}}}"
VERDICTS = f"district_type_verdict:netmon_sites:count{{{SEL}}}"
REASONS = f"netmon_site_reasons{{{SEL}}}"


def share_by(label: str) -> str:
    """The share of the selected sites fully functional, by ``label``."""
    return f"sum by ({label}) ({DT_SUM}) / sum by ({label}) ({DT_COUNT})"


def share_bars(label: str, name: str, *, h: int) -> Panel:
    """Bars of the share of the selected sites fully functional, one per value of ``label``."""
    legend = "{{" + label + "}}"
    shares = [target(share_by(label), legend, instant=True)]
    return bars(f"Fully functional by {name}", shares, w=12, h=h, defaults=percent(), display="lcd")


def averages(recording: str, selector: str, windows: tuple[str, ...]) -> list[Target]:
    """Instant means of ``<recording>:avg<window>``, one target per window ("24h": "24 h")."""
    return [
        target(f"avg({recording}:avg{w}{{{selector}}})", f"{w[:-1]} {w[-1]}", instant=True)
        for w in windows
    ]


def overview_now() -> list[Panel]:
    return [
        row("Now"),
        stat(
            "Sites fully functional",
            [
                target(f"sum({FF})", "fully functional", instant=True),
                target(f"count({FF})", "sites", instant=True),
            ],
            w=5,
            description="Sites whose verdict is fully_functional, out of all inventoried sites in the selection.",
            text="value_and_name",
            color="none",
        ),
        stat(
            "Share fully functional",
            [target(f"sum({FF}) / count({FF})", "now", instant=True)],
            w=4,
            defaults=percent(),
            color="background",
        ),
        stat(
            "Sites by verdict",
            [target(f"sum by (verdict) ({VERDICTS})", "{{verdict}}", instant=True)],
            w=9,
            overrides=fixed_colors(VERDICT_COLORS),
            text="value_and_name",
            color="background",
        ),
        stat(
            "Time fully functional (mean of sites)",
            averages("site:netmon_site_fully_functional", SEL, ("24h", "30d")),
            w=6,
            defaults=percent(),
            text="value_and_name",
        ),
    ]


def overview_groups() -> list[Panel]:
    return [
        row("By district and facility type"),
        share_bars("district", "district", h=14),
        share_bars("type", "facility type", h=7),
        table(
            "District × facility type",
            [
                ("fully functional", f"sum by (district, type) ({DT_SUM})"),
                ("sites", f"sum by (district, type) ({DT_COUNT})"),
            ],
            w=12,
            h=7,
        ),
    ]


def overview_reasons() -> list[Panel]:
    return [
        row("Why not fully functional"),
        bars(
            "Why sites are not fully functional",
            [target(f"sort_desc(sum by (criterion) ({REASONS}))", "{{criterion}}", instant=True)],
            w=8,
            h=10,
            description=(
                "Reasons by verdict criterion (netmon/verdict.py), summed over the selected sites: "
                "e.g. uplink_loss, ap_up_ratio, uplink_interface_down, device_rebooted, "
                "snmp_no_answer. The API (/api/v1/sites/<site>) names device, figure and threshold."
            ),
            defaults={"noValue": NO_REASONS, "color": {"mode": "fixed", "fixedColor": "orange"}},
            display="basic",
        ),
        table(
            "Sites not fully functional and why",
            [("reasons", f"max by (site, district, type, criterion) ({REASONS})")],
            w=8,
            h=10,
            defaults={"noValue": NO_REASONS},
            sort_by="site",
        ),
        series(
            "Reasons over time, by criterion",
            [target(f"sum by (criterion) ({REASONS})", "{{criterion}}")],
            w=8,
            h=10,
            defaults={"noValue": NO_REASONS, "custom": stacked(40)},
        ),
    ]


def overview_sites() -> list[Panel]:
    worst = f"bottomk(25, avg by (site, district, type) (site:netmon_site_fully_functional:avg24h{{{SEL}}}))"
    in_verdict = (
        f"(time() - max by (site, district, type) (netmon_site_verdict_since_timestamp_seconds{{{SEL}}}))"
        f" * on (site) group_left (verdict) max by (site, verdict) (netmon_site_verdict{{{SEL}}} == 1)"
    )
    verdict_cells = value_map(
        {v: {"color": c, "index": i} for i, (v, c) in enumerate(VERDICT_COLORS.items())}
    )
    return [
        row("Sites"),
        table(
            "Worst sites: share of the last 24 h fully functional",
            [("24 h fully functional", worst)],
            w=12,
            h=12,
            defaults=percent(custom={"cellOptions": {"type": "color-background"}}),
            sort_by="24 h fully functional",
        ),
        table(
            "Every site: current verdict and time in it",
            [("in verdict for", in_verdict)],
            w=12,
            h=12,
            unit="s",
            overrides=[
                override(
                    "verdict",
                    ("custom.cellOptions", {"type": "color-text"}),
                    ("mappings", verdict_cells),
                )
            ],
            sort_by="verdict",
        ),
    ]


def overview_progress() -> list[Panel]:
    return [
        row("Progress over time"),
        series(
            "Share of sites fully functional",
            [
                target(f"sum({FF}) / count({FF})", "all selected sites"),
                target(share_by("type"), "{{type}}"),
            ],
            w=12,
            h=9,
            defaults=percent(),
        ),
        series(
            "Sites by verdict",
            [target(f"sum by (verdict) ({VERDICTS})", "{{verdict}}")],
            w=12,
            h=9,
            overrides=fixed_colors(VERDICT_COLORS),
            defaults={"custom": stacked(60, lineWidth=0)},
        ),
        series(
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


def overview() -> dict[str, Any]:
    sections = (overview_now, overview_groups, overview_reasons, overview_sites, overview_progress)
    return dashboard(
        "netmon-state-overview",
        "netmon: state overview",
        "Is the hospital Wi-Fi fully functional? Every inventoried site, by district and facility type.",
        [p for section in sections for p in section()],
        district_and_type_vars(),
    )


# --- one site ----------------------------------------------------------------------------------
def dev(metric: str) -> str:
    return f"max by (device, role) ({metric}{{{SITE}}})"


def iface(metric: str) -> str:
    """``metric`` may carry its own matchers: ``name{a="b"}``."""
    name, _, rest = metric.partition("{")
    matchers = SITE + (", " + rest.rstrip("}") if rest else "")
    return f"max by (device, interface) ({name}{{{matchers}}})"


def per_device(title: str, metric: str, **extra: Any) -> Panel:
    """A time series of ``metric``, one line per device of the site."""
    return series(title, [target(dev(metric), "{{device}}")], **extra)


def site_verdict() -> list[Panel]:
    windows = ("1h", "24h", "30d")
    # One row per verdict, coloured in the verdict's colour while it was the verdict.
    history = [
        override(v, ("mappings", yes_no("", v, colors=("transparent", c))))
        for v, c in VERDICT_COLORS.items()
    ]
    return [
        row("Verdict"),
        stat(
            "Verdict",
            [
                target(
                    f"max by (verdict) (netmon_site_verdict{{{SITE}}} == 1)",
                    "{{verdict}}",
                    instant=True,
                )
            ],
            w=5,
            overrides=fixed_colors(VERDICT_COLORS),
            text="name",
            color="background",
        ),
        stat(
            "In this verdict for",
            [
                target(
                    f"time() - max(netmon_site_verdict_since_timestamp_seconds{{{SITE}}})",
                    "since",
                    instant=True,
                ),
            ],
            w=4,
            unit="s",
            color="none",
        ),
        stat(
            "Time fully functional",
            averages("site:netmon_site_fully_functional", SITE, windows),
            w=8,
            defaults=percent(),
            text="value_and_name",
        ),
        stat(
            "Uplink up",
            averages("site:netmon_uplink_up", SITE, windows),
            w=7,
            defaults=percent(),
            text="value_and_name",
        ),
        timeline(
            "Verdict history",
            [target(f"max by (verdict) (netmon_site_verdict{{{SITE}}})", "{{verdict}}")],
            w=24,
            h=6,
            overrides=history,
        ),
    ]


def site_devices() -> list[Panel]:
    return [
        row("Devices"),
        table(
            "Devices",
            [
                ("up", dev("netmon_device_up")),
                ("parent chain up", dev("netmon_device_reachable_via_parent")),
                ("window availability", dev("netmon_device_window_availability_ratio")),
                ("window loss", dev("netmon_device_window_loss_ratio")),
                ("window RTT p95", dev("netmon_device_window_rtt_p95_seconds")),
                ("last loss", dev("netmon_device_loss_ratio")),
                ("last RTT", dev("netmon_device_rtt_seconds")),
            ],
            w=24,
            h=12,
            overrides=[
                override("^(window availability|window loss|last loss)$", ("unit", "percentunit")),
                override("^(window RTT p95|last RTT)$", ("unit", "s")),
                yes_no_cells("^(up|parent chain up)$"),
            ],
        ),
        timeline(
            "Device up/down",
            [target(f"max by (device) (netmon_device_up{{{SITE}}})", "{{device}}")],
            w=12,
            h=10,
            defaults={"mappings": yes_no("down", "up")},
        ),
        series(
            "Devices by role and state",
            [
                target(
                    f"sum by (role, state) (netmon_site_devices{{{SITE}}})", "{{role}} {{state}}"
                ),
            ],
            w=12,
            h=10,
            defaults={"custom": stacked(40)},
        ),
    ]


def site_access_points() -> list[Panel]:
    states = {"up": "green", "down": "red", "unreachable_parent": "orange", "unknown": "text"}
    return [
        row("Access points"),
        bars(
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
            overrides=fixed_colors(states),
        ),
        series(
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
    ]


def site_controllers() -> list[Panel]:
    return [
        row("Access points as the controllers report them (SNMP)"),
        stat(
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
            description="Inventoried APs the site's wireless controllers report associated, and "
            "APs they report that the inventory lacks (NetmonUnknownAccessPoints).",
            defaults={"noValue": NO_CONTROLLER},
            text="value_and_name",
            color="none",
        ),
        stat(
            "Wi-Fi clients now",
            [target(f"sum(site:netmon_ap_clients:sum{{{SITE}}})", "clients", instant=True)],
            w=4,
            defaults={"noValue": NO_CONTROLLER},
            color="none",
        ),
        series(
            "Share of inventoried APs associated (controller)",
            [
                target(f"avg(site:netmon_ap_up:avg{{{SITE}}})", "now"),
                target(f"avg(site:netmon_ap_up:avg1h{{{SITE}}})", "1 h average"),
            ],
            w=6,
            h=5,
            defaults=percent(noValue=NO_CONTROLLER),
        ),
        series(
            "Wi-Fi clients by controller",
            [target(f"sum by (controller) (netmon_ap_clients{{{SITE}}})", "{{controller}}")],
            w=6,
            h=5,
            defaults={"noValue": NO_CONTROLLER, "min": 0},
        ),
        table(
            "Access points the controllers report",
            [
                ("associated", f"max by (controller, ap, known) (netmon_ap_up{{{SITE}}})"),
                ("clients", f"max by (controller, ap, known) (netmon_ap_clients{{{SITE}}})"),
            ],
            w=16,
            h=12,
            description="known = false: the controller reports an AP the inventory lacks.",
            defaults={"noValue": NO_CONTROLLER},
            sort_by="associated",
            overrides=[yes_no_cells("associated")],
        ),
        bars(
            "Busiest access points",
            [
                target(
                    f"topk(10, max by (ap) (netmon_ap_clients{{{SITE}}}))", "{{ap}}", instant=True
                )
            ],
            w=8,
            h=12,
            defaults={"noValue": NO_CONTROLLER, "min": 0},
        ),
    ]


def site_interfaces() -> list[Panel]:
    rx, tx = "netmon_interface_receive_bits_per_second", "netmon_interface_transmit_bits_per_second"
    flaps = (
        f"max by (device, interface) (increase(netmon_interface_flaps_total{{{SITE}}}[$__range]))"
    )
    return [
        row("Uplink interfaces (SNMP)"),
        timeline(
            "Interface link state",
            [target(iface("netmon_interface_oper_up"), "{{device}} {{interface}}")],
            w=12,
            h=8,
            description="Per SNMP-polled device: the inventory's uplink_interfaces first, then "
            "enabled ports, at most 64 per device. An uplink interface enabled but down is the "
            "verdict reason uplink_interface_down (NetmonUplinkInterfaceDown).",
            defaults={"noValue": NO_SNMP, "mappings": yes_no("down", "up")},
        ),
        table(
            "Interfaces",
            [
                ("link", iface("netmon_interface_oper_up")),
                ("enabled", iface("netmon_interface_admin_up")),
                ("in", iface(rx)),
                ("out", iface(tx)),
                ("in errors", iface('netmon_interface_errors{direction="in"}')),
                ("out errors", iface('netmon_interface_errors{direction="out"}')),
                ("flaps in range", flaps),
            ],
            w=12,
            h=8,
            defaults={"noValue": NO_SNMP},
            overrides=[yes_no_cells("^(link|enabled)$"), override("^(in|out)$", ("unit", "bps"))],
        ),
        series(
            "Interface traffic (out below zero)",
            [
                target(iface(rx), "{{device}} {{interface}} in"),
                target(iface(tx), "{{device}} {{interface}} out"),
            ],
            w=12,
            h=9,
            unit="bps",
            defaults={"noValue": NO_SNMP},
            overrides=[override(" out$", ("custom.transform", "negative-Y"))],
        ),
        series(
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
    ]


def site_snmp() -> list[Panel]:
    snmp_only = {"noValue": NO_SNMP}
    return [
        row("SNMP poll health, uptime and reboots"),
        table(
            "SNMP poll health",
            [
                ("SNMP answers", dev("netmon_device_snmp_up")),
                ("poll duration", dev("netmon_device_snmp_poll_duration_seconds")),
                ("uptime", dev("netmon_device_uptime_seconds")),
                ("reboots in window", dev("netmon_device_reboots_in_window")),
            ],
            w=12,
            h=8,
            description="SNMP agent answering (NetmonSnmpNotAnswering after 15 minutes while the "
            "device answers ping), last poll duration, sysUpTime, and reboots inside the verdict "
            "window (verdict reason device_rebooted above the site's max_reboots).",
            defaults=snmp_only,
            overrides=[
                yes_no_cells("SNMP answers"),
                override("^(poll duration|uptime)$", ("unit", "s")),
            ],
        ),
        timeline(
            "SNMP agent answering",
            [target(f"max by (device) (netmon_device_snmp_up{{{SITE}}})", "{{device}}")],
            w=12,
            h=8,
            defaults={"noValue": NO_SNMP, "mappings": yes_no("no answer", "answers")},
        ),
        per_device(
            "SNMP poll duration",
            "netmon_device_snmp_poll_duration_seconds",
            w=8,
            h=8,
            unit="s",
            defaults=snmp_only,
        ),
        per_device(
            "Device uptime",
            "netmon_device_uptime_seconds",
            w=8,
            h=8,
            unit="s",
            description="sysUpTime at each poll: a drop to near zero is a reboot.",
            defaults=snmp_only,
        ),
        per_device(
            "Reboots in the verdict window",
            "netmon_device_reboots_in_window",
            w=8,
            h=8,
            defaults={"noValue": NO_SNMP, "min": 0, "decimals": 0},
        ),
    ]


def site_loss() -> list[Panel]:
    ratio: dict[str, Any] = {"w": 12, "h": 9, "unit": "percentunit", "defaults": {"min": 0}}
    seconds: dict[str, Any] = {"w": 8, "h": 9, "unit": "s"}
    return [
        row("Loss and round-trip time"),
        per_device("Loss, last burst", "netmon_device_loss_ratio", **ratio),
        per_device("Loss over the verdict window", "netmon_device_window_loss_ratio", **ratio),
        per_device("RTT, mean of last burst", "netmon_device_rtt_seconds", **seconds),
        per_device(
            "RTT p95 over the verdict window", "netmon_device_window_rtt_p95_seconds", **seconds
        ),
        per_device("Jitter, last burst", "netmon_device_jitter_seconds", **seconds),
        series(
            "Uplink devices up, 1 h average",
            [target(f"max by (device) (device:netmon_uplink_up:avg1h{{{SITE}}})", "{{device}}")],
            w=24,
            h=8,
            defaults=percent(),
        ),
    ]


def site_page() -> dict[str, Any]:
    sections = (
        site_verdict,
        site_devices,
        site_access_points,
        site_controllers,
        site_interfaces,
        site_snmp,
        site_loss,
    )
    site_var = query_var(
        "site",
        "Site",
        'label_values(netmon_site_fully_functional{district=~"$district", type=~"$type"}, site)',
        multi=False,
    )
    return dashboard(
        "netmon-site",
        "netmon: site",
        "One facility: its verdict and history, availability, devices, loss, RTT and access points.",
        [p for section in sections for p in section()],
        [*district_and_type_vars(), site_var],
        time_from="now-6h",
    )


# --- netmon health -----------------------------------------------------------------------------
INST = 'instance=~"$instance"'


def per_instance(expr: str) -> Target:
    return target(expr, "{{instance}}")


def counted(function: str, counter: str, legend: str) -> Target:
    """``function`` (rate or increase) of ``netmon_<counter>_total``, summed over instances."""
    return target(f"sum({function}(netmon_{counter}_total{{{INST}}}[$__rate_interval]))", legend)


def health_scrape() -> list[Panel]:
    return [
        row("Scrape"),
        stat(
            "Scraped",
            [target(f'up{{job="netmon", {INST}}}', "{{instance}}", instant=True)],
            w=4,
            defaults={"mappings": yes_no("DOWN", "UP")},
            color="background",
        ),
        stat(
            "Inventory",
            [
                target(f"sum(netmon_sites{{{INST}}})", "sites", instant=True),
                target(f"sum(netmon_devices{{{INST}}})", "devices", instant=True),
            ],
            w=5,
            text="value_and_name",
            color="none",
        ),
        stat(
            "Build and ICMP mode",
            [target(f"netmon_info{{{INST}}}", "{{version}} · ICMP {{icmp_mode}}", instant=True)],
            w=5,
            text="name",
            color="none",
        ),
        stat(
            "netmon alerts firing",
            [
                target(
                    'count by (severity) (ALERTS{alertstate="firing", alertname=~"Netmon.*"}) or on () vector(0)',
                    "{{severity}}",
                    instant=True,
                ),
            ],
            w=5,
            text="value_and_name",
            defaults={"thresholds": thresholds(("green", None), ("red", 1))},
        ),
        stat(
            "Verdicts computed",
            [
                target(
                    f"time() - max(netmon_last_evaluation_timestamp_seconds{{{INST}}})",
                    "seconds ago",
                    instant=True,
                ),
            ],
            w=5,
            unit="s",
            defaults={"thresholds": thresholds(("green", None), ("red", 120))},
            color="background",
        ),
        series(
            "Scrape duration",
            [per_instance(f'scrape_duration_seconds{{job="netmon", {INST}}}')],
            w=12,
            h=8,
            unit="s",
        ),
        series(
            "Samples per scrape",
            [per_instance(f'scrape_samples_scraped{{job="netmon", {INST}}}')],
            w=12,
            h=8,
        ),
    ]


def health_probing() -> list[Panel]:
    return [
        row("Probing"),
        series(
            "Probe cycle lag",
            [per_instance(f"netmon_probe_cycle_lag_seconds{{{INST}}}")],
            w=12,
            h=8,
            unit="s",
            description="How late probes start against their schedule (NetmonProbeCycleLagging above 10 s).",
        ),
        series(
            "Probes and results per second",
            [
                counted("rate", "probes_started", "probes started"),
                counted("rate", "results_taken", "results taken"),
                counted("rate", "results_written", "rows written"),
            ],
            w=12,
            h=8,
            unit="ops",
        ),
        series(
            "Probe overruns",
            [counted("increase", "probe_overruns", "overruns")],
            w=12,
            h=8,
            description="Probes still running when due again (should stay at 0).",
        ),
        series(
            "SNMP-polled devices answering",
            [
                target(f"sum(netmon_device_snmp_up{{{INST}}})", "answering"),
                target(f"count(netmon_device_snmp_up{{{INST}}})", "polled"),
            ],
            w=6,
            h=8,
            defaults={"noValue": NO_SNMP, "min": 0},
        ),
        series(
            "SNMP poll duration, slowest device",
            [target(f"max(netmon_device_snmp_poll_duration_seconds{{{INST}}})", "slowest")],
            w=6,
            h=8,
            unit="s",
            description="Compare with snmp.defaults.max_poll_time in the inventory.",
            defaults={"noValue": NO_SNMP},
        ),
    ]


def health_store() -> list[Panel]:
    pending = f"netmon_store_pending_results{{{INST}}}"
    return [
        row("Store"),
        series(
            "Write backlog",
            [per_instance(pending)],
            w=8,
            h=8,
            description="Rows waiting for the database; netmon drops the oldest beyond its capacity "
            "(netmon_store_pending_capacity, 2,000,000 by default).",
        ),
        series(
            "Write backlog, share of capacity",
            [
                per_instance(
                    f"{pending} / on (job, instance) netmon_store_pending_capacity{{{INST}}}"
                )
            ],
            w=8,
            h=8,
            unit="percentunit",
            description="NetmonStoreBacklog fires above 10 % while growing; at 100 % the oldest "
            "rows are dropped.",
            defaults={"min": 0, "max": 1, "thresholds": thresholds(("green", None), ("red", 0.1))},
        ),
        series(
            "Store errors and dropped rows",
            [
                counted("increase", "store_errors", "failed writes"),
                counted("increase", "store_dropped_results", "dropped rows"),
            ],
            w=8,
            h=8,
        ),
    ]


def health_rules() -> list[Panel]:
    return [
        row("Prometheus rules"),
        series(
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
        series(
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


def health() -> dict[str, Any]:
    sections = (health_scrape, health_probing, health_store, health_rules)
    return dashboard(
        "netmon-health",
        "netmon: health",
        "netmon itself: is it scraped, probing on time, writing its store; are the rules evaluating.",
        [p for section in sections for p in section()],
        [query_var("instance", "netmon instance", 'label_values(up{job="netmon"}, instance)')],
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
