"""Files netmon ships inside its package (``netmon/data/``), found the same way in a checkout,
an editable install and a wheel: through :mod:`importlib.resources`, never a path relative to
the source tree.

    netmon/data/inventory/jharkhand-example.yaml   the example inventory (``netmon run`` default)
    netmon/data/snmp-profiles/*.yaml               the bundled SNMP device profiles

A site's own SNMP profiles live outside the package, in the directory named by
``--snmp-profiles`` / ``NETMON_SNMP_PROFILES`` (e.g. ``/etc/netmon/snmp-profiles``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from netmon.errors import NetmonError


def _data(*parts: str) -> Path:
    ref = resources.files("netmon").joinpath("data", *parts)
    if not isinstance(ref, Path):  # e.g. imported from a zip file: no real path to hand out
        raise NetmonError(
            f"netmon's bundled data is not on the file system ({ref}); install netmon unzipped"
        )
    return ref


def example_inventory() -> Path:
    """The bundled example inventory: Jharkhand's public hospitals, addressed on loopback."""
    return _data("inventory", "jharkhand-example.yaml")


def snmp_profiles_dir() -> Path:
    """The directory of the bundled SNMP profiles (one ``<name>.yaml`` per profile)."""
    return _data("snmp-profiles")
