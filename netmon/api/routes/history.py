"""GET /api/v1/sites/{site_id}/history: a site's verdict changes, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from netmon.api import pages, problems
from netmon.api.deps import MonitorDep, SiteDep
from netmon.api.models import HistoryPublic, ReasonPublic, VerdictChangePublic, iso
from netmon.store import HistoryKey, VerdictChange, history_key
from netmon.verdict import Verdict

router = APIRouter(prefix="/api/v1", tags=["history"])
KIND = "history"


def change_public(c: VerdictChange) -> VerdictChangePublic:
    reasons = [ReasonPublic(**r) for r in c.reasons]
    return VerdictChangePublic(verdict=Verdict(c.verdict), since=iso(c.since), reasons=reasons)


@router.get("/sites/{site_id}/history", response_model=HistoryPublic,
            operation_id="getSiteHistory", responses=problems.responses(404, 422, 500, 503))  # fmt: skip
async def site_history(
    request: Request,
    response: Response,
    site: SiteDep,
    monitor: MonitorDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: pages.After = None,
) -> HistoryPublic:
    """The site's verdict changes, newest first (written and still queued: reading writes nothing)."""
    before = _before(after, site.id) if after is not None else None
    store = monitor.store
    changes = await store.read_async(store.verdict_history, site.id, limit + 1, before)
    page = changes[:limit]
    cursor = pages.encode(KIND, (site.id, *history_key(page[-1]))) if len(changes) > limit else None
    rows = [change_public(c) for c in page]
    return HistoryPublic(
        data=rows, count=len(rows), next=pages.page_next(request, response, cursor)
    )


def _before(after: str, site_id: str) -> HistoryKey:
    """The key in a history cursor of this site (another site's is a 422)."""
    site, at, row_id = pages.decode(KIND, after, [(str,), (float, type(None)), (int, type(None))])
    if site != site_id:
        raise pages.invalid(f"a cursor of another site's history ({site})")
    # decode checked the types: at is a number or None, row_id an int or None
    return (float(at) if isinstance(at, int | float) else None), (
        row_id if isinstance(row_id, int) else None
    )
