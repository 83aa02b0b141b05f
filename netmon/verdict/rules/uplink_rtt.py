from __future__ import annotations

from collections.abc import Iterator

from netmon.verdict.context import SiteContext
from netmon.verdict.criteria import Criterion
from netmon.verdict.model import Reason
from netmon.verdict.rule import Rule
from netmon.verdict.rules._uplinks import probed_uplinks


class UplinkRttP95(Rule):
    name = "uplink_rtt_p95"
    criteria = (Criterion.UPLINK_RTT_P95,)
    reads = ("rtt_p95_max",)

    def check(self, ctx: SiteContext) -> Iterator[Reason]:
        limit = ctx.policy.rtt_p95_max
        for dev, s in probed_uplinks(ctx):
            if s.rtt_p95 is not None and s.rtt_p95 > limit:
                msg = f"{dev.name} RTT p95 {s.rtt_p95 * 1000:.0f} ms, limit {limit * 1000:.0f} ms"
                yield Reason(Criterion.UPLINK_RTT_P95, msg, dev.name, s.rtt_p95, limit)
