"""One router per resource; :func:`netmon.api.app.create_app` includes them all."""

from netmon.api.routes import availability, health, history, metrics, results, sites, summary

__all__ = ["availability", "health", "history", "metrics", "results", "sites", "summary"]
