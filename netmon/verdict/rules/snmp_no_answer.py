from __future__ import annotations

from collections.abc import Iterator

from netmon.verdict.context import SiteContext
from netmon.verdict.criteria import Criterion
from netmon.verdict.model import Reason
from netmon.verdict.rule import Rule


class SnmpNoAnswer(Rule):
    """SNMP: a device that answers ping but whose latest SNMP poll got no answer."""

    name = "snmp_no_answer"
    criteria = (Criterion.SNMP_NO_ANSWER,)

    def check(self, ctx: SiteContext) -> Iterator[Reason]:
        for name, f in ctx.snmp.items():
            if f.answered is False and ctx.is_up(name):
                msg = f"{name} answers ping but not SNMP (credentials, ACL or agent)"
                yield Reason(Criterion.SNMP_NO_ANSWER, msg, name)
