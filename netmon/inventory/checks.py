"""Cross checks: rules that need more than one value (duplicates, parents, districts, timing).

Each check yields ``(location, message)``; the loader turns locations into file lines.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence

from netmon.inventory.models import JHARKHAND_DISTRICTS, Inventory, Site
from netmon.schema import Loc
from probes import KINDS


def cross_checks(
    inv: Inventory, snmp_profiles: Collection[str], positions: Sequence[int] | None = None
) -> Iterator[tuple[Loc, str]]:
    """``positions[k]``: where ``inv.sites[k]`` is in the file (sites that failed to validate
    are not in ``inv``); default: in order."""
    site_ids: dict[str, int] = {}
    hfr_ids: dict[str, str] = {}
    addresses: dict[str, str] = {}
    for k, site in enumerate(inv.sites):
        i = positions[k] if positions is not None else k
        here: Loc = ("sites", i)
        if site.id in site_ids:
            yield (
                here + ("id",),
                f"duplicate site id {site.id!r} (first at sites[{site_ids[site.id]}])",
            )
        site_ids.setdefault(site.id, i)
        if site.hfr_id is not None and hfr_ids.setdefault(site.hfr_id, site.id) != site.id:
            message = f"HFR id {site.hfr_id} is already the id of site {hfr_ids[site.hfr_id]!r}"
            yield here + ("hfr_id",), message
        if inv.state.lower() == "jharkhand" and site.district not in JHARKHAND_DISTRICTS:
            yield (
                here + ("district",),
                (
                    f"{site.district!r} is not one of Jharkhand's 24 districts "
                    f"({', '.join(JHARKHAND_DISTRICTS)}); set top-level 'state' for other states"
                ),
            )
        yield from _timing_checks(inv, site, here)
        yield from _device_checks(inv, site, here, addresses, snmp_profiles)
    used = {site.district for site in inv.sites}
    for name in inv.districts:
        if name not in used:
            yield ("districts", name), f"no site is in a district named {name!r}"
    yield from _wide_maintenance(inv)


def _wide_maintenance(inv: Inventory) -> Iterator[tuple[Loc, str]]:
    """A top-level window's districts must be some site's (any case)."""
    known = {s.district.lower() for s in inv.sites}
    for i, window in enumerate(inv.maintenance):
        for j, name in enumerate(window.districts or ()):
            if name.lower() not in known:
                yield ("maintenance", i, "districts", j), f"no site is in the district {name!r}"


def _timing_checks(inv: Inventory, site: Site, here: Loc) -> Iterator[tuple[Loc, str]]:
    eff = inv.probe_settings(site)
    burst = (eff.count - 1) * eff.spacing + eff.timeout
    if burst >= eff.interval:
        where = here + ("probe",) if site.probe else ("defaults",)
        yield (
            where,
            (
                f"a burst of {eff.count} echoes {eff.spacing:g}s apart with a {eff.timeout:g}s timeout "
                f"takes {burst:g}s, not less than the {eff.interval:g}s interval"
            ),
        )


def _device_checks(
    inv: Inventory, site: Site, here: Loc, addresses: dict[str, str], snmp_profiles: Collection[str]
) -> Iterator[tuple[Loc, str]]:
    names: set[str] = set()
    for j, dev in enumerate(site.devices):
        at: Loc = here + ("devices", j)
        if dev.name in names:
            yield at + ("name",), f"duplicate device name {dev.name!r} in site {site.id!r}"
        names.add(dev.name)
        owner = f"{site.id}/{dev.name}"
        addressed = [k for k in dev.kinds if KINDS[k].needs_address]
        if dev.address is None and addressed:
            yield (
                at + ("address",),
                f"needed to probe it ({', '.join(addressed)}); or set probes: []",
            )
        elif dev.address is not None and dev.address in addresses:
            yield (
                at + ("address",),
                f"address {dev.address} is already used by {addresses[dev.address]}",
            )
        if dev.address is not None:
            addresses.setdefault(dev.address, owner)
        for kind in KINDS.values():  # each kind's own checks (SNMP: credentials, profile)
            yield from kind.checks(inv, dev, at, snmp_profiles)
        yield from _parent_checks(site, j, at)


def _parent_checks(site: Site, j: int, at: Loc) -> Iterator[tuple[Loc, str]]:
    dev = site.devices[j]
    if dev.parent is None:
        return
    if dev.parent == dev.name:
        yield at + ("parent",), "a device cannot be its own parent"
    elif site.device(dev.parent) is None:
        yield at + ("parent",), f"no device named {dev.parent!r} in site {site.id!r}"
    elif _in_cycle(site, dev.name):
        yield at + ("parent",), f"parent chain of {dev.name!r} loops back to itself"


def _in_cycle(site: Site, name: str) -> bool:
    seen = {name}
    dev = site.device(name)
    cur = site.device(dev.parent) if dev and dev.parent else None
    while cur is not None:
        if cur.name in seen:
            return True
        seen.add(cur.name)
        cur = site.device(cur.parent) if cur.parent else None
    return False
