"""Per-device totals since the process started, the counters Prometheus computes windows from.

One :class:`DeviceCounters` listens to the monitor's results (``Monitor.listeners``): every
result taken adds to its (site, device, kind) probes, failed probes, echoes sent and received,
and to its site's count of results taken (``taken``: the renderer's "has this site changed
since" stamp). Results re-read from the store at start-up are not counted (they were counted by
the run that took them); a restart resets the totals to 0, which ``rate()``/``increase()``
handle.
"""

from __future__ import annotations

from probes.base import ProbeResult

CounterKey = tuple[str, str, str]  # (site id, device name, probe kind)
Counts = tuple[int, int, int, int]  # probes, failed, echoes sent, echoes received
_NONE: dict[str, Counts] = {}


class DeviceCounters:
    def __init__(self) -> None:
        # (site, device) -> kind -> (probes, failed, echoes sent, echoes received)
        self.by_device: dict[tuple[str, str], dict[str, Counts]] = {}
        self.taken: dict[str, int] = {}  # site -> results taken (only ever grows)

    def add(self, site: str, device: str, result: ProbeResult) -> None:
        self.taken[site] = self.taken.get(site, 0) + 1
        kinds = self.by_device.setdefault((site, device), {})
        p, f, s, r = kinds.get(result.kind, (0, 0, 0, 0))
        kinds[result.kind] = (p + 1, f + (not result.ok), s + result.sent, r + result.received)

    def of(self, site: str, device: str) -> dict[str, Counts]:
        """The device's totals by kind (empty before its first result). Do not modify."""
        return self.by_device.get((site, device), _NONE)

    def retain(self, keys: set[CounterKey]) -> None:
        """Forget devices (or kinds) no longer in the inventory."""
        for (site, device), kinds in list(self.by_device.items()):
            kept = {k: c for k, c in kinds.items() if (site, device, k) in keys}
            if kept:
                self.by_device[(site, device)] = kept
            else:
                del self.by_device[(site, device)]
