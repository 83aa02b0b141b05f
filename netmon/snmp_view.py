"""Moved: the SNMP kind's evidence, facts and controller view live in ``probes.snmp_view``.

Kept so importers written before the probe-kind seam keep working; import from
``probes.snmp_view`` (and ``probes.snmp.snmp_settings``) in new code.
"""

from probes.snmp import snmp_settings
from probes.snmp_view import (
    ControllerView,
    SnmpEvidence,
    SnmpFacts,
    UnknownAp,
    controller_view,
    controllers_of,
    snmp_of,
)

__all__ = [
    "ControllerView",
    "SnmpEvidence",
    "SnmpFacts",
    "UnknownAp",
    "controller_view",
    "controllers_of",
    "snmp_of",
    "snmp_settings",
]
