"""Engine-wide pacing for the ICMP engine: an optional cap on echoes per second.

:class:`TokenBucket` holds up to ``capacity`` tokens, refilled at ``rate`` per second. The
engine's sender (:mod:`probes.icmp_engine`) consults it once per send pass, not per echo: it asks
for as many tokens as it has echoes due, sends what it is granted and, if any echo is left, arms
its timer for :meth:`TokenBucket.wait` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """Engine-wide pacing: ``rate`` echoes/s with up to ``capacity`` sent back to back."""

    def __init__(
        self,
        rate: float,
        capacity: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate_limit must be > 0 echoes/s, got {rate!r}")
        self.rate = rate
        self.capacity = capacity if capacity is not None else max(1.0, rate / 10)
        self.clock = clock
        self._tokens = self.capacity
        self._stamp = clock()

    def take(self, wanted: int) -> int:
        """Take up to ``wanted`` tokens now; returns how many were granted."""
        now = self.clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        granted = min(wanted, int(self._tokens))
        self._tokens -= granted
        return max(granted, 0)

    def wait(self) -> float:
        """Seconds until the next token."""
        return max(0.0, (1.0 - self._tokens) / self.rate)
