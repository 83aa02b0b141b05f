"""Seconds in each state over any stretch of time: the arithmetic of availability.

Three inputs, all plain intervals of Unix seconds:

- the site's **verdict timeline**: its verdict changes, oldest first; a change holds from its
  ``since`` (the start of the outage behind a ``down``, not when it was judged) until the next
  change takes over (never before the previous one started: a later change cannot rewrite
  what an earlier one already claimed). Before the first change nothing is known;
- **coverage**: when netmon was running with its poller connected (``netmon.rollup`` stores one
  row per 10 s slot). Outside it every site is ``no_data``, whatever the last verdict said: the
  monitor's own downtime is never counted as the site being up (nor down);
- **maintenance**: the site's announced windows. Covered time inside one is ``maintenance``:
  never down, never an outage, left out of every ratio.

Every second of ``[start, end)`` lands in exactly one state of :data:`STATES`; ``unknown``
verdicts (too few probes to judge) count as ``no_data``.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

STATES = ("fully_functional", "degraded", "down", "not_installed", "maintenance", "no_data")
Interval = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Change:
    """One verdict change as the timeline needs it."""

    verdict: str
    since: float
    reasons: tuple[str, ...] = ()  # the reasons' messages


@dataclass(frozen=True, slots=True)
class Span:
    start: float
    end: float
    verdict: str
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Outage:
    start: float
    end: float
    reasons: tuple[str, ...]

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(slots=True)
class Account:
    """Seconds per state over ``[start, end)``, and the outages inside it."""

    start: float
    end: float
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STATES, 0.0))
    outages: list[Outage] = field(default_factory=list)

    def add(self, other: Account) -> None:
        for state, s in other.seconds.items():
            self.seconds[state] += s
        self.outages.extend(other.outages)


def timeline(changes: Sequence[Change], start: float, end: float) -> list[Span]:
    """The verdict spans inside ``[start, end)`` (``changes`` oldest first)."""
    starts: list[float] = []
    for c in changes:
        starts.append(c.since if not starts else max(c.since, starts[-1]))
    spans = []
    for i, c in enumerate(changes):
        nxt = starts[i + 1] if i + 1 < len(changes) else math.inf
        lo, hi = max(starts[i], start), min(nxt, end)
        if lo < hi:
            spans.append(Span(lo, hi, c.verdict, c.reasons))
    return spans


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, non-overlapping, touching intervals joined."""
    out: list[list[float]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _inside(intervals: Sequence[Interval], starts: Sequence[float], t: float) -> int | None:
    i = bisect.bisect_right(starts, t) - 1
    return i if i >= 0 and intervals[i][0] <= t < intervals[i][1] else None


def account(
    changes: Sequence[Change],
    covered: Sequence[Interval],
    maintenance: Sequence[Interval],
    start: float,
    end: float,
) -> Account:
    """Every second of ``[start, end)`` in one state, and the outages (``covered`` and
    ``maintenance`` merged, see :func:`merge`)."""
    spans = timeline(changes, start, end)
    cuts = {start, end}
    for a, b in (*((s.start, s.end) for s in spans), *covered, *maintenance):
        cuts.update(t for t in (a, b) if start < t < end)
    span_iv, span_starts = [(s.start, s.end) for s in spans], [s.start for s in spans]
    cov_starts, mnt_starts = [a for a, _ in covered], [a for a, _ in maintenance]
    out = Account(start, end)
    reasons: tuple[str, ...]
    for a, b in pairwise(sorted(cuts)):
        if _inside(covered, cov_starts, a) is None:
            state, reasons = "no_data", ()
        elif _inside(maintenance, mnt_starts, a) is not None:
            state, reasons = "maintenance", ()
        else:
            i = _inside(span_iv, span_starts, a)
            span = spans[i] if i is not None else None
            state = span.verdict if span and span.verdict in STATES else "no_data"
            reasons = span.reasons if span else ()
        out.seconds[state] += b - a
        if state == "down":
            _extend(out.outages, a, b, reasons)
    return out


def _extend(outages: list[Outage], a: float, b: float, reasons: tuple[str, ...]) -> None:
    if outages and outages[-1].end == a:
        last = outages.pop()
        merged = tuple(dict.fromkeys((*last.reasons, *reasons)))
        outages.append(Outage(last.start, b, merged))
    else:
        outages.append(Outage(a, b, reasons))


def judged_seconds(seconds: dict[str, float]) -> float:
    """Observed time outside maintenance: every state's seconds added in order, less no_data
    and maintenance (plain left-to-right additions, as SQL adds them: netmon.progress_index
    counts fully functional days in SQL and must find the same; ``sum`` compensates from
    Python 3.12 on)."""
    total = 0.0
    for value in seconds.values():
        total += value
    return total - seconds["no_data"] - seconds["maintenance"]


def availability(seconds: dict[str, float]) -> float | None:
    """1 − down / (observed − maintenance); None when nothing was observed outside maintenance."""
    judged = judged_seconds(seconds)
    return 1.0 - seconds["down"] / judged if judged > 0 else None


def fully_functional_ratio(seconds: dict[str, float]) -> float | None:
    judged = judged_seconds(seconds)
    return seconds["fully_functional"] / judged if judged > 0 else None


# --- days in the report time zone -----------------------------------------------------------
def days(start: float, end: float, tz: ZoneInfo) -> list[tuple[dt.date, float, float]]:
    """(date, its start, its end) of every local day that ``[start, end)`` touches, clipped."""
    out: list[tuple[dt.date, float, float]] = []
    day = dt.datetime.fromtimestamp(start, tz).date()
    while True:
        lo, hi = day_bounds(day, tz)
        if lo >= end:
            return out
        out.append((day, max(lo, start), min(hi, end)))
        day += dt.timedelta(days=1)


def day_bounds(day: dt.date, tz: ZoneInfo) -> tuple[float, float]:
    """Unix seconds of a local day's first instant and of the next day's."""
    lo = dt.datetime.combine(day, dt.time(), tz)
    hi = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz)
    return lo.timestamp(), hi.timestamp()


def period(text: str, tz: ZoneInfo) -> tuple[float, float]:
    """A calendar period as [start, end): ``2026-11`` (a month), ``2026-W48`` (an ISO week),
    ``2026-11-30`` (a day), ``2026`` (a year), in ``tz``. ValueError if it is none of them."""
    parts = text.split("-")
    try:
        if len(parts) == 2 and parts[1].startswith("W"):
            first = dt.date.fromisocalendar(int(parts[0]), int(parts[1][1:]), 1)
            return _span(first, first + dt.timedelta(days=7), tz)
        if len(parts) == 1 and len(text) == 4:
            return _span(dt.date(int(text), 1, 1), dt.date(int(text) + 1, 1, 1), tz)
        if len(parts) == 2:
            y, m = int(parts[0]), int(parts[1])
            return _span(dt.date(y, m, 1), dt.date(y + m // 12, m % 12 + 1, 1), tz)
        if len(parts) == 3:
            first = dt.date.fromisoformat(text)
            return _span(first, first + dt.timedelta(days=1), tz)
    except ValueError:
        pass
    raise ValueError(f"{text!r} is not a period: YYYY, YYYY-MM, YYYY-Www or YYYY-MM-DD")


def _span(first: dt.date, after: dt.date, tz: ZoneInfo) -> tuple[float, float]:
    return day_bounds(first, tz)[0], day_bounds(after, tz)[0]


def reasons_of(raw: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    """The messages of a stored change's reasons."""
    return tuple(str(r.get("message", r.get("criterion", ""))) for r in raw)
