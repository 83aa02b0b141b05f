"""Run-time scenario events: "``after`` seconds from the lab epoch, do this to that agent".

A scenario's ``events`` (:class:`netmon.lab.model.RebootEvent`, ``InterfaceEvent``,
``AgentEvent``) are scheduled by :class:`EventRunner`, a daemon thread of the process that owns
the :class:`netmon.lab.Lab` (the agents' state files and snmpd processes live there). Each event
fires once per epoch; :meth:`EventRunner.reset` (called by ``Lab.reset_epoch``) starts the
schedule again from now. State an event changed stays changed: a reset re-arms, it does not undo.
What fired, when, and any failure is kept in :attr:`EventRunner.history` and passed to ``log``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from netmon.lab.model import Event, InterfaceEvent, RebootEvent, Scenario

IDLE_WAIT = 5.0  # s; longest sleep between checks (a reset or stop wakes the thread at once)


@dataclass
class Scheduled:
    at: float  # seconds after the epoch (time_scale applied)
    key: str  # "site/device"
    event: Event
    fired: bool = False

    def describe(self) -> str:
        ev = self.event
        what: str = ev.action
        if isinstance(ev, InterfaceEvent):
            changes = [f"{k}={v}" for k, v in (("oper", ev.oper), ("admin", ev.admin)) if v]
            what = f"interface {ev.interface} {' '.join(changes)}"
        elif isinstance(ev, RebootEvent) and ev.downtime:
            what = f"reboot (ICMP silent {ev.downtime:g}s)"
        return f"{self.key}: {what}"


@dataclass(frozen=True)
class Fired:
    epoch: int  # 0 = from the start, +1 at every reset
    offset: float  # seconds after that epoch when it was applied
    item: Scheduled
    error: str | None


def schedule(scenarios: list[Scenario]) -> list[Scheduled]:
    """Every event of every scenario, in time order."""
    items = [Scheduled(at, f"{sc.site.id}/{ev.device}", ev)
             for sc in scenarios for at, ev in sc.scaled_events()]  # fmt: skip
    return sorted(items, key=lambda s: s.at)


class EventRunner:
    """Applies due events with ``apply(item)``; exceptions are recorded, never raised."""

    def __init__(
        self,
        items: list[Scheduled],
        apply: Callable[[Scheduled], None],
        log: Callable[[str], None] = lambda _msg: None,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_seconds: float = 12 * 3600.0,
    ) -> None:
        self.items = items
        self.apply = apply
        self.log = log
        self.clock = clock
        self.epoch = clock()
        self.resets = 0
        self.history: list[Fired] = []
        self._deadline = self.epoch + max_seconds
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- schedule logic (no thread) --------------------------------------------------------
    def take_due(self, now: float) -> list[Scheduled]:
        """Events due at ``now`` not fired yet in this epoch, marked fired."""
        with self._cond:
            due = [s for s in self.items if not s.fired and s.at <= now - self.epoch]
            for s in due:
                s.fired = True
            return due

    def wait_time(self, now: float) -> float:
        """Seconds until the next unfired event (IDLE_WAIT at most)."""
        with self._cond:
            left = [s.at - (now - self.epoch) for s in self.items if not s.fired]
        return max(0.0, min([IDLE_WAIT, *left]))

    def run_due(self, now: float) -> list[Fired]:
        out = []
        for item in self.take_due(now):
            error = None
            try:
                self.apply(item)
            except Exception as exc:  # an event that cannot be applied must not kill the lab
                error = f"{type(exc).__name__}: {exc}"
            fired = Fired(self.resets, round(self.clock() - self.epoch, 3), item, error)
            with self._cond:
                self.history.append(fired)
            self.log(
                f"{fired.offset:8.3f}s {item.describe()}" + (f" FAILED: {error}" if error else "")
            )
            out.append(fired)
        return out

    def reset(self) -> None:
        """Count from now again and re-arm every event."""
        with self._cond:
            self.epoch = self.clock()
            self.resets += 1
            for s in self.items:
                s.fired = False
            self._cond.notify_all()
        self.log("epoch reset: events re-armed")

    def fired(self, key: str | None = None, *, this_epoch: bool = False) -> list[Fired]:
        """What fired so far (for one device key; only since the last reset)."""
        with self._cond:
            return [f for f in self.history if (key is None or f.item.key == key)
                    and (not this_epoch or f.epoch == self.resets)]  # fmt: skip

    # -- thread ----------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None and self.items:
            self._thread = threading.Thread(target=self._run, name="netmon-lab-events", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while self.clock() < self._deadline:  # bounded by the lab's lifetime
            with self._cond:
                if self._stopping:
                    return
                self._cond.wait(self.wait_time(self.clock()))
                if self._stopping:
                    return
            self.run_due(self.clock())
