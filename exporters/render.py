"""The cached /metrics renderer: per-device and per-site text kept between scrapes.

Each device's lines (one string per family) are cached with the values they were rendered
from: the summary's last result (by identity), its window counts and p95, whether its parent
chain is up, and its counters. A scrape compares that key and re-renders only devices whose
evidence changed since the last scrape (a new fold, a bucket leaving the window, a parent going
down); everything else is joined as it is. Sites likewise, keyed by verdict, since, reasons,
device states and thresholds. netmon's own metrics, process metrics and each kind's families
(small) are rendered by prometheus_client on every scrape.

Cost per scrape: O(devices) dictionary look-ups and tuple compares plus one ``str.join``;
formatting (``floatToGoString``, label escaping) only for what changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from exporters.counters import DeviceCounters
from exporters.families import (
    DEVICE_FAMILIES,
    SITE_FAMILIES,
    Family,
    Sample,
    device_samples,
    device_states,
    parent_names,
    parents_up,
    site_samples,
)
from netmon.inventory import Device, Site
from netmon.window import DeviceSummary
from probes import KINDS
from probes.base import KindSite

if TYPE_CHECKING:
    from netmon.monitor import Monitor, SiteStatus, SiteView

_DEVICE_INDEX = {f.key: i for i, f in enumerate(DEVICE_FAMILIES)}
_SITE_INDEX = {f.key: i for i, f in enumerate(SITE_FAMILIES)}
_WINDOW = frozenset(i for i, f in enumerate(DEVICE_FAMILIES) if f.window)
Fragments = tuple[tuple[int, str], ...]  # (family index, that family's lines), non-empty only


@dataclass(frozen=True, slots=True)
class Scrape:
    """What one scrape asks for."""

    openmetrics: bool = False
    sites: frozenset[str] | None = None  # site ids of the shard; None: every site
    inventory: bool = True  # device, site and kind series
    own: bool = True  # netmon's own, engine and process series
    window_gauges: bool = True


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def header(fam: Family, openmetrics: bool) -> str:
    name = fam.name if openmetrics or fam.type != "counter" else fam.sample_name
    return f"# HELP {name} {fam.doc}\n# TYPE {name} {fam.type}\n"


def lines(
    families: tuple[Family, ...], index: dict[str, int], prefix: str, samples: Iterable[Sample]
) -> Fragments:
    """Sample lines grouped by family (``prefix``: the escaped own labels)."""
    out: dict[int, list[str]] = {}
    for key, extra, value in samples:
        i = index[key]
        fam = families[i]
        more = "".join(f',{n}="{escape(v)}"' for n, v in zip(fam.extra, extra, strict=True))
        out.setdefault(i, []).append(
            f"{fam.sample_name}{{{prefix}{more}}} {floatToGoString(value)}\n"
        )
    return tuple((i, "".join(text)) for i, text in sorted(out.items()))


def prefix(names: Iterable[str], values: Iterable[str]) -> str:
    return ",".join(f'{n}="{escape(v)}"' for n, v in zip(names, values, strict=True))


class Renderer:
    """Renders /metrics for one monitor, keeping each device's and site's text."""

    def __init__(
        self, monitor: Monitor, counters: DeviceCounters, own: Iterable[Collector]
    ) -> None:
        self.monitor = monitor
        self.counters = counters
        self.own = CollectorRegistry(auto_describe=False)
        for collector in own:
            self.own.register(collector)
        self._devices: dict[tuple[str, str], tuple[object, Fragments]] = {}
        self._sites: dict[str, tuple[object, Fragments]] = {}
        self._inventory = monitor.inventory
        self._parent_names: dict[str, tuple[Site, dict[str, str | None]]] = {}

    def render(self, scrape: Scrape) -> str:
        if self.monitor.inventory is not self._inventory:  # reloaded: drop removed devices
            self._inventory = self.monitor.inventory
            self.forget_removed()
        out: list[str] = []
        if scrape.inventory and self.monitor.ready:
            now = self.monitor.clock()
            views = [(s, self.monitor.view(s, now)) for s in self.selected(scrape.sites)]
            out.append(self._device_text(views, scrape))
            out.append(self._site_text(views, scrape.openmetrics))
            out.append(_families_text(self._kind_metrics(views, now), scrape.openmetrics))
        if scrape.own:
            out.append(_registry_text(self.own, scrape.openmetrics))
        if scrape.openmetrics:
            out.append("# EOF\n")
        return "".join(out)

    def selected(self, site_ids: frozenset[str] | None) -> list[Site]:
        sites = self.monitor.inventory.sites
        return list(sites) if site_ids is None else [s for s in sites if s.id in site_ids]

    def forget_removed(self) -> None:
        """Drop cached text and counters of devices no longer in the inventory."""
        sites = self.monitor.inventory.sites
        devices = {(s.id, d.name) for s in sites for d in s.devices}
        self._devices = {k: v for k, v in self._devices.items() if k in devices}
        self._sites = {k: v for k, v in self._sites.items() if k in {s.id for s in sites}}
        self._parent_names.clear()
        self.counters.retain({(s.id, d.name, k) for s in sites for d in s.devices for k in d.kinds})

    # --- devices ----------------------------------------------------------------------------
    def _device_text(self, views: list[tuple[Site, SiteView]], scrape: Scrape) -> str:
        parts: list[list[str]] = [[] for _ in DEVICE_FAMILIES]
        for site, view in views:
            summaries = view.summaries
            vias = parents_up(self._parents(site), summaries)
            for dev in site.devices:
                for i, text in self._device(site, dev, summaries.get(dev.name), vias[dev.name]):
                    parts[i].append(text)
        skip = frozenset() if scrape.window_gauges else _WINDOW
        return "".join(
            header(fam, scrape.openmetrics) + "".join(parts[i])
            for i, fam in enumerate(DEVICE_FAMILIES)
            if parts[i] and i not in skip
        )

    def _device(self, site: Site, dev: Device, s: DeviceSummary | None, via: bool) -> Fragments:
        counts = self.counters.of(site.id, dev.name)
        key = (site.district, site.type, dev.role, via, tuple(counts.items()), _summary_key(s))
        cached = self._devices.get((site.id, dev.name))
        if cached is not None and cached[0] == key:
            return cached[1]
        labels = prefix(("site", "district", "type", "device", "role"),
                        (site.id, site.district, site.type, dev.name, dev.role))  # fmt: skip
        frags = lines(DEVICE_FAMILIES, _DEVICE_INDEX, labels, device_samples(s, via, counts))
        self._devices[(site.id, dev.name)] = (key, frags)
        return frags

    def _parents(self, site: Site) -> dict[str, str | None]:
        cached = self._parent_names.get(site.id)
        if cached is None or cached[0] is not site:
            cached = self._parent_names[site.id] = (site, parent_names(site))
        return cached[1]

    # --- sites ------------------------------------------------------------------------------
    def _site_text(self, views: list[tuple[Site, SiteView]], openmetrics: bool) -> str:
        parts: list[list[str]] = [[] for _ in SITE_FAMILIES]
        status = self.monitor.status
        for site, view in views:
            st = status.get(site.id)
            if st is None:
                continue
            for i, text in self._site(site, st, view):
                parts[i].append(text)
        return "".join(
            header(fam, openmetrics) + "".join(parts[i])
            for i, fam in enumerate(SITE_FAMILIES)
            if parts[i]
        )

    def _site(self, site: Site, st: SiteStatus, view: SiteView) -> Fragments:
        eff = self.monitor.inventory.policy_for(site)
        policy = tuple((n, float(getattr(eff, n))) for n in type(eff).model_fields)
        criteria = tuple(r.criterion for r in st.judgement.reasons)
        states = device_states(site, view.summaries)
        key = (site.district, site.type, st.verdict, st.since, criteria, states, policy)
        cached = self._sites.get(site.id)
        if cached is not None and cached[0] == key:
            return cached[1]
        labels = prefix(("site", "district", "type"), (site.id, site.district, site.type))
        frags = lines(
            SITE_FAMILIES,
            _SITE_INDEX,
            labels,
            site_samples(st.verdict, st.since, criteria, states, policy),
        )
        self._sites[site.id] = (key, frags)
        return frags

    # --- kinds ------------------------------------------------------------------------------
    def _kind_metrics(self, views: list[tuple[Site, SiteView]], now: float) -> Iterator[Metric]:
        """Each probe kind's own metric families (SNMP: interfaces, reboots, APs)."""
        for kind in KINDS.values():
            sites = [KindSite(site, v.evidence.get(kind.name, {}), v.views.get(kind.name))
                     for site, v in views]  # fmt: skip
            yield from kind.metrics(sites, now)


def _summary_key(s: DeviceSummary | None) -> tuple[object, ...] | None:
    """What a device's lines are rendered from (the last result compares by identity first)."""
    if s is None:
        return None
    return (s.last, s.probes, s.up, s.sent_up, s.received_up, s.rtt_p95)


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def _families_text(families: Iterable[Metric], openmetrics: bool) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(list(families)))
    return _registry_text(registry, openmetrics)


def _registry_text(registry: CollectorRegistry, openmetrics: bool) -> str:
    if not openmetrics:
        return generate_latest(registry).decode()
    return generate_openmetrics(registry).decode().removesuffix("# EOF\n")
