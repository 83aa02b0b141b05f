from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime

from netmon.inventory import Site
from netmon.verdict.context import SiteContext, uplinks
from netmon.verdict.criteria import Criterion
from netmon.verdict.model import Reason, Verdict
from netmon.verdict.rule import Rule
from netmon.window import DeviceSummary


def quiet_from(site: Site, seen: Mapping[str, DeviceSummary], now: float) -> float | None:
    """Since when nothing has been heard from the site's uplinks: their newest result, or the
    end of an announced maintenance (whose results are left out), whichever is later. ``None``
    when no uplink was ever heard from (``no_data`` says so) or maintenance is on now."""
    heard = [s.last.started_at for d in uplinks(site) if (s := seen.get(d.name)) and s.last]
    if not heard:
        return None
    if site.in_maintenance(now):
        return None
    ended = site.maintenance_ended(now) if site.maintenance else None
    return max(heard) if ended is None else max(*heard, ended)


def silence_boundary(
    site: Site, limit: float, seen: Mapping[str, DeviceSummary], now: float
) -> float:
    """When this rule's answer next changes with no new result (for ``steady_until``)."""
    since = quiet_from(site, seen, now)
    due = site.maintenance_next(now) if site.maintenance else math.inf
    return min(due, since + limit) if since is not None and since + limit > now else due


class NoRecentData(Rule):
    """Nothing heard from any uplink for longer than ``max_silence``: unknown -- no data, never
    an outage. What goes quiet is netmon's side (a dead or cut-off poller, an agent offline),
    or every probe's result lost on the way; either way the window's old results must not
    keep saying "fully functional"."""

    name = "no_recent_data"
    criteria = (Criterion.NO_RECENT_DATA,)
    reads = ("max_silence",)
    settles = Verdict.UNKNOWN

    def check(self, ctx: SiteContext) -> Iterator[Reason]:
        if ctx.now is None:
            return
        since = quiet_from(ctx.site, ctx.seen, ctx.now)
        limit = ctx.policy.max_silence
        if since is not None and ctx.now - since > limit:
            at = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            msg = f"no result from its uplinks since {at}: a poller or agent is not reporting"
            yield Reason(Criterion.NO_RECENT_DATA, msg, None, None, limit)
