from __future__ import annotations

from collections.abc import Iterator

from netmon.inventory import Device
from netmon.verdict.context import SiteContext
from netmon.verdict.criteria import Criterion
from netmon.verdict.model import Reason
from netmon.verdict.rule import Rule

FLAPPING_BY_ROLE = {
    "router": Criterion.ROUTER_FLAPPING,
    "switch": Criterion.SWITCH_FLAPPING,
    "controller": Criterion.CONTROLLER_FLAPPING,
    "ap": Criterion.AP_FLAPPING,
}


class Flapping(Rule):
    """Devices that keep dropping out: more than ``max_outages`` outages in the window.

    The count is history, so it is judged whatever the device's state now; a device down
    behind a down parent, or whose parent flaps too, is reported under the parent. Uplinks
    are judged on availability and outage length instead.
    """

    name = "flapping"
    criteria = tuple(FLAPPING_BY_ROLE.values())
    reads = ("max_outages",)

    def check(self, ctx: SiteContext) -> Iterator[Reason]:
        limit = ctx.policy.max_outages

        def flaps(dev: Device) -> bool:
            s = ctx.seen.get(dev.name)
            return bool(s and s.outages > limit)

        for dev in ctx.site.devices:
            if dev.name in ctx.uplink_names or dev.name in ctx.behind or not flaps(dev):
                continue
            if any(flaps(a) for a in ctx.ancestors(dev)):
                continue
            n = ctx.seen[dev.name].outages
            msg = f"{dev.role} {dev.name} dropped out {n} times in the window, limit {limit}"
            yield Reason(FLAPPING_BY_ROLE[dev.role], msg, dev.name, n, limit)
