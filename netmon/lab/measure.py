"""An independent measurement of lab devices with ``fping``, to cross-check netmon's figures."""

from __future__ import annotations

import math
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from netmon.lab.model import LabError, check_lab_address


@dataclass(frozen=True)
class FpingStats:
    address: str
    sent: int
    rtts: tuple[float, ...]  # seconds, replies only

    @property
    def received(self) -> int:
        return len(self.rtts)

    @property
    def loss_ratio(self) -> float:
        return 1.0 - self.received / self.sent if self.sent else 1.0

    @property
    def avg(self) -> float | None:
        return math.fsum(self.rtts) / len(self.rtts) if self.rtts else None

    @property
    def p95(self) -> float | None:
        """Nearest-rank 95th percentile (the rank netmon's window uses)."""
        if not self.rtts:
            return None
        ordered = sorted(self.rtts)
        return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def fping(
    addresses: Sequence[str],
    routed: Callable[[str], bool],
    count: int = 200,
    period_ms: int = 20,
    timeout_ms: int = 1000,
    interval_ms: int = 1,
) -> dict[str, FpingStats]:
    """``fping -C count -p period -t timeout -i interval -q`` against lab addresses only.

    ``routed(address)`` must confirm the host sends that address into the lab (e.g.
    :meth:`netmon.lab.Lab.routed`); otherwise nothing is sent. Note ``-t``: with ``-C`` fping's
    default timeout is the period, which would count every reply slower than 20 ms as lost;
    ``-i`` (gap between any two echoes, fping's default 10 ms) would stretch a many-host run.
    """
    for a in addresses:
        check_lab_address(a)
        if not routed(a):
            raise LabError(f"{a} is not routed into the lab; refusing to send to it")
    args = ["fping", "-C", str(count), "-p", str(period_ms), "-t", str(timeout_ms),
            "-i", str(interval_ms), "-q", *addresses]  # fmt: skip
    limit = count * max(period_ms, interval_ms * len(addresses)) / 1000 + timeout_ms / 1000 + 15
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=limit, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"fping failed: {exc}") from exc
    return parse_vcount(done.stderr, addresses)


def parse_vcount(text: str, addresses: Sequence[str]) -> dict[str, FpingStats]:
    """Parse ``fping -C`` summary lines: ``198.18.5.1 : 15.3 16.1 - 14.4``."""
    out: dict[str, FpingStats] = {}
    for line in text.splitlines():
        host, sep, values = line.partition(" : ")
        host = host.strip()
        if not sep or host not in addresses:
            continue
        fields = values.split()
        rtts = tuple(float(v) / 1000.0 for v in fields if v != "-")
        out[host] = FpingStats(host, len(fields), rtts)
    missing = [a for a in addresses if a not in out]
    if missing:
        raise LabError(f"no fping summary for {', '.join(missing)}: {text[-500:]!r}")
    return out
