from __future__ import annotations

from collections.abc import Iterator

from netmon.verdict.context import SiteContext
from netmon.verdict.criteria import Criterion
from netmon.verdict.model import Reason, Verdict
from netmon.verdict.rule import Rule


class NoApUp(Rule):
    """A site with APs none of which answers now is down (APs not probed yet are left out)."""

    name = "no_ap_up"
    criteria = (Criterion.NO_AP_UP,)
    settles = Verdict.DOWN

    def check(self, ctx: SiteContext) -> Iterator[Reason]:
        if ctx.aps and not ctx.aps_up:
            yield Reason(Criterion.NO_AP_UP, f"none of the {len(ctx.aps)} access points answers")
