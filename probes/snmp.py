"""SNMP probe: poll a device's system group, interfaces and access points by profile.

Wiring
    * :data:`KIND` is the probe kind (registered in ``probes/__init__.py``). Its params are
      :class:`SnmpParams` (the device's :class:`SnmpSettings`, built from the inventory by
      :func:`snmp_settings` or from YAML with :meth:`SnmpSettings.from_mapping`); its engine is
      one shared :class:`SnmpPoller` (``SnmpPoller.from_directory()`` loads the bundled
      profiles). The poller keeps per-device state between polls (rates, reboots, flaps), so
      keep one for the process.
    * The runner's deadline is ``params.deadline`` (``max_poll_time`` + 1 s); the probe bounds
      its poll by ``min(settings.max_poll_time, params.deadline - 0.5 s - time queued for a
      poll slot)`` so it returns a (partial) result before the runner gives up.
    * Evidence, verdict facts and the controllers' view of APs: ``probes.snmp_view``;
      metrics: ``probes.snmp_metrics``.
    * A poll is one ``client.read`` of the profile's scalars and tables, AP tables first
      (:func:`read_profile`). SNMPv2c (probes/snmp_bulk.py): each table is one chain of
      multi-column GETBULKs, the scalars non-repeaters of the first, up to
      ``settings.max_walks`` tables at once; the poller remembers each table's row count, which
      sizes the next poll's first request, so a 24-port switch is one request (bench/snmp.py).
      SNMPv1 and v3 (gufo-snmp): a GET, then one walk per column, ``max_walks`` at once.
    * SNMPv3: the poller remembers each device's engine id between polls (per ``(site,
      device)``, for the same address and port) and passes it to the client, which saves the
      discovery exchange; a stale id costs one unanswered attempt, then is rediscovered.

Result (:class:`ProbeResult`)
    kind "snmp"; ``ok`` = the agent answered our reads (some value came back, or the poll
    completed: a v3 discovery answer followed by an auth failure is not ok); ``sent``/``received`` =
    SNMP requests sent (retries and the v3 exchanges included: engine-id discovery unless
    remembered, and one boots/time refresh per session -- a v3 poll with N walks in flight opens
    N sessions) / answered, so ``loss_ratio`` is the share of unanswered requests. A request
    still in flight when the poll ends (its bound, or another walk failed) counts as sent and
    unanswered. ``rtts`` = (poll duration,) when ok;
    ``reason`` = why it failed, "partial poll: ..." when ok but incomplete, else "".
    ``findings`` is a :class:`SnmpFindings` (``probes.snmp_findings``; never a community or
    key); its JSON form, as stored::

        profile            str    profile name
        complete           bool   every object of the profile was read
        poll_seconds       float  time from first request to last answer
        sys_uptime_seconds float|None
        rebooted           bool   sysUpTime went back (or lagged) since the previous reading
        sys_name, sys_descr, sys_object_id   str|None
        scalars            {name: value}   the profile's other scalars
        interfaces         [..]|None  None when the profile has no interfaces role or the
                                      poll failed (not ok); each:
            {index:int, name:str|None, oper_up:bool|None, admin_up:bool|None,
             in_bps:float|None, out_bps:float|None,      # since the previous complete poll
             in_errors:int|None, out_errors:int|None,    # errors since the previous poll
             flaps:int,                                   # oper-status transitions seen so far
             in_octets_counter, out_octets_counter, in_errors_counter,
             out_errors_counter: int|None}               # the device's counters as read
        aps                [..]|None  None when the profile has no aps role or the poll
            failed; else every AP the device reports (a partial poll may list fewer):
            {name:str|None, mac:"aa:bb:..:ff"|None, up:bool|None, clients:int|None}
        aps_total, aps_up  int|None
        notes              [str]   counter wraps/resets, e.g. "ifIndex 3: in octets reset"

    Rates, error counts and flaps need a previous *complete* poll of the same device (state is
    kept per ``(site, device)`` and only complete polls update it); the first poll and the
    poll after a reboot report None rates. ``rebooted`` is judged against the latest sysUpTime
    read by any poll, a partial one too, so a reboot is counted once however the polls around
    it went (``probes.snmp_counters.DeviceState``).

Use :func:`match_aps` / :func:`missing_aps` to compare ``findings.to_json()["aps"]`` with the
inventory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from probes.base import JobSpec, KindSite, Loc, ProbeKind, ProbeResult, Target, failed
from probes.snmp_client import (
    ClientFactory,
    RequestStats,
    SnmpClient,
    SnmpError,
    TableRead,
    Value,
    open_client,
)
from probes.snmp_counters import DeviceState, reboots
from probes.snmp_extract import (
    Interval,
    RawPoll,
    ap_rows,
    interface_rows,
    match_aps,
    missing_aps,
    normalize_mac,
    other_scalars,
    system_info,
)
from probes.snmp_findings import AccessPoint, Interface, SnmpFindings
from probes.snmp_profiles import DEFAULT_DIR, Profile, ProfileError, load_profiles
from probes.snmp_settings import (
    DeviceSnmp,
    SnmpConfig,
    SnmpCredentials,
    SnmpLimits,
    check_poll,
    device_checks,
    poll_values,
)
from probes.snmp_view import SnmpEvidence, controller_view, controllers_correct

if TYPE_CHECKING:
    from prometheus_client.core import Metric

    from netmon.config import ValidatedConfig
    from netmon.inventory import Device, Inventory, Site
    from netmon.window import DeviceSummary
    from probes.base import Evidence

__all__ = [
    "ProfileError",
    "KIND",
    "SnmpFindings",
    "SnmpParams",
    "SnmpPoller",
    "SnmpSettings",
    "match_aps",
    "missing_aps",
    "normalize_mac",
]

log = logging.getLogger("netmon.probes.snmp")

_DEADLINE_MARGIN = 0.5  # seconds kept back from the runner's deadline
DEFAULT_MAX_WALKS = 4


@dataclass(frozen=True, slots=True)
class SnmpSettings:
    """How to poll one device. ``repr`` and errors never show the community or keys.

    The rules are those of :class:`probes.snmp_settings.SnmpPoll` (the inventory's models):
    construction validates through :func:`~probes.snmp_settings.check_poll`. Build it from a
    validated inventory with :meth:`from_config`. Empty secrets mean "none".
    """

    version: str = "2c"  # "1", "2c" or "3"
    community: str = field(default="", repr=False)
    user: str = ""
    auth_protocol: str = "SHA"  # SHA (SHA-1), SHA-224, SHA-256, SHA-384, SHA-512
    auth_key: str = field(default="", repr=False)  # passphrase; empty = noAuthNoPriv
    priv_protocol: str = "AES"  # AES (AES-128), AES-192, AES-256 (Blumenthal key expansion)
    priv_key: str = field(default="", repr=False)  # passphrase; empty = authNoPriv
    port: int = 161
    profile: str = "generic"
    timeout: float = 2.0  # seconds to wait for each response
    retries: int = 1  # extra attempts per request after a timeout
    max_poll_time: float = 20.0  # bound on one poll of the device, all requests together
    max_repetitions: int = 40  # GETBULK max-repetitions while a table's size is unknown
    max_walks: int = DEFAULT_MAX_WALKS  # walks (v2c: tables) in flight at once (1: in turn)

    def __post_init__(self) -> None:
        given = {f.name: getattr(self, f.name) for f in fields(self)}
        values = {k: v for k, v in given.items() if not (k in _OPTIONAL and v == "")}
        poll = check_poll(values)
        for name in given:  # normalised by the model (e.g. version 3 -> "3")
            value = getattr(poll, name)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            object.__setattr__(self, name, "" if value is None else value)

    @property
    def security_level(self) -> str:
        """``community`` for v1/v2c, else the v3 level: noAuthNoPriv, authNoPriv, authPriv."""
        if self.version != "3":
            return "community"
        if self.priv_key:
            return "authPriv"
        return "authNoPriv" if self.auth_key else "noAuthNoPriv"

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.community, self.auth_key, self.priv_key) if s)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> SnmpSettings:
        """Build from config (e.g. inventory YAML); unknown keys are errors."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"invalid SNMP settings: unknown key(s) {', '.join(unknown)}")
        return cls(**data)

    @classmethod
    def from_config(
        cls, credentials: SnmpCredentials, device: DeviceSnmp, limits: SnmpLimits
    ) -> SnmpSettings:
        """One device's settings from a validated inventory (secrets resolved at load)."""
        names = {f.name for f in fields(cls)}
        values = poll_values(credentials, device, limits)
        return cls(**{k: "" if v is None else v for k, v in values.items() if k in names})  # type: ignore[arg-type]


_OPTIONAL = ("community", "user", "auth_key", "priv_key")  # "" here means "not given"


def scrub(text: str, settings: SnmpSettings) -> str:
    """``text`` with any secret of ``settings`` masked (defence in depth for reasons)."""
    for secret in settings.secrets():
        text = text.replace(secret, "***")
    return text


# -- the poller ------------------------------------------------------------------------------


class SnmpPoller:
    """Polls devices by profile with bounded concurrency; remembers each device's last poll
    (and its SNMPv3 engine id).

    ``client_factory`` and ``clock`` are injectable so tests can put a fake behind the seam.
    """

    def __init__(
        self,
        profiles: Mapping[str, Profile],
        *,
        max_concurrency: int = 100,
        client_factory: ClientFactory = open_client,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be >= 1")
        self.profiles = dict(profiles)
        self._slots = asyncio.Semaphore(max_concurrency)
        self._client_factory = client_factory
        self._clock = clock
        self._states: dict[tuple[str, str], DeviceState] = {}
        self._engine_ids: dict[tuple[str, str], tuple[str, int, bytes]] = {}  # address, port
        # per device, at its last complete read: each table's rows and the client's layout
        self._rows: dict[tuple[str, str], tuple[dict[str, int], dict[str, object]]] = {}

    @classmethod
    def from_directory(cls, directory: Path | str = DEFAULT_DIR, **kwargs: Any) -> SnmpPoller:
        return cls(load_profiles(directory), **kwargs)

    def __repr__(self) -> str:
        return f"<SnmpPoller {len(self.profiles)} profiles, {len(self._states)} devices>"

    def state_of(self, target: Target) -> DeviceState | None:
        return self._states.get((target.site, target.device))

    def forget(self, target: Target) -> None:
        """Drop a device's state (removed from the inventory, or replaced)."""
        self._states.pop((target.site, target.device), None)
        self._engine_ids.pop((target.site, target.device), None)
        self._rows.pop((target.site, target.device), None)

    def engine_id_of(self, target: Target, settings: SnmpSettings) -> bytes | None:
        """The SNMPv3 engine id remembered for ``target`` at its current address and port."""
        known = self._engine_ids.get((target.site, target.device))
        if settings.version != "3" or known is None:
            return None
        address, port, engine_id = known
        return engine_id if (address, port) == (target.address, settings.port) else None

    async def poll(
        self, target: Target, settings: SnmpSettings, budget: float | None = None
    ) -> ProbeResult:
        """Poll ``target`` once; never raises for network trouble (a failure is data)."""
        started, entered = time.time(), self._clock()
        profile = self.profiles.get(settings.profile)
        if profile is None:
            return _failed(started, f"unknown SNMP profile {settings.profile!r}")
        async with self._slots:
            t0 = self._clock()
            bound = settings.max_poll_time
            if budget is not None:
                bound = min(bound, budget - (t0 - entered))
            if bound <= 0:
                return _failed(started, "no time left for the poll after waiting for a slot")
            raw, stats, error = await self._fetch(target, settings, profile, bound)
            duration = self._clock() - t0
        poll = _Poll(target, settings, profile, raw, stats, scrub(error, settings), t0, duration)
        return self._conclude(poll, started)

    async def _fetch(
        self, target: Target, settings: SnmpSettings, profile: Profile, bound: float
    ) -> tuple[RawPoll, RequestStats, str]:
        raw, stats, error = RawPoll(), RequestStats(), ""
        client: SnmpClient | None = None
        try:
            async with asyncio.timeout(bound):
                client = await self._client_factory(target.address, settings)
                stats = client.stats
                await client.open(self.engine_id_of(target, settings))
                rows, layouts = self._rows.get((target.site, target.device), (None, None))
                await read_profile(client, profile, raw, settings.max_walks, rows, layouts)
            self._rows[(target.site, target.device)] = (raw.row_counts(), raw.layouts)
        except TimeoutError:
            error = f"poll exceeded its {bound:.3g}s bound"
        except SnmpError as exc:
            error = str(exc)
        if client is not None and client.engine_id and settings.version == "3":
            key = (target.site, target.device)
            self._engine_ids[key] = (target.address, settings.port, client.engine_id)
        return raw, stats, error

    def _conclude(self, poll: _Poll, started: float) -> ProbeResult:
        key = (poll.target.site, poll.target.device)
        prev = self._states.get(key)
        ok = poll.raw.has_data() or (not poll.error and poll.stats.received > 0)
        found, state = _build(poll, prev, ok)
        if ok and not poll.error:
            self._states[key] = state
        elif ok and state.seen_at is not None and state.seen_ticks is not None:
            # partial: its counters are no baseline, but the reboot it saw is counted now
            self._states.setdefault(key, DeviceState()).saw_uptime(state.seen_at, state.seen_ticks)
        self._log_changes(poll, prev, ok, found)
        self._states.setdefault(key, DeviceState()).answering = ok
        return ProbeResult(
            kind="snmp",
            ok=ok,
            started_at=started,
            duration=time.time() - started,
            sent=poll.stats.sent,
            received=poll.stats.received,
            rtts=(poll.duration,) if ok else (),
            reason=_reason(ok, poll.error),
            findings=found,
        )

    def _log_changes(
        self, poll: _Poll, prev: DeviceState | None, ok: bool, found: SnmpFindings
    ) -> None:
        """Log state changes only: polls start failing, work again, the device rebooted."""
        name = f"{poll.target.site}/{poll.target.device}"
        was = prev.answering if prev else None
        if not ok and was is not False:
            log.warning("SNMP poll of %s fails: %s", name, _reason(ok, poll.error))
        elif ok and was is False:
            log.info("SNMP poll of %s works again", name)
        if found.rebooted:
            log.info("SNMP %s rebooted (sysUpTime went back)", name)


@dataclass(slots=True)
class _Poll:
    target: Target
    settings: SnmpSettings
    profile: Profile
    raw: RawPoll
    stats: RequestStats
    error: str
    at: float  # clock() when the first request went out
    duration: float


async def read_profile(
    client: SnmpClient,
    profile: Profile,
    raw: RawPoll,
    max_walks: int = DEFAULT_MAX_WALKS,
    rows: Mapping[str, int] | None = None,
    layouts: Mapping[str, object] | None = None,
) -> None:
    """Read the profile's scalars and columns into ``raw`` through ``client.read`` (tables AP
    first; ``rows``: each table's row count at the last poll, which sizes the first GETBULK;
    ``layouts``: the client's layout of each table then, see :class:`TableRead`). The first
    failure ends the read and is raised; what was read so far stays in ``raw``."""
    scalars = [column.oid for column in profile.scalars.values()]
    order = _table_order(profile)
    tables = [
        TableRead(
            [c.oid for c in profile.tables[name].columns.values()],
            repetitions=(rows or {}).get(name, -1) + 1,
            layout=(layouts or {}).get(name),
        )
        for name in order
    ]
    values: dict[str, Value] = {}
    try:
        await client.read(scalars, tables, values, max_walks)
    finally:
        for name, column in profile.scalars.items():
            if column.oid in values:
                raw.scalars[name] = values[column.oid]
        for name, table in zip(order, tables, strict=True):
            if table.layout is not None:
                raw.layouts[name] = table.layout
            for column_name, column in profile.tables[name].columns.items():
                if column.oid in table.values:
                    raw.tables.setdefault(name, {})[column_name] = table.values[column.oid]
                if column.oid in table.done:
                    raw.walked.add((name, column_name))


def _table_order(profile: Profile) -> list[str]:
    """AP tables first, so a poll cut short by its bound still says most about the APs."""
    first = []
    if profile.aps:
        first = [profile.aps.table]
        if profile.aps.clients and profile.aps.clients.table:
            first.append(profile.aps.clients.table)
    return first + [name for name in profile.tables if name not in first]


def _build(poll: _Poll, prev: DeviceState | None, ok: bool) -> tuple[SnmpFindings, DeviceState]:
    """The result's findings and the device state to keep if the poll was complete."""
    profile, raw = poll.profile, poll.raw
    info = system_info(profile, raw)
    read = info.pop("sys_uptime_ticks")
    ticks = read if isinstance(read, int) else None
    elapsed = poll.at - prev.at if prev and prev.at is not None else None
    went_back, reset = reboots(prev, poll.at, ticks)
    state = DeviceState(at=poll.at, uptime_ticks=ticks, seen_at=poll.at, seen_ticks=ticks)
    notes: list[str] = []
    interfaces: tuple[Interface, ...] | None = None
    if profile.interfaces and ok:
        interval = Interval(prev, elapsed, reset)
        rows, state.interfaces = interface_rows(profile, raw, interval, notes)
        interfaces = tuple(rows)
    aps = ap_rows(profile, raw) if profile.aps and ok else None
    found = SnmpFindings(
        profile=profile.name,
        complete=not poll.error,
        poll_seconds=round(poll.duration, 6),
        sys_uptime_seconds=ticks / 100 if ticks is not None else None,
        rebooted=went_back,
        **info,
        scalars=other_scalars(profile, raw),
        interfaces=interfaces,
        aps=None if aps is None else tuple(AccessPoint(**row) for row in aps),  # type: ignore[arg-type]
        notes=tuple(notes),
    )
    return found, state


def _reason(ok: bool, error: str) -> str:
    if not error:
        return ""
    return f"partial poll: {error}" if ok else error


def _failed(started: float, reason: str) -> ProbeResult:
    return failed("snmp", started, reason)


# -- the kind --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SnmpParams:
    """One device's poll and the runner's deadline for it (by default the poll's bound + 1 s)."""

    settings: SnmpSettings
    deadline: float = 0.0

    def __post_init__(self) -> None:
        if not self.deadline:
            object.__setattr__(self, "deadline", self.settings.max_poll_time + 1.0)


def snmp_settings(inventory: Inventory, dev: Device) -> SnmpSettings:
    """The probe's settings for one device (secrets resolved at inventory load)."""
    assert dev.snmp is not None
    cred = inventory.snmp.credentials[dev.snmp.credentials]
    return SnmpSettings.from_config(cred, dev.snmp, inventory.snmp.defaults)


class SnmpKind(ProbeKind[SnmpPoller | None, SnmpParams]):
    """SNMP: poll a device's system group, interfaces and APs with the shared poller."""

    name = "snmp"
    reachability = 1  # an agent that answers says the device is up, when nothing pings it
    device_settings = DeviceSnmp  # a device's `snmp:` key (credentials, profile, uplinks)
    config = SnmpConfig  # the inventory's `snmp:` section (credentials, defaults)
    findings = SnmpFindings

    def job(self, inventory: Inventory, site: Site, device: Device) -> JobSpec:
        return JobSpec(
            inventory.snmp.defaults.interval, SnmpParams(snmp_settings(inventory, device))
        )

    def open(self, config: ValidatedConfig) -> SnmpPoller:
        return SnmpPoller(config.snmp_profiles)  # bundled and site profiles, validated

    def reconfigure(self, engine: SnmpPoller | None, config: ValidatedConfig) -> None:
        if engine is not None:
            engine.profiles = dict(config.snmp_profiles)

    async def probe(
        self, engine: SnmpPoller | None, target: Target, params: SnmpParams
    ) -> ProbeResult:
        """Poll ``target``; the poll's budget keeps a margin inside the runner's deadline."""
        if engine is None:
            return _failed(time.time(), "no SNMP poller")
        return await engine.poll(target, params.settings, budget=params.deadline - _DEADLINE_MARGIN)

    def new_evidence(self, window: float) -> SnmpEvidence:
        return SnmpEvidence(window)

    def site_view(
        self,
        site: Site,
        evidence: Mapping[str, Evidence],
        seen: dict[str, DeviceSummary],
        now: float,
    ) -> object | None:
        """What the site's controllers report about its APs; corrects the APs' reachability."""
        snmp = {name: ev for name, ev in evidence.items() if isinstance(ev, SnmpEvidence)}
        if not snmp:
            return None
        view = controller_view(site, snmp)
        controllers_correct(view, seen)
        return view

    def checks(
        self, inventory: Inventory, device: Device, loc: Loc, profiles: Collection[str]
    ) -> Iterator[tuple[Loc, str]]:
        """The device's credentials and profile exist (and it has `snmp:` when probed so)."""
        for where, message in device_checks(device.snmp, device.kinds, inventory.snmp, profiles):
            yield loc + where, message

    def metrics(self, sites: Iterable[KindSite], now: float) -> Iterable[Metric]:
        from probes.snmp_metrics import snmp_metrics

        return snmp_metrics(sites, now)

    def forget(self, engine: SnmpPoller | None, site: str, device: str) -> None:
        if engine is not None:  # the poller keeps rate and reboot state per device
            engine.forget(Target(site, device, ""))


KIND = SnmpKind()
