"""Site verdicts: is a facility's Wi-Fi fully functional, and if not, why and since when.

Each criterion (:class:`Criterion`) is emitted by one rule (``netmon.verdict.rules``), judged in
order over the site's policy window (thresholds in ``inventory.Policy``):

* ``not_installed`` – the site has no gear registered, or none of its devices has ever answered.
* ``unknown``       – fewer than ``min_probes`` uplink probes in the window (none at all: no
                      probe results yet). APs not probed yet are left out of the AP criteria.
* ``down``          – every uplink device is unreachable now, or the site has APs and none is up.
* ``degraded``      – any other criterion fails; each failure is one reason.
* ``fully_functional`` – nothing failed.

Rules do not hide each other: what a device did over the window (outages, loss, reboots) counts
whatever its state at this instant; only a device down behind a down parent is left to the
parent's reason. A reason's ``measured`` and ``threshold`` are in its criterion's unit.
"""

from __future__ import annotations

from collections.abc import Mapping

from netmon.inventory import Policy, Site
from netmon.verdict.context import (
    DeviceState,
    Facts,
    SiteContext,
    device_state,
    parent_down,
    uplinks,
)
from netmon.verdict.criteria import CRITERIA, Criterion, CriterionInfo, Unit, criteria_table
from netmon.verdict.model import Judgement, Reason, Verdict
from netmon.verdict.rules import RULES
from netmon.window import DeviceSummary

__all__ = [
    "CRITERIA",
    "Criterion",
    "CriterionInfo",
    "DeviceState",
    "Facts",
    "Judgement",
    "Reason",
    "SiteContext",
    "Unit",
    "Verdict",
    "criteria_table",
    "device_state",
    "judge",
    "parent_down",
    "uplinks",
]


def judge(
    site: Site,
    policy: Policy,
    seen: Mapping[str, DeviceSummary],
    facts: Facts | None = None,
    now: float | None = None,
) -> Judgement:
    """The verdict for one site from its devices' window summaries and per-kind facts
    (``facts[kind][device]``; SNMP: ``facts["snmp"]``, :class:`probes.snmp_view.SnmpFacts`),
    taken at ``now`` (``None``: judge the summaries alone, as if just taken)."""
    ctx = SiteContext.build(site, policy, seen, facts, now)
    reasons: list[Reason] = []
    for rule in RULES:
        found = list(rule.check(ctx))
        reasons += found
        settled = rule.settle(ctx, found)
        if settled is not None:
            return Judgement(
                settled, tuple(reasons), rule.began(ctx) or _outage_since(ctx, settled)
            )
    return Judgement(Verdict.DEGRADED if reasons else Verdict.FULLY_FUNCTIONAL, tuple(reasons))


def _outage_since(ctx: SiteContext, verdict: Verdict) -> float | None:
    """For ``down`` with every uplink down: when the first of them went down."""
    links = ctx.uplinks
    if verdict is not Verdict.DOWN or not links or not all(d.name in ctx.down for d in links):
        return None
    return min((ctx.seen[d.name].down_since or 0.0) for d in links) or None
