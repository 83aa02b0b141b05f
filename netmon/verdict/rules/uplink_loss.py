from __future__ import annotations

from collections.abc import Iterator

from netmon.verdict.context import SiteContext
from netmon.verdict.criteria import Criterion
from netmon.verdict.model import Reason
from netmon.verdict.rule import Rule
from netmon.verdict.rules._uplinks import probed_uplinks


class UplinkLoss(Rule):
    name = "uplink_loss"
    criteria = (Criterion.UPLINK_LOSS,)
    reads = ("uplink_max_loss",)

    def check(self, ctx: SiteContext) -> Iterator[Reason]:
        limit = ctx.policy.uplink_max_loss
        for dev, s in probed_uplinks(ctx):
            loss = s.loss_ratio
            if loss is not None and loss > limit:
                msg = f"{dev.name} packet loss {loss:.2%}, limit {limit:.2%}"
                yield Reason(Criterion.UPLINK_LOSS, msg, dev.name, loss, limit)
