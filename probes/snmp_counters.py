"""Turning two SNMP polls into rates, reboots and flaps -- pure functions, no I/O.

Reboot
    sysUpTime (TimeTicks, 1/100 s, wraps at 2**32 = ~497 days) that went back, or advanced far
    less than the wall clock between the polls, means the agent restarted in between. A value
    that went back to where a 2**32 wrap puts it is a wrap, not a reboot. Slack: 60 s or 10 %
    of the interval, whichever is larger. Judged against the latest reading, partial poll or
    not (:func:`reboots`): one reboot, one count.

Counters
    The increase of a ``width``-bit counter is ``(cur - prev) mod 2**width`` (at most one wrap
    between polls). It is discarded (``None``) as a *reset* when the device rebooted, or when
    the counter went back and the wrapped increase would be implausible (faster than the
    interface speed allows, or than the profile's ``max_bps``). A 64-bit octet counter never
    wraps in practice, so going back almost always is a reset; a 32-bit one wraps every 34 s
    at 1 Gbit/s.

Flaps
    ifOperStatus transitions seen between polls: a changed status counts 1; an unchanged
    status whose ifLastChange moved counts 2 (down and up again between polls). This is a
    lower bound: faster flapping between two polls is invisible to polling.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat

TICKS_WRAP = 1 << 32
_MIN_SLACK_TICKS = 6000  # 60 s


def rebooted(prev_ticks: int, cur_ticks: int, elapsed: float) -> bool:
    """Did the agent restart between two sysUpTime readings taken ``elapsed`` s apart?"""
    wall = elapsed * 100
    slack = max(_MIN_SLACK_TICKS, wall * 0.1)
    advance = cur_ticks - prev_ticks
    if advance < 0:
        return abs(advance + TICKS_WRAP - wall) > slack  # near the wrap point: not a reboot
    return advance < wall - slack


def counter_increase(prev: int, cur: int, width: int) -> int:
    """Increase of a ``width``-bit counter from ``prev`` to ``cur``, allowing one wrap."""
    return (cur - prev) % (1 << width)


def octet_rate(
    prev: int, cur: int, width: int, elapsed: float, max_bps: float
) -> tuple[float | None, str]:
    """(bits/s, note) between two octet-counter readings; None with note "reset" if unusable.

    The caller passes ``rebooted`` polls nowhere near here: their counters restarted.
    """
    if elapsed <= 0:
        return None, "no interval"
    bps = counter_increase(prev, cur, width) * 8 / elapsed
    if bps > max_bps:
        return None, "reset" if cur < prev else "implausible"
    return bps, "wrap" if cur < prev else ""


def error_increase(prev: int, cur: int, width: int) -> int | None:
    """Errors counted between polls; None when the counter went back by more than a wrap."""
    increase = counter_increase(prev, cur, width)
    return None if cur < prev and increase > (1 << (width - 1)) else increase


def octet_rates(
    prev: Sequence[int | None],
    cur: Sequence[int | None],
    width: int,
    elapsed: float,
    max_bps: Sequence[float],
) -> tuple[list[float | None], dict[int, str]]:
    """:func:`octet_rate` of many counters at once (``max_bps`` per counter): the rates (None
    also where a reading is None), and the notes by position.

    The same arithmetic column-wise: the usual case (every counter went forward, every rate
    plausible) is a few C-level ``map`` passes; a counter that went back or is implausible
    goes through :func:`octet_rate` itself."""
    if None in prev or None in cur or elapsed <= 0:
        return _one_by_one(prev, cur, width, elapsed, max_bps)
    diffs = list(map(operator.sub, cur, prev))
    increases = map(operator.mod, diffs, repeat(1 << width))
    rates = list(map(operator.truediv, map(operator.mul, increases, repeat(8)), repeat(elapsed)))
    bps: list[float | None] = list(rates)
    notes: dict[int, str] = {}
    if min(diffs, default=0) < 0 or any(map(operator.gt, rates, max_bps)):
        for i, (p, c, cap) in enumerate(zip(prev, cur, max_bps, strict=True)):
            assert p is not None and c is not None
            if c < p or rates[i] > cap:
                bps[i], note = octet_rate(p, c, width, elapsed, cap)
                if note:
                    notes[i] = note
    return bps, notes


def error_increases(
    prev: Sequence[int | None], cur: Sequence[int | None], width: int
) -> list[int | None]:
    """:func:`error_increase` of many counters at once (None also where a reading is None)."""
    if None in prev or None in cur:
        return [
            error_increase(p, c, width) if p is not None and c is not None else None
            for p, c in zip(prev, cur, strict=True)
        ]
    diffs = list(map(operator.sub, cur, prev))
    if min(diffs, default=0) >= 0:
        return list(map(operator.mod, diffs, repeat(1 << width)))
    return [error_increase(p, c, width) for p, c in zip(prev, cur, strict=True)]  # type: ignore[arg-type]


def _one_by_one(
    prev: Sequence[int | None],
    cur: Sequence[int | None],
    width: int,
    elapsed: float,
    max_bps: Sequence[float],
) -> tuple[list[float | None], dict[int, str]]:
    bps: list[float | None] = []
    notes: dict[int, str] = {}
    for i, (p, c, cap) in enumerate(zip(prev, cur, max_bps, strict=True)):
        value, note = (
            (None, "") if p is None or c is None else octet_rate(p, c, width, elapsed, cap)
        )
        bps.append(value)
        if note:
            notes[i] = note
    return bps, notes


def flap_increment(
    prev_oper: int | None, cur_oper: int | None, prev_change: int | None, cur_change: int | None
) -> int:
    """Oper-status transitions implied by two polls (0, 1 or 2; see module docstring)."""
    if prev_oper is None or cur_oper is None:
        return 0
    if cur_oper != prev_oper:
        return 1
    if prev_change is not None and cur_change is not None and cur_change != prev_change:
        return 2
    return 0


@dataclass(slots=True)
class InterfaceState:
    """What one interface looked like at the previous poll, plus its running flap count."""

    in_octets: int | None = None
    out_octets: int | None = None
    in_errors: int | None = None
    out_errors: int | None = None
    oper: int | None = None
    last_change: int | None = None
    flaps: int = 0


@dataclass(slots=True)
class DeviceState:
    """Per-device memory between polls (rates, reboots, flaps, log-on-change).

    Two baselines: the counters' (``at``, ``uptime_ticks``, ``interfaces``: the previous
    *complete* poll, which rates need) and the reboots' (``seen_at``, ``seen_ticks``: the latest
    sysUpTime read by *any* poll, a partial one too). A reboot is judged against the latest
    reading, so it is counted by the first poll that sees it and never again by the next one --
    however the polls around it went."""

    at: float | None = None  # monotonic time of the previous complete poll
    uptime_ticks: int | None = None  # sysUpTime at the previous complete poll
    interfaces: dict[int, InterfaceState] = field(default_factory=dict)
    answering: bool | None = None  # None until the first poll
    seen_at: float | None = None  # monotonic time of the latest sysUpTime reading
    seen_ticks: int | None = None

    def saw_uptime(self, at: float, ticks: int) -> None:
        self.seen_at, self.seen_ticks = at, ticks


def reboots(prev: DeviceState | None, at: float, ticks: int | None) -> tuple[bool, bool]:
    """(rebooted, counters reset) for a sysUpTime of ``ticks`` read at ``at``.

    ``rebooted``: since the latest reading (what a result reports and a verdict counts: once).
    ``counters reset``: since the previous complete poll (the counters' baseline), which may be
    older than a partial poll that already reported the reboot: rates across it are void."""
    if prev is None or ticks is None:
        return False, False
    since_seen = _went_back(prev.seen_at, prev.seen_ticks, at, ticks)
    return since_seen, since_seen or _went_back(prev.at, prev.uptime_ticks, at, ticks)


def _went_back(prev_at: float | None, prev_ticks: int | None, at: float, ticks: int) -> bool:
    return (
        prev_at is not None and prev_ticks is not None and rebooted(prev_ticks, ticks, at - prev_at)
    )
