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
    * :class:`StallDeadline` is an ``asyncio.timeout`` whose expiry is decided by the meter's
      heartbeat: the meter keeps the running deadlines in one queue per length, in start order,
      and at each beat looks at the front of each queue: it recomputes ``start + seconds +
      stall since start`` (capped at ``MAX_STRETCH`` x ``seconds`` in all) and, if that has
      passed, lets the timeout expire and looks at the next. Within one queue the fronts expire
      first: for two deadlines of one length started at ``a <= b``, the stall between ``a`` and
      ``b`` is at most ``b - a``, so ``a``'s extended end is never after ``b``'s (the cap keeps
      the order too). A finished deadline is dropped when it reaches the front. The expiry
      itself is a ``call_soon``, so I/O the loop already handled (a burst settled by a reply
      read in the same iteration) reaches the probe first. A deadline expires at the first beat
      at or after its end: up to ``TICK`` s late (a deadline only stops a probe that hangs).

Cost: O(1) per probe (a queue append; no timer handle: a timer per probe was a push into the
loop's timer heap, ordered by a Python ``__lt__``, ~7 % of the poller's CPU at 1,700 echo/s),
and one heartbeat per loop (``1 / TICK`` wake-ups per second while any probe runs), no task
per probe.
"""

from __future__ import annotations

import asyncio
import math
import weakref
from collections import deque
from types import TracebackType

TICK = 0.1  # s between heartbeats
WAKE_STEP = 0.02  # s: the grid the scheduler and the ICMP sender wake on (see on_wake_grid)
MAX_STRETCH = 10.0  # a deadline is never extended beyond this many times its length
_meters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, StallMeter] = (
    weakref.WeakKeyDictionary()
)


def on_wake_grid(due: float, now: float) -> float:
    """When to wake for something due at ``due`` that may start up to ``WAKE_STEP`` early: the
    last multiple of ``WAKE_STEP`` before it if that is still ahead, else ``due``. The
    scheduler and the ICMP sender both round so, and under steady load share a wake-up."""
    tick = math.floor(due / WAKE_STEP) * WAKE_STEP
    return tick if tick > now else due


class StallMeter:
    """Seconds the event loop ``loop`` could not run its callbacks, while in use."""

    __slots__ = ("__weakref__", "_loop", "_total", "_due", "_handle", "_users", "_deadlines")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._total = 0.0  # lateness of the heartbeats so far, s
        self._due = float("inf")  # loop time the next heartbeat is due
        self._handle: asyncio.TimerHandle | None = None
        self._users = 0
        self._deadlines: dict[float, deque[StallDeadline]] = {}  # by length, in start order

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
            self._deadlines.clear()  # every deadline in them has finished

    def watch(self, deadline: StallDeadline) -> None:
        """Expire ``deadline`` at the first beat after its (extended) end, unless it finishes."""
        queue = self._deadlines.get(deadline.seconds)
        if queue is None:
            queue = self._deadlines[deadline.seconds] = deque()
        queue.append(deadline)

    def _beat(self) -> None:
        now = self._loop.time()
        if now > self._due:
            self._total += now - self._due
        self._due = now + TICK
        self._handle = self._loop.call_at(self._due, self._beat)
        for seconds, queue in list(self._deadlines.items()):
            while queue and (queue[0].finished or queue[0].expire_if_due(now)):
                queue.popleft()
            if not queue:
                del self._deadlines[seconds]


class StallDeadline:
    """``async with StallDeadline(seconds):`` raises TimeoutError when the body has had
    ``seconds`` of loop time (wall time minus loop stalls, at most ``MAX_STRETCH * seconds`` of
    wall time); :attr:`extended` says by how much the stalls pushed it."""

    __slots__ = ("seconds", "extended", "finished", "_timeout", "_meter", "_start", "_stall0")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.extended = 0.0  # s the deadline was pushed back for stalls
        self.finished = False  # the body has ended (expired or not)
        self._timeout = asyncio.timeout(None)

    async def __aenter__(self) -> StallDeadline:
        loop = asyncio.get_running_loop()
        await self._timeout.__aenter__()
        self._meter = StallMeter.of(loop)
        self._meter.acquire()
        self._start = loop.time()
        self._stall0 = self._meter.stalled()
        self._meter.watch(self)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.finished = True
        self._meter.release()
        await self._timeout.__aexit__(et, exc, tb)  # raises TimeoutError if it expired

    def expire_if_due(self, now: float) -> bool:
        """At a heartbeat (loop time ``now``): expire if the end, pushed back by the stalls
        since the start, has passed; True if it expired (see the module doc)."""
        limit = (MAX_STRETCH - 1.0) * self.seconds
        self.extended = min(self._meter.stalled() - self._stall0, limit)
        if self._start + self.seconds + self.extended - now > 0.001:
            return False
        self.finished = True
        self._timeout.reschedule(now)  # expires via call_soon: see the module doc
        return True
