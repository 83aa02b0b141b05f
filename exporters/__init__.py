"""Exporters: views of the monitor's state for other systems (Prometheus today)."""

from exporters.prometheus import NetmonCollector, make_registry

__all__ = ["NetmonCollector", "make_registry"]
