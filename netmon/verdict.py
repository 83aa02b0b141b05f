"""Site verdicts: is a facility's Wi-Fi fully functional, and if not, why and since when.

Rules, evaluated per site over its policy window (thresholds in ``inventory.Policy``):

* ``not_installed`` – the site has no gear registered, or none of its devices has ever answered.
* ``unknown``       – no probe result yet, or fewer than ``min_probes`` uplink probes in the
                      window. APs not probed yet are left out of the AP criteria.
* ``down``          – every uplink device is unreachable now, or the site has APs and none is up.
* ``degraded``      – any criterion fails (uplink availability, loss, RTT p95, longest outage;
                      AP up-ratio and loss; a switch/router/controller down; a device that
                      keeps dropping out; SNMP: reboots, uplink interfaces, agent silent);
                      each failure is one reason.
* ``fully_functional`` – nothing failed.

Uplink devices are the site's ``wan`` devices (else ``router``, else devices with no parent).
A device that is down while a device on its parent chain is down is *unreachable because of
its parent*: it is reported once, under the parent's reason, never as its own failure.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from netmon.inventory import Device, Policy, Site
from netmon.snmp_view import SnmpFacts
from netmon.window import DeviceSummary


class Verdict(StrEnum):
    FULLY_FUNCTIONAL = "fully_functional"
    DEGRADED = "degraded"
    DOWN = "down"
    NOT_INSTALLED = "not_installed"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Reason:
    criterion: str
    message: str
    device: str | None = None
    measured: float | None = None
    threshold: float | None = None


@dataclass(frozen=True, slots=True)
class Judgement:
    verdict: Verdict
    reasons: tuple[Reason, ...]
    outage_since: float | None = None  # start of the outage behind a ``down`` verdict


def uplinks(site: Site) -> list[Device]:
    for pick in (
        [d for d in site.devices if d.role == "wan"],
        [d for d in site.devices if d.role == "router"],
        [d for d in site.devices if d.parent is None],
    ):
        if pick:
            return pick
    return []


def judge(
    site: Site,
    policy: Policy,
    seen: Mapping[str, DeviceSummary],
    snmp: Mapping[str, SnmpFacts] | None = None,
) -> Judgement:
    """The verdict for one site from the window summaries (and SNMP facts) of its devices."""
    if not site.devices:
        return Judgement(Verdict.NOT_INSTALLED, (Reason("no_devices", "no gear registered"),))
    if not any(s.probes or s.ever_up for s in seen.values()):
        msg = "no probe results yet"
        return Judgement(Verdict.UNKNOWN, (Reason("no_data", msg, None, 0, policy.min_probes),))
    if not any(s.ever_up for s in seen.values()):
        n = len(site.devices)
        msg = f"none of the {n} registered devices has ever answered"
        return Judgement(Verdict.NOT_INSTALLED, (Reason("never_seen", msg),))
    links = uplinks(site)
    probes = sum(seen[d.name].probes for d in links if d.name in seen)
    if probes < policy.min_probes:
        msg = f"{probes} uplink probes in the window, need {policy.min_probes}"
        return Judgement(Verdict.UNKNOWN, (Reason("no_data", msg, None, probes, policy.min_probes),))
    down = _down_roots(site, seen)
    reasons = list(_outage_reasons(site, down, seen))
    if links and all(d.name in down for d in links):
        since = min((seen[d.name].down_since or 0.0) for d in links) or None
        return Judgement(Verdict.DOWN, tuple(reasons), since)
    aps = [d for d in site.devices if d.role == "ap" and _has_data(seen, d.name)]
    aps_up = [d for d in aps if _is_up(seen, d.name)]
    if aps and not aps_up:
        reasons.append(Reason("no_ap_up", f"none of the {len(aps)} access points answers"))
        return Judgement(Verdict.DOWN, tuple(reasons), None)
    reasons += _uplink_quality(links, policy, seen)
    reasons += _ap_reasons(site, aps, aps_up, policy, seen)
    reasons += _flapping(site, links, policy, seen, down)
    reasons += _snmp_reasons(site, policy, seen, down, snmp or {})
    verdict = Verdict.DEGRADED if reasons else Verdict.FULLY_FUNCTIONAL
    return Judgement(verdict, tuple(reasons))


def _is_up(seen: Mapping[str, DeviceSummary], name: str) -> bool:
    s = seen.get(name)
    return bool(s and s.is_up)


def _has_data(seen: Mapping[str, DeviceSummary], name: str) -> bool:
    s = seen.get(name)
    return bool(s and s.is_up is not None)


def _is_down(seen: Mapping[str, DeviceSummary], name: str) -> bool:
    s = seen.get(name)
    return bool(s and s.is_up is False)


def parent_down(site: Site, dev: Device, seen: Mapping[str, DeviceSummary]) -> bool:
    """True if a device on ``dev``'s parent chain is down now."""
    return any(_is_down(seen, a.name) for a in _ancestors(site, dev))


def device_state(site: Site, dev: Device, seen: Mapping[str, DeviceSummary]) -> str:
    """``up``, ``down``, ``unreachable_parent`` (down behind a down parent) or ``unknown``."""
    s = seen.get(dev.name)
    if s is None or s.is_up is None:
        return "unknown"
    if s.is_up:
        return "up"
    return "unreachable_parent" if parent_down(site, dev, seen) else "down"


def _down_roots(site: Site, seen: Mapping[str, DeviceSummary]) -> dict[str, list[str]]:
    """Down devices whose own parent chain is up, each with the down devices behind it."""
    roots: dict[str, list[str]] = {}
    for dev in site.devices:
        if not _is_down(seen, dev.name):
            continue
        root = dev.name
        for ancestor in _ancestors(site, dev):
            if _is_down(seen, ancestor.name):
                root = ancestor.name
        if root == dev.name:
            roots.setdefault(root, [])
        else:
            roots.setdefault(root, []).append(dev.name)
    return roots


def _ancestors(site: Site, dev: Device) -> list[Device]:
    chain: list[Device] = []
    cur = site.device(dev.parent) if dev.parent else None
    while cur is not None and cur not in chain:
        chain.append(cur)
        cur = site.device(cur.parent) if cur.parent else None
    return chain


def _outage_reasons(site: Site, down: dict[str, list[str]], seen: Mapping[str, DeviceSummary]):
    for name, behind in down.items():
        dev = site.device(name)
        assert dev is not None
        if dev.role == "ap" and not behind:
            continue  # a lone AP down counts only towards the AP up-ratio
        since = seen[name].down_since
        msg = f"{dev.role} {name} unreachable"
        if behind:
            names = f" ({', '.join(behind)})" if len(behind) <= 10 else ""
            msg += f"; {len(behind)} device(s) behind it unreachable because of it{names}"
        criterion = "uplink_down" if dev in uplinks(site) else f"{dev.role}_down"
        yield Reason(criterion, msg, name, since, None)


def _uplink_quality(links: list[Device], policy: Policy, seen: Mapping[str, DeviceSummary]):
    for dev in links:
        s = seen.get(dev.name)
        if s is None or not s.probes:
            continue
        avail = s.availability
        if avail is not None and avail < policy.uplink_availability:
            msg = f"{dev.name} answered {avail:.1%} of probes, need {policy.uplink_availability:.1%}"
            yield Reason("uplink_availability", msg, dev.name, avail, policy.uplink_availability)
        loss = s.loss_ratio
        if loss is not None and loss > policy.uplink_max_loss:
            msg = f"{dev.name} packet loss {loss:.2%}, limit {policy.uplink_max_loss:.2%}"
            yield Reason("uplink_loss", msg, dev.name, loss, policy.uplink_max_loss)
        if s.rtt_p95 is not None and s.rtt_p95 > policy.rtt_p95_max:
            msg = f"{dev.name} RTT p95 {s.rtt_p95 * 1000:.0f} ms, limit {policy.rtt_p95_max * 1000:.0f} ms"
            yield Reason("uplink_rtt_p95", msg, dev.name, s.rtt_p95, policy.rtt_p95_max)
        if s.longest_outage > policy.max_outage:
            msg = f"{dev.name} outage of {s.longest_outage / 60:.0f} min in the window, limit {policy.max_outage / 60:.0f} min"
            yield Reason("uplink_outage", msg, dev.name, s.longest_outage, policy.max_outage)


def _ap_reasons(
    site: Site, aps: list[Device], aps_up: list[Device], policy: Policy, seen: Mapping[str, DeviceSummary]
) -> Iterator[Reason]:
    n, up = len(aps), len(aps_up)
    if n:
        if n <= policy.small_site_aps:
            ok, need = n - up <= policy.small_site_max_aps_down, f"at most {policy.small_site_max_aps_down} down"
        else:
            ok, need = up / n >= policy.ap_min_up_ratio, f"at least {policy.ap_min_up_ratio:.0%} up"
        if not ok:
            down = ", ".join(d.name for d in aps if not _is_up(seen, d.name))
            msg = f"{up} of {n} access points up, need {need} (not up: {down})"
            yield Reason("ap_up_ratio", msg, None, up / n, policy.ap_min_up_ratio)
    for dev in aps_up:
        loss = seen[dev.name].loss_ratio
        if loss is None or loss <= policy.ap_max_loss:
            continue
        inherited = _path_loss(site, dev, seen)
        if loss - inherited <= policy.ap_max_loss:
            continue  # the loss is the path's (a lossy uplink), reported there
        msg = f"{dev.name} packet loss {loss:.2%}, limit {policy.ap_max_loss:.2%}"
        if inherited:
            msg += f" ({inherited:.2%} of it on the path to it)"
        yield Reason("ap_loss", msg, dev.name, loss, policy.ap_max_loss)


def _path_loss(site: Site, dev: Device, seen: Mapping[str, DeviceSummary]) -> float:
    """The worst loss of the devices a device is reached through."""
    losses = (seen[a.name].loss_ratio for a in _ancestors(site, dev) if a.name in seen)
    return max((x for x in losses if x is not None), default=0.0)


def _flapping(
    site: Site,
    links: list[Device],
    policy: Policy,
    seen: Mapping[str, DeviceSummary],
    down: dict[str, list[str]],
) -> Iterator[Reason]:
    """Devices that keep dropping out (more than ``max_outages`` outages in the window).

    Uplinks are judged on availability instead; a device whose parent flaps too is reported
    under the parent; a device unreachable now has its outage reason already.
    """
    unreachable = set(down) | {name for behind in down.values() for name in behind}

    def flaps(dev: Device) -> bool:
        s = seen.get(dev.name)
        return bool(s and s.outages > policy.max_outages)

    for dev in site.devices:
        if dev in links or dev.name in unreachable or not flaps(dev):
            continue
        if any(flaps(a) for a in _ancestors(site, dev)):
            continue
        n = seen[dev.name].outages
        msg = f"{dev.role} {dev.name} dropped out {n} times in the window, limit {policy.max_outages}"
        yield Reason(f"{dev.role}_flapping", msg, dev.name, n, policy.max_outages)


def _snmp_reasons(
    site: Site,
    policy: Policy,
    seen: Mapping[str, DeviceSummary],
    down: dict[str, list[str]],
    snmp: Mapping[str, SnmpFacts],
) -> Iterator[Reason]:
    unreachable = set(down) | {name for behind in down.values() for name in behind}
    for name, f in snmp.items():
        if name in unreachable:
            continue  # its outage is reported already
        if len(f.reboots) > policy.max_reboots:
            when = datetime.fromtimestamp(f.reboots[-1], UTC).strftime("%Y-%m-%d %H:%M UTC")
            msg = f"{name} rebooted {len(f.reboots)} time(s) in the window, last at {when}"
            yield Reason("device_rebooted", msg, name, len(f.reboots), policy.max_reboots)
        for iface in f.uplinks_down:
            yield Reason("uplink_interface_down", f"{name} uplink interface {iface} is down", name)
        if f.answered is False and _is_up(seen, name):
            msg = f"{name} answers ping but not SNMP (credentials, ACL or agent)"
            yield Reason("snmp_no_answer", msg, name)
