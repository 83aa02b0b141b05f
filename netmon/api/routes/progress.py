"""Rollout progress: GET /api/v1/progress, one row per local day and group of sites (district,
type or state): sites counted, fully functional that day, never fully functional yet, days to
the deadline (netmon.progress says how each is counted; netmon.progress_index how it is
computed fast). The window is whole local days of the
report time zone: ``from``/``to`` (RFC 3339) or ``period`` (as for availability); default the
rollout's start (else 30 days back) to today; at most 400 days; today until now. Days before
the window back to the rollout's start (at most 400 more) are read for "never fully
functional". CSV with ``?format=csv``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from netmon.api import csv, problems
from netmon.api.deps import MonitorDep
from netmon.api.models import ProgressPublic, iso
from netmon.api.routes.availability import (
    MAX_DAYS,
    From,
    Period,
    To,
    group_of,
    sites_in,
    tz_of,
    window,
)
from netmon.inventory import FacilityType
from netmon.monitor import Monitor
from netmon.progress_index import progress
from netmon.rollup import local_date
from netmon.timeline import day_bounds

router = APIRouter(prefix="/api/v1", tags=["progress"])
FIELDS = ("day", "group", "sites", "fully_functional", "never_fully_functional",
          "days_to_deadline")  # fmt: skip
DAY = 86400.0


def whole_days(
    monitor: Monitor, start: dt.datetime | None, end: dt.datetime | None, shortcut: str | None
) -> tuple[float, float]:
    """The window asked for (availability's rules; default from the rollout's start), widened
    to the local days it touches, clipped to now."""
    tz, now = tz_of(monitor), monitor.clock()
    rollout = monitor.inventory.rollout
    if start is None and shortcut is None and rollout is not None:
        hi = end.timestamp() if end else now
        lo = max(day_bounds(rollout.start, tz)[0], hi - (MAX_DAYS - 1) * DAY)
        start = dt.datetime.fromtimestamp(min(lo, hi - 1), tz)
    lo, hi = window(monitor, start, end, shortcut)
    lo = day_bounds(local_date(lo, tz), tz)[0]
    last = day_bounds(local_date(hi, tz), tz)
    return lo, hi if hi == last[0] else min(last[1], now)


def read_from(monitor: Monitor, lo: float) -> float:
    """Where reading starts: the rollout's start when it is before the window (at most
    MAX_DAYS before it), else the window's."""
    rollout = monitor.inventory.rollout
    if rollout is None:
        return lo
    return min(lo, max(day_bounds(rollout.start, tz_of(monitor))[0], lo - MAX_DAYS * DAY))


@router.get("/progress", response_model=ProgressPublic, operation_id="getProgress",
            responses={**csv.RESPONSE, **problems.responses(422, 500, 503)})  # fmt: skip
async def get_progress(
    request: Request, monitor: MonitorDep, start: From = None, end: To = None,
    shortcut: Period = None,
    by: Annotated[Literal["district", "type", "state"], Query()] = "district",
    district: Annotated[str | None, Query(description="only this district, any case")] = None,
    type: Annotated[FacilityType | None, Query()] = None,  # noqa: A002
    format: csv.Format = None,  # noqa: A002
) -> ProgressPublic | Response:  # fmt: skip
    """Per local day and group: sites counted, fully functional that day (its
    fully_functional_ratio ≥ report.day_threshold), never fully functional yet, days to the
    rollout's deadline."""
    lo, hi = whole_days(monitor, start, end, shortcut)
    inv, tz, store = monitor.inventory, tz_of(monitor), monitor.store
    sites = sites_in(monitor, district, type)
    index = request.app.state.indexes.of(tz, inv.report.day_threshold)
    group = lambda s: group_of(s, by, monitor)  # noqa: E731
    found = await store.read_async(progress, index, store, sites, group,
                                   (read_from(monitor, lo), lo, hi), inv.rollout)  # fmt: skip
    if csv.wanted(request, format):
        return csv.response(FIELDS, found, f"progress-by-{by}")
    rollout = inv.rollout
    return ProgressPublic.model_validate({
        "start": iso(lo), "end": iso(hi), "by": by, "day_threshold": inv.report.day_threshold,
        "data": found, "rollout": {"start": rollout.start, "deadline": rollout.deadline}
        if rollout else None,
    })  # fmt: skip
