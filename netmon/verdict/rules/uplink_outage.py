from __future__ import annotations

from collections.abc import Iterator

from netmon.verdict.context import SiteContext
from netmon.verdict.criteria import Criterion
from netmon.verdict.model import Reason
from netmon.verdict.rule import Rule
from netmon.verdict.rules._uplinks import probed_uplinks


class UplinkOutage(Rule):
    name = "uplink_outage"
    criteria = (Criterion.UPLINK_OUTAGE,)
    reads = ("max_outage",)

    def check(self, ctx: SiteContext) -> Iterator[Reason]:
        limit = ctx.policy.max_outage
        for dev, s in probed_uplinks(ctx):
            if s.longest_outage > limit:
                msg = (f"{dev.name} outage of {s.longest_outage / 60:.0f} min in the window, "
                       f"limit {limit / 60:.0f} min")  # fmt: skip
                yield Reason(Criterion.UPLINK_OUTAGE, msg, dev.name, s.longest_outage, limit)
