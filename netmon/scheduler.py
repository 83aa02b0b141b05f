"""Runs every probe job on its own interval, spread so thousands never fire at once.

Each job's phase inside its interval comes from a stable hash of its key, so adding or removing
devices (``update``) never moves the others. One loop sleeps until the earliest due job and starts
it as a task, bounded by a semaphore. A job still running when it is due again is an *overrun*:
it is counted and logged, and the next run starts as soon as the previous one ends (late, never
silently skipped). ``lag`` is how late the latest starts were, the probe-cycle lag.
``run_now`` starts a job at once, off its schedule (a trap's hint: ``netmon.traps``); its
timeline does not move, and a job already running is not started twice.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
import zlib
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass, field

from probes.stall import WAKE_STEP, on_wake_grid

log = logging.getLogger("netmon.scheduler")

FIRE_AHEAD = WAKE_STEP  # s: a wake-up also starts the jobs due this soon (fewer loop wake-ups)
_on_grid = on_wake_grid  # when to wake for the next job (the ICMP sender wakes on that grid too)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


@dataclass(eq=False)
class Job:
    key: Hashable
    interval: float
    payload: object = None
    running: asyncio.Task[None] | None = field(default=None, repr=False)
    next_due: float = 0.0
    late_by: float = 0.0


class Scheduler:
    def __init__(
        self,
        run: Callable[[Job], Awaitable[None]],
        max_concurrency: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._run = run
        self._clock = clock
        self._sem = asyncio.Semaphore(max_concurrency)
        self._jobs: dict[Hashable, Job] = {}
        self._heap: list[tuple[float, int, Job]] = []
        self._seq = 0
        self._waiter: asyncio.Future[None] | None = None  # run_forever's sleep, if asleep
        self.overruns = 0
        self.started = 0
        self.run_now_started = 0  # of ``started``: off schedule, by run_now
        self.lag = 0.0  # seconds: the largest start delay seen in the last interval

    @property
    def jobs(self) -> dict[Hashable, Job]:
        return self._jobs

    def update(self, jobs: Iterable[Job]) -> None:
        """Replace the job set; jobs whose key and interval are unchanged keep their timeline."""
        now = self._clock()
        new = {j.key: j for j in jobs}
        for key, job in new.items():
            old = self._jobs.get(key)
            if old is not None and old.interval == job.interval:
                old.payload = job.payload
                new[key] = old
            else:
                job.next_due = self._first_due(job, now)
                self._push(job)
        self._jobs = new
        if self._waiter is not None:
            _wake(self._waiter)

    def _first_due(self, job: Job, now: float) -> float:
        phase = (zlib.crc32(repr(job.key).encode()) / 2**32) * job.interval
        return now + (phase - now) % job.interval

    def _push(self, job: Job) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (job.next_due, self._seq, job))

    async def run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._fire_due()
            now = self._clock()
            delay = _on_grid(self._heap[0][0], now) - now if self._heap else 3600.0
            if delay > 0:  # a bare future and one timer: no task per wake-up (wait_for's cost)
                self._waiter = waiter = loop.create_future()
                timer = loop.call_later(delay, _wake, waiter)
                try:
                    await waiter
                finally:
                    timer.cancel()
                    self._waiter = None

    def _fire_due(self) -> None:
        """Start every job due now or within ``FIRE_AHEAD`` (one wake-up starts them all)."""
        now = self._clock()
        horizon = now + FIRE_AHEAD
        while self._heap and self._heap[0][0] <= horizon:
            due, _, job = heapq.heappop(self._heap)
            if self._jobs.get(job.key) is not job or due != job.next_due:
                continue  # removed or rescheduled
            job.next_due = due + job.interval
            self._push(job)
            if job.running is not None and not job.running.done():
                self._overrun(job)
                continue
            job.late_by = max(0.0, now - due)
            self.lag = max(self.lag * 0.9, job.late_by)  # decays as starts catch up
            job.running = asyncio.create_task(self._guarded(job), name=str(job.key))

    def run_now(self, key: Hashable) -> bool:
        """Start job ``key`` now, its schedule unchanged; False if unknown or running already."""
        job = self._jobs.get(key)
        if job is None or (job.running is not None and not job.running.done()):
            return False
        job.late_by = 0.0
        job.running = asyncio.create_task(self._guarded(job), name=f"{job.key} now")
        self.run_now_started += 1
        return True

    def _overrun(self, job: Job) -> None:
        self.overruns += 1
        if self.overruns == 1 or self.overruns % 1000 == 0:
            log.warning(
                "probe of %s still running when due again (%d overruns so far)",
                job.key,
                self.overruns,
            )
        running = job.running
        assert running is not None
        running.add_done_callback(lambda _t: self._restart(job))

    def _restart(self, job: Job) -> None:
        if self._jobs.get(job.key) is job and (job.running is None or job.running.done()):
            job.late_by = self._clock() - (job.next_due - job.interval)
            job.running = asyncio.create_task(self._guarded(job), name=str(job.key))

    async def _guarded(self, job: Job) -> None:
        async with self._sem:
            self.started += 1
            try:
                await self._run(job)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("job %s failed", job.key)

    async def stop(self) -> None:
        tasks = [j.running for j in self._jobs.values() if j.running and not j.running.done()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
