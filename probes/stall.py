"""The runner's deadline, measured in time the event loop could run: loop stalls do not count.

Why
    A probe's deadline (``params.deadline``: e.g. its burst plus 1 s) exists to stop a probe that
    hangs. Measured on the wall clock, it also fails a healthy probe whenever the process is busy:
    a 5 s stall (a big scrape rendered on the loop, a GC pause, a slow callback) inside a 6 s
    deadline fails the probe, and a failed probe is an outage nobody had. So the deadline is
    extended by the time the loop was stalled while the probe ran.

How
    * :class:`StallMeter` (one per event loop, ticking only while some probe runs) is a heartbeat
      timer every ``TICK`` s; the lateness of each tick (when it ran - when it was due) is time
      the loop could not run callbacks, summed in :meth:`StallMeter.stalled`, which also counts
      a stall still in progress (a tick overdue now), so a reader that runs before the overdue
      tick in the same loop iteration sees the stall too. Stalls shorter than ``TICK`` are seen
      in full once the tick they delay runs; the part of a stall before the first tick of an
      idle meter is not (at most ``TICK`` s).
    * :class:`StallDeadline` is an ``asyncio.timeout`` whose expiry is decided by a timer of its
      own: when it fires it recomputes ``start + seconds + stall since start`` (capped at
      ``MAX_STRETCH`` x ``seconds`` in all) and re-arms for that if it is still ahead; otherwise
      it lets the timeout expire. The expiry itself is a ``call_soon``, so I/O the loop already
      handled (a burst settled by a reply read in the same iteration) reaches the probe first.

Cost: one timer handle per probe (re-armed only after a stall) and one heartbeat per loop
(``1 / TICK`` wake-ups per second while any probe runs), no task per probe.
"""

from __future__ import annotations

import asyncio
import weakref
from types import TracebackType

TICK = 0.1  # s between heartbeats
MAX_STRETCH = 10.0  # a deadline is never extended beyond this many times its length
_meters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, StallMeter] = (
    weakref.WeakKeyDictionary()
)


class StallMeter:
    """Seconds the event loop ``loop`` could not run its callbacks, while in use."""

    __slots__ = ("__weakref__", "_loop", "_total", "_due", "_handle", "_users")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._total = 0.0  # lateness of the heartbeats so far, s
        self._due = float("inf")  # loop time the next heartbeat is due
        self._handle: asyncio.TimerHandle | None = None
        self._users = 0

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> StallMeter:
        """The meter of ``loop`` (created on first use)."""
        meter = _meters.get(loop)
        if meter is None:
            meter = _meters[loop] = cls(loop)
        return meter

    def stalled(self) -> float:
        """Total stall seconds so far, including one in progress (non-decreasing)."""
        late = self._loop.time() - self._due
        return self._total + late if late > 0 else self._total

    def acquire(self) -> None:
        """Start measuring (the first user starts the heartbeat)."""
        self._users += 1
        if self._users == 1:
            self._due = self._loop.time() + TICK
            self._handle = self._loop.call_at(self._due, self._beat)

    def release(self) -> None:
        """Stop measuring when the last user leaves (stalls while idle matter to nobody)."""
        self._users -= 1
        if self._users == 0 and self._handle is not None:
            self._total = self.stalled()
            self._handle.cancel()
            self._handle = None
            self._due = float("inf")

    def _beat(self) -> None:
        now = self._loop.time()
        if now > self._due:
            self._total += now - self._due
        self._due = now + TICK
        self._handle = self._loop.call_at(self._due, self._beat)


class StallDeadline:
    """``async with StallDeadline(seconds):`` raises TimeoutError when the body has had
    ``seconds`` of loop time (wall time minus loop stalls, at most ``MAX_STRETCH * seconds`` of
    wall time); :attr:`extended` says by how much the stalls pushed it."""

    __slots__ = (
        "seconds", "extended", "_timeout", "_loop", "_meter", "_handle", "_start", "_stall0",
    )  # fmt: skip

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.extended = 0.0  # s the deadline was pushed back for stalls
        self._timeout = asyncio.timeout(None)
        self._handle: asyncio.TimerHandle | None = None

    async def __aenter__(self) -> StallDeadline:
        loop = self._loop = asyncio.get_running_loop()
        await self._timeout.__aenter__()
        self._meter = StallMeter.of(loop)
        self._meter.acquire()
        self._start = loop.time()
        self._stall0 = self._meter.stalled()
        self._handle = loop.call_at(self._start + self.seconds, self._check)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._meter.release()
        await self._timeout.__aexit__(et, exc, tb)  # raises TimeoutError if it expired

    def _check(self) -> None:
        """The deadline timer: re-arm past the stalls since the start, or expire now."""
        self._handle = None
        loop = self._loop
        limit = (MAX_STRETCH - 1.0) * self.seconds
        self.extended = min(self._meter.stalled() - self._stall0, limit)
        due = self._start + self.seconds + self.extended
        if due - loop.time() > 0.001:
            self._handle = loop.call_at(due, self._check)
        else:
            self._timeout.reschedule(loop.time())  # expires via call_soon: see the module doc
