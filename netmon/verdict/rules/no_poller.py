from __future__ import annotations

from collections.abc import Iterator

from netmon.verdict.context import SiteContext
from netmon.verdict.criteria import Criterion
from netmon.verdict.model import Reason, Verdict
from netmon.verdict.rule import Rule

POLLER = "poller"  # the facts' key: facts["poller"][""] = {"since": float, "group": str}


class NoPoller(Rule):
    """No live poller serves the site's group (``netmon serve``, netmon.fleet): unknown. The
    site is not watched, which says nothing about the site; its old results must not keep
    saying "fully functional" either. Under ``netmon run`` the facts carry no ``poller``."""

    name = "no_poller"
    criteria = (Criterion.NO_POLLER,)
    settles = Verdict.UNKNOWN

    def check(self, ctx: SiteContext) -> Iterator[Reason]:
        if self.began(ctx) is not None:
            group = ctx.site.poller_group
            msg = f"no live poller of group {group!r} serves this site: not watched, not down"
            yield Reason(Criterion.NO_POLLER, msg, None, None, None)

    def began(self, ctx: SiteContext) -> float | None:
        """The site went unwatched when its poller was last heard from: the unknown starts
        there, not when the lease ran out (the time between has no results either)."""
        fact = ctx.facts.get(POLLER, {}).get("")
        since = fact.get("since") if isinstance(fact, dict) else None
        return float(since) if isinstance(since, (int, float)) else None
