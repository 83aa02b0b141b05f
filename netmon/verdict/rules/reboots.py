from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from netmon.verdict.context import SiteContext
from netmon.verdict.criteria import Criterion
from netmon.verdict.model import Reason
from netmon.verdict.rule import Rule


class Reboots(Rule):
    """SNMP: devices that rebooted more than ``max_reboots`` times in the window.

    Reboots are history: judged whatever the device's state now, unless it is down behind a
    down parent (reported under the parent)."""

    name = "device_rebooted"
    criteria = (Criterion.DEVICE_REBOOTED,)
    reads = ("max_reboots",)

    def check(self, ctx: SiteContext) -> Iterator[Reason]:
        limit = ctx.policy.max_reboots
        for name, f in ctx.snmp.items():
            if name in ctx.behind or len(f.reboots) <= limit:
                continue
            when = datetime.fromtimestamp(f.reboots[-1], UTC).strftime("%Y-%m-%d %H:%M UTC")
            msg = f"{name} rebooted {len(f.reboots)} time(s) in the window, last at {when}"
            yield Reason(Criterion.DEVICE_REBOOTED, msg, name, len(f.reboots), limit)
