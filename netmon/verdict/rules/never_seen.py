from __future__ import annotations

from collections.abc import Iterator

from netmon.verdict.context import SiteContext
from netmon.verdict.criteria import Criterion
from netmon.verdict.model import Reason, Verdict
from netmon.verdict.rule import Rule


class NeverSeen(Rule):
    """A site none of whose devices has ever answered is not installed (yet)."""

    name = "never_seen"
    criteria = (Criterion.NEVER_SEEN,)
    settles = Verdict.NOT_INSTALLED

    def check(self, ctx: SiteContext) -> Iterator[Reason]:
        if not any(s.ever_up for s in ctx.seen.values()):
            n = len(ctx.site.devices)
            yield Reason(
                Criterion.NEVER_SEEN, f"none of the {n} registered devices has ever answered"
            )
