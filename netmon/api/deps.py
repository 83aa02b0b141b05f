"""Route dependencies as ``Annotated`` aliases: the monitor (ready or not), the metrics
registry, the cached site figures, the site/device a path names (404 problem when unknown), and the caller's bearer
token: ``Annotated[Caller, scope("maintenance:write")]`` (401 without a valid token, 403
without the scope) and :func:`read_access` (every GET of the API, when reads are closed)."""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client.registry import CollectorRegistry
from pydantic import AwareDatetime, BeforeValidator

from netmon.api.problems import Forbidden, Loading, NotFound, Unauthorized
from netmon.auth import Caller, authenticate
from netmon.errors import StoreError
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


# --- bearer tokens (netmon.auth) -----------------------------------------------------------
log = logging.getLogger("netmon.api")
_bearer = HTTPBearer(auto_error=False, description="a token made by `netmon token create`")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def _verified(request: Request, monitor: Monitor, token: str) -> Caller | None:
    """The database's word on ``token``; while it cannot be read, a recent acceptance
    (:class:`netmon.auth.Recent`), else the StoreError (503: validity cannot be told now)."""
    store, recent = monitor.store, request.app.state.callers
    try:
        caller = await store.read_async(authenticate, store, token)
    except StoreError:
        caller = recent.recall(token, monitor.clock())
        if caller is None:
            raise
        return caller
    if caller is None:
        recent.forget(token)
    else:
        recent.remember(token, caller, monitor.clock())
    return caller


async def _caller(request: Request, monitor: Monitor, credentials: Credentials) -> Caller:
    """The caller of a valid token; 401 without one (the token itself is never logged)."""
    caller = None
    if credentials is not None:
        caller = await _verified(request, monitor, credentials.credentials)
    if caller is None:
        why = "no bearer token" if credentials is None else "an unknown or revoked token"
        level = logging.DEBUG if request.method in ("GET", "HEAD") else logging.INFO  # a scan
        log.log(level, "%s %s refused: %s", request.method, request.url.path, why)  # floods none
        raise Unauthorized(f"this request needs a valid bearer token: it came with {why}")
    return caller


def scope(name: str) -> Any:
    """A dependency: the caller, whose token must carry the scope ``name``."""

    async def caller_with_scope(
        request: Request, monitor: AnyMonitorDep, credentials: Credentials
    ) -> Caller:
        caller = await _caller(request, monitor, credentials)
        if name not in caller.scopes:
            log.info("%s %s refused: token %r lacks %s", request.method, request.url.path,
                     caller.name, name)  # fmt: skip
            raise Forbidden(name)
        return caller

    return Depends(caller_with_scope)


async def read_access(request: Request, monitor: AnyMonitorDep, credentials: Credentials) -> None:
    """With reads closed (``NETMON_API_READ_REQUIRES_TOKEN``), a GET needs the scope ``read``."""
    if request.method not in ("GET", "HEAD") or not request.app.state.read_requires_token:
        return
    caller = await _caller(request, monitor, credentials)
    if "read" not in caller.scopes:
        raise Forbidden("read")
