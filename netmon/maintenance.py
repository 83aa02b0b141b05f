"""Maintenance windows announced over the API, beside the ones the inventory announces.

The verdict knows one kind of maintenance: a site's ``maintenance`` list in the inventory
(:class:`netmon.inventory.Maintenance` windows and :class:`netmon.inventory.Recurring` rules,
expanded by ``Site.in_maintenance`` and ``Site.maintenance_spans``): results inside a window are stored but not folded,
an outage ends where the window begins, and silence is counted from its end. Windows posted to
``/api/v1/sites/{id}/maintenance`` are rows of ``maintenance_window``; :func:`with_windows`
adds them to their sites' lists (as :class:`ApiMaintenance`), so they go through the same seam.
The monitor holds the inventory as loaded (``Monitor.announced``) and judges with the merged one
(``Monitor.inventory``), re-merged at each change of either (a POST, a DELETE, a reload).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Field, SQLModel, col, select

from netmon.auth import Caller, audit
from netmon.inventory import Inventory, Maintenance
from netmon.store import Store

MAX_DAYS = 400  # the longest window accepted over the API


class MaintenanceRow(SQLModel, table=True):
    __tablename__ = "maintenance_window"

    id: int | None = Field(default=None, primary_key=True)
    site_id: str = Field(max_length=64, index=True)
    start: float  # Unix seconds (UTC)
    end: float = Field(index=True)
    reason: str = Field(max_length=500)
    created_by: str = Field(max_length=64)  # the token's name
    created_at: float


class ApiMaintenance(Maintenance):
    """A window from the database, in its site's ``maintenance`` list."""

    id: int
    site_id: str
    created_by: str
    created_at: datetime


def _aware(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _window(row: MaintenanceRow) -> ApiMaintenance:
    assert row.id is not None
    return ApiMaintenance(id=row.id, site_id=row.site_id, start=_aware(row.start),
                          end=_aware(row.end), reason=row.reason, created_by=row.created_by,
                          created_at=_aware(row.created_at))  # fmt: skip


def with_windows(inventory: Inventory, windows: Iterable[ApiMaintenance]) -> Inventory:
    """``inventory`` with each window in its site's ``maintenance`` (after the inventory's own);
    the inventory itself when there are none. Sites without a window stay the same objects."""
    by_site: dict[str, list[ApiMaintenance]] = defaultdict(list)
    for w in windows:
        by_site[w.site_id].append(w)
    if not by_site:
        return inventory
    sites = [
        s.model_copy(update={"maintenance": [*s.maintenance, *by_site[s.id]]})
        if s.id in by_site
        else s
        for s in inventory.sites
    ]
    merged = inventory.model_copy(update={"sites": sites})
    merged.model_post_init(None)  # its site index and policies over the new site objects
    return merged


def load_windows(store: Store, ending_after: float) -> list[ApiMaintenance]:
    """The stored windows that end after ``ending_after``, by start."""
    query = (
        select(MaintenanceRow)
        .where(col(MaintenanceRow.end) > ending_after)
        .order_by(col(MaintenanceRow.start), col(MaintenanceRow.id))
    )
    with store.session("reading", "maintenance windows") as s:
        return [_window(r) for r in s.exec(query).all()]


def site_windows(store: Store, site_id: str) -> list[ApiMaintenance]:
    """Every stored window of one site, by start."""
    query = (
        select(MaintenanceRow)
        .where(MaintenanceRow.site_id == site_id)
        .order_by(col(MaintenanceRow.start), col(MaintenanceRow.id))
    )
    with store.session("reading", f"maintenance windows of {site_id}") as s:
        return [_window(r) for r in s.exec(query).all()]


def create_window(
    store: Store, site_id: str, window: Maintenance, caller: Caller, path: str, now: float
) -> ApiMaintenance:
    """Store a window and its audit row (one transaction)."""
    row = MaintenanceRow(site_id=site_id, start=window.start.timestamp(),
                         end=window.end.timestamp(), reason=window.reason,
                         created_by=caller.name, created_at=now)  # fmt: skip
    with store.session("writing", f"a maintenance window of {site_id}") as s:
        s.add(row)
        s.flush()  # its id, for the audit row
        created = _window(row)
        audit(s, caller, "POST", path, "maintenance.create", _detail(created), now)
        s.commit()
    return created


def delete_window(
    store: Store, site_id: str, window_id: int, caller: Caller, path: str, now: float
) -> ApiMaintenance | None:
    """Delete one stored window of ``site_id`` and audit it; None if it has no such window."""
    with store.session("writing", f"maintenance window {window_id} of {site_id}") as s:
        row = s.get(MaintenanceRow, window_id)
        if row is None or row.site_id != site_id:
            return None
        gone = _window(row)
        s.delete(row)
        audit(s, caller, "DELETE", path, "maintenance.delete", _detail(gone), now)
        s.commit()
    return gone


def _detail(w: ApiMaintenance) -> dict[str, Any]:
    return {"site_id": w.site_id, "window_id": w.id, "start": w.start.isoformat(),
            "end": w.end.isoformat(), "reason": w.reason}  # fmt: skip


def removed(windows: Sequence[ApiMaintenance], window_id: int) -> list[ApiMaintenance]:
    return [w for w in windows if w.id != window_id]
