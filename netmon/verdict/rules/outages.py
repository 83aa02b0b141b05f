from __future__ import annotations

from collections.abc import Iterator, Sequence

from netmon.verdict.context import SiteContext
from netmon.verdict.criteria import Criterion
from netmon.verdict.model import Reason, Verdict
from netmon.verdict.rule import Rule

# A wan device is always an uplink (uplinks are the wan devices when there are any).
DOWN_BY_ROLE = {
    "router": Criterion.ROUTER_DOWN,
    "switch": Criterion.SWITCH_DOWN,
    "controller": Criterion.CONTROLLER_DOWN,
    "ap": Criterion.AP_DOWN,
}


class Outages(Rule):
    """Each device down now whose parent chain is up, once, naming what is down behind it.

    A lone AP down is left to the AP criteria. Every uplink down settles the verdict: down.
    """

    name = "outages"
    criteria = (Criterion.UPLINK_DOWN, *DOWN_BY_ROLE.values())

    def check(self, ctx: SiteContext) -> Iterator[Reason]:
        for name, behind in ctx.down.items():
            dev = ctx.site.device(name)
            assert dev is not None
            if dev.role == "ap" and not behind:
                continue  # a lone AP down counts only towards the AP up-ratio
            msg = f"{dev.role} {name} unreachable"
            if behind:
                names = f" ({', '.join(behind)})" if len(behind) <= 10 else ""
                msg += f"; {len(behind)} device(s) behind it unreachable because of it{names}"
            criterion = (
                Criterion.UPLINK_DOWN if dev.name in ctx.uplink_names else DOWN_BY_ROLE[dev.role]
            )
            yield Reason(criterion, msg, name, ctx.down_for(name), None)

    def settle(self, ctx: SiteContext, found: Sequence[Reason]) -> Verdict | None:
        links = ctx.uplinks
        return Verdict.DOWN if links and all(d.name in ctx.down for d in links) else None
