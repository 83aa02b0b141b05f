from __future__ import annotations

from collections.abc import Iterator

from netmon.verdict.context import SiteContext
from netmon.verdict.criteria import Criterion
from netmon.verdict.model import Reason, Verdict
from netmon.verdict.rule import Rule


class NoDevices(Rule):
    """A site with no gear registered is not installed."""

    name = "no_devices"
    criteria = (Criterion.NO_DEVICES,)
    settles = Verdict.NOT_INSTALLED

    def check(self, ctx: SiteContext) -> Iterator[Reason]:
        if not ctx.site.devices:
            yield Reason(Criterion.NO_DEVICES, "no gear registered")
