"""``netmon discover``: what the wireless controllers know that the inventory does not (and back).

Every controller in the inventory (``role: controller`` with ``snmp:``) is polled once, with its
own profile and credentials, as the SNMP probe polls it. Its AP table is compared with the
inventory, APs matched by name (case-insensitive) or MAC as the verdict matches them
(``probes.snmp_view``):

* an AP the controller reports that no site has is printed as a ready-to-paste device entry
  (``{name, role: ap, parent: <controller>, probes: [], mac}``: seen only through the
  controller), under the site it goes to. **The site rule:** the site whose id appears in the
  AP's name (``AP-CHC-BUNDU-03`` -> ``chc-bundu``; the longest id wins); else the controller's
  own site. The name is the AP's, lower-cased, with anything but ``a-z 0-9 -`` made ``-``
  (``ap-`` and the MAC's digits when the controller gives no name).
* drift: an AP of the controller's site whose parent is that controller, which the controller's
  table (when it is complete) does not list: removed from the controller, renamed, or never
  joined.

Nothing is written: the output is for a person to read and paste. A controller that cannot be
read is one line saying why; the exit status is 0 unless the configuration is invalid (78).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from probes import KINDS, Target, run_probe
from probes.snmp_extract import normalize_mac
from probes.snmp_findings import AccessPoint, SnmpFindings

if TYPE_CHECKING:
    from netmon.config import ValidatedConfig
    from netmon.inventory import Device, Inventory, Site

CONCURRENCY = 16  # controllers polled at once


@dataclass
class Discovery:
    """What the controllers said, by site: entries to paste, drift, controllers not read."""

    new: dict[str, list[str]] = field(default_factory=dict)  # site id -> entry lines
    drift: list[str] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = []
        for site_id, entries in self.new.items():
            out.append(f"# site {site_id}: {len(entries)} APs the inventory lacks (under devices:)")
            out += entries
        out += [f"# drift: {line}" for line in self.drift]
        out += [f"# not read: {line}" for line in self.unread]
        n = sum(len(e) for e in self.new.values())
        out.append(
            f"# {n} new APs, {len(self.drift)} drifted, {len(self.unread)} controllers not read"
        )
        return out


async def discover(config: ValidatedConfig) -> Discovery:
    """Poll every controller once and compare (see the module docstring)."""
    kind = KINDS["snmp"]
    engine = kind.open(config)
    inventory, found = config.inventory, Discovery()
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(site: Site, ctrl: Device) -> tuple[Site, Device, SnmpFindings | str]:
        spec = kind.job(inventory, site, ctrl)
        async with gate:
            target = Target(site.id, ctrl.name, ctrl.address or "", ctrl.role)
            result = await run_probe(kind, engine, target, spec.params)
        findings = result.findings
        if not result.ok or not isinstance(findings, SnmpFindings) or findings.aps is None:
            return site, ctrl, result.reason or "no AP table"
        return site, ctrl, findings

    controllers = [(s, d) for s in inventory.sites for d in s.devices
                   if d.role == "controller" and d.snmp is not None]  # fmt: skip
    try:
        for site, ctrl, got in await asyncio.gather(*(one(s, d) for s, d in controllers)):
            if isinstance(got, str):
                found.unread.append(f"{site.id}/{ctrl.name}: {got}")
            else:
                _compare(inventory, site, ctrl, got, found)
    finally:
        await _close(kind, engine)
    return found


async def _close(kind: object, engine: object) -> None:
    closed = kind.close(engine)  # type: ignore[attr-defined]
    if asyncio.iscoroutine(closed):
        await closed


def _compare(inv: Inventory, site: Site, ctrl: Device, got: SnmpFindings, out: Discovery) -> None:
    known = {k for s in inv.sites for d in s.devices for k in _keys(d.name, d.mac)}
    listed = {k for ap in got.aps or () for k in _keys(ap.name, ap.mac)}
    for ap in got.aps or ():
        if not any(k in known for k in _keys(ap.name, ap.mac)):
            target = _site_for(inv, site, ap)
            out.new.setdefault(target, []).append(_entry(ap, ctrl.name))
    if not got.complete:
        return
    for dev in site.devices:
        if (
            dev.role == "ap"
            and dev.parent == ctrl.name
            and not any(k in listed for k in _keys(dev.name, dev.mac))
        ):
            out.drift.append(
                f"{site.id}/{dev.name} is in the inventory; {ctrl.name} does not report it"
            )


def _keys(name: object, mac: object) -> list[str]:
    keys = [f"name:{str(name).lower()}"] if name else []
    if mac and (m := normalize_mac(str(mac))):
        keys.append(f"mac:{m}")
    return keys


def _site_for(inv: Inventory, home: Site, ap: AccessPoint) -> str:
    """The site whose id is in the AP's name (the longest such id), else the controller's."""
    name = re.sub(r"[^a-z0-9]+", "-", (ap.name or "").lower())
    hits = [s.id for s in inv.sites if s.id in name]
    return max(hits, key=len) if hits else home.id


def _entry(ap: AccessPoint, controller: str) -> str:
    mac = normalize_mac(ap.mac or "") if ap.mac else None
    name = re.sub(r"[^a-z0-9-]+", "-", (ap.name or "").lower()).strip("-")[:63].strip("-")
    if not name:
        name = "ap-" + (mac or "unknown").replace(":", "")
    fields = f"name: {name}, role: ap, parent: {controller}, probes: []"
    return f"      - {{{fields}" + (f", mac: '{mac}'}}" if mac else "}")
