"""One router per resource; :func:`netmon.api.app.create_app` includes them all."""

from netmon.api.routes import health, history, metrics, results, sites, summary

__all__ = ["health", "history", "metrics", "results", "sites", "summary"]
