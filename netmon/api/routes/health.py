"""GET /healthz: liveness, loading, and the store's health (it answers while loading too)."""

from __future__ import annotations

from fastapi import APIRouter

from netmon import __version__
from netmon.api import problems
from netmon.api.deps import AnyMonitorDep
from netmon.api.models import HealthPublic, HealthStatus, JournalHealth, StoreHealth, iso
from netmon.store import Store

router = APIRouter(tags=["health"])


def store_health(store: Store) -> StoreHealth:
    j = store.journal
    journal = None if j is None else JournalHealth(
        backlog=j.backlog, bytes=j.size, failing=j.failing, torn=j.torn, corrupt=j.corrupt,
        dropped=j.dropped,
    )  # fmt: skip
    failing = store.failing or (j is not None and j.failing)
    return StoreHealth(
        status="degraded" if failing else "ok", pending=len(store.pending),
        written=store.written, errors=store.errors, read_errors=store.read_errors,
        dropped=store.dropped, last_error=store.last_error, last_error_at=iso(store.last_error_at),
        journal=journal,
    )  # fmt: skip


@router.get("/healthz", response_model=HealthPublic, operation_id="health",
            responses=problems.responses(500))  # fmt: skip
async def healthz(monitor: AnyMonitorDep) -> HealthPublic:
    """``loading`` until the windows are refilled; ``degraded`` while the store's last read or
    write failed (netmon keeps probing and judging, and queues results in memory) or while the
    poller is down (no new results until it is back)."""
    store = store_health(monitor.store)
    poller_up = monitor.poller.connected
    status: HealthStatus = "loading" if not monitor.ready else store.status
    if status == "ok" and not poller_up:
        status = "degraded"
    return HealthPublic(
        status=status, version=__version__, sites=len(monitor.inventory.sites), store=store,
        icmp_mode=monitor.poller.stats().modes.get("icmp"), poller_up=poller_up,
        judge=None if monitor.judging is None else monitor.judging.role,
    )  # fmt: skip
