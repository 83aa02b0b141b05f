from __future__ import annotations

from collections.abc import Iterator

from netmon.verdict.context import SiteContext
from netmon.verdict.criteria import Criterion
from netmon.verdict.model import Reason, Verdict
from netmon.verdict.rule import Rule


class NoData(Rule):
    """Too few uplink probes in the window to judge: unknown."""

    name = "no_data"
    criteria = (Criterion.NO_DATA,)
    reads = ("min_probes",)
    settles = Verdict.UNKNOWN

    def check(self, ctx: SiteContext) -> Iterator[Reason]:
        need = ctx.policy.min_probes
        if not any(s.probes or s.ever_up for s in ctx.seen.values()):
            yield Reason(Criterion.NO_DATA, "no probe results yet", None, 0, need)
            return
        probes = ctx.uplink_probes
        if probes < need:
            msg = f"{probes} uplink probes in the window, need {need}"
            yield Reason(Criterion.NO_DATA, msg, None, probes, need)
