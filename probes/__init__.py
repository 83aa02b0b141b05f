"""Probe kinds behind one seam (``probes.base``). Importing this package registers them all.

One line per kind: its ``KIND`` registered in :data:`KINDS` (the order is the order engines
open; which kind decides a device's reachability is each kind's ``reachability`` rank).
"""

from probes import http, icmp, snmp
from probes.base import (
    KINDS,
    Engines,
    Evidence,
    Findings,
    JobSpec,
    Params,
    ProbeKind,
    ProbeParams,
    ProbeResult,
    Target,
    register,
    run_probe,
)

register(icmp.KIND)
register(snmp.KIND)
register(http.KIND)

__all__ = [
    "KINDS",
    "Engines",
    "Evidence",
    "Findings",
    "JobSpec",
    "Params",
    "ProbeKind",
    "ProbeParams",
    "ProbeResult",
    "Target",
    "register",
    "run_probe",
]
