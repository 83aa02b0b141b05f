"""A site's maintenance windows: the inventory's and those announced over the API.
A recurring inventory window (``every:``, netmon.inventory.recurring) is listed once, with its
``recurrence`` and its occurrence on now (else the next one) as start and end.

    GET    /api/v1/sites/{site_id}/maintenance        both kinds, each with its ``source``
    GET    /api/v1/sites/{site_id}/maintenance/{id}   one window
    POST   /api/v1/sites/{site_id}/maintenance        {start, end, reason} -> 201 + Location
    DELETE /api/v1/sites/{site_id}/maintenance/{id}   204; an inventory window: 409

Writes need a token with ``maintenance:write`` and are audited (``netmon.auth``). A window
takes effect at once: results inside it are left out of the verdict (``netmon.maintenance``);
one that began in the past (or is withdrawn) has its site's window re-read from the store and
folded again, so results already taken inside it stop (or start) counting.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

from netmon.api import problems
from netmon.api.deps import MonitorDep, SiteDep, scope
from netmon.api.models import (
    MaintenanceCreate,
    MaintenanceList,
    MaintenancePublic,
    RecurrencePublic,
)
from netmon.api.problems import Conflict, NotFound
from netmon.auth import Caller
from netmon.inventory import Maintenance, Recurring, Site
from netmon.inventory.models import LOOK_BACK
from netmon.maintenance import (
    ApiMaintenance,
    create_window,
    delete_window,
    removed,
    site_windows,
)
from netmon.monitor import Monitor

router = APIRouter(prefix="/api/v1", tags=["maintenance"])
WriteDep = Annotated[Caller, scope("maintenance:write")]
WindowId = Annotated[str, Path(description="`inventory-N` or the number of an API window")]
INVENTORY = "inventory-"


def window_public(
    site_id: str, index: int | None, w: Maintenance | Recurring, now: float
) -> MaintenancePublic:
    """An inventory window (its ``index`` in the site's list) or an API one (``index`` None)."""
    if isinstance(w, Recurring):
        return recurring_public(site_id, index, w, now)
    api = w if isinstance(w, ApiMaintenance) else None
    return MaintenancePublic(
        id=str(api.id) if api else f"{INVENTORY}{index}", site_id=site_id,
        source="api" if api else "inventory", start=w.start, end=w.end, reason=w.reason,
        active=w.covers(now), created_by=api.created_by if api else None,
        created_at=api.created_at if api else None,
    )  # fmt: skip


def recurring_public(
    site_id: str, index: int | None, w: Recurring, now: float
) -> MaintenancePublic:
    """A recurring window: its occurrence on ``now``, else its next one (within 63 days)."""
    spans = w.spans(now, now + LOOK_BACK)
    a, b = spans[0] if spans else (now, now)
    rule = RecurrencePublic(every=w.every, days=w.days, start=w.start,
                            duration_seconds=w.duration, timezone=w.timezone)  # fmt: skip
    return MaintenancePublic(
        id=f"{INVENTORY}{index}", site_id=site_id, source="inventory",
        start=datetime.fromtimestamp(a, UTC), end=datetime.fromtimestamp(b, UTC),
        reason=w.reason, active=a <= now < b, recurrence=rule,
    )  # fmt: skip


async def _windows(monitor: Monitor, site: Site) -> list[MaintenancePublic]:
    """The inventory's windows of the site, then every stored one (past ones too), by start."""
    now = monitor.clock()
    announced = monitor.announced.site(site.id)
    own = announced.maintenance if announced is not None else []
    stored = await monitor.store.read_async(site_windows, monitor.store, site.id)
    rows = [window_public(site.id, i, w, now) for i, w in enumerate(own)]
    rows += [window_public(site.id, None, w, now) for w in stored]
    return sorted(rows, key=lambda r: r.start)


@router.get("/sites/{site_id}/maintenance", response_model=MaintenanceList, operation_id="listSiteMaintenance",
            responses=problems.responses(404, 422, 500, 503))  # fmt: skip
async def list_maintenance(site: SiteDep, monitor: MonitorDep) -> MaintenanceList:
    """The site's maintenance windows: the inventory's and those posted here, by start."""
    rows = await _windows(monitor, site)
    return MaintenanceList(data=rows, count=len(rows))


@router.get("/sites/{site_id}/maintenance/{window_id}", response_model=MaintenancePublic, operation_id="getSiteMaintenance",
            responses=problems.responses(404, 422, 500, 503))  # fmt: skip
async def get_maintenance(site: SiteDep, window_id: WindowId, monitor: MonitorDep) -> MaintenancePublic:  # fmt: skip
    """One maintenance window of the site."""
    for row in await _windows(monitor, site):
        if row.id == window_id:
            return row
    raise NotFound(f"site {site.id!r} has no maintenance window {window_id!r}")


CREATED: dict[int | str, dict[str, Any]] = {201: {"description": "The window, announced; `Location` is its URL", "headers": {
    "Location": {"description": "/api/v1/sites/{site_id}/maintenance/{id}",
                 "schema": {"type": "string"}}}}}  # fmt: skip


@router.post("/sites/{site_id}/maintenance", status_code=201, response_model=MaintenancePublic, operation_id="createSiteMaintenance",
             responses={**problems.responses(400, 401, 403, 404, 422, 500, 503), **CREATED})  # fmt: skip
async def create_maintenance(
    caller: WriteDep, site: SiteDep, body: MaintenanceCreate, monitor: MonitorDep,
    request: Request, response: Response,
) -> MaintenancePublic:  # fmt: skip
    """Announce a window (ISO 8601 times with their offset; at most 400 days): the site's
    results inside it are stored but not judged, and no outage runs through it."""
    window = Maintenance(start=body.start, end=body.end, reason=body.reason)
    now, store = monitor.clock(), monitor.store
    path = request.url.path
    created = await store.read_async(create_window, store, site.id, window, caller, path, now)
    if monitor.windows_loaded:
        monitor.set_windows([*monitor.api_windows, created])
    else:  # the database was down at start: read them all now (this one too)
        await monitor.load_windows()
    if created.start.timestamp() < now:  # results already folded fall inside it
        await monitor.refold(site.id)
    monitor.evaluate()
    response.headers["Location"] = f"{path}/{created.id}"
    return window_public(site.id, None, created, now)


@router.delete("/sites/{site_id}/maintenance/{window_id}", status_code=204, operation_id="deleteSiteMaintenance",
               responses=problems.responses(401, 403, 404, 409, 422, 500, 503))  # fmt: skip
async def delete_maintenance(
    caller: WriteDep, site: SiteDep, window_id: WindowId, monitor: MonitorDep, request: Request
) -> Response:
    """Withdraw a window posted here (the inventory's own are changed in the inventory)."""
    announced = monitor.announced.site(site.id)
    own = [f"{INVENTORY}{i}" for i in range(len(announced.maintenance if announced else []))]
    if window_id in own:
        raise Conflict(f"{window_id} is announced by the inventory: remove it there and reload")
    if not re.fullmatch(r"[0-9]{1,9}", window_id):
        raise NotFound(f"site {site.id!r} has no maintenance window {window_id!r}")
    store, path = monitor.store, request.url.path
    gone = await store.read_async(delete_window, store, site.id, int(window_id), caller, path,
                                  monitor.clock())  # fmt: skip
    if gone is None:
        raise NotFound(f"site {site.id!r} has no maintenance window {window_id!r}")
    monitor.set_windows(removed(monitor.api_windows, gone.id))
    if gone.start.timestamp() < monitor.clock():  # results it left out count again
        await monitor.refold(site.id)
    monitor.evaluate()
    return Response(status_code=204)
