"""The inventory: which sites exist, what gear each has, how to probe it and judge it.

Loaded from YAML and validated strictly: unknown keys are errors, and every problem is reported
with the file, the line and the field (``file.yaml:12: sites[3].devices[0].role: ...``). All
problems in a file are collected, not just the first.

    models    the pydantic models (Site, Device, Policy, ...)
    recurring maintenance that repeats (every: daily, weekly, monthly), expanded on demand
    loader    the YAML line-mapping loader (parse once, locate every problem)
    checks    cross checks (duplicates, parents, districts, timing, each probe kind's)

The SNMP settings models live with the SNMP probe kind (``probes.snmp_settings``).
"""

from netmon.inventory.checks import cross_checks
from netmon.inventory.loader import load_inventory, parse_inventory
from netmon.inventory.models import (
    JHARKHAND_DISTRICTS,
    Day,
    Defaults,
    Device,
    District,
    FacilityType,
    Inventory,
    Maintenance,
    Policy,
    PolicyOverride,
    ProbeKind,
    ProbeSettings,
    Ratio,
    Report,
    Role,
    Rollout,
    Site,
    SiteInfo,
    Slug,
)
from netmon.inventory.recurring import Recurring
from netmon.schema import Seconds
from probes.snmp_settings import (
    DeviceSnmp,
    Secret,
    SecretRef,
    SnmpConfig,
    SnmpCredentials,
    SnmpDefaults,
)

__all__ = [
    "JHARKHAND_DISTRICTS",
    "Day",
    "Defaults",
    "Device",
    "DeviceSnmp",
    "District",
    "FacilityType",
    "Inventory",
    "Maintenance",
    "Policy",
    "PolicyOverride",
    "ProbeKind",
    "ProbeSettings",
    "Ratio",
    "Recurring",
    "Report",
    "Role",
    "Rollout",
    "Seconds",
    "Secret",
    "SecretRef",
    "Site",
    "SiteInfo",
    "Slug",
    "SnmpConfig",
    "SnmpCredentials",
    "SnmpDefaults",
    "cross_checks",
    "load_inventory",
    "parse_inventory",
]
