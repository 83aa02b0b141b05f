"""Rolling per-device evidence over the policy window, kept small enough for 20k devices.

Each probe result is folded into fixed-width time buckets (window / 240) holding counts and an
RTT histogram with 5 % wide bins; running totals are adjusted as results enter and buckets leave
the window, so a summary costs O(histogram bins), not O(results). Outages (runs of probes with
no reply at all) are kept exactly as (start, end) spans. The same fold serves live results and
results re-read from the store at start-up, so both give the same verdict.

:class:`DeviceWindow` is the default evidence of a probe kind (``probes.base.Evidence``): one
per (site, device, kind); a kind that knows more (SNMP) wraps one.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # (probe kinds import this module: no runtime import back into probes)
    from netmon.inventory import Device
    from probes.base import ProbeResult

BUCKETS_PER_WINDOW = 240
_BIN_BASE = 1.05
_BIN_FLOOR = 1e-5  # 10 µs: every RTT below lands in bin 0


def rtt_bin(rtt: float) -> int:
    return max(0, math.ceil(math.log(max(rtt, _BIN_FLOOR) / _BIN_FLOOR, _BIN_BASE)))


def bin_upper(index: int) -> float:
    return _BIN_FLOOR * _BIN_BASE**index


@dataclass
class _Bucket:
    start: float
    probes: int = 0
    up: int = 0
    sent: int = 0
    received: int = 0
    sent_up: int = 0  # echoes sent in probes that got at least one reply
    received_up: int = 0
    hist: Counter[int] = field(default_factory=Counter)

    def merge(self, other: _Bucket, sign: int = 1) -> None:
        self.probes += sign * other.probes
        self.up += sign * other.up
        self.sent += sign * other.sent
        self.received += sign * other.received
        self.sent_up += sign * other.sent_up
        self.received_up += sign * other.received_up
        if sign > 0:
            self.hist.update(other.hist)
        else:
            self.hist.subtract(other.hist)
            self.hist = +self.hist  # drop zero counts


@dataclass(frozen=True, slots=True)
class DeviceSummary:
    """What the window says about one device at one moment."""

    probes: int
    up: int
    sent: int
    received: int
    sent_up: int
    received_up: int
    rtt_p95: float | None
    longest_outage: float  # seconds, clipped to the window
    outages: int  # separate outages (runs of unanswered probes) inside the window
    down_since: float | None  # start of the current outage, if the device is down now
    ever_up: bool
    last: ProbeResult | None

    @property
    def availability(self) -> float | None:
        return self.up / self.probes if self.probes else None

    @property
    def loss_ratio(self) -> float | None:
        """Echo loss while the device was reachable (outages count against availability)."""
        return 1.0 - self.received_up / self.sent_up if self.sent_up else None

    @property
    def is_up(self) -> bool | None:
        return None if self.last is None else self.last.ok


class DeviceWindow:
    def __init__(self, window: float, ever_up: bool = False) -> None:
        self.window = window
        self.width = window / BUCKETS_PER_WINDOW
        self.buckets: deque[_Bucket] = deque()
        self.total = _Bucket(0.0)
        self.outages: deque[list[float | None]] = deque()  # [start, end or None if ongoing]
        self.ever_up = ever_up
        self.last: ProbeResult | None = None

    def add(self, r: ProbeResult) -> None:
        one = _Bucket(0.0, 1, int(r.ok), r.sent, r.received, r.sent if r.ok else 0,
                      r.received if r.ok else 0, Counter(rtt_bin(x) for x in r.rtts))  # fmt: skip
        self._bucket_for(r.started_at).merge(one)
        self.total.merge(one)
        if self.last is None or r.started_at >= self.last.started_at:
            self._track_outage(r)
            self.last = r
        self.ever_up = self.ever_up or r.ok

    def _bucket_for(self, ts: float) -> _Bucket:
        start = math.floor(ts / self.width) * self.width
        if not self.buckets or start > self.buckets[-1].start:
            self.buckets.append(_Bucket(start))
            return self.buckets[-1]
        for b in reversed(self.buckets):  # a late result: rare, search back
            if b.start <= start:
                return b
        return self.buckets[0]

    def _track_outage(self, r: ProbeResult) -> None:
        ongoing = bool(self.outages) and self.outages[-1][1] is None
        if not r.ok and not ongoing:
            self.outages.append([r.started_at, None])
        elif r.ok and ongoing:
            self.outages[-1][1] = r.started_at

    def close_outage(self, ts: float) -> None:
        """End an ongoing outage at ``ts`` (announced maintenance began)."""
        if self.outages and self.outages[-1][1] is None:
            self.outages[-1][1] = ts

    def facts(self, device: Device, now: float) -> None:
        """A plain window adds no verdict facts beyond reachability."""
        return None

    def prune(self, now: float) -> None:
        horizon = now - self.window
        while self.buckets and self.buckets[0].start + self.width <= horizon:
            self.total.merge(self.buckets.popleft(), sign=-1)
        while self.outages and self.outages[0][1] is not None and self.outages[0][1] < horizon:
            self.outages.popleft()

    def summary(self, now: float) -> DeviceSummary:
        self.prune(now)
        t = self.total
        ongoing = self.outages[-1][0] if self.outages and self.outages[-1][1] is None else None
        return DeviceSummary(
            probes=t.probes,
            up=t.up,
            sent=t.sent,
            received=t.received,
            sent_up=t.sent_up,
            received_up=t.received_up,
            rtt_p95=_percentile(t.hist, 0.95),
            longest_outage=self._longest_outage(now),
            outages=len(self.outages),
            down_since=ongoing,
            ever_up=self.ever_up,
            last=self.last,
        )

    def _longest_outage(self, now: float) -> float:
        horizon = now - self.window
        spans = (min(end if end is not None else now, now) - max(s, horizon)
                 for s, end in self.outages if s is not None)  # fmt: skip
        return max((s for s in spans if s > 0), default=0.0)


def _percentile(hist: Counter[int], q: float) -> float | None:
    n = sum(hist.values())
    if n == 0:
        return None
    rank = math.ceil(q * n)
    seen = 0
    for index in sorted(hist):
        seen += hist[index]
        if seen >= rank:
            return bin_upper(index)
    return None  # unreachable: rank <= n
