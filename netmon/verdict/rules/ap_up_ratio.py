from __future__ import annotations

from collections.abc import Iterator

from netmon.verdict.context import SiteContext
from netmon.verdict.criteria import Criterion
from netmon.verdict.model import Reason
from netmon.verdict.rule import Rule


class ApUpRatio(Rule):
    """Enough APs up now, at sites with more than ``small_site_aps`` APs (with data)."""

    name = "ap_up_ratio"
    criteria = (Criterion.AP_UP_RATIO,)
    reads = ("small_site_aps", "ap_min_up_ratio")

    def check(self, ctx: SiteContext) -> Iterator[Reason]:
        n, up = len(ctx.aps), len(ctx.aps_up)
        need = ctx.policy.ap_min_up_ratio
        if n <= ctx.policy.small_site_aps or up / n >= need:
            return
        down = ctx.aps_not_up()
        msg = f"{up} of {n} access points up, need at least {need:.0%} up (not up: {down})"
        yield Reason(Criterion.AP_UP_RATIO, msg, None, up / n, need)
