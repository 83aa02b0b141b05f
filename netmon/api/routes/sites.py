"""GET /api/v1/sites (filters: district, type, verdict) and GET /api/v1/sites/{site_id}."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from netmon.api import problems
from netmon.api.deps import MonitorDep, SiteStatusDep
from netmon.api.models import SiteDetail, SitesPublic
from netmon.api.views import site_detail, site_public
from netmon.inventory import FacilityType
from netmon.monitor import Monitor, SiteStatus
from netmon.verdict import Verdict

router = APIRouter(prefix="/api/v1", tags=["sites"])


def statuses(monitor: Monitor) -> list[SiteStatus]:
    """The evaluated sites, in inventory order."""
    return [monitor.status[s.id] for s in monitor.inventory.sites if s.id in monitor.status]


@router.get("/sites", response_model=SitesPublic, responses=problems.responses(422, 500, 503))
async def list_sites(
    monitor: MonitorDep,
    district: Annotated[str | None, Query(description="district name, any case")] = None,
    type: Annotated[FacilityType | None, Query(description="facility type")] = None,  # noqa: A002
    verdict: Annotated[Verdict | None, Query()] = None,
) -> SitesPublic:
    """Every site with its verdict, reasons and since-time."""
    rows = [
        site_public(st)
        for st in statuses(monitor)
        if (district is None or st.site.district.lower() == district.lower())
        and (type is None or st.site.type == type)
        and (verdict is None or st.verdict == verdict)
    ]
    return SitesPublic(data=rows, count=len(rows))


@router.get("/sites/{site_id}", response_model=SiteDetail,
            responses=problems.responses(404, 422, 500, 503))  # fmt: skip
async def get_site(st: SiteStatusDep, monitor: MonitorDep) -> SiteDetail:
    """One site, with its devices, their latest results, window figures and SNMP findings."""
    return site_detail(monitor, st)
