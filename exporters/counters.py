"""Per-device totals since the process started, the counters Prometheus computes windows from.

One :class:`DeviceCounters` listens to the monitor's results (``Monitor.listeners``): every
result taken adds to its (site, device, kind) probes, failed probes, echoes sent and received.
Results re-read from the store at start-up are not counted (they were counted by the run that
took them); a restart resets the totals to 0, which ``rate()``/``increase()`` handle.
"""

from __future__ import annotations

from probes.base import ProbeResult

CounterKey = tuple[str, str, str]  # (site id, device name, probe kind)


class DeviceCounters:
    def __init__(self) -> None:
        self.by_key: dict[CounterKey, list[int]] = {}  # [probes, failed, sent, received]

    def add(self, site: str, device: str, result: ProbeResult) -> None:
        key = (site, device, result.kind)
        c = self.by_key.get(key)
        if c is None:
            c = self.by_key[key] = [0, 0, 0, 0]
        c[0] += 1
        c[1] += not result.ok
        c[2] += result.sent
        c[3] += result.received

    def of(self, site: str, device: str, kind: str) -> tuple[int, int, int, int] | None:
        """(probes, failed, echoes sent, echoes received), or ``None`` before the first."""
        c = self.by_key.get((site, device, kind))
        return None if c is None else (c[0], c[1], c[2], c[3])

    def retain(self, keys: set[CounterKey]) -> None:
        """Forget devices (or kinds) no longer in the inventory."""
        for key in [k for k in self.by_key if k not in keys]:
            del self.by_key[key]
