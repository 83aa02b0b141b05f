"""The per-device and per-site metric families: one table, read by the cached renderer
(``exporters.render``) and by the uncached reference collector (``exporters.prometheus``).

A sample is ``(family key, extra label values, value)``; the device's or site's own labels come
first, the family's ``extra`` labels after them. Both collectors get a device's samples from
``device_samples`` (its parent chain by ``netmon.verdict.parent_down``), a site's from
``site_inputs`` + ``site_samples``, and each kind's families from ``kind_metrics``: one table,
so the cached text and the reference cannot drift apart.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client.core import Metric

from netmon.inventory import Policy, Site
from netmon.verdict import Verdict, device_state
from netmon.window import DeviceSummary
from probes import KINDS
from probes.base import KindSite

if TYPE_CHECKING:
    from netmon.monitor import SiteStatus, SiteView

DEVICE_STATES = ("up", "down", "unreachable_parent", "unknown")
Sample = tuple[str, tuple[str, ...], float]
Counts = tuple[int, int, int, int]  # probes, failed, echoes sent, echoes received
States = tuple[tuple[tuple[str, str], int], ...]  # ((role, state), devices)
Thresholds = tuple[tuple[str, float], ...]  # (policy field, value)
SiteInputs = tuple[Verdict, float, tuple[str, ...], States, Thresholds]


@dataclass(frozen=True, slots=True)
class Family:
    key: str
    name: str  # without ``_total`` for counters (the OpenMetrics family name)
    doc: str
    type: str = "gauge"
    extra: tuple[str, ...] = ()
    window: bool = False  # a per-device window gauge (optional: ``window_gauges``)

    @property
    def sample_name(self) -> str:
        return self.name + "_total" if self.type == "counter" else self.name


DEVICE_FAMILIES = (
    Family("up", "netmon_device_up", "1 if the device answered its last probe"),
    Family("via", "netmon_device_reachable_via_parent", "0 if a device on the parent chain is down now"),
    Family("loss", "netmon_device_loss_ratio", "Echo loss in the last burst"),
    Family("rtt", "netmon_device_rtt_seconds", "Mean RTT of the last burst"),
    Family("rttmax", "netmon_device_rtt_max_seconds", "Max RTT of the last burst"),
    Family("jitter", "netmon_device_jitter_seconds", "Mean absolute RTT difference in the last burst"),
    Family("ts", "netmon_device_last_probe_timestamp_seconds", "When the last probe started"),
    Family("wavail", "netmon_device_window_availability_ratio", "Share of probes answered over the policy window", window=True),
    Family("wloss", "netmon_device_window_loss_ratio", "Echo loss over the policy window", window=True),
    Family("wp95", "netmon_device_window_rtt_p95_seconds", "RTT p95 over the policy window", window=True),
    Family("probes", "netmon_device_probes", "Probes of the device taken since netmon started", "counter", ("kind",)),
    Family("failed", "netmon_device_probes_failed", "Probes that got no answer at all", "counter", ("kind",)),
    Family("sent", "netmon_device_echoes_sent", "Echoes (tries) sent to the device", "counter", ("kind",)),
    Family("received", "netmon_device_echoes_received", "Echoes (tries) the device answered", "counter", ("kind",)),
)  # fmt: skip

SITE_FAMILIES = (
    Family("verdict", "netmon_site_verdict", "1 for the site's current verdict", extra=("verdict",)),
    Family("ff", "netmon_site_fully_functional", "1 if the site is fully functional"),
    Family("since", "netmon_site_verdict_since_timestamp_seconds", "When the current verdict began"),
    Family("devices", "netmon_site_devices", "Devices by role and state", extra=("role", "state")),
    Family("reasons", "netmon_site_reasons", "Reasons the site is not fully functional, by criterion", extra=("criterion",)),
    Family("policy", "netmon_site_policy_threshold", "The site's effective verdict thresholds (ratios, seconds)", extra=("threshold",)),
)  # fmt: skip


def device_samples(
    s: DeviceSummary | None, via: bool, counts: Mapping[str, Counts]
) -> Iterator[Sample]:
    """One device's samples: its last probe and window (if any), then its counters by kind."""
    last = s.last if s is not None else None
    if s is not None and last is not None:
        yield "up", (), float(last.ok)
        yield "via", (), float(via)
        if last.sent:  # a state taken from a controller's AP table sent no echoes
            yield "loss", (), last.loss_ratio
        yield "ts", (), last.started_at
        for key, value in (("rtt", last.rtt_avg), ("rttmax", last.rtt_max),
                           ("jitter", last.jitter), ("wavail", s.availability),
                           ("wloss", s.loss_ratio), ("wp95", s.rtt_p95)):  # fmt: skip
            if value is not None:
                yield key, (), value
    for kind, c in counts.items():
        for key, n in zip(("probes", "failed", "sent", "received"), c, strict=True):
            yield key, (kind,), float(n)


def site_inputs(
    thresholds: Thresholds, site: Site, status: SiteStatus, summaries: Mapping[str, DeviceSummary]
) -> SiteInputs:
    """What a site's samples are made of (the renderer's cache key, too): its verdict, since,
    reasons' criteria, devices by (role, state) and effective thresholds (``policy_values``)."""
    criteria = tuple(r.criterion for r in status.judgement.reasons)
    return status.verdict, status.since, criteria, device_states(site, summaries), thresholds


def policy_values(policy: Policy) -> Thresholds:
    return tuple((n, float(getattr(policy, n))) for n in type(policy).model_fields)


def site_samples(inputs: SiteInputs) -> Iterator[Sample]:
    verdict, since, criteria, states, policy = inputs
    for v in Verdict:
        yield "verdict", (v.value,), float(verdict == v)
    yield "ff", (), float(verdict == Verdict.FULLY_FUNCTIONAL)
    yield "since", (), since
    for (role, state), n in states:
        yield "devices", (role, state), float(n)
    for criterion, n in Counter(criteria).items():
        yield "reasons", (criterion,), float(n)
    for name, value in policy:
        yield "policy", (name,), value


def device_states(site: Site, summaries: Mapping[str, DeviceSummary]) -> States:
    counts: dict[tuple[str, str], int] = {}
    for dev in site.devices:
        key = (dev.role, device_state(site, dev, summaries))
        counts[key] = counts.get(key, 0) + 1
    return tuple(counts.items())


def kind_metrics(views: Iterable[tuple[Site, SiteView]], now: float) -> Iterator[Metric]:
    """Each probe kind's own metric families (SNMP: interfaces, reboots, APs), all sites."""
    views = list(views)
    for kind in KINDS.values():
        sites = [KindSite(site, v.evidence.get(kind.name, {}), v.views.get(kind.name))
                 for site, v in views]  # fmt: skip
        yield from kind.metrics(sites, now)
