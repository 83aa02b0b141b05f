"""GET /api/v1/sites/{site_id}/history: a site's verdict changes, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from netmon.api import problems
from netmon.api.deps import MonitorDep, SiteDep
from netmon.api.models import HistoryPublic, ReasonPublic, VerdictChangePublic, iso
from netmon.store import VerdictChange
from netmon.verdict import Verdict

router = APIRouter(prefix="/api/v1", tags=["history"])


def change_public(c: VerdictChange) -> VerdictChangePublic:
    reasons = [ReasonPublic(**r) for r in c.reasons]
    return VerdictChangePublic(verdict=Verdict(c.verdict), since=iso(c.since), reasons=reasons)


@router.get("/sites/{site_id}/history", response_model=HistoryPublic,
            responses=problems.responses(404, 422, 500, 503))  # fmt: skip
async def site_history(
    site: SiteDep, monitor: MonitorDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> HistoryPublic:
    """The site's verdict changes, newest first (written and still queued: reading writes nothing)."""
    changes = await monitor.store.read_async(monitor.store.verdict_history, site.id, limit)
    rows = [change_public(c) for c in changes]
    return HistoryPublic(data=rows, count=len(rows))
