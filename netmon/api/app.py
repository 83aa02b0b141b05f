"""The FastAPI application: routers, problem handlers, OpenAPI, and /docs served offline."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline
from prometheus_client.registry import CollectorRegistry

from netmon import __version__, status
from netmon.api import models, problems
from netmon.api.deps import read_access
from netmon.api.head import HeadAsGet
from netmon.api.routes import (
    audit,
    availability,
    changes,
    health,
    history,
    maintenance,
    metrics,
    pollers,
    progress,
    results,
    sites,
    summary,
)
from netmon.auth import Recent
from netmon.errors import StoreError
from netmon.monitor import Monitor
from netmon.progress import FiguresCache
from netmon.progress_index import Indexes, warm
from netmon.verdict import Criterion

DESCRIPTION = (
    "Is the Wi-Fi of each public health facility fully functional — why not, since when.\n\n"
    "Every error is an RFC 9457 problem (`application/problem+json`) with a short `error` code.\n\n"
    "Writes need a bearer token (`netmon token create`) with their scope; reads are open unless "
    "the inventory's api.read_requires_token (or NETMON_API_READ_REQUIRES_TOKEN) is true, then "
    "they need the scope `read`."
)
# The API's resources and the status board (netmon.status); their reads close with
# NETMON_API_READ_REQUIRES_TOKEN. The audit log always needs its own scope; /healthz and
# /metrics stay open.
READS = (
    sites,
    history,
    results,
    availability,
    progress,
    changes,
    summary,
    maintenance,
    status,
    pollers,
)
log = logging.getLogger("netmon.api")
OPEN = (health, metrics)
# FastAPI's validation-error schemas: every route documents its 422 as a ValidationProblem.
_REPLACED_SCHEMAS = ("HTTPValidationError", "ValidationError")


def create_app(
    monitor: Monitor, registry: CollectorRegistry, read_requires_token: bool = False
) -> FastAPI:
    """The API over a running monitor, with /metrics from ``registry``; with
    ``read_requires_token`` every GET of /api/v1 needs a token with the scope ``read``."""
    # Swagger UI and ReDoc from the assets fastapi-offline bundles: nothing loads from a CDN.
    app = FastAPIOffline(
        title="netmon", version=__version__, description=DESCRIPTION,
        static_url="/docs/static", swagger_ui_parameters={"validatorUrl": None},
    )  # fmt: skip
    app.state.monitor = monitor
    app.state.registry = registry
    app.state.figures = FiguresCache()
    app.state.indexes = Indexes()  # the fast path of /progress and /availability
    app.state.read_requires_token = read_requires_token
    app.state.callers = Recent()  # tokens accepted lately, for a database outage (netmon.auth)
    for module in READS:  # open reads declare no security: the document says what is asked
        if read_requires_token:
            app.include_router(module.router, dependencies=[Depends(read_access)],
                               responses=problems.responses(401, 403))  # fmt: skip
        else:
            app.include_router(module.router)
    for module in (audit, *OPEN):
        app.include_router(module.router)
    app.include_router(pollers.calls)  # scope poller
    problems.install(app)
    app.add_middleware(HeadAsGet)  # HEAD for every GET (netmon.api.head)
    app.openapi = _openapi(app)  # type: ignore[method-assign]
    return app


async def warm_up(app: FastAPI) -> int:
    """Build the progress index (netmon.progress_index) of the inventory's threshold and time
    zone in a thread, and today's live seconds up to now: ``netmon serve`` starts it beside the
    server, so the first /progress or /availability after a start reads only the rows rolled
    since, not every site_day row, and a window to now adds only the time since. A
    database that fails it is logged: the first request then builds what is left."""
    from netmon.api.routes.availability import tz_of

    monitor = app.state.monitor
    index = app.state.indexes.of(tz_of(monitor), monitor.inventory.report.day_threshold)
    started = time.perf_counter()
    try:
        n = await asyncio.to_thread(
            warm, index, monitor.store, monitor.inventory.sites, monitor.clock()
        )
    except StoreError as exc:
        log.warning("progress index not built at start-up (the first request builds it): %s", exc)
        return 0
    log.info("progress index built from %d site days in %.1f s", n, time.perf_counter() - started)
    return n


def _openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """FastAPI's OpenAPI document, with the problem schemas the routes' responses name."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, description=app.description,
                              routes=app.routes)  # fmt: skip
            found = doc.setdefault("components", {}).setdefault("schemas", {})
            for name in _REPLACED_SCHEMAS:
                found.pop(name, None)
            found.update(problems.schemas())
            if "Criterion" in found:
                found["Criterion"]["description"] = _criteria()
            _restore_examples(found)
            app.openapi_schema = doc
        return app.openapi_schema

    return openapi


def _criteria() -> str:
    """The Criterion enum's description: each code with its unit and meaning."""
    lines = [f"- `{c.value}` ({c.unit.value}): {c.description}" for c in Criterion]
    return "What a reason failed; `measured` and `threshold` are in its unit.\n\n" + "\n".join(
        lines
    )


def _restore_examples(found: dict[str, Any]) -> None:
    """Put back the nulls of the models' examples: FastAPI drops every null from the document
    (``exclude_none``), which leaves examples without their required nullable fields."""
    for name, schema in found.items():
        model = getattr(models, name, None)
        extra = getattr(model, "model_config", {}).get("json_schema_extra")
        if isinstance(extra, dict) and "examples" in extra:
            schema["examples"] = extra["examples"]
