"""One router per resource; :func:`netmon.api.app.create_app` includes them all."""

from netmon.api.routes import (
    availability,
    changes,
    health,
    history,
    metrics,
    progress,
    results,
    sites,
    summary,
)

__all__ = [
    "availability",
    "changes",
    "health",
    "history",
    "metrics",
    "progress",
    "results",
    "sites",
    "summary",
]
