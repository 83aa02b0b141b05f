"""Availability over any window: GET /api/v1/sites/{site_id}/availability (seconds per state,
ratios, outages, one row per local day) and GET /api/v1/availability (grouped by district or
type, site-weighted). ``from``/``to`` are RFC 3339 date-times, or ``period`` a calendar
shortcut in the report time zone (``2026-11``, ``2026-W48``, ``2026-11-30``, ``2026``);
default: the last 30 days. Time after now is not counted. CSV with ``?format=csv``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from netmon.api import csv, problems
from netmon.api.deps import MonitorDep, Since, SiteDep
from netmon.api.models import (
    AvailabilityPublic,
    DayAvailability,
    GroupAvailability,
    OutagePublic,
    SiteAvailability,
    StateSeconds,
    iso,
)
from netmon.inventory import FacilityType, Site
from netmon.monitor import Monitor
from netmon.progress_index import site_totals
from netmon.rollup import Seconds, outages, site_accounts
from netmon.timeline import STATES, availability, fully_functional_ratio, period

router = APIRouter(prefix="/api/v1", tags=["availability"])
DEFAULT_DAYS = 30
MAX_DAYS = 400  # the longest window one request may ask for (a year and its edges)
PERIOD = r"^\d{4}(-(W(0[1-9]|[1-4]\d|5[0-3])|(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?))?$"
From = Annotated[
    Since | None,
    Query(alias="from", description=f"RFC 3339; default: to − 30 days; at most {MAX_DAYS} days"),
]
To = Annotated[Since | None, Query(alias="to", description="RFC 3339; default: now")]
Period = Annotated[
    str | None,
    Query(
        alias="period",
        max_length=10,
        description="2026-11, 2026-W48, 2026-11-30 or 2026 (instead of from/to)",
    ),
]


def window(
    monitor: Monitor, start: datetime | None, end: datetime | None, shortcut: str | None
) -> tuple[float, float]:
    """The window asked for, clipped to now; 422 when it is empty or not a period."""
    now = monitor.clock()
    if shortcut is not None:
        try:
            lo, hi = period(shortcut, tz_of(monitor))
        except ValueError as exc:
            raise _invalid("period", str(exc)) from None
    else:
        hi = end.timestamp() if end else now
        lo = start.timestamp() if start else hi - DEFAULT_DAYS * 86400
    if lo >= hi:
        raise _invalid("from", "must be before to")
    if hi - lo > MAX_DAYS * 86400:
        raise _invalid("from", f"the window may span at most {MAX_DAYS} days")
    hi = min(hi, now)  # time after now is not counted
    return min(lo, hi), hi


def _invalid(field: str, message: str) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("query", field), "msg": message, "type": "value_error"}]
    )


def tz_of(monitor: Monitor) -> ZoneInfo:
    return monitor.rollups.tz if monitor.rollups is not None else ZoneInfo("Asia/Kolkata")


def total(days: Sequence[tuple[Any, Seconds]]) -> Seconds:
    out = dict.fromkeys(STATES, 0.0)
    for _day, seconds in days:
        for k, v in seconds.items():
            out[k] += v
    return out


@router.get("/sites/{site_id}/availability", response_model=SiteAvailability, operation_id="getSiteAvailability",
            responses={**csv.RESPONSE, **problems.responses(404, 422, 500, 503)})  # fmt: skip
async def site_availability(
    request: Request, site: SiteDep, monitor: MonitorDep, start: From = None, end: To = None,
    shortcut: Period = None, format: csv.Format = None,  # noqa: A002
) -> SiteAvailability | Response:  # fmt: skip
    """One site's seconds in each state, availability, outages and daily rows."""
    lo, hi = window(monitor, start, end, shortcut)
    store, tz = monitor.store, tz_of(monitor)
    days = (await store.read_async(site_accounts, store, [site], tz, lo, hi))[site.id]
    found = await store.read_async(outages, store, site, lo, hi)
    daily = [_day(day, s) for day, s in days]
    if csv.wanted(request, format):
        rows = [{"site_id": site.id, "day": d.day, **d.seconds.model_dump(), "availability":
                 d.availability, "fully_functional_ratio": d.fully_functional_ratio} for d in daily]  # fmt: skip
        return csv.response(["site_id", "day", *STATES, "availability", "fully_functional_ratio"],
                            rows, f"availability-{site.id}")  # fmt: skip
    seconds = total(days)
    return SiteAvailability(
        site_id=site.id, start=iso(lo), end=iso(hi), seconds=StateSeconds(**seconds),
        availability=availability(seconds), fully_functional_ratio=fully_functional_ratio(seconds),
        outages=[OutagePublic(start=iso(o.start), end=iso(o.end), duration_seconds=o.seconds,
                              reasons=list(o.reasons)) for o in found],
        daily=daily,
    )  # fmt: skip


def _day(day: Any, seconds: Seconds) -> DayAvailability:
    return DayAvailability(day=day, seconds=StateSeconds(**seconds),
                           availability=availability(seconds),
                           fully_functional_ratio=fully_functional_ratio(seconds))  # fmt: skip


@router.get("/availability", response_model=AvailabilityPublic, operation_id="listAvailability",
            responses={**csv.RESPONSE, **problems.responses(422, 500, 503)})  # fmt: skip
async def grouped_availability(
    request: Request, monitor: MonitorDep, start: From = None, end: To = None,
    shortcut: Period = None,
    by: Annotated[Literal["district", "type", "state"], Query()] = "district",
    district: Annotated[str | None, Query(description="only this district, any case")] = None,
    type: Annotated[FacilityType | None, Query()] = None,  # noqa: A002
    format: csv.Format = None,  # noqa: A002
) -> AvailabilityPublic | Response:  # fmt: skip
    """Availability of groups of sites: each group's seconds summed, its ratios the mean of
    its sites' (a site with nothing observed is left out of the mean)."""
    lo, hi = window(monitor, start, end, shortcut)
    sites = sites_in(monitor, district, type)
    store, tz = monitor.store, tz_of(monitor)
    index = request.app.state.indexes.of(tz, monitor.inventory.report.day_threshold)
    totals = await store.read_async(site_totals, index, store, sites, lo, hi)
    groups: dict[str, list[Seconds]] = {}
    for site in sites:
        groups.setdefault(group_of(site, by, monitor), []).append(totals[site.id])
    data = [_grouped(name, members) for name, members in sorted(groups.items())]
    if csv.wanted(request, format):
        rows = [{"group": g.group, "sites": g.sites, **g.seconds.model_dump(), "availability":
                 g.availability, "fully_functional_ratio": g.fully_functional_ratio} for g in data]  # fmt: skip
        return csv.response(["group", "sites", *STATES, "availability", "fully_functional_ratio"],
                            rows, f"availability-by-{by}")  # fmt: skip
    return AvailabilityPublic(start=iso(lo), end=iso(hi), by=by, data=data)


def sites_in(monitor: Monitor, district: str | None, kind: FacilityType | None) -> list[Site]:
    """The inventory's sites in ``district`` (any case) and of type ``kind`` (None: all)."""
    return [s for s in monitor.inventory.sites
            if (district is None or s.district.lower() == district.lower())
            and (kind is None or s.type == kind)]  # fmt: skip


def group_of(site: Site, by: str, monitor: Monitor) -> str:
    return (
        site.district
        if by == "district"
        else site.type
        if by == "type"
        else monitor.inventory.state
    )


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _grouped(name: str, members: list[Seconds]) -> GroupAvailability:
    return GroupAvailability(
        group=name, sites=len(members), seconds=StateSeconds(**total([(None, m) for m in members])),
        availability=_mean([availability(m) for m in members]),
        fully_functional_ratio=_mean([fully_functional_ratio(m) for m in members]),
    )  # fmt: skip
