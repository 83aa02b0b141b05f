from __future__ import annotations

from collections.abc import Iterator

from netmon.verdict.context import SiteContext
from netmon.verdict.criteria import Criterion
from netmon.verdict.model import Reason
from netmon.verdict.rule import Rule


class UplinkInterfaces(Rule):
    """SNMP: a listed uplink interface that is admin up but has no link, on a device up now
    (a device down now has its outage reason; its last interface table is stale)."""

    name = "uplink_interface_down"
    criteria = (Criterion.UPLINK_INTERFACE_DOWN,)

    def check(self, ctx: SiteContext) -> Iterator[Reason]:
        for name, f in ctx.snmp.items():
            if name in ctx.unreachable:
                continue
            for iface in f.uplinks_down:
                msg = f"{name} uplink interface {iface} is down"
                yield Reason(Criterion.UPLINK_INTERFACE_DOWN, msg, name)
