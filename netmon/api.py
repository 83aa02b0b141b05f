"""HTTP API for the NOC and the state's rollout tracker (OpenAPI at /docs).

    GET /api/v1/sites                    every site with verdict, reasons, since (filters:
                                         district, type, verdict)
    GET /api/v1/sites/{id}               one site, with its devices and their latest results
    GET /api/v1/sites/{id}/history       the site's verdict changes, newest first
    GET /api/v1/sites/{id}/devices/{name}/results   stored results of one device (evidence)
    GET /api/v1/summary                  counts and % fully functional by district and type
    GET /healthz                         liveness and store health
    GET /metrics                         Prometheus text format
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any, overload

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry
from pydantic import BaseModel
from starlette.responses import Response

from netmon import __version__
from netmon.inventory import Device, FacilityType, Role, Site
from netmon.monitor import Monitor, SiteStatus
from netmon.verdict import Verdict, device_state
from netmon.window import DeviceSummary
from probes.icmp import KIND as ICMP
from probes.snmp_view import ControllerView, SnmpEvidence, controllers_of, snmp_of


@overload
def iso(ts: float) -> datetime: ...
@overload
def iso(ts: None) -> None: ...
@overload
def iso(ts: float | None) -> datetime | None: ...
def iso(ts: float | None) -> datetime | None:
    """Unix seconds as an aware UTC datetime (ISO 8601 in JSON)."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


class ReasonPublic(BaseModel):
    criterion: str
    message: str
    device: str | None = None
    measured: float | None = None
    threshold: float | None = None


class SitePublic(BaseModel):
    id: str
    name: str
    district: str
    type: FacilityType
    hfr_id: str | None
    verdict: Verdict
    reasons: list[ReasonPublic]
    since: datetime | None
    evaluated_at: datetime | None
    devices: int
    maintenance: str | None = None  # the reason, while announced maintenance is on


class SitesPublic(BaseModel):
    data: list[SitePublic]
    count: int


class LastResultPublic(BaseModel):
    at: datetime
    ok: bool
    sent: int
    received: int
    loss_ratio: float
    rtt_min_seconds: float | None
    rtt_avg_seconds: float | None
    rtt_max_seconds: float | None
    jitter_seconds: float | None
    reason: str


class WindowPublic(BaseModel):
    probes: int
    availability_ratio: float | None
    loss_ratio: float | None
    rtt_p95_seconds: float | None
    longest_outage_seconds: float
    down_since: datetime | None


class InterfacePublic(BaseModel):
    index: int
    name: str | None
    oper_up: bool | None
    admin_up: bool | None
    in_bps: float | None
    out_bps: float | None
    in_errors: int | None
    out_errors: int | None
    flaps: int


class SnmpPublic(BaseModel):
    answered: bool | None
    polled_at: datetime | None
    uptime_seconds: float | None
    reboots_in_window: list[datetime]
    uplinks_down: list[str]
    interfaces: list[InterfacePublic]
    aps_total: int | None
    aps_up: int | None


class DevicePublic(BaseModel):
    name: str
    role: Role
    address: str | None
    parent: str | None
    state: str  # up | down | unreachable_parent | unknown
    last: LastResultPublic | None
    window: WindowPublic | None
    snmp: SnmpPublic | None = None
    clients: int | None = None  # associated clients, for APs a controller reports


class ControllerApPublic(BaseModel):
    controller: str
    name: str | None
    mac: str | None
    up: bool | None
    clients: int | None


class SiteDetail(SitePublic):
    window_seconds: float
    device_list: list[DevicePublic]
    clients: int | None  # associated clients over the site's controllers
    unknown_aps: list[ControllerApPublic]  # reported by a controller, missing from the inventory


class VerdictChangePublic(BaseModel):
    verdict: Verdict
    since: datetime
    reasons: list[ReasonPublic]


class HistoryPublic(BaseModel):
    data: list[VerdictChangePublic]
    count: int


class GroupSummary(BaseModel):
    key: str
    sites: int
    fully_functional: int
    percent_fully_functional: float
    by_verdict: dict[str, int]


class SummaryPublic(BaseModel):
    sites: int
    fully_functional: int
    percent_fully_functional: float
    by_verdict: dict[str, int]
    by_district: list[GroupSummary]
    by_type: list[GroupSummary]
    evaluated_at: datetime | None


class ErrorPublic(BaseModel):
    error: str
    detail: str


class NotFound(Exception):
    def __init__(self, what: str) -> None:
        self.what = what


class Loading(Exception):
    """The monitor is still refilling its windows from the store (start-up)."""


def get_monitor(request: Request) -> Monitor:
    monitor: Monitor = request.app.state.monitor
    if not monitor.ready:
        raise Loading()
    return monitor


MonitorDep = Annotated[Monitor, Depends(get_monitor)]
router = APIRouter(prefix="/api/v1")


def site_public(st: SiteStatus) -> SitePublic:
    s = st.site
    return SitePublic(
        id=s.id, name=s.name, district=s.district, type=s.type, hfr_id=s.hfr_id,
        verdict=st.verdict, reasons=[ReasonPublic(**asdict(r)) for r in st.judgement.reasons],
        since=iso(st.since), evaluated_at=iso(st.evaluated_at), devices=len(s.devices),
        maintenance=m.reason if (m := s.in_maintenance(st.evaluated_at)) else None,
    )  # fmt: skip


def _statuses(monitor: Monitor) -> list[SiteStatus]:
    return [monitor.status[s.id] for s in monitor.inventory.sites if s.id in monitor.status]


@router.get("/sites", response_model=SitesPublic)
async def list_sites(
    monitor: MonitorDep,
    district: Annotated[str | None, Query(description="exact district name")] = None,
    type: Annotated[FacilityType | None, Query(description="facility type")] = None,  # noqa: A002
    verdict: Annotated[Verdict | None, Query()] = None,
) -> SitesPublic:
    rows = [
        site_public(st)
        for st in _statuses(monitor)
        if (district is None or st.site.district.lower() == district.lower())
        and (type is None or st.site.type == type)
        and (verdict is None or st.verdict == verdict)
    ]
    return SitesPublic(data=rows, count=len(rows))


@router.get("/sites/{site_id}", response_model=SiteDetail, responses={404: {"model": ErrorPublic}})
async def get_site(site_id: str, monitor: MonitorDep) -> SiteDetail:
    st = monitor.status.get(site_id)
    if st is None:
        raise NotFound(f"no site with id {site_id!r}")
    site = st.site
    now = monitor.clock()
    sv = monitor.view(site, now)
    view = controllers_of(sv.views)
    snmp = snmp_of(sv.evidence)
    devices = [_device_public(site, dev, sv.summaries, snmp, view, now) for dev in site.devices]
    base = site_public(st).model_dump()
    unknown = [ControllerApPublic(controller=u.controller, **asdict(u.ap)) for u in view.unknown_aps]
    clients = None
    if view.up or unknown:  # some controller reported its APs
        clients = sum(view.clients.values()) + sum(ap.clients or 0 for ap in unknown)
    return SiteDetail(**base, window_seconds=monitor.inventory.policy_for(site).window, device_list=devices,
                      clients=clients, unknown_aps=unknown)  # fmt: skip


def _device_public(
    site: Site,
    dev: Device,
    summaries: Mapping[str, DeviceSummary],
    snmp: Mapping[str, SnmpEvidence],
    view: ControllerView,
    now: float,
) -> DevicePublic:
    s = summaries.get(dev.name)
    last = s.last if s else None
    return DevicePublic(
        name=dev.name, role=dev.role, address=dev.address, parent=dev.parent,
        state=device_state(site, dev, summaries),
        last=None if last is None else LastResultPublic(
            at=iso(last.started_at), ok=last.ok, sent=last.sent, received=last.received,
            loss_ratio=last.loss_ratio, rtt_min_seconds=last.rtt_min,
            rtt_avg_seconds=last.rtt_avg, rtt_max_seconds=last.rtt_max,
            jitter_seconds=last.jitter, reason=last.reason),
        window=None if s is None else WindowPublic(
            probes=s.probes, availability_ratio=s.availability, loss_ratio=s.loss_ratio,
            rtt_p95_seconds=s.rtt_p95, longest_outage_seconds=s.longest_outage,
            down_since=iso(s.down_since)),
        snmp=_snmp_public(dev, snmp[dev.name], now) if dev.name in snmp else None,
        clients=view.clients.get(dev.name),
    )  # fmt: skip


def _snmp_public(dev: Device, ev: SnmpEvidence, now: float) -> SnmpPublic:
    f, found = ev.facts(dev, now), ev.findings
    return SnmpPublic(
        answered=f.answered, polled_at=iso(ev.polls.last.started_at) if ev.polls.last else None,
        uptime_seconds=f.uptime, reboots_in_window=[iso(t) for t in f.reboots],
        uplinks_down=list(f.uplinks_down),
        interfaces=[InterfacePublic(**asdict(i)) for i in (found.interfaces or () if found else ())],
        aps_total=found.aps_total if found else None, aps_up=found.aps_up if found else None,
    )  # fmt: skip


@router.get("/sites/{site_id}/history", response_model=HistoryPublic, responses={404: {"model": ErrorPublic}})
async def site_history(site_id: str, monitor: MonitorDep, limit: int = Query(100, ge=1, le=1000)) -> HistoryPublic:
    if monitor.inventory.site(site_id) is None:
        raise NotFound(f"no site with id {site_id!r}")
    await asyncio.to_thread(monitor.store.flush)
    changes = await asyncio.to_thread(monitor.store.verdict_history, site_id, limit)
    rows = [VerdictChangePublic(verdict=Verdict(c.verdict), since=iso(c.since),
                                reasons=[ReasonPublic(**r) for r in c.reasons]) for c in changes]  # fmt: skip
    return HistoryPublic(data=rows, count=len(rows))


class ResultPublic(BaseModel):
    at: datetime
    kind: str
    ok: bool
    sent: int
    received: int
    rtt_min_seconds: float | None
    rtt_avg_seconds: float | None
    rtt_max_seconds: float | None
    jitter_seconds: float | None
    reason: str


class ResultsPublic(BaseModel):
    data: list[ResultPublic]
    count: int


@router.get("/sites/{site_id}/devices/{device}/results", response_model=ResultsPublic,
            responses={404: {"model": ErrorPublic}})  # fmt: skip
async def device_results(
    site_id: str,
    device: str,
    monitor: MonitorDep,
    since: Annotated[datetime | None, Query(description="ISO 8601; default: the policy window")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> ResultsPublic:
    """The stored probe results of one device, newest first: the evidence behind a verdict."""
    site = monitor.inventory.site(site_id)
    if site is None or site.device(device) is None:
        raise NotFound(f"no device {device!r} at site {site_id!r}")
    start = since.timestamp() if since else monitor.clock() - monitor.inventory.policy_for(site).window
    await asyncio.to_thread(monitor.store.flush)
    rows = await asyncio.to_thread(monitor.store.results, site_id, device, start, limit)
    data = [ResultPublic(at=iso(r.ts), kind=r.kind, ok=r.ok, sent=r.sent, received=r.received,
                         rtt_min_seconds=r.rtt_min, rtt_avg_seconds=r.rtt_avg, rtt_max_seconds=r.rtt_max,
                         jitter_seconds=r.jitter, reason=r.reason) for r in rows]  # fmt: skip
    return ResultsPublic(data=data, count=len(data))


def _group(key: str, statuses: list[SiteStatus]) -> GroupSummary:
    by = {v.value: 0 for v in Verdict}
    for st in statuses:
        by[st.verdict.value] += 1
    ff = by[Verdict.FULLY_FUNCTIONAL.value]
    pct = round(100.0 * ff / len(statuses), 1) if statuses else 0.0
    return GroupSummary(key=key, sites=len(statuses), fully_functional=ff, percent_fully_functional=pct, by_verdict=by)


@router.get("/summary", response_model=SummaryPublic)
async def summary(monitor: MonitorDep) -> SummaryPublic:
    statuses = _statuses(monitor)
    total = _group("all", statuses)
    districts = sorted({st.site.district for st in statuses})
    types = sorted({st.site.type for st in statuses})
    return SummaryPublic(
        sites=total.sites, fully_functional=total.fully_functional,
        percent_fully_functional=total.percent_fully_functional, by_verdict=total.by_verdict,
        by_district=[_group(d, [s for s in statuses if s.site.district == d]) for d in districts],
        by_type=[_group(t, [s for s in statuses if s.site.type == t]) for t in types],
        evaluated_at=iso(monitor.last_evaluation or None),
    )  # fmt: skip


def create_app(monitor: Monitor, registry: CollectorRegistry) -> FastAPI:
    app = FastAPI(
        title="netmon",
        version=__version__,
        description="Is the Wi-Fi of each public health facility fully functional — why not, since when.",
    )
    app.state.monitor = monitor
    app.include_router(router)

    @app.exception_handler(NotFound)
    async def _not_found(_request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse(status_code=404, content={"error": "not_found", "detail": exc.what})

    @app.exception_handler(Loading)
    async def _loading(_request: Request, _exc: Loading) -> JSONResponse:
        detail = "netmon is refilling its verdict windows from the store; try again shortly"
        return JSONResponse(status_code=503, content={"error": "loading", "detail": detail},
                            headers={"Retry-After": "5"})  # fmt: skip

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        store = monitor.store
        return {
            "status": "ok" if monitor.ready else "loading",
            "version": __version__, "sites": len(monitor.inventory.sites),
            "store": {"pending": len(store.pending), "written": store.written, "errors": store.errors},
            "icmp_mode": getattr(monitor.engines.get(ICMP), "mode", None),
        }  # fmt: skip

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        body = await asyncio.to_thread(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return app
