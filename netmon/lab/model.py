"""Scenario files: simulated facilities, the faults of their gear, and the verdict to expect.

A scenario (``netmon/lab/scenarios/*.yaml``, package data: :func:`bundled_scenarios`) describes one site the way the netmon inventory does,
plus per-device faults for the lab's ICMP responder, optional SNMP agents, and what netmon
should conclude. Validation is strict (unknown keys are errors) and every device address must lie
inside the lab's private range 198.18.0.0/15 (benchmarking space, RFC 2544), outside the
198.18.0.0/24 block the lab keeps for its own link.

Schedules (``down_periods``, ``flap``, and the ``after`` of run-time ``events``) are written in
real-world time and multiplied by the scenario's ``time_scale`` (0.1 turns "down 1 min in every 3"
into 6 s in every 18 s). They count from the lab's *epoch* (responder start, or
:meth:`netmon.lab.Lab.reset_epoch`). Delay and jitter are never scaled: an RTT is an RTT.
``events`` change a device's SNMP agent at run time (reboot, an interface down, snmpd stopped);
each fires once per epoch.

Example::

    id: lossy-uplink
    description: BSNL FTTH line losing 3 % of packets
    time_scale: 1
    site:
      id: lab-lossy-uplink
      name: CHC Sisai (lab)
      district: Gumla
      type: chc
      devices:
        - {name: wan-1, role: wan, faults: {loss: 0.03}}
        - {name: ap-01, role: ap, parent: wan-1}
    expect:
      verdict: degraded
      reasons: [{criterion: uplink_loss, device: wan-1}]

Run-time changes (devices need ``snmp``)::

    events:
      - {after: 10s, action: reboot, device: router-1}
      - {after: 10s, action: interface, device: wan-1, interface: uplink0, oper: down}
      - {after: 10s, action: agent_stop, device: sw-01}
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from netmon.durations import parse_duration
from netmon.errors import NetmonError
from netmon.inventory import Role, SiteInfo, Slug
from netmon.verdict import Criterion, DeviceState, Verdict

LAB_NET = ipaddress.IPv4Network("198.18.0.0/15")
LINK_NET = ipaddress.IPv4Network("198.18.0.0/24")  # host <-> namespace link lives here


class LabError(NetmonError):
    """The lab cannot do what was asked (bad scenario, no root, namespace trouble...)."""


def seconds(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a duration, got a boolean")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*", value):
        return float(value)  # a bare number is seconds
    return parse_duration(value)


Seconds = Annotated[float, BeforeValidator(seconds), Field(ge=0.0)]
Positive = Annotated[float, BeforeValidator(seconds), Field(gt=0.0)]
Ratio = Annotated[float, Field(ge=0.0, le=1.0)]


def check_lab_address(value: str) -> str:
    """Return ``value`` if it is an IPv4 address usable for a lab device; raise ValueError."""
    try:
        ip = ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError(f"not an IPv4 address: {value!r}") from None
    if ip not in LAB_NET:
        raise ValueError(f"{ip} is outside the lab range {LAB_NET}; the lab refuses it")
    if ip in LINK_NET:
        raise ValueError(f"{ip} is inside {LINK_NET}, reserved for the lab's own link")
    if ip.packed[3] in (0, 255):
        raise ValueError(f"{ip}: host part .0/.255 is not used for lab devices")
    return str(ip)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Period(_Strict):
    """A scheduled outage, from ``start`` to ``end`` (open-ended if left out)."""

    start: Seconds = 0.0
    end: Seconds | None = None

    @model_validator(mode="after")
    def _order(self) -> Period:
        if self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class Flap(_Strict):
    """Up for ``period - down_for``, then down for ``down_for``, repeating (shifted by offset)."""

    period: Positive
    down_for: Positive
    offset: Seconds = 0.0

    @model_validator(mode="after")
    def _fits(self) -> Flap:
        if self.down_for >= self.period:
            raise ValueError("down_for must be shorter than period")
        return self


class Faults(_Strict):
    """What the lab does to echoes sent to one device.

    ``down`` and the schedules silence the device *and everything behind it* (its parent chain is
    the physical path). ``loss``/``delay``/``jitter`` apply to the device alone unless
    ``propagate`` is set, in which case the devices behind it suffer them too.
    """

    loss: Ratio = 0.0
    delay: Seconds = 0.0
    jitter: Seconds = 0.0  # each reply is delayed by delay ± uniform(jitter), never below 0
    down: bool = False
    down_periods: list[Period] = []
    flap: Flap | None = None
    propagate: bool = False


class Interface(_Strict):
    index: Annotated[int, Field(ge=1, le=2**31 - 1)]
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9/._-]{1,32}$")]
    oper: Literal["up", "down"] = "up"
    admin: Literal["up", "down"] = "up"
    speed_mbps: Annotated[int, Field(ge=0)] = 1000


def _default_interfaces() -> list[Interface]:
    return [Interface(index=1, name="uplink0"), Interface(index=2, name="lan0")]


Token = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{8,64}$")]


class Snmp(_Strict):
    """An SNMP agent (real net-snmp ``snmpd``) answering on the device's address.

    The agent answers SNMPv2c (``community``) and SNMPv3 authPriv SHA/AES (``v3_user`` with
    ``v3_auth_key``/``v3_priv_key``) at once; ``poll`` says which of the two the generated netmon
    inventory uses. Secrets left out are random for each lab (:meth:`with_secrets`), so no
    guessable community is ever served and a leak check can look for them verbatim.
    """

    community: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,32}$")] | None = None
    v3_user: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,32}$")] = "netmonlab"
    v3_auth_key: Token | None = None
    v3_priv_key: Token | None = None
    interfaces: list[Interface] = Field(default_factory=_default_interfaces)
    poll: Literal["v2c", "v3"] = "v2c"  # how netmon polls it (the inventory's credentials)
    profile: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")] = "generic"
    uplink_interfaces: list[str] = []  # ifName values netmon must see up (inventory field)

    @field_validator("interfaces")
    @classmethod
    def _unique(cls, value: list[Interface]) -> list[Interface]:
        if len({i.index for i in value}) != len(value):
            raise ValueError("interface indexes must be unique")
        if len({i.name for i in value}) != len(value):
            raise ValueError("interface names must be unique")
        return value

    @model_validator(mode="after")
    def _uplinks_exist(self) -> Snmp:
        names = {i.name for i in self.interfaces}
        unknown = [n for n in self.uplink_interfaces if n not in names]
        if unknown:
            raise ValueError(
                f"uplink_interfaces names no interface of this agent: {', '.join(unknown)}"
            )
        return self

    def interface(self, name: str) -> Interface:
        return next(i for i in self.interfaces if i.name == name)

    def with_secrets(self, token: Callable[[str], str]) -> Snmp:
        """A copy whose missing community/keys are ``token(kind)`` (random for a lab)."""
        fill = {"community": "c", "v3_auth_key": "a", "v3_priv_key": "p"}
        update = {f: token(kind) for f, kind in fill.items() if getattr(self, f) is None}
        return self.model_copy(update=update) if update else self

    @property
    def secrets(self) -> tuple[str, ...]:
        """Community and v3 keys (what must never show up in netmon's output)."""
        return tuple(s for s in (self.community, self.v3_auth_key, self.v3_priv_key) if s)


class LabDevice(_Strict):
    name: Slug
    role: Role
    address: str | None = None  # allocated by the lab when left out
    parent: str | None = None
    faults: Faults = Faults()
    snmp: Snmp | None = None

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        return None if value is None else check_lab_address(value)


class LabSite(SiteInfo):
    devices: list[LabDevice] = []

    @model_validator(mode="after")
    def _topology(self) -> LabSite:
        names = [d.name for d in self.devices]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate device names in site {self.id!r}")
        for dev in self.devices:
            if dev.parent is not None and dev.parent not in names:
                raise ValueError(f"{dev.name}: no device named {dev.parent!r} in the site")
        return self


def known_criterion(value: object) -> object:
    """A criterion netmon can emit; anything else is an error (a typo would never match)."""
    if isinstance(value, str) and value not in set(Criterion):
        raise ValueError(f"{value!r} is not a verdict criterion (netmon.verdict.Criterion)")
    return value


CriterionName = Annotated[Criterion, BeforeValidator(known_criterion)]
CriterionNames = Annotated[
    list[CriterionName], BeforeValidator(lambda v: [v] if isinstance(v, str) else v)
]


class ReasonExpect(_Strict):
    """Reasons whose criterion is ``criterion`` (or any of a list) and, if given, ``device``.
    Only criteria netmon can emit (:class:`netmon.verdict.Criterion`) are accepted."""

    criterion: CriterionNames
    device: str | None = None
    count: Annotated[int, Field(ge=0)] | None = None  # exactly this many (default: at least one)
    message_contains: list[str] = []

    @property
    def criteria(self) -> tuple[Criterion, ...]:
        return tuple(self.criterion)


class Transition(_Strict):
    """Two consecutive entries of /history, oldest first: ``from`` then one of ``to``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    from_: Verdict = Field(alias="from")
    to: list[Verdict]


class _Event(_Strict):
    after: Seconds  # from the lab epoch, times the scenario's time_scale
    device: str


class RebootEvent(_Event):
    """The device reboots: SNMP sysUpTime restarts from 0 (ICMP silent for ``downtime``)."""

    action: Literal["reboot"]
    downtime: Seconds = 0.0


class InterfaceEvent(_Event):
    """An interface of the device's agent changes ifOperStatus and/or ifAdminStatus."""

    action: Literal["interface"]
    interface: str  # ifName, one of the agent's interfaces
    oper: Literal["up", "down"] | None = None
    admin: Literal["up", "down"] | None = None

    @model_validator(mode="after")
    def _something(self) -> InterfaceEvent:
        if self.oper is None and self.admin is None:
            raise ValueError("an interface event needs oper and/or admin")
        return self


class AgentEvent(_Event):
    """The device's snmpd stops (no SNMP answer at all; ping unaffected) or starts again."""

    action: Literal["agent_stop", "agent_start"]


Event = Annotated[RebootEvent | InterfaceEvent | AgentEvent, Field(discriminator="action")]


class Expect(_Strict):
    verdict: Verdict | list[Verdict]
    reasons: list[ReasonExpect] = []
    only_listed_reasons: bool = False  # every reason must match one of ``reasons``
    forbidden_reasons: list[CriterionName] = []
    device_states: dict[str, DeviceState] = {}
    history: list[Transition] = []
    compare_with_fping: list[str] = []  # device names whose loss/RTT the e2e test cross-checks
    snmp_answered: dict[str, bool] = {}  # device -> did its latest SNMP poll get an answer
    # Set when netmon is known not to meet this expectation yet: the e2e test then expects the
    # check to fail (strict xfail, so it turns red once netmon is fixed) and does not wait for it.
    known_gap: str | None = None

    @property
    def verdicts(self) -> tuple[Verdict, ...]:
        return (self.verdict,) if isinstance(self.verdict, Verdict) else tuple(self.verdict)


class Scenario(_Strict):
    id: Slug
    description: Annotated[str, Field(min_length=1)]
    time_scale: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    site: LabSite
    events: list[Event] = []  # run-time changes, each once per lab epoch
    expect: Expect | None = None

    @model_validator(mode="after")
    def _expect_names(self) -> Scenario:
        names = {d.name for d in self.site.devices}
        if self.expect is None:
            return self
        used = {r.device for r in self.expect.reasons if r.device}
        used |= set(self.expect.device_states) | set(self.expect.compare_with_fping)
        used |= set(self.expect.snmp_answered)
        unknown = sorted(used - names)
        if unknown:
            raise ValueError(f"expect names unknown devices: {', '.join(unknown)}")
        no_agent = sorted(n for n in self.expect.snmp_answered if self._snmp(n) is None)
        if no_agent:
            raise ValueError(
                f"expect.snmp_answered names devices without snmp: {', '.join(no_agent)}"
            )
        return self

    @model_validator(mode="after")
    def _event_targets(self) -> Scenario:
        for i, ev in enumerate(self.events):
            where = f"events[{i}] ({ev.action} {ev.device})"
            if ev.device not in {d.name for d in self.site.devices}:
                raise ValueError(f"{where}: no device named {ev.device!r} in the site")
            snmp = self._snmp(ev.device)
            if snmp is None:
                raise ValueError(f"{where}: the device has no snmp agent to act on")
            if isinstance(ev, InterfaceEvent) and ev.interface not in {
                i.name for i in snmp.interfaces
            }:
                known = ", ".join(i.name for i in snmp.interfaces)
                raise ValueError(f"{where}: no interface {ev.interface!r} (known: {known})")
        return self

    def _snmp(self, name: str) -> Snmp | None:
        return next((d.snmp for d in self.site.devices if d.name == name), None)

    def scaled_events(self) -> list[tuple[float, Event]]:
        """(seconds after the epoch, event), in time order (stable for equal times)."""
        return sorted(((ev.after * self.time_scale, ev) for ev in self.events), key=lambda x: x[0])


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    """Validate one scenario document; raise LabError naming the file and the field."""
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LabError(f"{source}: YAML syntax: {exc}") from exc
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        lines = [f"{source}: {_where(e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise LabError("\n".join(lines)) from exc


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def bundled_scenario_dir() -> Traversable:
    """The lab's own scenarios (package data of ``netmon.lab``)."""
    return files("netmon.lab").joinpath("scenarios")


def bundled_scenarios() -> list[Scenario]:
    return load_scenarios(bundled_scenario_dir())


def load_scenarios(path: str | Path | Traversable) -> list[Scenario]:
    """One scenario file, or every ``*.yaml`` in a directory (sorted by name)."""
    where = Path(path) if isinstance(path, str) else path
    if where.is_dir():
        found = [f for f in where.iterdir() if f.name.endswith(".yaml") and f.is_file()]
        found.sort(key=lambda f: f.name)
    else:
        found = [where]
    if not found:
        raise LabError(f"{where}: no scenario files (*.yaml)")
    scenarios = [parse_scenario(_read(f), str(f)) for f in found]
    seen: dict[str, str] = {}
    for sc in scenarios:
        for key in (f"scenario {sc.id}", f"site {sc.site.id}"):
            if key in seen:
                raise LabError(f"duplicate {key} in {where}")
            seen[key] = sc.id
    return scenarios


def _read(f: Traversable) -> str:
    try:
        return f.read_text(encoding="utf-8")
    except OSError as exc:
        raise LabError(f"{f}: cannot read: {exc.strerror}") from None
