"""GET /metrics: Prometheus text format, collected at scrape time (exporters.prometheus)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from netmon.api.deps import RegistryDep

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(registry: RegistryDep) -> Response:
    body = await asyncio.to_thread(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
