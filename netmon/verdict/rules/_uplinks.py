"""Helpers shared by the uplink quality rules."""

from __future__ import annotations

from collections.abc import Iterator

from netmon.inventory import Device
from netmon.verdict.context import SiteContext
from netmon.window import DeviceSummary


def probed_uplinks(ctx: SiteContext) -> Iterator[tuple[Device, DeviceSummary]]:
    """Each uplink device with probes in the window, with its summary."""
    for dev in ctx.uplinks:
        s = ctx.seen.get(dev.name)
        if s is not None and s.probes:
            yield dev, s
