"""GET /api/v1/sites (filters: district, type, verdict; each site with its first fully
functional day and 30-day availability, read at most once a minute) and
GET /api/v1/sites/{site_id}."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from netmon.api import pages, problems
from netmon.api.deps import FiguresDep, MonitorDep, SiteStatusDep
from netmon.api.models import SiteDetail, SitesPublic
from netmon.api.routes.availability import tz_of
from netmon.api.views import site_detail, site_public
from netmon.inventory import FacilityType
from netmon.monitor import Monitor, SiteStatus
from netmon.verdict import Verdict

router = APIRouter(prefix="/api/v1", tags=["sites"])
KIND = "sites"
PAGE = 100  # sites per page when paging (``after`` without ``limit``)
Limit = Annotated[
    int | None,
    Query(ge=1, le=1000, description="sites per page, by site id; default: every site at once "
          "in inventory order (100 per page when `after` is given)"),
]  # fmt: skip


def statuses(monitor: Monitor) -> list[SiteStatus]:
    """The evaluated sites, in inventory order."""
    return [monitor.status[s.id] for s in monitor.inventory.sites if s.id in monitor.status]


@router.get("/sites", response_model=SitesPublic, operation_id="listSites",
            responses=problems.responses(422, 500, 503))  # fmt: skip
async def list_sites(
    request: Request,
    response: Response,
    monitor: MonitorDep,
    cache: FiguresDep,
    district: Annotated[str | None, Query(description="district name, any case")] = None,
    type: Annotated[FacilityType | None, Query(description="facility type")] = None,  # noqa: A002
    verdict: Annotated[Verdict | None, Query()] = None,
    limit: Limit = None,
    after: pages.After = None,
) -> SitesPublic:
    """Every site with its verdict, reasons and since-time; with ``limit`` or ``after``, one
    page of them ordered by site id."""
    chosen = [
        st
        for st in statuses(monitor)
        if (district is None or st.site.district.lower() == district.lower())
        and (type is None or st.site.type == type)
        and (verdict is None or st.verdict == verdict)
    ]
    cursor = None
    if limit is not None or after is not None:
        chosen, cursor = _page(chosen, limit or PAGE, after)
    threshold = monitor.inventory.report.day_threshold
    figures = await cache.get(monitor.store, threshold, tz_of(monitor), monitor.clock())
    rows = [site_public(st, figures) for st in chosen]
    return SitesPublic(data=rows, count=len(rows), next=pages.page_next(request, response, cursor))


def _page(
    chosen: list[SiteStatus], limit: int, after: str | None
) -> tuple[list[SiteStatus], str | None]:
    """The page of ``limit`` sites by id after the cursor ``after``, and its last one's cursor
    (None: no site follows)."""
    last = str(pages.decode(KIND, after, [(str,)])[0]) if after is not None else None
    rest = sorted((st for st in chosen if last is None or st.site.id > last),
                  key=lambda st: st.site.id)  # fmt: skip
    page = rest[:limit]
    more = len(rest) > limit
    return page, pages.encode(KIND, (page[-1].site.id,)) if more else None


@router.get("/sites/{site_id}", response_model=SiteDetail, operation_id="getSite",
            responses=problems.responses(404, 422, 500, 503))  # fmt: skip
async def get_site(st: SiteStatusDep, monitor: MonitorDep) -> SiteDetail:
    """One site, with its devices, their latest results, window figures and SNMP findings."""
    return site_detail(monitor, st)
