"""Every criterion a verdict reason can name, with its unit, policy field and meaning.

:class:`Criterion` is the one list: reasons carry it (``Reason.criterion``), the API exports it
(OpenAPI enum), scenario files and alert tests are checked against it, and
:func:`criteria_table` renders the documentation table from the metadata below. A reason's
``measured`` and ``threshold`` are both in the criterion's :class:`Unit`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Unit(StrEnum):
    RATIO = "ratio"  # 0..1
    SECONDS = "seconds"
    COUNT = "count"
    NONE = "none"  # the reason carries no figure


class Criterion(StrEnum):
    NO_DEVICES = "no_devices"
    NO_POLLER = "no_poller"
    NO_DATA = "no_data"
    NO_RECENT_DATA = "no_recent_data"
    NEVER_SEEN = "never_seen"
    UPLINK_DOWN = "uplink_down"
    ROUTER_DOWN = "router_down"
    SWITCH_DOWN = "switch_down"
    CONTROLLER_DOWN = "controller_down"
    AP_DOWN = "ap_down"
    NO_AP_UP = "no_ap_up"
    UPLINK_AVAILABILITY = "uplink_availability"
    UPLINK_LOSS = "uplink_loss"
    UPLINK_RTT_P95 = "uplink_rtt_p95"
    UPLINK_OUTAGE = "uplink_outage"
    AP_UP_RATIO = "ap_up_ratio"
    SMALL_SITE_APS_DOWN = "small_site_aps_down"
    AP_LOSS = "ap_loss"
    ROUTER_FLAPPING = "router_flapping"
    SWITCH_FLAPPING = "switch_flapping"
    CONTROLLER_FLAPPING = "controller_flapping"
    AP_FLAPPING = "ap_flapping"
    DEVICE_REBOOTED = "device_rebooted"
    UPLINK_INTERFACE_DOWN = "uplink_interface_down"
    SNMP_NO_ANSWER = "snmp_no_answer"
    HTTP_CHECK = "http_check"
    HTTP_LATENCY = "http_latency"
    TLS_CERT_EXPIRING = "tls_cert_expiring"

    @property
    def info(self) -> CriterionInfo:
        return CRITERIA[self]

    @property
    def unit(self) -> Unit:
        return CRITERIA[self].unit

    @property
    def policy_field(self) -> str | None:
        return CRITERIA[self].policy_field

    @property
    def description(self) -> str:
        return CRITERIA[self].description


@dataclass(frozen=True, slots=True)
class CriterionInfo:
    unit: Unit  # of the reason's measured figure and threshold
    policy_field: str | None  # the Policy field the threshold comes from
    description: str  # one line, for the docs


def _down(what: str, note: str = "") -> CriterionInfo:
    return CriterionInfo(
        Unit.SECONDS,
        None,
        f"{what} is unreachable now, not behind a down parent{note}; measured: seconds down so far",
    )


def _flapping(what: str) -> CriterionInfo:
    return CriterionInfo(
        Unit.COUNT,
        "max_outages",
        f"{what} dropped out more than `max_outages` times in the window, whatever its state now",
    )


_I = CriterionInfo
CRITERIA: dict[Criterion, CriterionInfo] = {
    Criterion.NO_DEVICES: _I(Unit.NONE, None, "no gear registered for the site"),
    Criterion.NO_POLLER: _I(Unit.NONE, None, "no live poller serves the site's `poller_group` (`netmon serve`): unknown, not down"),
    Criterion.NO_DATA: _I(Unit.COUNT, "min_probes", "fewer uplink probes in the window than `min_probes`"),
    Criterion.NO_RECENT_DATA: _I(Unit.SECONDS, "max_silence", "no result from any uplink for longer than `max_silence` (a poller or agent not reporting): unknown, not down"),
    Criterion.NEVER_SEEN: _I(Unit.NONE, None, "none of the site's devices has ever answered"),
    Criterion.UPLINK_DOWN: _down("an uplink device"),
    Criterion.ROUTER_DOWN: _down("a router that is not an uplink"),
    Criterion.SWITCH_DOWN: _down("a switch"),
    Criterion.CONTROLLER_DOWN: _down("a wireless controller"),
    Criterion.AP_DOWN: _down("an AP with devices behind it", " (a lone AP down counts towards the AP criteria)"),
    Criterion.NO_AP_UP: _I(Unit.NONE, None, "the site has APs and none of them answers now"),
    Criterion.UPLINK_AVAILABILITY: _I(Unit.RATIO, "uplink_availability", "share of an uplink's probes that got a reply"),
    Criterion.UPLINK_LOSS: _I(Unit.RATIO, "uplink_max_loss", "an uplink's echo loss while it was reachable"),
    Criterion.UPLINK_RTT_P95: _I(Unit.SECONDS, "rtt_p95_max", "an uplink's 95th percentile round-trip time"),
    Criterion.UPLINK_OUTAGE: _I(Unit.SECONDS, "max_outage", "an uplink's longest outage inside the window"),
    Criterion.AP_UP_RATIO: _I(Unit.RATIO, "ap_min_up_ratio", "share of APs up now, at sites with more than `small_site_aps` APs"),
    Criterion.SMALL_SITE_APS_DOWN: _I(Unit.COUNT, "small_site_max_aps_down", "APs not up now, at sites with at most `small_site_aps` APs"),
    Criterion.AP_LOSS: _I(Unit.RATIO, "ap_max_loss", "an AP's own echo loss while reachable (path loss excluded), whatever its state now"),
    Criterion.ROUTER_FLAPPING: _flapping("a router that is not an uplink"),
    Criterion.SWITCH_FLAPPING: _flapping("a switch"),
    Criterion.CONTROLLER_FLAPPING: _flapping("a wireless controller"),
    Criterion.AP_FLAPPING: _flapping("an AP"),
    Criterion.DEVICE_REBOOTED: _I(Unit.COUNT, "max_reboots", "SNMP: reboots of a device inside the window (sysUpTime)"),
    Criterion.UPLINK_INTERFACE_DOWN: _I(Unit.NONE, None, "SNMP: a listed uplink interface is admin up but oper down"),
    Criterion.SNMP_NO_ANSWER: _I(Unit.NONE, None, "SNMP: the device answers ping but not SNMP"),
    Criterion.HTTP_CHECK: _I(Unit.NONE, None, "HTTP: the device's latest check failed (no answer, TLS, status or body)"),
    Criterion.HTTP_LATENCY: _I(Unit.SECONDS, None, "HTTP: p95 time to response headers over the window; threshold: the device's `http.max_latency`"),
    Criterion.TLS_CERT_EXPIRING: _I(Unit.SECONDS, None, "HTTP: seconds until the server certificate expires; threshold: the device's `http.cert_min_days`"),
}  # fmt: skip


def criteria_table() -> str:
    """The Markdown table of every criterion (README 'Verdicts', docs/runbooks.md)."""
    rows = ["| criterion | unit | threshold (policy) | meaning |", "|---|---|---|---|"]
    for c in Criterion:
        field = f"`{c.policy_field}`" if c.policy_field else "—"
        rows.append(f"| `{c.value}` | {c.unit.value} | {field} | {c.description} |")
    return "\n".join(rows) + "\n"
