"""GET /api/v1/sites/{site_id}/devices/{device}/results: the evidence behind a verdict."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from netmon.api import problems
from netmon.api.deps import DeviceDep, MonitorDep, Since
from netmon.api.models import ResultPublic, ResultsPublic, iso
from netmon.store import ProbeResultRow

router = APIRouter(prefix="/api/v1", tags=["results"])


def result_public(r: ProbeResultRow) -> ResultPublic:
    return ResultPublic(
        at=iso(r.ts), kind=r.kind, ok=r.ok, sent=r.sent, received=r.received,
        rtt_min_seconds=r.rtt_min, rtt_avg_seconds=r.rtt_avg, rtt_max_seconds=r.rtt_max,
        jitter_seconds=r.jitter, reason=r.reason,
    )  # fmt: skip


@router.get("/sites/{site_id}/devices/{device}/results", response_model=ResultsPublic,
            responses=problems.responses(404, 422, 500, 503))  # fmt: skip
async def device_results(
    found: DeviceDep,
    monitor: MonitorDep,
    since: Annotated[
        Since | None, Query(description="RFC 3339 date-time; default: the policy window")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> ResultsPublic:
    """The results of one device, newest first (written and still queued: reading writes nothing)."""
    site, dev = found
    start = (
        since.timestamp() if since else monitor.clock() - monitor.inventory.policy_for(site).window
    )
    rows = await monitor.store.read_async(monitor.store.results, site.id, dev.name, start, limit)
    data = [result_public(r) for r in rows]
    return ResultsPublic(data=data, count=len(data))
