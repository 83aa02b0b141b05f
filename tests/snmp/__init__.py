"""Helpers for the SNMP tests: loopback agents, fake clients, recordings."""

from __future__ import annotations

from typing import Any

from probes.base import ProbeResult
from probes.snmp_findings import SnmpFindings


def extra(result: ProbeResult) -> dict[str, Any]:
    """A result's SNMP findings in their stored JSON form (what the store and the API see)."""
    assert isinstance(result.findings, SnmpFindings), result
    return result.findings.to_json()
