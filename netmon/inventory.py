"""The inventory: which sites exist, what gear each has, how to probe it and judge it.

Loaded from YAML and validated strictly: unknown keys are errors, and every problem is reported
with the file, the line and the field (``file.yaml:12: sites[3].devices[0].role: ...``). All
problems in a file are collected, not just the first.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from netmon.durations import Duration
from netmon.errors import ConfigError, ConfigProblem

JHARKHAND_DISTRICTS = (
    "Bokaro", "Chatra", "Deoghar", "Dhanbad", "Dumka", "East Singhbhum", "Garhwa", "Giridih",
    "Godda", "Gumla", "Hazaribagh", "Jamtara", "Khunti", "Koderma", "Latehar", "Lohardaga",
    "Pakur", "Palamu", "Ramgarh", "Ranchi", "Sahebganj", "Seraikela Kharsawan", "Simdega",
    "West Singhbhum",
)  # fmt: skip

Role = Literal["wan", "router", "switch", "ap", "controller"]
FacilityType = Literal["medical_college", "district_hospital", "chc", "phc", "other"]
ProbeKind = Literal["icmp", "snmp"]
Slug = Annotated[str, Field(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")]
Ratio = Annotated[float, Field(ge=0.0, le=1.0)]
Seconds = Annotated[Duration, Field(gt=0.0)]
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProbeSettings(_Strict):
    """How often and how hard to probe; any field left out is inherited."""

    interval: Seconds | None = None
    count: Annotated[int, Field(ge=1, le=100)] | None = None
    timeout: Seconds | None = None
    spacing: Seconds | None = None


class Defaults(_Strict):
    interval: Seconds = 60.0
    count: Annotated[int, Field(ge=1, le=100)] = 5
    timeout: Seconds = 1.0
    spacing: Seconds = 1.0


class PolicyOverride(_Strict):
    """Verdict thresholds (see docs in README); any field left out is inherited."""

    window: Seconds | None = None
    min_probes: Annotated[int, Field(ge=1)] | None = None
    uplink_availability: Ratio | None = None
    uplink_max_loss: Ratio | None = None
    ap_max_loss: Ratio | None = None
    rtt_p95_max: Seconds | None = None
    ap_min_up_ratio: Ratio | None = None
    small_site_aps: Annotated[int, Field(ge=0)] | None = None
    small_site_max_aps_down: Annotated[int, Field(ge=0)] | None = None
    max_outage: Seconds | None = None
    max_reboots: Annotated[int, Field(ge=0)] | None = None
    max_outages: Annotated[int, Field(ge=0)] | None = None


class Policy(_Strict):
    """Defaults anchored in TRAI QoS and leased-line SLAs (../shared/domain.md)."""

    window: Seconds = 86400.0
    min_probes: Annotated[int, Field(ge=1)] = 1
    uplink_availability: Ratio = 0.99
    uplink_max_loss: Ratio = 0.01
    ap_max_loss: Ratio = 0.02
    rtt_p95_max: Seconds = 0.120
    ap_min_up_ratio: Ratio = 0.90
    small_site_aps: Annotated[int, Field(ge=0)] = 5
    small_site_max_aps_down: Annotated[int, Field(ge=0)] = 1
    max_outage: Seconds = 4 * 3600.0
    max_reboots: Annotated[int, Field(ge=0)] = 0  # per device in the window (SNMP sysUpTime)
    max_outages: Annotated[int, Field(ge=0)] = 2  # per non-uplink device in the window: more is flapping

    def merged(self, override: PolicyOverride | None) -> Policy:
        if override is None:
            return self
        return self.model_copy(update=_set_fields(override))


class SecretRef(_Strict):
    """A secret kept out of the inventory: ``{env: NAME}`` or ``{file: /path}``."""

    env: str | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of env or file")
        return self


def _resolve_secret(value: object) -> object:
    """Literal strings, ``{env: NAME}`` or ``{file: PATH}`` become a SecretStr (hidden in reprs)."""
    if isinstance(value, dict):
        ref = SecretRef.model_validate(value)
        if ref.env is not None:
            if ref.env not in os.environ:
                raise ValueError(f"environment variable {ref.env} is not set")
            return SecretStr(os.environ[ref.env])
        assert ref.file is not None
        try:
            return SecretStr(ref.file.read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise ValueError(f"cannot read secret file {ref.file}: {exc.strerror}") from None
    return value


Secret = Annotated[SecretStr, BeforeValidator(_resolve_secret)]


class SnmpCredentials(_Strict):
    """How to talk to an agent; secrets may come from the environment or a file."""

    version: Literal["1", "2c", "3"] = "2c"
    community: Secret | None = None
    user: str | None = None
    auth_protocol: Literal["SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512"] = "SHA"
    auth_key: Secret | None = None
    priv_protocol: Literal["AES", "AES-192", "AES-256"] = "AES"
    priv_key: Secret | None = None
    port: Annotated[int, Field(ge=1, le=65535)] = 161

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value

    @model_validator(mode="after")
    def _complete(self) -> SnmpCredentials:
        if self.version != "3" and self.community is None:
            raise ValueError(f"SNMPv{self.version} needs a community")
        if self.version == "3" and not self.user:
            raise ValueError("SNMPv3 needs a user")
        if self.priv_key is not None and self.auth_key is None:
            raise ValueError("priv_key needs an auth_key (authPriv)")
        return self


class SnmpDefaults(_Strict):
    interval: Seconds = 60.0
    timeout: Seconds = 2.0  # per request
    retries: Annotated[int, Field(ge=0, le=10)] = 1
    max_poll_time: Seconds = 20.0  # bound on one whole poll of a device
    max_walks: Annotated[int, Field(ge=1, le=16)] = 4  # column walks in flight per device poll


class SnmpConfig(_Strict):
    credentials: dict[str, SnmpCredentials] = {}
    defaults: SnmpDefaults = SnmpDefaults()


class DeviceSnmp(_Strict):
    credentials: str
    profile: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")] = "generic"
    uplink_interfaces: list[str] = []  # ifName values whose link must be up


class Device(_Strict):
    name: Slug
    role: Role
    address: str | None = None
    parent: str | None = None
    mac: str | None = None  # how a wireless controller names this AP, if not by name
    probes: list[ProbeKind] | None = None  # default: icmp, plus snmp when `snmp` is given
    snmp: DeviceSnmp | None = None

    @property
    def kinds(self) -> list[str]:
        if self.probes is not None:
            return list(self.probes)
        return ["icmp", "snmp"] if self.snmp else ["icmp"]

    @field_validator("mac")
    @classmethod
    def _mac(cls, value: str | None) -> str | None:
        digits = re.sub(r"[\s:.\-]", "", value or "").lower()
        if value is not None and not re.fullmatch(r"[0-9a-f]{12}", digits):
            raise ValueError(f"not a MAC address: {value!r}")
        return value

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ipaddress.ip_address(value)
        except ValueError:
            if not _HOSTNAME.match(value) or value.replace(".", "").isdigit():
                raise ValueError(f"not an IP address or host name: {value!r}") from None
        return value


class Maintenance(_Strict):
    """Announced maintenance: results inside it are stored but left out of the verdict."""

    start: AwareDatetime
    end: AwareDatetime
    reason: Annotated[str, Field(min_length=1)]

    @model_validator(mode="after")
    def _ordered(self) -> Maintenance:
        if self.end <= self.start:
            raise ValueError("maintenance must end after it starts")
        return self

    def covers(self, ts: float) -> bool:
        return self.start.timestamp() <= ts < self.end.timestamp()


class SiteInfo(_Strict):
    """What identifies a facility and how it is probed and judged (shared with the lab)."""

    id: Slug
    name: Annotated[str, Field(min_length=1)]
    district: Annotated[str, Field(min_length=1)]
    type: FacilityType
    hfr_id: Annotated[str, Field(pattern=r"^IN\d{10}$")] | None = None
    probe: ProbeSettings | None = None
    policy: PolicyOverride | None = None


class Site(SiteInfo):
    maintenance: list[Maintenance] = []
    devices: list[Device] = []

    _by_name: dict[str, Device] = PrivateAttr(default_factory=dict)

    def model_post_init(self, _context: Any) -> None:
        self._by_name = {d.name: d for d in reversed(self.devices)}  # first one wins

    def device(self, name: str) -> Device | None:
        return self._by_name.get(name)

    def in_maintenance(self, ts: float) -> Maintenance | None:
        return next((m for m in self.maintenance if m.covers(ts)), None)


class Inventory(_Strict):
    state: str = "Jharkhand"
    defaults: Defaults = Defaults()
    policy: Policy = Policy()
    snmp: SnmpConfig = SnmpConfig()
    sites: list[Site] = []

    _by_id: dict[str, Site] = PrivateAttr(default_factory=dict)
    _policies: dict[str, Policy] = PrivateAttr(default_factory=dict)

    def model_post_init(self, _context: Any) -> None:
        self._by_id = {s.id: s for s in reversed(self.sites)}  # first one wins
        self._policies = {s.id: self.policy.merged(s.policy) for s in self.sites}

    def site(self, site_id: str) -> Site | None:
        return self._by_id.get(site_id)

    def probe_settings(self, site: Site) -> Defaults:
        if site.probe is None:
            return self.defaults
        return self.defaults.model_copy(update=_set_fields(site.probe))

    def policy_for(self, site: Site) -> Policy:
        cached = self._policies.get(site.id)
        return cached if cached is not None and self._by_id.get(site.id) is site else self.policy.merged(site.policy)


def _set_fields(model: BaseModel) -> dict[str, Any]:
    """The fields given a value (raw, not serialised: durations stay seconds)."""
    return {k: v for k in type(model).model_fields if (v := getattr(model, k)) is not None}


# --- loading ---------------------------------------------------------------------------------

Path_ = tuple[str | int, ...]


def load_inventory(path: str | Path) -> Inventory:
    """Read and validate an inventory file; raise ConfigError listing every problem found."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigProblem(str(path), None, "", f"cannot read: {exc}")]) from exc
    return parse_inventory(text, str(path))


def parse_inventory(text: str, filename: str = "<inventory>") -> Inventory:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", None) or str(exc)
        context, cmark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and cmark:
            problem += f" ({context} at line {cmark.line + 1})"
        raise ConfigError([ConfigProblem(filename, line, "", f"YAML syntax: {problem}")]) from exc
    lines: dict[Path_, int] = {}
    problems: list[ConfigProblem] = []
    if node is not None:
        _index_lines(node, (), lines, problems, filename)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem(filename, 1, "", "the top level must be a mapping")])
    try:
        inventory = Inventory.model_validate(data)
    except ValidationError as exc:
        problems += [_problem(err, lines, filename) for err in exc.errors()]
        raise ConfigError(problems) from exc
    problems += [
        ConfigProblem(filename, _line_of(loc, lines), _field(loc), msg)
        for loc, msg in _cross_checks(inventory)
    ]
    if problems:
        raise ConfigError(problems)
    return inventory


def _index_lines(
    node: yaml.Node, path: Path_, lines: dict[Path_, int], problems: list[ConfigProblem], fn: str
) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            if name in seen:
                line = key.start_mark.line + 1
                problems.append(ConfigProblem(fn, line, _field(path + (name,)), "duplicate key"))
            seen.add(name)
            _index_lines(value, path + (name,), lines, problems, fn)
            lines[path + (name,)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, path + (i,), lines, problems, fn)


def _line_of(loc: Path_, lines: dict[Path_, int]) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _field(loc: Path_) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _problem(err: Any, lines: dict[Path_, int], filename: str) -> ConfigProblem:
    # pydantic puts the union/annotated branch name into loc for some types; drop non-fields.
    loc = tuple(p for p in err["loc"] if isinstance(p, int) or not _is_type_tag(p))
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "unknown field"
    elif err["type"] == "missing":
        message = "required field is missing"
    return ConfigProblem(filename, _line_of(loc, lines), _field(loc), message)


def _is_type_tag(part: str) -> bool:
    """pydantic puts union branches and validator wrappers into ``loc``; they are not fields."""
    return "[" in part or "(" in part or part in {"constrained-int", "int", "float", "str", "SecretStr"}


def _cross_checks(inv: Inventory) -> Iterator[tuple[Path_, str]]:
    site_ids: dict[str, int] = {}
    addresses: dict[str, str] = {}
    for i, site in enumerate(inv.sites):
        here: Path_ = ("sites", i)
        if site.id in site_ids:
            yield here + ("id",), f"duplicate site id {site.id!r} (first at sites[{site_ids[site.id]}])"
        site_ids.setdefault(site.id, i)
        if inv.state.lower() == "jharkhand" and site.district not in JHARKHAND_DISTRICTS:
            yield here + ("district",), (
                f"{site.district!r} is not one of Jharkhand's 24 districts "
                f"({', '.join(JHARKHAND_DISTRICTS)}); set top-level 'state' for other states"
            )
        yield from _timing_checks(inv, site, here)
        yield from _device_checks(inv, site, here, addresses)


def _timing_checks(inv: Inventory, site: Site, here: Path_) -> Iterator[tuple[Path_, str]]:
    eff = inv.probe_settings(site)
    burst = (eff.count - 1) * eff.spacing + eff.timeout
    if burst >= eff.interval:
        where = here + ("probe",) if site.probe else ("defaults",)
        yield where, (
            f"a burst of {eff.count} echoes {eff.spacing:g}s apart with a {eff.timeout:g}s timeout "
            f"takes {burst:g}s, not less than the {eff.interval:g}s interval"
        )


def _device_checks(
    inv: Inventory, site: Site, here: Path_, addresses: dict[str, str]
) -> Iterator[tuple[Path_, str]]:
    names: set[str] = set()
    for j, dev in enumerate(site.devices):
        at: Path_ = here + ("devices", j)
        if dev.name in names:
            yield at + ("name",), f"duplicate device name {dev.name!r} in site {site.id!r}"
        names.add(dev.name)
        owner = f"{site.id}/{dev.name}"
        if dev.address is None and dev.kinds:
            yield at + ("address",), f"needed to probe it ({', '.join(dev.kinds)}); or set probes: []"
        elif dev.address is not None and dev.address in addresses:
            yield at + ("address",), f"address {dev.address} is already used by {addresses[dev.address]}"
        if dev.address is not None:
            addresses.setdefault(dev.address, owner)
        yield from _snmp_checks(inv, dev, at)
        if dev.parent is not None:
            if dev.parent == dev.name:
                yield at + ("parent",), "a device cannot be its own parent"
            elif site.device(dev.parent) is None:
                yield at + ("parent",), f"no device named {dev.parent!r} in site {site.id!r}"
            elif _in_cycle(site, dev):
                yield at + ("parent",), f"parent chain of {dev.name!r} loops back to itself"


def _snmp_checks(inv: Inventory, dev: Device, at: Path_) -> Iterator[tuple[Path_, str]]:
    if "snmp" in dev.kinds and dev.snmp is None:
        yield at + ("snmp",), "probes include snmp but the device has no snmp settings"
    if dev.snmp is None:
        return
    if dev.snmp.credentials not in inv.snmp.credentials:
        known = ", ".join(sorted(inv.snmp.credentials)) or "none defined"
        yield at + ("snmp", "credentials"), f"no SNMP credentials named {dev.snmp.credentials!r} (known: {known})"
    profiles = snmp_profile_names()
    if dev.snmp.profile not in profiles:
        yield at + ("snmp", "profile"), f"no SNMP profile {dev.snmp.profile!r} (known: {', '.join(sorted(profiles))})"


def snmp_profile_names() -> set[str]:
    from probes.snmp_profiles import DEFAULT_DIR

    return {p.stem for p in DEFAULT_DIR.glob("*.yaml")}


def _in_cycle(site: Site, dev: Device) -> bool:
    seen = {dev.name}
    cur = site.device(dev.parent) if dev.parent else None
    while cur is not None:
        if cur.name in seen:
            return True
        seen.add(cur.name)
        cur = site.device(cur.parent) if cur.parent else None
    return False
