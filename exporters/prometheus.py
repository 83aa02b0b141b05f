"""Prometheus metrics from the monitor's in-memory view.

``make_registry`` returns a :class:`NetmonRegistry`. /metrics calls its ``render``: the cached
renderer (``exporters.render``) that keeps each device's and site's text between scrapes and
re-renders only what changed, for one shard (``?district=``, ``?site=``, ``?type=``) or all,
in the Prometheus text format or OpenMetrics. Collected the ordinary way (``generate_latest``)
the same registry yields the same series uncached (:class:`NetmonCollector`: the reference the
tests and ``bench/scrape.py`` compare against). Base units (seconds, ratios).

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
  (the three window gauges can be left out per scrape: ``?window_gauges=false``)
Per device and probe kind (labels as above plus kind), totals since netmon started:
  netmon_device_probes_total, netmon_device_probes_failed_total (no answer at all),
  netmon_device_echoes_sent_total, netmon_device_echoes_received_total (tries)
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
  netmon_last_evaluation_timestamp_seconds, netmon_sites, netmon_devices, netmon_info,
  netmon_build_info{version, python}, netmon_probe_engine_events_total{kind, event} (each
  kind's ``engine_stats``: ICMP sent, received, timed_out, late, late_reads,
  no_kernel_timestamp, foreign, kernel_drops, send_errors, send_retries, ...),
  netmon_poller_up, netmon_poller_restarts_total (the poller process),
  netmon_poller_results_taken_total, netmon_poller_results_rejected_total,
  netmon_poller_duplicate_batches_total, netmon_pollers_live, netmon_sites_unwatched
  (netmon serve: remote pollers, netmon.fleet), netmon_late_results_total,
  netmon_history_rejudged_total (late results judged into their time, netmon.history),
  netmon_judge_leader, netmon_judge_takeovers_total, netmon_judge_results_tailed_total
  (netmon serve: the judging lease, netmon.judging),
  netmon_config_last_reload_successful, netmon_config_last_reload_timestamp_seconds,
  netmon_journal_backlog_rows, netmon_journal_bytes, netmon_journal_write_failing,
  netmon_journal_torn_tails_total, netmon_journal_corrupt_lines_total,
  netmon_journal_dropped_rows_total (the write-ahead journal, netmon.journal), and
  prometheus_client's process_* metrics (the server's; the poller's CPU is its own process).
"""

from __future__ import annotations

import platform
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporters.counters import DeviceCounters
from exporters.families import (
    DEVICE_FAMILIES,
    SITE_FAMILIES,
    Family,
    device_samples,
    kind_metrics,
    policy_values,
    site_inputs,
    site_samples,
)
from exporters.render import Renderer, Scrape
from netmon.fleet import Fleet
from netmon.inventory import Inventory, Site
from netmon.verdict import parent_down
from probes import KINDS
from probes.base import DEVICE_LABELS, SITE_LABELS

if TYPE_CHECKING:
    from netmon.journal import Journal
    from netmon.monitor import Monitor, SiteView


def _g(name: str, doc: str, labels: list[str] | None = None, unit: str = "") -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels, unit=unit)


def _family(fam: Family, labels: list[str]) -> GaugeMetricFamily | CounterMetricFamily:
    if fam.type == "counter":
        return CounterMetricFamily(fam.name, fam.doc, labels=labels + list(fam.extra))
    return _g(fam.name, fam.doc, labels + list(fam.extra))


class NetmonCollector(Collector):
    """Every device, site and kind series built from scratch on each collect (no cache)."""

    def __init__(self, monitor: Monitor, counters: DeviceCounters) -> None:
        self.monitor = monitor
        self.counters = counters

    def collect(self) -> Iterator[Metric]:
        if not self.monitor.ready:  # windows are being refilled in a worker thread
            return
        now = self.monitor.clock()
        views = [(site, self.monitor.view(site, now)) for site in self.monitor.inventory.sites]
        yield from self._device_metrics(views)
        yield from self._site_metrics(views)
        yield from kind_metrics(views, now)

    def _device_metrics(self, views: list[tuple[Site, SiteView]]) -> Iterator[Metric]:
        fams = {f.key: _family(f, DEVICE_LABELS) for f in DEVICE_FAMILIES}
        for site, view in views:
            for dev in site.devices:
                s = view.summaries.get(dev.name)
                via = not parent_down(site, dev, view.summaries)
                counts = self.counters.of(site.id, dev.name)
                labels = [site.id, site.district, site.type, dev.name, dev.role]
                for key, extra, value in device_samples(s, via, counts):
                    fams[key].add_metric(labels + list(extra), value)
        yield from (f for f in fams.values() if f.samples)

    def _site_metrics(self, views: list[tuple[Site, SiteView]]) -> Iterator[Metric]:
        fams = {f.key: _family(f, SITE_LABELS) for f in SITE_FAMILIES}
        inventory, status = self.monitor.inventory, self.monitor.status
        for site, view in views:
            st = status.get(site.id)
            if st is None:
                continue
            thresholds = policy_values(inventory.policy_for(site))
            inputs = site_inputs(thresholds, site, st, view.summaries)
            labels = [site.id, site.district, site.type]
            for key, extra, value in site_samples(inputs):
                fams[key].add_metric(labels + list(extra), value)
        yield from (f for f in fams.values() if f.samples)


def _journal_metrics(journal: Journal) -> Iterator[Metric]:
    """The write-ahead journal (netmon.journal): backlog, size, what recovery found."""
    yield _single(_g("netmon_journal_backlog_rows", "Rows journaled, not yet committed to the "
                     "database"), journal.backlog)  # fmt: skip
    yield _single(_g("netmon_journal_bytes", "Bytes of the journal on disk"), journal.size)
    yield _single(_g("netmon_journal_write_failing", "1 while writes to the journal fail"),
                  float(journal.failing))  # fmt: skip
    yield _counter(
        "netmon_journal_torn_tails", "Torn segment tails truncated at start", journal.torn
    )
    yield _counter("netmon_journal_corrupt_lines", "Corrupt journal lines skipped at start",
                   journal.corrupt)  # fmt: skip
    yield _counter("netmon_journal_dropped_rows", "Rows removed from the journal by its size bound "
                   "before they were committed", journal.dropped)  # fmt: skip


class OwnCollector(Collector):
    """netmon's own series: scheduler, store, build and each probe engine's counters."""

    def __init__(self, monitor: Monitor, version: str = "", icmp_mode: str = "") -> None:
        self.monitor = monitor
        self.version = version
        self.icmp_mode = icmp_mode
        self._devices: tuple[Inventory | None, int] = (None, 0)  # devices of that inventory

    def collect(self) -> Iterator[Metric]:
        m = self.monitor
        store = m.store
        poller = m.poller.stats()
        yield _single(
            _g("netmon_probe_cycle_lag_seconds", "How late probes start against their schedule"),
            poller.lag,
        )
        yield _counter(
            "netmon_probe_overruns", "Probes still running when due again", poller.overruns
        )
        yield _counter("netmon_probes_started", "Probes started", poller.started)
        yield _single(
            _g("netmon_poller_up", "1 while the poller is connected and sending results"),
            1.0 if m.poller.connected else 0.0,
        )
        yield _counter("netmon_poller_restarts", "Pollers started again after dying",
                       m.poller.restarts)  # fmt: skip
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
        if store.journal is not None:
            yield from _journal_metrics(store.journal)
        ok, at = m.last_reload
        yield _single(_g("netmon_config_last_reload_successful",
                         "1 if the last configuration load (start or SIGHUP) was applied"), float(ok))  # fmt: skip
        yield _single(_g("netmon_config_last_reload_timestamp_seconds",
                         "When the configuration was last loaded or a reload tried"), at)  # fmt: skip
        yield from self._inventory_metrics()
        yield self._engine_events(poller.engines)
        yield from self._trap_metrics()
        yield from self._fleet_metrics()
        yield from self._history_metrics()

    def _history_metrics(self) -> Iterator[Metric]:
        """Late results and the history re-judged from them (netmon.history)."""
        h = self.monitor.history
        yield _counter("netmon_late_results", "Results taken more than 10 s after their probe "
                       "ended (a replayed outbox, a stalled server)", h.late_results)  # fmt: skip
        yield _counter("netmon_history_rejudged", "Stretches of a site's verdict history "
                       "re-judged from late results", h.rejudged)  # fmt: skip

    def _fleet_metrics(self) -> Iterator[Metric]:
        """Remote pollers (netmon serve, netmon.fleet): what came from them and what was
        refused; nothing under netmon run."""
        fleet = self.monitor.poller
        if not isinstance(fleet, Fleet):
            return
        c = fleet.counts
        yield _counter("netmon_poller_results_taken", "Results taken from remote pollers", c.taken)
        yield _counter("netmon_poller_results_rejected",
                       "Results refused: not a device assigned to the poller that sent them", c.rejected)  # fmt: skip
        yield _counter("netmon_poller_duplicate_batches", "Batches sent again and taken once",
                       c.duplicate_batches)  # fmt: skip
        yield _single(_g("netmon_pollers_live", "Remote pollers holding a lease"), len(fleet.live))
        yield _single(_g("netmon_sites_unwatched", "Sites no live poller serves now (unknown, no_poller)"),
                      sum(1 for s in fleet.inventory.sites if fleet.unwatched_since(s.id) is not None)
                      if fleet.inventory is not None else 0)  # fmt: skip
        judging = self.monitor.judging
        if judging is not None:  # netmon.judging: two servers, one database
            yield _single(_g("netmon_judge_leader", "1 while this server holds the judging lease "
                             "(writes the verdict history)"), float(judging.leading()))  # fmt: skip
            yield _counter("netmon_judge_takeovers", "Times this server took the judging lease",
                           judging.takeovers)  # fmt: skip
            yield _counter("netmon_judge_results_tailed",
                           "Results another server took, read from the store and folded here",
                           judging.tailed)  # fmt: skip

    def _trap_metrics(self) -> Iterator[Metric]:
        """SNMP traps received, by what became of them, and when each device last sent each
        trap (netmon.traps: hints, never a verdict); nothing when no listener runs."""
        traps = self.monitor.traps
        if traps is None or traps.receiver is None:
            return
        family = CounterMetricFamily("netmon_traps", "SNMP traps received, by outcome",
                                     labels=["outcome"])  # fmt: skip
        for outcome, n in traps.receiver.counts.items():
            family.add_metric([outcome], n)
        yield family
        last = _g("netmon_trap_last_timestamp_seconds",
                  "When a device last sent this trap (netmon.traps: a hint, not a verdict)",
                  ["site", "device", "trap"])  # fmt: skip
        for (site, device, trap), at in list(traps.last.items()):
            last.add_metric([site, device, trap], at)
        yield last

    def _inventory_metrics(self) -> Iterator[Metric]:
        m = self.monitor
        yield _single(
            _g("netmon_last_evaluation_timestamp_seconds", "When verdicts were last computed"),
            m.last_evaluation,
        )
        yield _single(_g("netmon_sites", "Sites in the inventory"), len(m.inventory.sites))
        if self._devices[0] is not m.inventory:
            self._devices = (m.inventory, sum(len(site.devices) for site in m.inventory.sites))
        yield _single(_g("netmon_devices", "Devices in the inventory"), self._devices[1])
        info = _g("netmon_info", "netmon build and mode", ["version", "icmp_mode"])
        info.add_metric([self.version, self.icmp_mode], 1.0)
        yield info
        build = _g("netmon_build_info", "netmon's version and Python", ["version", "python"])
        build.add_metric([self.version, platform.python_version()], 1.0)  # a gauge: promtool
        yield build

    def _engine_events(self, by_kind: dict[str, dict[str, int]]) -> CounterMetricFamily:
        fam = CounterMetricFamily(
            "netmon_probe_engine_events",
            "Each probe engine's own counters since it opened, by event",
            labels=["kind", "event"],
        )
        for kind in KINDS.values():
            for event, n in by_kind.get(kind.name, {}).items():
                fam.add_metric([kind.name, event], float(n))
        return fam


def _single(fam: GaugeMetricFamily, value: float) -> GaugeMetricFamily:
    fam.add_metric([], float(value))
    return fam


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=float(value))


class NetmonRegistry(CollectorRegistry):
    """netmon's registry: ``render`` (cached, sharded) for /metrics; ``collect`` uncached."""

    def __init__(self, monitor: Monitor, version: str = "", icmp_mode: str = "") -> None:
        super().__init__(auto_describe=False)
        self.counters = DeviceCounters()
        monitor.listeners.append(self.counters.add)
        own: list[Collector] = [
            OwnCollector(monitor, version, icmp_mode),
            ProcessCollector(registry=None),
        ]
        self.renderer = Renderer(monitor, self.counters, own)
        self.register(NetmonCollector(monitor, self.counters))
        for collector in own:
            self.register(collector)

    def render(self, scrape: Scrape) -> str:
        return self.renderer.render(scrape)


def make_registry(monitor: Monitor, version: str = "", icmp_mode: str = "") -> NetmonRegistry:
    return NetmonRegistry(monitor, version, icmp_mode)


__all__ = ["NetmonCollector", "NetmonRegistry", "OwnCollector", "Scrape", "make_registry"]
