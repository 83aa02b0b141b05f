"""GET /api/v1/audit: every write, newest first (who, what, when); needs ``audit:read``."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query

from netmon.api import problems
from netmon.api.deps import MonitorDep, scope
from netmon.api.models import AuditList, AuditPublic, iso
from netmon.auth import AuditRow, Caller, audit_log

router = APIRouter(prefix="/api/v1", tags=["audit"])
MAX_ID = (
    2**63 - 1
)  # a row id is a 64-bit integer in both databases: a larger one is a 422, not a 500


def audit_public(row: AuditRow) -> AuditPublic:
    assert row.id is not None
    return AuditPublic(id=row.id, at=iso(row.at), token=row.token_name, method=row.method,
                       path=row.path, action=row.action, detail=json.loads(row.detail or "{}"))  # fmt: skip


@router.get("/audit", response_model=AuditList, operation_id="listAudit",
            responses=problems.responses(401, 403, 422, 500, 503))  # fmt: skip
async def list_audit(
    _caller: Annotated[Caller, scope("audit:read")],
    monitor: MonitorDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID, description="only entries older than this id")] = None,
) -> AuditList:  # fmt: skip
    """The audit log: every write over the API and every token made or revoked, newest first."""
    rows = await monitor.store.read_async(audit_log, monitor.store, limit, before)
    data = [audit_public(r) for r in rows]
    return AuditList(data=data, count=len(data))
