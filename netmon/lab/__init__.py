"""The facility lab: simulated hospital Wi-Fi gear in a network namespace, for tests and demos.

``netmon lab up|set|reboot|cleanup|status|demo`` (see :mod:`netmon.lab.cli`) and the
:class:`Lab` context manager build, inside a ``netmon-lab-*`` network namespace, devices with
addresses in 198.18.0.0/15 that answer ping through a user-space responder with scripted loss,
delay, jitter, outages and flapping, and (optionally) a real ``snmpd`` per device that the
generated netmon inventory polls (v2c, or v3 authPriv with keys kept out of the inventory).
Scenario files (:mod:`netmon.lab.model`; the lab's own in ``netmon/lab/scenarios/``) describe the sites, run-time events (reboots, interfaces
going down, agents going silent: :mod:`netmon.lab.events`) and the verdict netmon should reach.

Names are imported lazily so that ``python -m netmon.lab.responder`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from netmon.lab.lab import Lab, require_root
    from netmon.lab.model import Faults, LabError, Scenario, bundled_scenarios, load_scenarios
    from netmon.lab.plan import LabTiming

__all__ = [
    "Faults",
    "Lab",
    "LabError",
    "LabTiming",
    "Scenario",
    "bundled_scenarios",
    "load_scenarios",
    "require_root",
]

_WHERE = {
    "Lab": "netmon.lab.lab",
    "require_root": "netmon.lab.lab",
    "Faults": "netmon.lab.model",
    "LabError": "netmon.lab.model",
    "Scenario": "netmon.lab.model",
    "load_scenarios": "netmon.lab.model",
    "bundled_scenarios": "netmon.lab.model",
    "LabTiming": "netmon.lab.plan",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'netmon.lab' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_WHERE[name]), name)
