"""The status board's routes: GET /status (the state), /status/district/{name},
/status/site/{site_id}, each HTML, or its data as JSON with ``?format=json``; and
/status/static/{name} (the stylesheet, the script, the Devanagari font), all served by netmon
itself. Store reads are kept a minute (reads.Reads: after the first one a request never waits
for the store); the rest is built from memory."""

from __future__ import annotations

import logging
from importlib import resources
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from netmon.api.deps import AnyMonitorDep
from netmon.errors import StoreError
from netmon.monitor import Monitor
from netmon.rollup import local_date
from netmon.status import data, reads, render
from netmon.status.catalogue import Words
from netmon.timeline import day_bounds

router = APIRouter(prefix="/status", include_in_schema=False)
render.precompile()  # at start-up, not in the first request's time
log = logging.getLogger("netmon.status")
Format = Annotated[Literal["html", "json"], Query(description="json: the page's data")]
STATIC = {  # name -> media type: the only files /status/static serves
    "status.css": "text/css; charset=utf-8",
    "status.js": "text/javascript; charset=utf-8",
    "NotoSansDevanagari-Regular.ttf": "font/ttf",
}


def _reads(request: Request) -> reads.Reads:
    kept: reads.Reads | None = getattr(request.app.state, "status_reads", None)
    if kept is None:
        kept = request.app.state.status_reads = reads.Reads()
    return kept


def _out(request: Request, monitor: Monitor, template: str, page: dict[str, Any],
         fmt: str, status: int = 200, **extra: Any) -> Response:  # fmt: skip
    """The page as HTML in the request's language, or its data as JSON."""
    lang, remember = render.chosen_lang(request)
    if fmt == "json":
        return render.respond(request, render.json_body(page), "application/json", None,
                              remember, status)  # fmt: skip
    words = Words(lang, data.monitor_tz(monitor))
    html = render.page(template, page, words, path=request.url.path, **extra)
    return render.respond(request, html.encode("utf-8"), "text/html; charset=utf-8", lang,
                          remember, status)  # fmt: skip


def _not_ready(request: Request, monitor: Monitor, fmt: str, what: str | None) -> Response:
    """503 while the monitor loads (no verdicts yet), 404 for an unknown district or site."""
    page = {"page": "error", "error": "not_found" if what else "loading", "what": what}
    return _out(request, monitor, "error.html", page, fmt, 404 if what else 503)


@router.get("")
async def state_page(request: Request, monitor: AnyMonitorDep, format: Format = "html") -> Response:  # noqa: A002
    """% fully functional now by district, the rollout's progress, the sites down now."""
    if not monitor.ready:
        return _not_ready(request, monitor, format, None)
    now = monitor.clock()
    today = local_date(now, data.monitor_tz(monitor))
    inv, store = monitor.inventory, monitor.store
    progress: dict[str, int] | None = {}
    if inv.rollout is not None and store.migrated:
        last = min(today, inv.rollout.deadline)
        threshold = inv.report.day_threshold
        try:
            progress = await _reads(request).get(("progress", threshold), now, lambda: store.read_async(
                reads.read_progress, store, inv, threshold, inv.rollout.start, last))  # type: ignore[union-attr]  # fmt: skip
        except StoreError as exc:  # the verdicts in memory are still shown
            log.warning("status board: rollout progress not read: %s", exc)
            progress = None
    page = data.state_data(monitor, progress, today, now)
    return _out(request, monitor, "state.html", page, format)


async def _site_reads(
    request: Request, monitor: Monitor, key: str, sites: list[Any]
) -> dict[str, Any]:
    """The bar's days and outages of ``sites`` (kept a minute under ``key``), and their
    30-day availability from the same days (data.availability_30d: /api/v1/sites's
    figure, with today as accounted now)."""
    now, tz, store = monitor.clock(), data.monitor_tz(monitor), monitor.store
    first, _last = data.bar_days(local_date(now, tz))
    lo = day_bounds(first, tz)[0]

    async def read() -> dict[str, Any]:
        found: dict[str, Any] = {"days": {}, "outages": {}}
        if store.migrated:
            found["days"] = await store.read_async(reads.read_days, store, sites, tz, first, now)
            found["outages"] = await store.read_async(reads.read_outages, store, sites, lo, now)
        return {"bars": data.bars(monitor, sites, found, first, now),
                "availability": data.availability_30d(found["days"], local_date(now, tz))}  # fmt: skip

    try:
        kept = await _reads(request).get((key, first), now, read)
    except StoreError as exc:  # the verdicts in memory are still shown, the history is not
        log.warning("status board: history of %s not read: %s", key, exc)
        kept = {"bars": {}, "availability": {}, "unavailable": True}
    return dict(kept)


@router.get("/district/{name}")
async def district_page(
    request: Request, name: str, monitor: AnyMonitorDep,
    format: Format = "html",  # noqa: A002
) -> Response:  # fmt: skip
    """Every site of a district: verdict, reasons, since, 30-day availability, 90-day bar."""
    if not monitor.ready:
        return _not_ready(request, monitor, format, None)
    sites = data.district_sites(monitor.inventory, name)
    if not sites:
        return _not_ready(request, monitor, format, name)
    found = await _site_reads(request, monitor, "district:" + sites[0].district, sites)
    today = local_date(monitor.clock(), data.monitor_tz(monitor))
    page = data.district_data(monitor, sites, found, today, monitor.clock())
    return _out(request, monitor, "district.html", page, format)


@router.get("/site/{site_id}")
async def site_page(
    request: Request, site_id: str, monitor: AnyMonitorDep,
    format: Format = "html",  # noqa: A002
) -> Response:  # fmt: skip
    """One site: its bar, devices, verdict history, announced maintenance, HFR ID."""
    if not monitor.ready:
        return _not_ready(request, monitor, format, None)
    site = monitor.inventory.site(site_id)
    if site is None:
        return _not_ready(request, monitor, format, site_id)
    found = await _site_reads(request, monitor, "site:" + site.id, [site])
    store = monitor.store
    history: list[Any] = []
    if store.migrated and not found.get("unavailable"):
        try:
            history = await _reads(request).get(("history", site.id), monitor.clock(),
                                                lambda: store.read_async(store.verdict_history, site.id, 50))  # fmt: skip
        except StoreError as exc:
            log.warning("status board: verdict history of %s not read: %s", site.id, exc)
            found["unavailable"] = True
    now = monitor.clock()
    today = local_date(now, data.monitor_tz(monitor))
    page = data.site_data(monitor, site, found, history, today, now)
    return _out(request, monitor, "site.html", page, format)


@router.get("/static/{name}")
async def static(request: Request, name: str) -> Response:
    """The board's own assets (nothing is loaded from anywhere else)."""
    if name not in STATIC:
        return Response("not found\n", status_code=404, media_type="text/plain")
    body = resources.files("netmon.status").joinpath("static", name).read_bytes()
    response = render.respond(request, body, STATIC[name], None, False)
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response
