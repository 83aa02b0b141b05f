"""Probe kinds behind one seam. Importing this package registers every built-in kind."""

from probes import icmp as _icmp  # noqa: E402,F401  (registers "icmp")
from probes import snmp as _snmp  # noqa: E402,F401
from probes.base import (
    PROBES,
    ProbeContext,
    ProbeFn,
    ProbeParams,
    ProbeResult,
    Target,
    register,
    run_probe,
)

__all__ = [
    "PROBES",
    "ProbeContext",
    "ProbeFn",
    "ProbeParams",
    "ProbeResult",
    "Target",
    "register",
    "run_probe",
]
