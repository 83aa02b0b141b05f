"""The probe seam: one result type, one function signature, one registry.

Every probe kind is an ``async def probe(ctx, target, params) -> ProbeResult`` registered in
:data:`PROBES` by name. A probe returns a down target as data (``ok=False`` with a reason); it
raises only on bugs. The runner (:func:`run_probe`), not the probe, owns the deadline and turns
any escaped exception into a failed result, so one crashing probe never stops a cycle.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("netmon.probes")


@dataclass(frozen=True, slots=True)
class Target:
    """One device to probe, as the scheduler hands it to a probe."""

    site: str
    device: str
    address: str
    role: str = "wan"
    # Kind-specific settings, e.g. meta["snmp"] for the SNMP probe; never logged.
    meta: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class ProbeParams:
    """Effective per-device probe settings (inventory defaults merged with site overrides)."""

    count: int = 5
    timeout: float = 1.0  # seconds to wait for each reply
    spacing: float = 1.0  # seconds between echoes of one burst

    @property
    def deadline(self) -> float:
        """Longest a well-behaved probe with these params can take, plus a margin."""
        return (self.count - 1) * self.spacing + self.timeout + 1.0


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What one probe of one device found. RTTs are in seconds, in the order received."""

    kind: str
    ok: bool
    started_at: float  # Unix time, seconds
    duration: float = 0.0
    sent: int = 0
    received: int = 0
    rtts: tuple[float, ...] = ()
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def loss_ratio(self) -> float:
        return 1.0 - self.received / self.sent if self.sent else 1.0

    @property
    def rtt_min(self) -> float | None:
        return min(self.rtts) if self.rtts else None

    @property
    def rtt_avg(self) -> float | None:
        return math.fsum(self.rtts) / len(self.rtts) if self.rtts else None

    @property
    def rtt_max(self) -> float | None:
        return max(self.rtts) if self.rtts else None

    @property
    def jitter(self) -> float | None:
        """Mean absolute difference of consecutive RTTs (RFC 3550 style, unsmoothed)."""
        return jitter_of(self.rtts)


def jitter_of(rtts: tuple[float, ...] | list[float]) -> float | None:
    if len(rtts) < 2:
        return 0.0 if rtts else None
    return math.fsum(abs(b - a) for a, b in zip(rtts, rtts[1:], strict=False)) / (len(rtts) - 1)


@dataclass
class ProbeContext:
    """Shared engines the probes use (injected, so tests can swap a fake behind the seam)."""

    icmp: Any = None
    snmp: Any = None


ProbeFn = Callable[[ProbeContext, Target, ProbeParams], Awaitable[ProbeResult]]

PROBES: dict[str, ProbeFn] = {}


def register(kind: str) -> Callable[[ProbeFn], ProbeFn]:
    def deco(fn: ProbeFn) -> ProbeFn:
        PROBES[kind] = fn
        return fn

    return deco


async def run_probe(
    kind: str, ctx: ProbeContext, target: Target, params: ProbeParams
) -> ProbeResult:
    """Run one probe under the runner's deadline; never raises (except cancellation)."""
    started = time.time()
    fn = PROBES[kind]
    try:
        return await asyncio.wait_for(fn(ctx, target, params), timeout=params.deadline)
    except TimeoutError:
        reason = f"probe exceeded its {params.deadline:.1f}s deadline"
    except Exception as exc:  # a bug in a probe must not stop the cycle
        log.exception("%s probe of %s/%s crashed", kind, target.site, target.device)
        reason = f"probe error: {type(exc).__name__}: {exc}"
    return ProbeResult(
        kind=kind, ok=False, started_at=started, duration=time.time() - started, reason=reason
    )
