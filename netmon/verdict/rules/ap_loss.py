from __future__ import annotations

from collections.abc import Iterator

from netmon.inventory import Device
from netmon.verdict.context import SiteContext
from netmon.verdict.criteria import Criterion
from netmon.verdict.model import Reason
from netmon.verdict.rule import Rule


class ApLoss(Rule):
    """An AP's own echo loss over the window, whatever its state now.

    The loss is history (counted while the AP answered), so an AP down now is judged too,
    unless it is down behind a down parent (reported under the parent). Loss inherited from
    the path to the AP (a lossy uplink) is the path's, reported there.
    """

    name = "ap_loss"
    criteria = (Criterion.AP_LOSS,)
    reads = ("ap_max_loss",)

    def check(self, ctx: SiteContext) -> Iterator[Reason]:
        limit = ctx.policy.ap_max_loss
        for dev in ctx.aps:
            loss = ctx.seen[dev.name].loss_ratio
            if dev.name in ctx.behind or loss is None or loss <= limit:
                continue
            inherited = _path_loss(ctx, dev)
            if loss - inherited <= limit:
                continue
            msg = f"{dev.name} packet loss {loss:.2%}, limit {limit:.2%}"
            if inherited:
                msg += f" ({inherited:.2%} of it on the path to it)"
            yield Reason(Criterion.AP_LOSS, msg, dev.name, loss, limit)


def _path_loss(ctx: SiteContext, dev: Device) -> float:
    """The worst loss of the devices an AP is reached through."""
    losses = (ctx.seen[a.name].loss_ratio for a in ctx.ancestors(dev) if a.name in ctx.seen)
    return max((x for x in losses if x is not None), default=0.0)
