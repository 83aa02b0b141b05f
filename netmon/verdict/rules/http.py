from __future__ import annotations

from collections.abc import Iterator

from netmon.verdict.context import SiteContext
from netmon.verdict.criteria import Criterion
from netmon.verdict.model import Reason
from netmon.verdict.rule import Rule
from probes.http import HttpFacts

DAY = 86400.0


class HttpChecks(Rule):
    """HTTP: a device's latest check failed, its answers are slow, or its certificate expires.

    Thresholds are the device's own (``http.max_latency``, ``http.cert_min_days``), not the
    site policy. A device that is down now (or behind a down parent) is skipped: its outage is
    reported already, and a web page never says a device is down by itself."""

    name = "http"
    criteria = (Criterion.HTTP_CHECK, Criterion.HTTP_LATENCY, Criterion.TLS_CERT_EXPIRING)

    def check(self, ctx: SiteContext) -> Iterator[Reason]:
        for name, f in ctx.facts.get("http", {}).items():
            if isinstance(f, HttpFacts) and name not in ctx.unreachable:
                yield from _reasons(name, f)


def _reasons(name: str, f: HttpFacts) -> Iterator[Reason]:
    if f.last is not None and not f.last.ok:
        msg = f"{name} {f.url}: {f.last.reason} ({f.failures} of {f.checks} checks failed in the window)"
        yield Reason(Criterion.HTTP_CHECK, msg, name)
    if f.latency_p95 is not None and f.latency_p95 > f.max_latency:
        msg = f"{name} {f.url} answers in {f.latency_p95:.2f}s (p95), limit {f.max_latency:g}s"
        yield Reason(Criterion.HTTP_LATENCY, msg, name, f.latency_p95, f.max_latency)
    limit = f.cert_min_days * DAY
    if f.cert_expires_in is not None and f.cert_expires_in < limit:
        days = f.cert_expires_in / DAY
        when = f"expires in {days:.1f} days" if days >= 0 else f"expired {-days:.1f} days ago"
        msg = f"{name} {f.url}: TLS certificate {when}, limit {f.cert_min_days} days"
        yield Reason(Criterion.TLS_CERT_EXPIRING, msg, name, f.cert_expires_in, limit)
