"""GET /api/v1/changes: the change feed, every site's verdict changes, oldest first.

A tracker keeps the ``next`` link of its last page and polls it: ``next`` is there on an empty
page too, and names the same place until something new is written. The feed shows the changes
written to the database, in the order they were written (row id); a row's id only grows, so a
change still queued in memory (the database slow or down) is not skipped: it comes, with a
higher id than everything already read, once it is written. Rows are never deleted, so a
cursor stays valid for good. Why ids only grow: one netmon writes, one batch at a time (the
store's flush lock), so rows commit in id order; SQLite gives a new row the highest id + 1,
PostgreSQL the next value of its sequence (ids may skip, e.g. for a replayed row already
stored, never go back).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from netmon.api import pages, problems
from netmon.api.deps import MonitorDep
from netmon.api.models import ChangePublic, ChangesPublic, ReasonPublic, iso
from netmon.store import VerdictChange
from netmon.verdict import Verdict

router = APIRouter(prefix="/api/v1", tags=["changes"])
KIND = "changes"


def change_item(c: VerdictChange) -> ChangePublic:
    return ChangePublic(
        cursor=pages.encode(KIND, (c.row_id,)), site_id=c.site_id, verdict=Verdict(c.verdict),
        since=iso(c.since), changed_at=iso(c.at), reasons=[ReasonPublic(**r) for r in c.reasons],
    )  # fmt: skip


@router.get("/changes", response_model=ChangesPublic, operation_id="listChanges",
            responses=problems.responses(422, 500, 503))  # fmt: skip
async def list_changes(
    request: Request,
    response: Response,
    monitor: MonitorDep,
    after: pages.After = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ChangesPublic:
    """Every verdict change across sites, oldest first, from the database (changes still
    queued in memory come once written, never skipped: a row's id only grows)."""
    after_id = int(pages.decode(KIND, after, [(int,)])[0] or 0) if after else 0
    if after_id < 0:
        raise pages.invalid("a changes cursor with a key netmon does not make")
    rows = await monitor.store.read_async(monitor.store.verdict_changes, after_id, limit)
    items = [change_item(c) for c in rows]
    last = items[-1].cursor if items else pages.encode(KIND, (after_id,))
    url = pages.next_url(request, last)
    pages.link(response, url)
    return ChangesPublic(items=items, next=url)
