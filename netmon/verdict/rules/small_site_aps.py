from __future__ import annotations

from collections.abc import Iterator

from netmon.verdict.context import SiteContext
from netmon.verdict.criteria import Criterion
from netmon.verdict.model import Reason
from netmon.verdict.rule import Rule


class SmallSiteApsDown(Rule):
    """At most ``small_site_max_aps_down`` APs not up, at sites with few APs (a ratio of 3 or 4
    APs is too coarse to judge by)."""

    name = "small_site_aps_down"
    criteria = (Criterion.SMALL_SITE_APS_DOWN,)
    reads = ("small_site_aps", "small_site_max_aps_down")

    def check(self, ctx: SiteContext) -> Iterator[Reason]:
        n, up = len(ctx.aps), len(ctx.aps_up)
        limit = ctx.policy.small_site_max_aps_down
        if not n or n > ctx.policy.small_site_aps or n - up <= limit:
            return
        down = ctx.aps_not_up()
        msg = f"{up} of {n} access points up, need at most {limit} down (not up: {down})"
        yield Reason(Criterion.SMALL_SITE_APS_DOWN, msg, None, n - up, limit)
