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

import time

from probes.base import ProbeContext, ProbeParams, ProbeResult, Target, register
from probes.icmp_engine import BurstResult, EngineStats, IcmpEngine
from probes.icmp_resolver import Destination, Lookup, NameCache, ResolveError, parse_literal
from probes.icmp_socket import DEFAULT_BUFSIZE, IcmpUnavailable, Kind, Mode

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
    "icmp_probe",
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


@register("icmp")
async def icmp_probe(ctx: ProbeContext, target: Target, params: ProbeParams) -> ProbeResult:
    """Ping ``target`` with one burst through the shared engine in ``ctx.icmp``."""
    started = time.time()
    engine: IcmpEngine | None = ctx.icmp
    if engine is None:
        return ProbeResult(kind="icmp", ok=False, started_at=started, reason="no ICMP engine")
    burst = await engine.burst(target.address, params.count, params.spacing, params.timeout)
    rtts = tuple(rtt for rtt in burst.rtts if rtt is not None)
    reason = "; ".join(r for r in (loss_reason(burst.sent, len(rtts)), burst.reason) if r)
    extra = {"address": burst.address} if burst.address != target.address else {}
    return ProbeResult(
        kind="icmp",
        ok=bool(rtts),
        started_at=started,
        duration=time.time() - started,
        sent=burst.sent,
        received=len(rtts),
        rtts=rtts,
        reason=reason,
        extra=extra,
    )
