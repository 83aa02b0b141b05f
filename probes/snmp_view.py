"""What SNMP adds to a site's picture: reboots, uplink ports, and APs as controllers see them.

The SNMP kind (``probes.snmp``) returns each poll's :class:`SnmpFindings`. This module keeps
per-device SNMP evidence over the policy window (:class:`SnmpEvidence`), boils it down to the
facts the verdict uses (:class:`SnmpFacts`), and merges what wireless controllers report about
their APs into the APs' reachability (:func:`controllers_correct`):

* an AP that a controller reports not associated is down, even if it answers ping;
* an AP with no probe of its own takes its state from the controllers at its site (matched by
  name or MAC); one a controller with a complete AP table does not list at all is down (never
  joined);
* APs a controller reports but the inventory lacks are listed as ``unknown_aps``, not ignored.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from netmon.window import DeviceSummary, DeviceWindow
from probes.base import ProbeResult
from probes.snmp_extract import normalize_mac
from probes.snmp_findings import AccessPoint, SnmpFindings

if TYPE_CHECKING:
    from netmon.inventory import Device, Site

NAME = "snmp"  # the kind's name (the registry key of its evidence and site view)


@dataclass(frozen=True, slots=True)
class SnmpFacts:
    answered: bool | None  # the latest poll got an answer
    reboots: tuple[float, ...]  # when the device rebooted, inside the window
    uplinks_down: tuple[str, ...]  # listed uplink interfaces that are admin up, oper down
    uptime: float | None


class SnmpEvidence:
    """One device's SNMP polls over the window: answered or not, reboots, the latest findings."""

    def __init__(self, window: float) -> None:
        self.polls = DeviceWindow(window)
        self.reboots: deque[float] = deque()
        self.last_ok: ProbeResult | None = None

    @property
    def window(self) -> float:
        return self.polls.window

    @property
    def ever_up(self) -> bool:
        return self.polls.ever_up

    @ever_up.setter
    def ever_up(self, value: bool) -> None:
        self.polls.ever_up = value

    @property
    def findings(self) -> SnmpFindings | None:
        """The latest answered poll's findings."""
        found = self.last_ok.findings if self.last_ok else None
        return found if isinstance(found, SnmpFindings) else None

    def add(self, r: ProbeResult) -> None:
        self.polls.add(r)
        if r.ok and (self.last_ok is None or r.started_at >= self.last_ok.started_at):
            self.last_ok = r
        if isinstance(r.findings, SnmpFindings) and r.findings.rebooted:
            self.reboots.append(r.started_at - float(r.findings.sys_uptime_seconds or 0.0))

    def close_outage(self, ts: float) -> None:
        self.polls.close_outage(ts)

    def summary(self, now: float) -> DeviceSummary:
        return self.polls.summary(now)

    def reboots_in_window(self, now: float) -> list[float]:
        while self.reboots and self.reboots[0] < now - self.polls.window:
            self.reboots.popleft()
        return list(self.reboots)

    def facts(self, device: Device, now: float) -> SnmpFacts:
        last, found = self.polls.last, self.findings
        wanted = set(device.snmp.uplink_interfaces) if device.snmp else set()
        down = tuple(
            str(i.name)
            for i in (found.interfaces or () if found else ())
            if i.name in wanted and i.admin_up is not False and i.oper_up is False
        )
        return SnmpFacts(
            answered=None if last is None else last.ok,
            reboots=tuple(self.reboots_in_window(now)),
            uplinks_down=down,
            uptime=found.sys_uptime_seconds if found else None,
        )


@dataclass(frozen=True, slots=True)
class UnknownAp:
    """An AP a controller reports that the inventory lacks."""

    controller: str
    ap: AccessPoint


@dataclass(frozen=True, slots=True)
class ControllerView:
    """What the site's controllers say about APs (by inventory device name)."""

    up: dict[str, tuple[bool, float, str]]  # ap device -> (up, when, controller)
    clients: dict[str, int]
    unknown_aps: list[UnknownAp]


def snmp_of(evidence: Mapping[str, Mapping[str, object]]) -> dict[str, SnmpEvidence]:
    """A site's SNMP evidence by device, from its evidence by kind."""
    return {n: e for n, e in evidence.get(NAME, {}).items() if isinstance(e, SnmpEvidence)}


def controllers_of(views: Mapping[str, object]) -> ControllerView:
    """The controllers' view of a site's APs, from its site views by kind."""
    view = views.get(NAME)
    return view if isinstance(view, ControllerView) else ControllerView({}, {}, [])


def controller_view(site: Site, snmp: Mapping[str, SnmpEvidence]) -> ControllerView:
    aps = [d for d in site.devices if d.role == "ap"]
    by_key = {k: d.name for d in aps for k in _keys(d.name, d.mac)}
    view = ControllerView({}, {}, [])
    for ctrl in (d for d in site.devices if d.role == "controller" and d.name in snmp):
        ev = snmp[ctrl.name]
        if ev.last_ok is not None and ev.findings is not None and ev.findings.aps is not None:
            _read_controller(view, aps, by_key, ctrl.name, ev.last_ok.started_at, ev.findings)
    return view


def _read_controller(
    view: ControllerView, aps: list[Device], by_key: dict[str, str], ctrl: str, at: float,
    found: SnmpFindings,
) -> None:  # fmt: skip
    seen: set[str] = set()
    for ap in found.aps or ():
        name = next((by_key[k] for k in _keys(ap.name, ap.mac) if k in by_key), None)
        if name is None:
            view.unknown_aps.append(UnknownAp(ctrl, ap))
            continue
        seen.add(name)
        view.up[name] = (ap.up is True, at, ctrl)
        if ap.clients is not None:
            view.clients[name] = int(ap.clients)
    if found.complete:
        for d in aps:  # a complete AP table that lacks an AP: it never joined
            if d.name not in seen:
                view.up.setdefault(d.name, (False, at, ctrl))


def _keys(name: object, mac: object) -> list[str]:
    keys = [f"name:{str(name).lower()}"] if name else []
    if mac and (m := normalize_mac(str(mac))):
        keys.append(f"mac:{m}")
    return keys


def controllers_correct(view: ControllerView, seen: dict[str, DeviceSummary]) -> None:
    """APs as their controllers see them, over what their own probes say (in place)."""
    for name, (up, ts, ctrl) in view.up.items():
        seen[name] = _as_controller_sees(seen.get(name), up, ts, ctrl)


def _as_controller_sees(s: DeviceSummary | None, up: bool, ts: float, ctrl: str) -> DeviceSummary:
    if s is not None and s.last is not None and (up or not s.last.ok):
        return s  # ping and controller agree (or ping already says down)
    reason = "" if up else f"{ctrl} reports it not associated"
    last = ProbeResult("controller", up, ts, reason=reason)
    if s is None:
        return DeviceSummary(
            1, int(up), 0, 0, 0, 0, None, 0.0, int(not up), None if up else ts, up, last
        )
    return dataclasses.replace(s, last=last, down_since=None if up else ts, ever_up=s.ever_up or up)
