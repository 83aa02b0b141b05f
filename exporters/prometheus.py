"""Prometheus metrics, built at scrape time from the monitor's in-memory view.

A custom collector (no global labelled gauges): each scrape reads the latest result and window
summary of every device and the current verdict of every site. Base units (seconds, ratios).

Per device (labels site, district, type, device, role):
  netmon_device_up                          1 if the last probe got a reply, 0 if not
  netmon_device_reachable_via_parent        0 if a device on its parent chain is down now
  netmon_device_loss_ratio                  loss in the last burst
  netmon_device_rtt_seconds                 mean RTT of the last burst
  netmon_device_rtt_max_seconds             max RTT of the last burst
  netmon_device_jitter_seconds              mean |ΔRTT| of the last burst
  netmon_device_last_probe_timestamp_seconds
  netmon_device_window_availability_ratio   probes answered / probes over the policy window
  netmon_device_window_loss_ratio           echoes lost / sent over the policy window
  netmon_device_window_rtt_p95_seconds      RTT p95 over the policy window
Each probe kind adds its own families through its ``metrics`` hook (same device labels), e.g.
the SNMP kind's interface, reboot and AP metrics (listed in ``probes/snmp_metrics.py``).
Per site (labels site, district, type):
  netmon_site_verdict{verdict=...}          1 for the current verdict, 0 for the others
  netmon_site_fully_functional              1 if the verdict is fully_functional
  netmon_site_verdict_since_timestamp_seconds
  netmon_site_devices{role, state}          devices by role and state (up, down,
                                            unreachable_parent, unknown)
  netmon_site_reasons{criterion}            reasons the site is not fully functional
  netmon_site_policy_threshold{threshold}   the site's effective verdict thresholds
netmon itself:
  netmon_probe_cycle_lag_seconds, netmon_probe_overruns_total, netmon_probes_started_total,
  netmon_results_taken_total, netmon_results_written_total, netmon_store_errors_total,
  netmon_store_pending_results, netmon_store_pending_capacity, netmon_store_dropped_results_total,
  netmon_last_evaluation_timestamp_seconds, netmon_sites, netmon_devices, netmon_info
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from netmon.inventory import Site
from netmon.verdict import Verdict, device_state, parent_down
from netmon.window import DeviceSummary
from probes import KINDS
from probes.base import DEVICE_LABELS, SITE_LABELS, KindSite

if TYPE_CHECKING:
    from netmon.monitor import Monitor, SiteView

DEVICE_STATES = ("up", "down", "unreachable_parent", "unknown")


def _g(name: str, doc: str, labels: list[str] | None = None, unit: str = "") -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels, unit=unit)


class NetmonCollector(Collector):
    def __init__(self, monitor: Monitor, version: str = "", icmp_mode: str = "") -> None:
        self.monitor = monitor
        self.version = version
        self.icmp_mode = icmp_mode

    def collect(self) -> Iterator[Metric]:
        if not self.monitor.ready:  # windows are being refilled in a worker thread
            yield from self._self_metrics()
            return
        now = self.monitor.clock()
        views = [(site, self.monitor.view(site, now)) for site in self.monitor.inventory.sites]
        yield from self._device_metrics(views)
        yield from self._kind_metrics(views, now)
        yield from self._site_metrics({site.id: v for site, v in views})
        yield from self._self_metrics()

    def _kind_metrics(self, views: list[tuple[Site, SiteView]], now: float) -> Iterator[Metric]:
        """Each probe kind's own metric families (SNMP: interfaces, reboots, APs)."""
        for kind in KINDS.values():
            sites = [KindSite(site, v.evidence.get(kind.name, {}), v.views.get(kind.name))
                     for site, v in views]  # fmt: skip
            yield from kind.metrics(sites, now)

    def _device_metrics(self, views: list[tuple[Site, SiteView]]) -> Iterator[Metric]:
        fams = {
            "up": _g("netmon_device_up", "1 if the device answered its last probe", DEVICE_LABELS),
            "via": _g("netmon_device_reachable_via_parent", "0 if a device on the parent chain is down now", DEVICE_LABELS),
            "loss": _g("netmon_device_loss_ratio", "Echo loss in the last burst", DEVICE_LABELS),
            "rtt": _g("netmon_device_rtt_seconds", "Mean RTT of the last burst", DEVICE_LABELS),
            "rttmax": _g("netmon_device_rtt_max_seconds", "Max RTT of the last burst", DEVICE_LABELS),
            "jitter": _g("netmon_device_jitter_seconds", "Mean absolute RTT difference in the last burst", DEVICE_LABELS),
            "ts": _g("netmon_device_last_probe_timestamp_seconds", "When the last probe started", DEVICE_LABELS),
            "wavail": _g("netmon_device_window_availability_ratio", "Share of probes answered over the policy window", DEVICE_LABELS),
            "wloss": _g("netmon_device_window_loss_ratio", "Echo loss over the policy window", DEVICE_LABELS),
            "wp95": _g("netmon_device_window_rtt_p95_seconds", "RTT p95 over the policy window", DEVICE_LABELS),
        }  # fmt: skip
        for site, view in views:
            summaries = view.summaries
            for dev in site.devices:
                s = summaries.get(dev.name)
                if s is None or s.last is None:
                    continue
                labels = [site.id, site.district, site.type, dev.name, dev.role]
                last = s.last
                fams["up"].add_metric(labels, float(last.ok))
                fams["via"].add_metric(labels, float(not parent_down(site, dev, summaries)))
                if last.sent:  # a state taken from a controller's AP table sent no echoes
                    fams["loss"].add_metric(labels, last.loss_ratio)
                fams["ts"].add_metric(labels, last.started_at)
                for key, value in (("rtt", last.rtt_avg), ("rttmax", last.rtt_max),
                                   ("jitter", last.jitter), ("wavail", s.availability),
                                   ("wloss", s.loss_ratio), ("wp95", s.rtt_p95)):  # fmt: skip
                    if value is not None:
                        fams[key].add_metric(labels, value)
        yield from fams.values()

    def _site_metrics(self, views: dict[str, SiteView]) -> Iterator[Metric]:
        m = self.monitor
        verdict = _g(
            "netmon_site_verdict", "1 for the site's current verdict", SITE_LABELS + ["verdict"]
        )
        ff = _g("netmon_site_fully_functional", "1 if the site is fully functional", SITE_LABELS)
        since = _g(
            "netmon_site_verdict_since_timestamp_seconds",
            "When the current verdict began",
            SITE_LABELS,
        )
        devices = _g(
            "netmon_site_devices", "Devices by role and state", SITE_LABELS + ["role", "state"]
        )
        reasons = _g(
            "netmon_site_reasons",
            "Reasons the site is not fully functional, by criterion",
            SITE_LABELS + ["criterion"],
        )
        policy = _g(
            "netmon_site_policy_threshold",
            "The site's effective verdict thresholds (ratios, seconds)",
            SITE_LABELS + ["threshold"],
        )
        for site_id, st in m.status.items():
            site = st.site
            labels = [site_id, site.district, site.type]
            for v in Verdict:
                verdict.add_metric(labels + [v.value], float(st.verdict == v))
            ff.add_metric(labels, float(st.verdict == Verdict.FULLY_FUNCTIONAL))
            since.add_metric(labels, st.since)
            view = views.get(site_id)
            for (role, state), n in _device_states(site, view.summaries if view else {}).items():
                devices.add_metric(labels + [role, state], n)
            for criterion, n in Counter(r.criterion for r in st.judgement.reasons).items():
                reasons.add_metric(labels + [criterion], n)
            eff = m.inventory.policy_for(site)
            for name in type(eff).model_fields:
                policy.add_metric(labels + [name], float(getattr(eff, name)))
        yield from (verdict, ff, since, devices, reasons, policy)

    def _self_metrics(self) -> Iterator[Metric]:
        m = self.monitor
        store = m.store
        yield _single(
            _g("netmon_probe_cycle_lag_seconds", "How late probes start against their schedule"),
            m.scheduler.lag,
        )
        yield _counter(
            "netmon_probe_overruns", "Probes still running when due again", m.scheduler.overruns
        )
        yield _counter("netmon_probes_started", "Probes started", m.scheduler.started)
        yield _counter("netmon_results_taken", "Probe results taken", m.results_taken)
        yield _counter("netmon_results_written", "Rows written to the store", store.written)
        yield _counter("netmon_store_errors", "Failed store writes", store.errors)
        yield _counter(
            "netmon_store_dropped_results",
            "Rows dropped because the store backlog was full",
            store.dropped,
        )
        yield _single(
            _g("netmon_store_pending_results", "Rows waiting to be written"), len(store.pending)
        )
        yield _single(
            _g(
                "netmon_store_pending_capacity",
                "Backlog size beyond which the oldest rows are dropped",
            ),
            store.max_pending,
        )
        yield _single(
            _g("netmon_last_evaluation_timestamp_seconds", "When verdicts were last computed"),
            m.last_evaluation,
        )
        yield _single(_g("netmon_sites", "Sites in the inventory"), len(m.inventory.sites))
        devices = sum(len(site.devices) for site in m.inventory.sites)
        yield _single(_g("netmon_devices", "Devices in the inventory"), devices)
        info = _g("netmon_info", "netmon build and mode", ["version", "icmp_mode"])
        info.add_metric([self.version, self.icmp_mode], 1.0)
        yield info  # fmt: skip


def _single(fam: GaugeMetricFamily, value: float) -> GaugeMetricFamily:
    fam.add_metric([], float(value))
    return fam


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=float(value))


def _device_states(
    site: Site, summaries: Mapping[str, DeviceSummary]
) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for dev in site.devices:
        key = (dev.role, device_state(site, dev, summaries))
        counts[key] = counts.get(key, 0) + 1
    return counts


def make_registry(monitor: Monitor, version: str = "", icmp_mode: str = "") -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NetmonCollector(monitor, version, icmp_mode))
    return registry
