"""The probe seam: one result type, one kind interface, one registry.

A probe kind (``icmp``, ``snmp``, ...) is a :class:`ProbeKind` object: its name, its settings
models (which the inventory uses), its engine's open/close, its probe, its typed findings and
how its results fold into a device's evidence. Every kind is registered in :data:`KINDS` by one
line in ``probes/__init__.py``; the monitor, the CLI, the store, the inventory and the views
loop over the registry and never name a kind.

A probe returns a down target as data (``ok=False`` with a reason); it raises only on bugs. The
runner (:func:`run_probe`), not the probe, owns the deadline (``params.deadline``) and turns any
escaped exception into a failed result, so one crashing probe never stops a cycle.

Adding a kind (the whole checklist)
    1. Write ``probes/<name>.py`` with a subclass of :class:`ProbeKind` and an instance
       ``KIND``. Give it at least ``name``, ``job`` (interval and params of one device's probe,
       the params carry the kind's ``deadline``) and ``probe``; override what else applies:

       * ``device_settings`` / ``config``: pydantic models of the device's ``<name>:`` key and
         of the inventory's top-level ``<name>:`` section (``None``: the kind has none);
       * ``enabled_by_default(device)``: whether a device without ``probes:`` gets the kind;
       * ``open(config)`` / ``close(engine)`` / ``reconfigure(engine, config)``: the shared
         engine (sync or async; ``config`` is the validated ``netmon.config.ValidatedConfig``);
       * ``findings``: a frozen dataclass with ``to_json()`` / ``from_json()`` (what a result
         found beyond reachability; stored in the result's JSON column and re-read at start);
       * ``reachability``: rank when several kinds say whether a device answers (lower wins:
         icmp 0, snmp 1); ``None`` (the default) means the kind never says a device is up;
       * ``needs_address``: ``False`` when the kind's settings name its target (http's URL);
       * ``new_evidence(window)``: how results fold (default: a rolling window; add facts for
         the verdict by returning your own :class:`Evidence`);
       * ``site_view``, ``checks``, ``metrics``, ``engine_stats``, ``forget``: site-level
         view, inventory cross checks, Prometheus metric families, the engine's own counters,
         and dropping a removed device's state.
    2. Add one line to ``probes/__init__.py``: ``register(<name>.KIND)`` (and the import).

Nothing else changes: the inventory accepts ``probes: [<name>]`` and the ``<name>:`` keys, the
CLI opens and closes the engine, the monitor schedules, folds, stores and re-reads its results.
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, Self, TypeVar

from probes.stall import StallDeadline

if TYPE_CHECKING:
    from prometheus_client.core import Metric
    from pydantic import BaseModel

    from netmon.config import ValidatedConfig
    from netmon.inventory import Device, Inventory, Site
    from netmon.window import DeviceSummary

log = logging.getLogger("netmon.probes")

Loc = tuple[str | int, ...]  # a path into the inventory, e.g. ("sites", 0, "devices", 2)
DEVICE_LABELS = ["site", "district", "type", "device", "role"]  # every per-device metric
SITE_LABELS = ["site", "district", "type"]


@dataclass(frozen=True, slots=True)
class Target:
    """One device to probe, as the scheduler hands it to a probe."""

    site: str
    device: str
    address: str
    role: str = "wan"


class Params(Protocol):
    """What the runner needs of any kind's params: how long the probe may take."""

    @property
    def deadline(self) -> float: ...


@dataclass(frozen=True, slots=True)
class ProbeParams:
    """A burst of ``count`` tries ``spacing`` apart (ICMP; also any kind that probes N times)."""

    count: int = 5
    timeout: float = 1.0  # seconds to wait for each reply
    spacing: float = 1.0  # seconds between echoes of one burst

    @property
    def deadline(self) -> float:
        """Longest a well-behaved probe with these params can take, plus a margin."""
        return (self.count - 1) * self.spacing + self.timeout + 1.0


class Findings(Protocol):
    """What a kind found beyond reachability: a frozen dataclass that round-trips JSON."""

    def to_json(self) -> dict[str, Any]: ...

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self: ...


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What one probe of one device found. RTTs are in seconds, in the order received."""

    kind: str
    ok: bool
    started_at: float  # Unix time, seconds
    duration: float = 0.0
    sent: int = 0
    received: int = 0
    rtts: tuple[float, ...] = ()
    reason: str = ""
    findings: Findings | None = None  # the kind's own dataclass (see ProbeKind.findings)

    @property
    def loss_ratio(self) -> float:
        return 1.0 - self.received / self.sent if self.sent else 1.0

    @property
    def rtt_min(self) -> float | None:
        return min(self.rtts) if self.rtts else None

    @property
    def rtt_avg(self) -> float | None:
        return math.fsum(self.rtts) / len(self.rtts) if self.rtts else None

    @property
    def rtt_max(self) -> float | None:
        return max(self.rtts) if self.rtts else None

    @property
    def jitter(self) -> float | None:
        """Mean absolute difference of consecutive RTTs (RFC 3550 style, unsmoothed)."""
        return jitter_of(self.rtts)


def jitter_of(rtts: tuple[float, ...] | list[float]) -> float | None:
    if len(rtts) < 2:
        return 0.0 if rtts else None
    return math.fsum(abs(b - a) for a, b in zip(rtts, rtts[1:], strict=False)) / (len(rtts) - 1)


def failed(kind: str, started: float, reason: str) -> ProbeResult:
    """A result that found nothing (no engine, no settings, crash, deadline)."""
    return ProbeResult(kind, False, started, time.time() - started, reason=reason)


class Evidence(Protocol):
    """One device's results of one kind over the policy window."""

    ever_up: bool  # answered at least once (set at start-up from the store, too)

    @property
    def window(self) -> float:
        """Seconds of results it keeps (the site's policy window)."""

    def add(self, result: ProbeResult) -> None: ...

    def close_outage(self, ts: float) -> None:
        """End an ongoing outage at ``ts`` (announced maintenance began)."""

    def summary(self, now: float) -> DeviceSummary | None:
        """Reachability over the window (``None``: this evidence says nothing about it)."""

    def facts(self, device: Device, now: float) -> object | None:
        """What the verdict rules read of this kind (``None``: nothing beyond reachability)."""


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One device's probe of one kind: how often, and with what params."""

    interval: float
    params: Params


@dataclass(frozen=True, slots=True)
class KindSite:
    """What a kind's metrics hook reads of one site."""

    site: Site
    evidence: Mapping[str, Evidence]  # by device name, devices probed by this kind
    view: object | None  # the kind's site_view, if it has one


E = TypeVar("E")  # the kind's engine
P = TypeVar("P", bound=Params)  # the kind's params


class ProbeKind(ABC, Generic[E, P]):
    """One probe kind. Subclass, set the class attributes, override what applies."""

    name: ClassVar[str]
    reachability: ClassVar[int | None] = None  # lower wins; None: never says up/down
    needs_address: ClassVar[bool] = True  # False: its settings name the target (e.g. a URL)
    device_settings: ClassVar[type[BaseModel] | None] = None  # the device's `<name>:` key
    config: ClassVar[type[BaseModel] | None] = None  # the inventory's top-level `<name>:`
    findings: ClassVar[type[Findings] | None] = None

    def enabled_by_default(self, device: Device) -> bool:
        """Whether a device without ``probes:`` gets this kind (default: it has the key)."""
        return getattr(device, self.name, None) is not None

    @abstractmethod
    def job(self, inventory: Inventory, site: Site, device: Device) -> JobSpec:
        """Interval and params (with the kind's deadline and settings) of one device's probe."""

    def open(self, config: ValidatedConfig) -> E | None | Awaitable[E | None]:
        """The shared engine for this run (sync or async); raise ProbeUnavailable if none."""
        return None

    def reconfigure(self, engine: E, config: ValidatedConfig) -> None:
        """A reload validated a new configuration (e.g. new SNMP profiles)."""

    def close(self, engine: E) -> None | Awaitable[None]:
        """Release the engine (sync or async)."""
        return None

    @abstractmethod
    async def probe(self, engine: E, target: Target, params: P) -> ProbeResult:
        """Probe ``target`` once; a down target is data, not an exception. ``engine`` is what
        ``open`` returned (``None`` when the run has none: return a failed result)."""

    def new_evidence(self, window: float) -> Evidence:
        """How this kind's results fold into a device's evidence (default: a rolling window)."""
        from netmon.window import DeviceWindow

        return DeviceWindow(window)

    def site_view(
        self,
        site: Site,
        evidence: Mapping[str, Evidence],
        seen: dict[str, DeviceSummary],
        now: float,
    ) -> object | None:
        """A site-level view of this kind's evidence; may correct ``seen`` (reachability)."""
        return None

    def checks(
        self, inventory: Inventory, device: Device, loc: Loc, profiles: Collection[str]
    ) -> Iterator[tuple[Loc, str]]:
        """Cross checks of one device (``loc``: where it is in the file) against the whole
        inventory: (where, message). ``profiles``: the probe profile names loaded (SNMP)."""
        return iter(())

    def metrics(self, sites: Iterable[KindSite], now: float) -> Iterable[Metric]:
        """Prometheus metric families of this kind (built at scrape time)."""
        return ()

    def engine_stats(self, engine: E) -> Mapping[str, int]:
        """The engine's own counters since it opened, by event name (exported as
        ``netmon_probe_engine_events_total{kind, event}``; a new counter appears by name)."""
        return {}

    def forget(self, engine: E, site: str, device: str) -> None:
        """Drop per-device state the engine keeps (the device left the inventory)."""

    def decode(self, text: str) -> Findings | None:
        """Findings from the store's JSON column (``None`` when empty or unreadable)."""
        if not text or self.findings is None:
            return None
        import json

        try:
            return self.findings.from_json(json.loads(text))
        except (ValueError, TypeError, KeyError) as exc:
            log.warning(
                "unreadable stored %s findings (%s); kept the result without them", self.name, exc
            )
            return None


AnyKind = ProbeKind[Any, Any]
KINDS: dict[str, AnyKind] = {}


def register(kind: AnyKind) -> AnyKind:
    """Add a kind to the registry (one line per kind in ``probes/__init__.py``)."""
    if kind.name in KINDS and KINDS[kind.name] is not kind:
        raise ValueError(f"probe kind {kind.name!r} is registered already")
    KINDS[kind.name] = kind
    return kind


def by_reachability(names: Iterable[str]) -> list[AnyKind]:
    """The kinds among ``names`` that say whether a device answers, best first."""
    kinds = [KINDS[n] for n in names if n in KINDS and KINDS[n].reachability is not None]
    return sorted(kinds, key=lambda k: k.reachability or 0)


class Engines:
    """The open engine of each kind, by kind name. ``get(KIND)`` is typed by the kind."""

    def __init__(self, engines: Mapping[str, object] | None = None) -> None:
        self._by_name: dict[str, object] = dict(engines or {})

    def get(self, kind: ProbeKind[E, Any]) -> E | None:
        return self._by_name.get(kind.name)  # type: ignore[return-value]

    def named(self, name: str) -> object | None:
        return self._by_name.get(name)

    def names(self) -> list[str]:
        """The kinds with an engine slot (opened, or ``None`` where a kind has no engine)."""
        return list(self._by_name)

    @classmethod
    async def open(cls, config: ValidatedConfig, kinds: Iterable[AnyKind] | None = None) -> Engines:
        """Open every registered kind's engine; on a failure close those opened so far."""
        engines = cls()
        try:
            for kind in list(KINDS.values()) if kinds is None else kinds:
                engine = kind.open(config)
                engines._by_name[kind.name] = (
                    await engine if inspect.isawaitable(engine) else engine
                )
        except BaseException:
            await engines.close()
            raise
        return engines

    def reconfigure(self, config: ValidatedConfig) -> None:
        """Hand a reloaded configuration to every engine."""
        for name, engine in self._by_name.items():
            if name in KINDS:
                KINDS[name].reconfigure(engine, config)

    async def close(self) -> None:
        """Close every engine (the last opened first); a failing close is logged, not raised."""
        for name in reversed(list(self._by_name)):
            engine, kind = self._by_name.pop(name), KINDS.get(name)
            if engine is None or kind is None:
                continue
            try:
                done = kind.close(engine)
                if inspect.isawaitable(done):
                    await done
            except Exception:
                log.exception("closing the %s engine failed", name)


async def run_probe(kind: AnyKind, engine: object, target: Target, params: Params) -> ProbeResult:
    """Run one probe under the runner's deadline; never raises (except cancellation).

    The deadline is ``params.deadline`` seconds of time the event loop could run: time the loop
    was stalled while the probe ran is added (at most 10x the deadline in all; see
    :mod:`probes.stall`), so a busy process never fails a probe.
    """
    started = time.time()
    deadline = StallDeadline(params.deadline)
    try:
        async with deadline:
            return await kind.probe(engine, target, params)
    except TimeoutError:
        reason = f"probe exceeded its {params.deadline:.1f}s deadline"
        if deadline.extended >= 0.1:
            reason += f" (extended by {deadline.extended:.1f}s for event-loop stalls)"
    except Exception as exc:  # a bug in a probe must not stop the cycle
        log.exception("%s probe of %s/%s crashed", kind.name, target.site, target.device)
        reason = f"probe error: {type(exc).__name__}: {exc}"
    return failed(kind.name, started, reason)
