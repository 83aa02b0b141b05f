"""HTTP API for the NOC and the state's rollout tracker (OpenAPI at /docs, offline).

    GET /api/v1/sites                    every site with verdict, reasons, since (filters:
                                         district, type, verdict)
    GET /api/v1/sites/{id}               one site, with its devices and their latest results
    GET /api/v1/sites/{id}/history       the site's verdict changes, newest first
    GET /api/v1/sites/{id}/devices/{name}/results   results of one device (evidence)
    GET /api/v1/changes                  every site's verdict changes, oldest first (the feed)
    GET /api/v1/summary                  counts and % fully functional by district and type
    GET /healthz                         liveness, loading, store health
    GET /metrics                         Prometheus text format

Errors are RFC 9457 problems (:mod:`netmon.api.problems`). GET handlers never write: history
and results merge the rows still queued in the store with those in the database.

    app.py       create_app: routers, problem handlers, OpenAPI, /docs and /redoc
    deps.py      dependencies (MonitorDep, SiteDep, DeviceDep, ...)
    problems.py  RFC 9457 problems and the one exception handler
    models.py    response models, one family per resource
    pages.py     keyset pages: opaque cursors, the next link
    views.py     public models built from monitor state (sites, devices, SNMP)
    routes/      one router per resource
"""

from netmon.api.app import create_app

__all__ = ["create_app"]
