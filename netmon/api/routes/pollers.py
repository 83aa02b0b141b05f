"""Remote pollers (``netmon serve`` + ``netmon poll``, netmon.fleet): their heartbeat, their
share of the inventory and their results. Every call but the listing needs a token with the
scope ``poller``; the token's name is the poller's name.

    POST /api/v1/pollers/heartbeat   {group, version, pid, started_at, outbox, dropped, modes}
                                     -> {sites, digest, heartbeat_every, failover_delay}
    GET  /api/v1/pollers/assignment  the inventory of the caller's share (secrets resolved:
                                     serve it over TLS), the SNMP profiles, the digest
    POST /api/v1/pollers/results     {batch, items} -> {taken, rejected, duplicate}
    GET  /api/v1/pollers             every lease: name, group, last heartbeat, live, sites
                                     (a read: with reads closed it needs the scope ``read``)

Under ``netmon run`` (its own poller) the poller calls answer 409: there is no fleet.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from netmon.api import problems
from netmon.api.deps import MonitorDep, scope
from netmon.api.models import iso
from netmon.api.problems import Conflict
from netmon.auth import Caller
from netmon.fleet import Fleet, Heartbeat
from netmon.monitor import Monitor

router = APIRouter(prefix="/api/v1", tags=["pollers"])  # the listing: a read like the others
calls = APIRouter(prefix="/api/v1", tags=["pollers"])  # the pollers' own calls: scope poller
PollerDep = Annotated[Caller, scope("poller")]
INT32 = 2**31 - 1
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]


class HeartbeatIn(BaseModel):
    group: Name = "central"
    version: Annotated[str, Field(max_length=32)]
    pid: Annotated[int, Field(ge=0, le=INT32)]
    started_at: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    outbox: Annotated[int, Field(ge=0, le=INT32)] = 0  # the lease's columns are 32-bit
    dropped: Annotated[int, Field(ge=0, le=INT32)] = 0
    modes: dict[str, Annotated[str, Field(max_length=16)]] = {}


class HeartbeatOut(BaseModel):
    sites: list[str]
    poll_now: list[tuple[str, str]] = Field(
        default=[], description="(site, device) to probe at once: a trap came (netmon.traps)"
    )
    digest: str
    heartbeat_every: float
    failover_delay: float


class ResultsIn(BaseModel):
    batch: Annotated[str, Field(min_length=1, max_length=64)]
    items: Annotated[list[list[Any]], Field(max_length=100_000)]


class ResultsOut(BaseModel):
    taken: int
    rejected: int
    duplicate: bool


class PollerPublic(BaseModel):
    name: str
    group: str
    version: str
    heartbeat_at: datetime
    live: bool
    sites: int
    outbox: int
    dropped: int


class PollerList(BaseModel):
    data: list[PollerPublic]
    count: int


def fleet_of(monitor: Monitor) -> Fleet:
    if not isinstance(monitor.poller, Fleet):
        raise Conflict("this server probes with its own poller (netmon run): no remote pollers")
    return monitor.poller


@calls.post("/pollers/heartbeat", response_model=HeartbeatOut, operation_id="pollerHeartbeat",
             responses=problems.responses(400, 401, 403, 409, 422, 500, 503))  # fmt: skip
async def heartbeat(caller: PollerDep, monitor: MonitorDep, body: HeartbeatIn) -> HeartbeatOut:
    """The calling poller is alive; answers its share of the sites now."""
    fleet = fleet_of(monitor)
    beat = Heartbeat(body.group, body.version, body.pid, body.started_at, body.outbox,
                     body.dropped, dict(body.modes))  # fmt: skip
    sites = await fleet.heartbeat(caller.name, beat)
    return HeartbeatOut(sites=sites, poll_now=fleet.take_urgent(caller.name), digest=fleet.digest,
                        heartbeat_every=fleet.heartbeat_every, failover_delay=fleet.failover_delay)  # fmt: skip


@calls.get("/pollers/assignment", operation_id="pollerAssignment",
            responses=problems.responses(401, 403, 409, 500, 503))  # fmt: skip
async def assignment(caller: PollerDep, monitor: MonitorDep) -> dict[str, Any]:
    """The inventory of the calling poller's share, as it validates (``netmon.inventory``)."""
    return fleet_of(monitor).assignment(caller.name)


@calls.post("/pollers/results", response_model=ResultsOut, operation_id="pollerResults",
             responses=problems.responses(400, 401, 403, 409, 422, 500, 503))  # fmt: skip
async def results(caller: PollerDep, monitor: MonitorDep, body: ResultsIn) -> ResultsOut:
    """One batch of the calling poller's results; a batch id seen before is taken once."""
    taken, rejected, duplicate = await fleet_of(monitor).take(caller.name, body.batch, body.items)
    return ResultsOut(taken=taken, rejected=rejected, duplicate=duplicate)


@router.get("/pollers", response_model=PollerList, operation_id="listPollers",
            responses=problems.responses(409, 500, 503))  # fmt: skip
async def list_pollers(monitor: MonitorDep) -> PollerList:
    """Every poller that ever heart-beat to this database, live or not."""
    fleet = fleet_of(monitor)
    rows = await monitor.store.read_async(fleet.leases)
    data = [PollerPublic(name=r.name, group=r.grp, version=r.version, heartbeat_at=iso(r.heartbeat_at),
                         live=r.name in fleet.live, sites=len(fleet.share_of(r.name)),
                         outbox=r.outbox, dropped=r.dropped) for r in rows]  # fmt: skip
    return PollerList(data=data, count=len(data))
