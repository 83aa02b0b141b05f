"""What SNMP adds to a site's picture: reboots, uplink ports, and APs as controllers see them.

The SNMP probe (``probes.snmp``) returns each poll's findings in ``ProbeResult.extra``. This
module keeps per-device SNMP evidence over the policy window (:class:`SnmpEvidence`), boils it
down to the facts the verdict uses (:class:`SnmpFacts`), and merges what wireless controllers
report about their APs into the APs' reachability (:func:`effective_summaries`):

* an AP that a controller reports not associated is down, even if it answers ping;
* an AP with no ICMP probe takes its state from the controllers at its site (matched by name or
  MAC); one a controller with a complete AP table does not list at all is down (never joined);
* APs a controller reports but the inventory lacks are listed as ``unknown_aps``, not ignored.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from netmon.inventory import Device, Inventory, Site
from netmon.window import DeviceSummary, DeviceWindow
from probes.base import ProbeResult
from probes.snmp import SnmpSettings, normalize_mac


def snmp_settings(inventory: Inventory, dev: Device) -> SnmpSettings:
    """The probe's settings for one device (secrets resolved at inventory load)."""
    assert dev.snmp is not None
    cred = inventory.snmp.credentials[dev.snmp.credentials]
    d = inventory.snmp.defaults

    def secret(value: Any) -> str:
        return value.get_secret_value() if value is not None else ""

    return SnmpSettings(
        version=cred.version, community=secret(cred.community), user=cred.user or "",
        auth_protocol=cred.auth_protocol, auth_key=secret(cred.auth_key),
        priv_protocol=cred.priv_protocol, priv_key=secret(cred.priv_key), port=cred.port,
        profile=dev.snmp.profile, timeout=d.timeout, retries=d.retries, max_poll_time=d.max_poll_time,
        max_walks=d.max_walks,
    )  # fmt: skip


class SnmpEvidence:
    """One device's SNMP polls over the window: answered or not, reboots, the latest findings."""

    def __init__(self, window: float) -> None:
        self.polls = DeviceWindow(window)
        self.reboots: deque[float] = deque()
        self.last_ok: ProbeResult | None = None

    def add(self, r: ProbeResult) -> None:
        self.polls.add(r)
        if r.ok and (self.last_ok is None or r.started_at >= self.last_ok.started_at):
            self.last_ok = r
        if r.extra.get("rebooted"):
            uptime = r.extra.get("sys_uptime_seconds") or 0.0
            self.reboots.append(r.started_at - float(uptime))

    def reboots_in_window(self, now: float) -> list[float]:
        while self.reboots and self.reboots[0] < now - self.polls.window:
            self.reboots.popleft()
        return list(self.reboots)


@dataclass(frozen=True, slots=True)
class SnmpFacts:
    answered: bool | None  # the latest poll got an answer
    reboots: tuple[float, ...]  # when the device rebooted, inside the window
    uplinks_down: tuple[str, ...]  # listed uplink interfaces that are admin up, oper down
    uptime: float | None


def facts(dev: Device, ev: SnmpEvidence, now: float) -> SnmpFacts:
    last = ev.polls.last
    extra = ev.last_ok.extra if ev.last_ok else {}
    wanted = set(dev.snmp.uplink_interfaces) if dev.snmp else set()
    down = tuple(
        str(i.get("name"))
        for i in extra.get("interfaces") or []
        if i.get("name") in wanted and i.get("admin_up") is not False and i.get("oper_up") is False
    )
    return SnmpFacts(
        answered=None if last is None else last.ok,
        reboots=tuple(ev.reboots_in_window(now)),
        uplinks_down=down,
        uptime=extra.get("sys_uptime_seconds"),
    )


@dataclass(frozen=True, slots=True)
class ControllerView:
    """What the site's controllers say about APs (by inventory device name)."""

    up: dict[str, tuple[bool, float, str]]  # ap device -> (up, when, controller)
    clients: dict[str, int]
    unknown_aps: list[dict[str, Any]]  # reported by a controller, absent from the inventory


def controller_view(site: Site, snmp: Mapping[str, SnmpEvidence]) -> ControllerView:
    aps = [d for d in site.devices if d.role == "ap"]
    by_key = {k: d.name for d in aps for k in _keys(d.name, d.mac)}
    view = ControllerView({}, {}, [])
    for ctrl in (d for d in site.devices if d.role == "controller" and d.name in snmp):
        last = snmp[ctrl.name].last_ok
        reported = (last.extra.get("aps") if last else None) or []
        if last is None or last.extra.get("aps") is None:
            continue
        seen: set[str] = set()
        for ap in reported:
            name = next((by_key[k] for k in _keys(ap.get("name"), ap.get("mac")) if k in by_key), None)
            if name is None:
                view.unknown_aps.append({**ap, "controller": ctrl.name})
                continue
            seen.add(name)
            view.up[name] = (ap.get("up") is True, last.started_at, ctrl.name)
            if ap.get("clients") is not None:
                view.clients[name] = int(ap["clients"])
        if last.extra.get("complete"):
            for d in aps:  # a complete AP table that lacks an AP: it never joined
                if d.name not in seen:
                    view.up.setdefault(d.name, (False, last.started_at, ctrl.name))
    return view


def _keys(name: object, mac: object) -> list[str]:
    keys = [f"name:{str(name).lower()}"] if name else []
    if mac and (m := normalize_mac(str(mac))):
        keys.append(f"mac:{m}")
    return keys


def effective_summaries(
    site: Site,
    icmp: Mapping[str, DeviceSummary],
    snmp: Mapping[str, SnmpEvidence],
    view: ControllerView,
    now: float,
) -> dict[str, DeviceSummary]:
    """Reachability per device: ICMP, else SNMP polls; APs corrected by their controllers."""
    out: dict[str, DeviceSummary] = {}
    for dev in site.devices:
        s = icmp.get(dev.name) if "icmp" in dev.kinds else None
        if s is None and dev.name in snmp:
            s = snmp[dev.name].polls.summary(now)
        if dev.name in view.up:
            s = _as_controller_sees(s, *view.up[dev.name])
        if s is not None:
            out[dev.name] = s
    return out


def _as_controller_sees(s: DeviceSummary | None, up: bool, ts: float, ctrl: str) -> DeviceSummary:
    if s is not None and s.last is not None and (up or not s.last.ok):
        return s  # ping and controller agree (or ping already says down)
    reason = "" if up else f"{ctrl} reports it not associated"
    last = ProbeResult("controller", up, ts, reason=reason)
    if s is None:
        return DeviceSummary(1, int(up), 0, 0, 0, 0, None, 0.0, int(not up), None if up else ts, up, last)
    return dataclasses.replace(s, last=last, down_since=None if up else ts, ever_up=s.ever_up or up)
