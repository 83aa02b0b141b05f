"""The cached /metrics renderer: per-site and per-device text kept between scrapes.

Three things are kept per site, each reused while what it was made from is unchanged:

* its *view* (device summaries, evidence, kind views), while the site has taken no result
  (``DeviceCounters.taken``) and nothing it is judged from changed (``Monitor.stamp``: e.g. its
  window re-read after a maintenance change), and the clock is before its evidence's next boundary
  (``netmon.monitor.next_boundary``: a bucket, outage or reboot leaving the window). Nothing the
  device and site series show changes in between (``longest_outage``, the one summary field that
  moves with the clock, is not exported). A view that is out of date is replaced by the one the
  judge last made (``Monitor.judged_view``: the site has not changed since it was judged, so it
  is the view now), else built (``Monitor.view``); with the judge every 5 s and a scrape every
  15 s, most sites take the judge's;
* each device's lines (one string per family), with the values they were rendered from: the
  summary's last result (by identity), window counts and p95, whether its parent chain is up
  (``netmon.verdict.parent_down``), its counters. A site whose view was rebuilt compares each
  device's values and re-renders only the devices whose values changed;
* the site's lines per family: its devices' lines joined (re-joined only when one of them
  changed), and its own series, keyed by verdict, since, reasons, device states and thresholds.

A scrape joins the sites' text of each family, in inventory order, under the family's header.
netmon's own metrics, process metrics and each kind's families (small) are formatted by
prometheus_client on every scrape. A reload (a new inventory) drops everything kept.

Cost per scrape, S sites and D devices: O(S) for sites with no result since the last scrape,
O(devices of the others) look-ups and tuple compares (their views: the judge's, else
``Monitor.view``, O(1) per device with an unchanged window), formatting only for devices whose
values changed, and joining ``14 × S`` strings. With 20-device sites probed every 60 s, nearly
every site has taken a result in 15 s (``bench/scrape.py``).

Call :meth:`Renderer.render` from the thread that changes the monitor (the event loop):
``Monitor.view`` prunes the windows it reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector

from exporters.counters import DeviceCounters
from exporters.families import (
    DEVICE_FAMILIES,
    SITE_FAMILIES,
    Counts,
    Family,
    Sample,
    SiteInputs,
    Thresholds,
    device_samples,
    kind_metrics,
    policy_values,
    site_inputs,
    site_samples,
)
from netmon.inventory import Inventory, Site
from netmon.monitor import next_boundary
from netmon.verdict import parent_down
from netmon.window import DeviceSummary

if TYPE_CHECKING:
    from netmon.monitor import Monitor, SiteStatus, SiteView

Lines = tuple[str, ...]  # one string per family of a table ("" where the family has no sample)


@dataclass(frozen=True, slots=True)
class Scrape:
    """What one scrape asks for."""

    openmetrics: bool = False
    sites: frozenset[str] | None = None  # site ids of the shard; None: every site
    inventory: bool = True  # device, site and kind series
    own: bool = True  # netmon's own, engine and process series
    window_gauges: bool = True


class Table:
    """A table of families, with what rendering a sample needs precomputed."""

    def __init__(self, families: tuple[Family, ...]) -> None:
        self.families = families
        self.index = {f.key: i for i, f in enumerate(families)}
        self.names = tuple(f.sample_name for f in families)
        self.empty: Lines = ("",) * len(families)

    def lines(self, prefix: str, samples: Iterable[Sample]) -> Lines:
        """Sample lines by family (``prefix``: the escaped own labels)."""
        out = list(self.empty)
        for key, extra, value in samples:
            i = self.index[key]
            if extra:
                labels = zip(self.families[i].extra, extra, strict=True)
                more = "".join([f',{n}="{escape(v)}"' for n, v in labels])
                out[i] += f"{self.names[i]}{{{prefix}{more}}} {number(value)}\n"
            else:
                out[i] += f"{self.names[i]}{{{prefix}}} {number(value)}\n"
        return tuple(out)


DEVICES = Table(DEVICE_FAMILIES)
SITES = Table(SITE_FAMILIES)
_WINDOW = frozenset(i for i, f in enumerate(DEVICE_FAMILIES) if f.window)
_SPECIAL = {"inf": "+Inf", "-inf": "-Inf", "nan": "NaN"}


def number(value: float) -> str:
    """A sample value as both formats write it (``repr``: the shortest exact decimal)."""
    text = repr(float(value))
    return _SPECIAL.get(text, text)


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def header(fam: Family, openmetrics: bool) -> str:
    name = fam.name if openmetrics or fam.type != "counter" else fam.sample_name
    return f"# HELP {name} {fam.doc}\n# TYPE {name} {fam.type}\n"


def prefix(names: Iterable[str], values: Iterable[str]) -> str:
    return ",".join(f'{n}="{escape(v)}"' for n, v in zip(names, values, strict=True))


_NEW = object()  # the key of a device not rendered yet (equal to no key)


@dataclass(slots=True, eq=False)
class SiteCache:
    """What is kept of one site between scrapes (see the module docstring)."""

    site: Site  # the inventory's object it was made for
    thresholds: Thresholds  # the site's effective policy (``policy_values``)
    prefix: str  # the site's escaped labels
    prefixes: list[str]  # each device's, in ``site.devices`` order
    taken: object = None  # (results taken, Monitor.stamp) of the site when ``view`` was made
    until: float = 0.0  # ``view`` is current before this time (with no new result)
    view: SiteView | None = None
    devices: list[tuple[object, Lines]] = field(default_factory=list)  # (key, lines) by device
    lines: Lines = DEVICES.empty  # the devices' lines joined, by family
    made_for: tuple[object, float, object] | None = None  # (judgement, since, view)
    inputs: SiteInputs | None = None
    site_lines: Lines = SITES.empty

    @classmethod
    def new(cls, inventory: Inventory, site: Site) -> SiteCache:
        own = (site.id, site.district, site.type)
        devices = [prefix(("site", "district", "type", "device", "role"), (*own, d.name, d.role))
                   for d in site.devices]  # fmt: skip
        return cls(site, policy_values(inventory.policy_for(site)), prefix(("site", "district", "type"), own),
                   devices, devices=[(_NEW, DEVICES.empty)] * len(devices))  # fmt: skip


class Renderer:
    """Renders /metrics for one monitor, keeping each site's and device's text."""

    def __init__(
        self, monitor: Monitor, counters: DeviceCounters, own: Iterable[Collector]
    ) -> None:
        self.monitor = monitor
        self.counters = counters
        self.own = CollectorRegistry(auto_describe=False)
        for collector in own:
            self.own.register(collector)
        self._sites: dict[str, SiteCache] = {}
        self._inventory = monitor.inventory

    def render(self, scrape: Scrape) -> str:
        if self.monitor.inventory is not self._inventory:  # reloaded
            self._inventory = self.monitor.inventory
            self.forget()
        out: list[str] = []
        if scrape.inventory and self.monitor.ready:
            now = self.monitor.clock()
            kept = [self._site(site, now) for site in self.selected(scrape.sites)]
            skip = frozenset() if scrape.window_gauges else _WINDOW
            out += _joined(DEVICES, [c.lines for c in kept], skip, scrape.openmetrics)
            status = self.monitor.status
            site_lines = [self._site_lines(c, status.get(c.site.id)) for c in kept]
            out += _joined(SITES, site_lines, frozenset(), scrape.openmetrics)
            views = [(c.site, c.view) for c in kept if c.view is not None]
            out.append(_families_text(kind_metrics(views, now), scrape.openmetrics))
        if scrape.own:
            out.append(_registry_text(self.own, scrape.openmetrics))
        if scrape.openmetrics:
            out.append("# EOF\n")
        return "".join(out)

    def selected(self, site_ids: frozenset[str] | None) -> list[Site]:
        sites = self.monitor.inventory.sites
        return list(sites) if site_ids is None else [s for s in sites if s.id in site_ids]

    def forget(self) -> None:
        """Drop everything kept, and the counters of devices no longer in the inventory."""
        self._sites.clear()
        sites = self.monitor.inventory.sites
        self.counters.retain({(s.id, d.name, k) for s in sites for d in s.devices for k in d.kinds})

    def _site(self, site: Site, now: float) -> SiteCache:
        """The site's kept state, its view and device lines brought up to date."""
        kept = self._sites.get(site.id)
        if kept is None or kept.site is not site:
            kept = self._sites[site.id] = SiteCache.new(self.monitor.inventory, site)
        taken = (self.counters.taken.get(site.id, 0), self.monitor.stamp(site.id))
        if kept.taken == taken and now < kept.until:
            return kept  # no result and no time boundary since its view was made
        judged = self.monitor.judged_view(site, now)  # the judge's, if nothing changed since
        if judged is not None:
            view, until = judged.view, judged.until
        else:
            view = self.monitor.view(site, now)
            until = next_boundary(view, now)
        kept.taken, kept.until, kept.view = taken, until, view
        if self._device_lines(kept, view.summaries):
            kept.lines = tuple(
                map("".join, zip(*(lines for _, lines in kept.devices), strict=True))
            )
        return kept

    def _device_lines(self, kept: SiteCache, summaries: dict[str, DeviceSummary]) -> bool:
        """Re-render the devices whose values changed; True if any did."""
        site, changed = kept.site, False
        any_down = any(s.is_up is False for s in summaries.values())  # else no parent is down
        for n, dev in enumerate(site.devices):
            s = summaries.get(dev.name)
            counts = self.counters.of(site.id, dev.name)
            via = not (any_down and parent_down(site, dev, summaries))
            key = (via, tuple(counts.items()), _summary_key(s))
            if kept.devices[n][0] != key:
                kept.devices[n] = (key, _device(kept.prefixes[n], s, via, counts))
                changed = True
        return changed

    def _site_lines(self, kept: SiteCache, st: SiteStatus | None) -> Lines:
        if st is None or kept.view is None:
            return SITES.empty  # not judged yet: no site series
        made = kept.made_for  # by identity: a judgement carried forward, the same view
        if made and made[0] is st.judgement and made[1] == st.since and made[2] is kept.view:
            return kept.site_lines
        inputs = site_inputs(kept.thresholds, kept.site, st, kept.view.summaries)
        if inputs != kept.inputs:
            kept.inputs = inputs
            kept.site_lines = SITES.lines(kept.prefix, site_samples(inputs))
        kept.made_for = (st.judgement, st.since, kept.view)
        return kept.site_lines


def _device(prefix: str, s: DeviceSummary | None, via: bool, counts: dict[str, Counts]) -> Lines:
    return DEVICES.lines(prefix, device_samples(s, via, counts))


def _summary_key(s: DeviceSummary | None) -> tuple[object, ...] | None:
    """What a device's lines are rendered from (the last result compares by identity first)."""
    if s is None:
        return None
    return (s.last, s.probes, s.up, s.sent_up, s.received_up, s.rtt_p95)


def _joined(table: Table, by_site: Sequence[Lines], skip: frozenset[int], om: bool) -> list[str]:
    """Each family's header and every site's lines of it, in table order (joined once, by
    the caller: the body is ~35 MB at 20,000 devices)."""
    out: list[str] = []
    for i, fam in enumerate(table.families):
        body = [] if i in skip else [lines[i] for lines in by_site if lines[i]]
        if body:
            out.append(header(fam, om))
            out += body
    return out


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
