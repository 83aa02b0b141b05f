"""GET /api/v1/summary: counts and % fully functional, overall, by district and by type."""

from __future__ import annotations

from fastapi import APIRouter

from netmon.api import problems
from netmon.api.deps import MonitorDep
from netmon.api.models import GroupSummary, SummaryPublic, iso
from netmon.api.routes.sites import statuses
from netmon.monitor import SiteStatus
from netmon.verdict import Verdict

router = APIRouter(prefix="/api/v1", tags=["summary"])


def group(key: str, members: list[SiteStatus]) -> GroupSummary:
    by = {v.value: 0 for v in Verdict}
    for st in members:
        by[st.verdict.value] += 1
    ff = by[Verdict.FULLY_FUNCTIONAL.value]
    pct = round(100.0 * ff / len(members), 1) if members else 0.0
    return GroupSummary(key=key, sites=len(members), fully_functional=ff,
                        percent_fully_functional=pct, by_verdict=by)  # fmt: skip


@router.get("/summary", response_model=SummaryPublic, operation_id="getSummary",
            responses=problems.responses(500, 503))  # fmt: skip
async def summary(monitor: MonitorDep) -> SummaryPublic:
    """How many sites are fully functional: overall, per district, per facility type."""
    all_sites = statuses(monitor)
    total = group("all", all_sites)
    districts = sorted({st.site.district for st in all_sites})
    types = sorted({st.site.type for st in all_sites})
    return SummaryPublic(
        sites=total.sites, fully_functional=total.fully_functional,
        percent_fully_functional=total.percent_fully_functional, by_verdict=total.by_verdict,
        by_district=[group(d, [s for s in all_sites if s.site.district == d]) for d in districts],
        by_type=[group(t, [s for s in all_sites if s.site.type == t]) for t in types],
        evaluated_at=iso(monitor.last_evaluation or None),
    )  # fmt: skip
