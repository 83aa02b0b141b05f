from __future__ import annotations

from collections.abc import Iterator

from netmon.verdict.context import SiteContext
from netmon.verdict.criteria import Criterion
from netmon.verdict.model import Reason
from netmon.verdict.rule import Rule
from netmon.verdict.rules._uplinks import probed_uplinks


class UplinkAvailability(Rule):
    name = "uplink_availability"
    criteria = (Criterion.UPLINK_AVAILABILITY,)
    reads = ("uplink_availability",)

    def check(self, ctx: SiteContext) -> Iterator[Reason]:
        need = ctx.policy.uplink_availability
        for dev, s in probed_uplinks(ctx):
            avail = s.availability
            if avail is not None and avail < need:
                msg = f"{dev.name} answered {avail:.1%} of probes, need {need:.1%}"
                yield Reason(Criterion.UPLINK_AVAILABILITY, msg, dev.name, avail, need)
