"""``netmon check-config --report``: what a valid inventory still lacks, for the people who keep it.

Not problems (the file is valid and runs): facts to follow up. Today one: the sites without an
ABDM Health Facility Registry id (``hfr_id``), which the state's reports join the registry on.
"""

from __future__ import annotations

from netmon.inventory.models import Inventory


def report_lines(inventory: Inventory) -> list[str]:
    """The report, one line per fact (sites listed by id, district and name)."""
    missing = [site for site in inventory.sites if site.hfr_id is None]
    lines = [f"sites without an hfr_id: {len(missing)} of {len(inventory.sites)}"]
    lines += [f"  {site.id}  ({site.district})  {site.name}" for site in missing]
    return lines
