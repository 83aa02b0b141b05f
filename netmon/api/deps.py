"""Route dependencies as ``Annotated`` aliases: the monitor (ready or not), the metrics
registry, the cached site figures, and the site/device a path names (404 problem when unknown)."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Path, Request
from prometheus_client.registry import CollectorRegistry
from pydantic import AwareDatetime, BeforeValidator

from netmon.api.problems import Loading, NotFound
from netmon.inventory import Device, Site
from netmon.monitor import Monitor, SiteStatus
from netmon.progress import FiguresCache


def get_any_monitor(request: Request) -> Monitor:
    """The monitor, also while it is loading (for /healthz)."""
    monitor: Monitor = request.app.state.monitor
    return monitor


def get_monitor(monitor: Annotated[Monitor, Depends(get_any_monitor)]) -> Monitor:
    """The monitor once its windows are refilled; 503 ``loading`` before."""
    if not monitor.ready:
        raise Loading()
    return monitor


def get_registry(request: Request) -> CollectorRegistry:
    registry: CollectorRegistry = request.app.state.registry
    return registry


def get_figures(request: Request) -> FiguresCache:
    """The per-site figures of /api/v1/sites (netmon.progress), cached for the app."""
    figures: FiguresCache = request.app.state.figures
    return figures


AnyMonitorDep = Annotated[Monitor, Depends(get_any_monitor)]
MonitorDep = Annotated[Monitor, Depends(get_monitor)]
RegistryDep = Annotated[CollectorRegistry, Depends(get_registry)]
FiguresDep = Annotated[FiguresCache, Depends(get_figures)]
SiteId = Annotated[str, Path(description="the site's id in the inventory")]
DeviceName = Annotated[str, Path(description="the device's name at its site")]
_RFC3339 = re.compile(
    r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d(:\d\d(\.\d+)?)?([Zz]|[+-]\d\d:?\d\d)", re.ASCII
)


def _date_time(value: object) -> object:
    """``since`` is what the OpenAPI says, an RFC 3339 date-time with its offset: not Unix
    seconds (pydantic alone takes ``0.5`` as 1970-01-01T00:00:00.5Z), not a date, not a naive
    time (whose meaning would depend on the server's time zone)."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("expected a date-time with its offset, like 2026-01-01T06:00:00+05:30")
    return value


Since = Annotated[AwareDatetime, BeforeValidator(_date_time)]


def get_site(site_id: SiteId, monitor: MonitorDep) -> Site:
    site = monitor.inventory.site(site_id)
    if site is None:
        raise NotFound(f"no site with id {site_id!r}")
    return site


def get_site_status(site_id: SiteId, monitor: MonitorDep) -> SiteStatus:
    """A site with its current verdict (a site not evaluated yet is not found)."""
    st = monitor.status.get(site_id)
    if st is None:
        raise NotFound(f"no site with id {site_id!r}")
    return st


SiteDep = Annotated[Site, Depends(get_site)]
SiteStatusDep = Annotated[SiteStatus, Depends(get_site_status)]


def get_device(site_id: SiteId, device: DeviceName, monitor: MonitorDep) -> tuple[Site, Device]:
    site = monitor.inventory.site(site_id)
    dev = site.device(device) if site is not None else None
    if site is None or dev is None:
        raise NotFound(f"no device {device!r} at site {site_id!r}")
    return site, dev


DeviceDep = Annotated[tuple[Site, Device], Depends(get_device)]
