"""GET /metrics: the cached renderer of ``exporters.prometheus``, negotiated and shardable.

    Accept: application/openmetrics-text  OpenMetrics 1.0.0 (what Prometheus asks for first);
                                          otherwise the Prometheus text format 0.0.4
    Accept-Encoding: gzip                 the body gzip-compressed
    ?district=Ranchi&district=Khunti      only these districts' device, site and kind series
    ?site=…  ?type=…                      likewise (repeatable; different keys must all match)
    ?scope=inventory | own                only the inventory's series, or only netmon's own
                                          (scheduler, store, engines, process); default: both
    ?window_gauges=false                  leave out the three per-device window gauges

While the monitor is still loading (a restart), a Prometheus scrape is held until it is ready, at
most its ``X-Prometheus-Scrape-Timeout-Seconds`` less a second: its first answer then carries the
restored site series instead of none (which would end every alert on them, to fire again later).

An unknown district, site or type is a 404 problem, not an empty shard (a typo in a scrape
config must not look like an inventory without devices).
"""

from __future__ import annotations

import asyncio
import gzip
import time
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS
from starlette.responses import Response

from exporters.prometheus import NetmonRegistry
from exporters.render import Scrape
from netmon.api import problems
from netmon.api.deps import AnyMonitorDep, RegistryDep
from netmon.api.problems import NotFound
from netmon.inventory import Inventory
from netmon.monitor import Monitor

router = APIRouter(tags=["metrics"])
_FORMATS = {
    CONTENT_TYPE_PLAIN_0_0_4: {"schema": {"type": "string"}},
    OPENMETRICS: {"schema": {"type": "string"}},
}
Values = Annotated[list[str] | None, Query()]


@router.get(
    "/metrics", operation_id="metrics", response_class=Response,
    responses={200: {"description": "Prometheus text format, or OpenMetrics by `Accept`",
                     "content": _FORMATS}, **problems.responses(404, 422, 500)},
)  # fmt: skip
async def metrics(
    request: Request,
    registry: RegistryDep,
    monitor: AnyMonitorDep,
    district: Values = None,
    site: Values = None,
    type: Values = None,  # noqa: A002 - the query parameter's name
    scope: Literal["all", "inventory", "own"] = "all",
    window_gauges: bool = True,
) -> Response:
    """Every series, or a shard of them (see the parameters); built at scrape time."""
    openmetrics = _wants(request.headers.get("accept", ""), "application/openmetrics-text")
    compress = _wants(request.headers.get("accept-encoding", ""), "gzip")
    if not isinstance(registry, NetmonRegistry):  # a plain registry (tests of the app alone)
        body = await asyncio.to_thread(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)
    if not monitor.ready and scope != "own":
        await _until_ready(monitor, request.headers.get("x-prometheus-scrape-timeout-seconds"))
    shard = _shard(monitor.inventory, district, site, type)
    scrape = Scrape(openmetrics, shard, scope != "own", scope != "inventory", window_gauges)
    text = registry.render(scrape)  # here, not in a thread: it reads (and prunes) the windows
    body = await asyncio.to_thread(_encode, text, compress)
    headers = {"Vary": "Accept, Accept-Encoding"}
    if compress:
        headers["Content-Encoding"] = "gzip"
    media = OPENMETRICS if openmetrics else CONTENT_TYPE_PLAIN_0_0_4
    return Response(body, media_type=media, headers=headers)


async def _until_ready(monitor: Monitor, scrape_timeout: str | None) -> None:
    """Wait while the monitor loads, at most the scraper's timeout less a second (30 s)."""
    try:
        wait = min(float(scrape_timeout or 0) - 1.0, 30.0)
    except ValueError:
        return
    deadline = time.monotonic() + wait
    while not monitor.ready and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


def _encode(text: str, compress: bool) -> bytes:
    body = text.encode()
    return gzip.compress(body, compresslevel=1) if compress else body  # level 1: ~10x, fast


def _wants(header: str, token: str) -> bool:
    """Whether an Accept/Accept-Encoding header lists ``token`` with a non-zero q."""
    for item in header.split(","):
        name, *params = (p.strip() for p in item.split(";"))
        if name.lower() != token:
            continue
        q = next((p[2:] for p in params if p.lower().startswith("q=")), "1")
        try:
            return float(q) > 0
        except ValueError:
            return False
    return False


def _shard(
    inventory: Inventory,
    districts: list[str] | None,
    sites: list[str] | None,
    types: list[str] | None,
) -> frozenset[str] | None:
    """The site ids the query selects (``None``: no filter, every site)."""
    if not (districts or sites or types):
        return None
    chosen = list(inventory.sites)
    for field, wanted in (("district", districts), ("id", sites), ("type", types)):
        if not wanted:
            continue
        keys = {w.casefold() for w in wanted}
        known = {str(getattr(s, field)).casefold() for s in inventory.sites}
        missing = sorted(w for w in wanted if w.casefold() not in known)
        if missing:
            label = "site" if field == "id" else field
            raise NotFound(f"no {label} {', '.join(map(repr, missing))} in the inventory")
        chosen = [s for s in chosen if str(getattr(s, field)).casefold() in keys]
    return frozenset(s.id for s in chosen)
