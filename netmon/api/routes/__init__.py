"""One router per resource; :func:`netmon.api.app.create_app` includes them all."""

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

__all__ = ["audit", "availability", "changes", "health", "history", "maintenance", "metrics",
           "pollers", "progress", "results", "sites", "summary"]  # fmt: skip
