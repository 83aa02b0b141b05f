"""Public models built from the monitor's state: a site, its devices, their SNMP findings.

The one module that reads monitor/SNMP internals for the API, so a change in how probes
report (e.g. typed SNMP findings) stays here.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from netmon.api.models import (
    ControllerApPublic,
    DevicePublic,
    InterfacePublic,
    LastResultPublic,
    ReasonPublic,
    SiteDetail,
    SitePublic,
    SnmpPublic,
    WindowPublic,
    iso,
)
from netmon.inventory import Device, Site
from netmon.monitor import Monitor, SiteStatus, SiteView
from netmon.progress import SiteFigures
from netmon.verdict import device_state
from netmon.window import DeviceSummary
from probes.snmp_view import SnmpEvidence, controllers_of, snmp_of


def site_fields(st: SiteStatus) -> dict[str, Any]:
    """What a site's list item and its detail share."""
    s = st.site
    return dict(
        id=s.id, name=s.name, district=s.district, type=s.type, hfr_id=s.hfr_id,
        verdict=st.verdict, reasons=[ReasonPublic(**asdict(r)) for r in st.judgement.reasons],
        since=iso(st.since), evaluated_at=iso(st.evaluated_at), devices=len(s.devices),
        maintenance=m.reason if (m := s.in_maintenance(st.evaluated_at)) else None,
    )  # fmt: skip


def site_public(st: SiteStatus, figures: SiteFigures | None = None) -> SitePublic:
    """A site's list item; with ``figures``, its first fully functional day and 30-day
    availability (netmon.progress)."""
    f = figures or SiteFigures()
    return SitePublic(**site_fields(st), first_fully_functional=f.first_fully_functional.get(
        st.site.id), availability_30d=f.availability_30d.get(st.site.id))  # fmt: skip


def site_detail(monitor: Monitor, st: SiteStatus) -> SiteDetail:
    site = st.site
    now = monitor.clock()
    sv = monitor.view(site, now)
    devices = [device_public(site, dev, sv, now) for dev in site.devices]
    controllers = controllers_of(sv.views)
    unknown = [
        ControllerApPublic(controller=u.controller, **asdict(u.ap)) for u in controllers.unknown_aps
    ]
    clients = None
    if controllers.up or unknown:  # some controller reported its APs
        clients = sum(controllers.clients.values()) + sum(ap.clients or 0 for ap in unknown)
    return SiteDetail(**site_fields(st), device_list=devices, clients=clients,
                      window_seconds=monitor.inventory.policy_for(site).window, unknown_aps=unknown)  # fmt: skip


def device_public(site: Site, dev: Device, sv: SiteView, now: float) -> DevicePublic:
    s = sv.summaries.get(dev.name)
    snmp = snmp_of(sv.evidence).get(dev.name)
    return DevicePublic(
        name=dev.name, role=dev.role, address=dev.address, parent=dev.parent,
        state=device_state(site, dev, sv.summaries),
        last=_last_public(s), window=_window_public(s),
        snmp=snmp_public(dev, snmp, now) if snmp is not None else None,
        clients=controllers_of(sv.views).clients.get(dev.name),
    )  # fmt: skip


def _last_public(s: DeviceSummary | None) -> LastResultPublic | None:
    last = s.last if s else None
    if last is None:
        return None
    return LastResultPublic(
        at=iso(last.started_at), ok=last.ok, sent=last.sent, received=last.received,
        loss_ratio=last.loss_ratio, rtt_min_seconds=last.rtt_min, rtt_avg_seconds=last.rtt_avg,
        rtt_max_seconds=last.rtt_max, jitter_seconds=last.jitter, reason=last.reason,
    )  # fmt: skip


def _window_public(s: DeviceSummary | None) -> WindowPublic | None:
    if s is None:
        return None
    return WindowPublic(
        probes=s.probes, availability_ratio=s.availability, loss_ratio=s.loss_ratio,
        rtt_p95_seconds=s.rtt_p95, longest_outage_seconds=s.longest_outage,
        down_since=iso(s.down_since),
    )  # fmt: skip


def snmp_public(dev: Device, ev: SnmpEvidence, now: float) -> SnmpPublic:
    f, found = ev.facts(dev, now), ev.findings
    return SnmpPublic(
        answered=f.answered, polled_at=iso(ev.polls.last.started_at) if ev.polls.last else None,
        uptime_seconds=f.uptime, reboots_in_window=[iso(t) for t in f.reboots],
        uplinks_down=list(f.uplinks_down),
        interfaces=[InterfacePublic(**asdict(i)) for i in (found.interfaces or () if found else ())],
        aps_total=found.aps_total if found else None, aps_up=found.aps_up if found else None,
    )  # fmt: skip
