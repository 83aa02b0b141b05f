"""GET /api/v1/sites/{site_id}/devices/{device}/results: the evidence behind a verdict."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from netmon.api import pages, problems
from netmon.api.deps import DeviceDep, MonitorDep, Since
from netmon.api.models import ResultPublic, ResultsPublic, iso
from netmon.store import ProbeResultRow

router = APIRouter(prefix="/api/v1", tags=["results"])
KIND = "results"


def result_public(r: ProbeResultRow) -> ResultPublic:
    return ResultPublic(
        at=iso(r.ts), kind=r.kind, ok=r.ok, sent=r.sent, received=r.received,
        rtt_min_seconds=r.rtt_min, rtt_avg_seconds=r.rtt_avg, rtt_max_seconds=r.rtt_max,
        jitter_seconds=r.jitter, reason=r.reason,
    )  # fmt: skip


@router.get("/sites/{site_id}/devices/{device}/results", response_model=ResultsPublic,
            operation_id="listDeviceResults", responses=problems.responses(404, 422, 500, 503))  # fmt: skip
async def device_results(
    request: Request,
    response: Response,
    found: DeviceDep,
    monitor: MonitorDep,
    since: Annotated[
        Since | None, Query(description="RFC 3339 date-time; default: the policy window")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    after: pages.After = None,
) -> ResultsPublic:
    """The results of one device, newest first (written and still queued: reading writes nothing)."""
    site, dev = found
    start = (
        since.timestamp() if since else monitor.clock() - monitor.inventory.policy_for(site).window
    )
    before = None
    if after is not None:
        where, ts, kind = pages.decode(KIND, after, [(str,), (float,), (str,)])
        if where != f"{site.id}/{dev.name}":
            raise pages.invalid(f"a cursor of another device's results ({where})")
        before = (float(ts or 0), dev.name, str(kind))
    store = monitor.store
    rows = await store.read_async(store.results, site.id, dev.name, start, limit + 1, before)
    page = rows[:limit]
    last = (f"{site.id}/{dev.name}", page[-1].ts, page[-1].kind)
    cursor = pages.encode(KIND, last) if len(rows) > limit else None
    data = [result_public(r) for r in page]
    return ResultsPublic(
        data=data, count=len(data), next=pages.page_next(request, response, cursor)
    )
