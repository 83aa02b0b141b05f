"""The ``icmp`` probe kind: one burst of echoes through the shared engine, as a ProbeResult.

The ICMP code is split along its seams; this module is only the probe-kind adapter, and it
re-exports the engine's public names (``from probes.icmp import IcmpEngine`` keeps working):

* :mod:`probes.icmp_engine` - :class:`IcmpEngine`: shared sockets, bursts, the sender, the
  timeout sweep and the receive drain (start reading here);
* :mod:`probes.icmp_socket` - sockets, raw/dgram privilege modes and :class:`IcmpUnavailable`,
  the BPF and ICMP type filters, buffer sizing, kernel drops;
* :mod:`probes.icmp_resolver` - literals and host names (:class:`NameCache`);
* :mod:`probes.icmp_ratelimit` - the optional echo/s cap (a token bucket).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from probes.base import JobSpec, ProbeKind, ProbeParams, ProbeResult, Target, failed
from probes.icmp_engine import BurstResult, EngineStats, IcmpEngine
from probes.icmp_resolver import Destination, Lookup, NameCache, ResolveError, parse_literal
from probes.icmp_socket import DEFAULT_BUFSIZE, IcmpUnavailable, Kind, Mode

if TYPE_CHECKING:
    from netmon.config import ValidatedConfig
    from netmon.inventory import Device, Inventory, Site

__all__ = [
    "DEFAULT_BUFSIZE",
    "BurstResult",
    "Destination",
    "EngineStats",
    "IcmpEngine",
    "IcmpUnavailable",
    "Kind",
    "Lookup",
    "Mode",
    "NameCache",
    "ResolveError",
    "KIND",
    "IcmpFindings",
    "IcmpKind",
    "loss_reason",
    "parse_literal",
]


def loss_reason(sent: int, received: int) -> str:
    """Human summary of a burst's loss ("" when nothing was lost)."""
    if sent and not received:
        return f"no reply to {sent} echo{'es' if sent != 1 else ''}"
    if received < sent:
        return f"{sent - received} of {sent} echoes lost"
    return ""


@dataclass(frozen=True, slots=True)
class IcmpFindings:
    """What a burst found beyond reachability: the address a host name resolved to."""

    address: str

    def to_json(self) -> dict[str, Any]:
        return {"address": self.address}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> IcmpFindings:
        return cls(str(data["address"]))


class IcmpKind(ProbeKind[IcmpEngine | None, ProbeParams]):
    """Ping: one burst per interval through the shared :class:`IcmpEngine`."""

    name = "icmp"
    reachability = 0  # ping is the first word on whether a device answers
    findings = IcmpFindings

    def enabled_by_default(self, device: Device) -> bool:
        return True  # a device without an address needs `probes: []` (an inventory check)

    def job(self, inventory: Inventory, site: Site, device: Device) -> JobSpec:
        eff = inventory.probe_settings(site)
        return JobSpec(eff.interval, ProbeParams(eff.count, eff.timeout, eff.spacing))

    def open(self, config: ValidatedConfig) -> IcmpEngine:
        """Raises IcmpUnavailable (a ProbeUnavailable) with the fixes when no socket opens."""
        s = config.settings
        return IcmpEngine.open(mode=s.icmp_mode, rate_limit=s.icmp_rate_limit)  # type: ignore[arg-type]

    def close(self, engine: IcmpEngine | None) -> None:
        if engine is not None:
            engine.close()

    def engine_stats(self, engine: IcmpEngine | None) -> dict[str, int]:
        """Every ``EngineStats`` counter by field name, and the kernel's receive drops."""
        if engine is None:
            return {}
        return {**dataclasses.asdict(engine.stats), "kernel_drops": engine.kernel_drops()}

    async def probe(
        self, engine: IcmpEngine | None, target: Target, params: ProbeParams
    ) -> ProbeResult:
        """Ping ``target`` with one burst through the shared engine."""
        started = time.time()
        if engine is None:
            return failed(self.name, started, "no ICMP engine")
        burst = await engine.burst(target.address, params.count, params.spacing, params.timeout)
        rtts = tuple(rtt for rtt in burst.rtts if rtt is not None)
        reason = "; ".join(r for r in (loss_reason(burst.sent, len(rtts)), burst.reason) if r)
        found = IcmpFindings(burst.address) if burst.address != target.address else None
        return ProbeResult(
            self.name, bool(rtts), started, time.time() - started, burst.sent, len(rtts), rtts,
            reason, found,
        )  # fmt: skip


KIND = IcmpKind()
