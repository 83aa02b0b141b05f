"""A site as the rules see it: computed once per judgement, read by every rule.

Topology helpers live here too: :func:`uplinks` (the site's ``wan`` devices, else ``router``,
else devices with no parent) and the parent-chain view behind :func:`device_state` and
:func:`parent_down`. A device that is down while a device on its parent chain is down is
*unreachable because of its parent*: reported once, under the parent, never as its own failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from netmon.inventory import Device, Policy, Site
from netmon.window import DeviceSummary
from probes.snmp_view import SnmpFacts

Facts = Mapping[str, Mapping[str, object]]  # probe kind -> device name -> that kind's facts


def uplinks(site: Site) -> list[Device]:
    """The site's uplink devices (``Site.uplinks``: worked out once per site). Do not modify."""
    return site.uplinks()


def ancestors(site: Site, dev: Device) -> list[Device]:
    """The devices ``dev`` is reached through, nearest first (a cycle is cut)."""
    chain: list[Device] = []
    cur = site.device(dev.parent) if dev.parent else None
    while cur is not None and all(c is not cur for c in chain):  # identity: pydantic's == is slow
        chain.append(cur)
        cur = site.device(cur.parent) if cur.parent else None
    return chain


def _is_down(seen: Mapping[str, DeviceSummary], name: str) -> bool:
    s = seen.get(name)
    return bool(s and s.is_up is False)


def parent_down(site: Site, dev: Device, seen: Mapping[str, DeviceSummary]) -> bool:
    """True if a device on ``dev``'s parent chain is down now."""
    return any(_is_down(seen, a.name) for a in ancestors(site, dev))


DeviceState = Literal["up", "down", "unreachable_parent", "unknown"]


def device_state(site: Site, dev: Device, seen: Mapping[str, DeviceSummary]) -> DeviceState:
    """``up``, ``down``, ``unreachable_parent`` (down behind a down parent) or ``unknown``."""
    s = seen.get(dev.name)
    if s is None or s.is_up is None:
        return "unknown"
    if s.is_up:
        return "up"
    return "unreachable_parent" if parent_down(site, dev, seen) else "down"


def down_roots(site: Site, seen: Mapping[str, DeviceSummary]) -> dict[str, list[str]]:
    """Down devices whose own parent chain is up, each with the down devices behind it."""
    roots: dict[str, list[str]] = {}
    for dev in site.devices:
        if not _is_down(seen, dev.name):
            continue
        root = dev.name
        for a in ancestors(site, dev):
            if _is_down(seen, a.name):
                root = a.name
        behind = roots.setdefault(root, [])
        if root != dev.name:
            behind.append(dev.name)
    return roots


@dataclass(frozen=True)
class SiteContext:
    """Everything the rules read about one site at one moment."""

    site: Site
    policy: Policy
    seen: Mapping[str, DeviceSummary]  # window summary by device name
    facts: Facts
    uplinks: list[Device]
    uplink_names: frozenset[str]
    down: dict[str, list[str]]  # down root -> the down devices behind it
    behind: frozenset[str]  # down now because a device on their parent chain is down
    aps: list[Device]  # APs with data
    aps_up: list[Device]
    now: float | None = None  # when the summaries were taken (None: only they count)

    @classmethod
    def build(
        cls,
        site: Site,
        policy: Policy,
        seen: Mapping[str, DeviceSummary],
        facts: Facts | None,
        now: float | None = None,
    ) -> SiteContext:
        down = down_roots(site, seen)
        aps = [d for d in site.aps() if _has_data(seen, d.name)]
        links = uplinks(site)
        return cls(
            site=site,
            policy=policy,
            seen=seen,
            facts=facts or {},
            uplinks=links,
            uplink_names=frozenset(d.name for d in links),
            down=down,
            behind=frozenset(n for names in down.values() for n in names),
            aps=aps,
            aps_up=[d for d in aps if seen[d.name].is_up],
            now=now,
        )

    @property
    def unreachable(self) -> frozenset[str]:
        """Down now: the down roots and everything behind them."""
        return self.behind | self.down.keys()

    @property
    def snmp(self) -> dict[str, SnmpFacts]:
        """SNMP facts by device (``facts["snmp"]``)."""
        return {n: f for n, f in self.facts.get("snmp", {}).items() if isinstance(f, SnmpFacts)}

    @property
    def uplink_probes(self) -> int:
        return sum(self.seen[d.name].probes for d in self.uplinks if d.name in self.seen)

    def is_up(self, name: str) -> bool:
        s = self.seen.get(name)
        return bool(s and s.is_up)

    def aps_not_up(self) -> str:
        """The names of the APs with data that are not up now, for a reason's message."""
        return ", ".join(d.name for d in self.aps if not self.is_up(d.name))

    def ancestors(self, dev: Device) -> list[Device]:
        return ancestors(self.site, dev)

    def down_for(self, name: str) -> float | None:
        """Seconds a device has been down, up to its latest (failed) probe; None if up."""
        s = self.seen.get(name)
        if s is None or s.down_since is None or s.last is None:
            return None
        return max(0.0, s.last.started_at - s.down_since)


def _has_data(seen: Mapping[str, DeviceSummary], name: str) -> bool:
    s = seen.get(name)
    return bool(s and s.is_up is not None)
