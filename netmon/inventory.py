"""The inventory: which sites exist, what gear each has, how to probe it and judge it.

Loaded from YAML and validated strictly: unknown keys are errors, and every problem is reported
with the file, the line and the field (``file.yaml:12: sites[3].devices[0].role: ...``). All
problems in a file are collected, not just the first.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
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
ProbeKind = Literal["icmp"]
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

    def merged(self, override: PolicyOverride | None) -> Policy:
        if override is None:
            return self
        return self.model_copy(update=_set_fields(override))


class Device(_Strict):
    name: Slug
    role: Role
    address: str
    parent: str | None = None
    probes: list[ProbeKind] = ["icmp"]

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
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


class Site(_Strict):
    id: Slug
    name: Annotated[str, Field(min_length=1)]
    district: Annotated[str, Field(min_length=1)]
    type: FacilityType
    hfr_id: Annotated[str, Field(pattern=r"^IN\d{10}$")] | None = None
    probe: ProbeSettings | None = None
    policy: PolicyOverride | None = None
    maintenance: list[Maintenance] = []
    devices: list[Device] = []

    def device(self, name: str) -> Device | None:
        return next((d for d in self.devices if d.name == name), None)

    def in_maintenance(self, ts: float) -> Maintenance | None:
        return next((m for m in self.maintenance if m.covers(ts)), None)


class Inventory(_Strict):
    state: str = "Jharkhand"
    defaults: Defaults = Defaults()
    policy: Policy = Policy()
    sites: list[Site] = []

    def site(self, site_id: str) -> Site | None:
        return next((s for s in self.sites if s.id == site_id), None)

    def probe_settings(self, site: Site) -> Defaults:
        if site.probe is None:
            return self.defaults
        return self.defaults.model_copy(update=_set_fields(site.probe))

    def policy_for(self, site: Site) -> Policy:
        return self.policy.merged(site.policy)


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
    return part in {"function-before[parse_duration(), float]", "constrained-int", "int", "float"}


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
        yield from _device_checks(site, here, addresses)


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
    site: Site, here: Path_, addresses: dict[str, str]
) -> Iterator[tuple[Path_, str]]:
    names: set[str] = set()
    for j, dev in enumerate(site.devices):
        at: Path_ = here + ("devices", j)
        if dev.name in names:
            yield at + ("name",), f"duplicate device name {dev.name!r} in site {site.id!r}"
        names.add(dev.name)
        owner = f"{site.id}/{dev.name}"
        if dev.address in addresses:
            yield at + ("address",), f"address {dev.address} is already used by {addresses[dev.address]}"
        addresses.setdefault(dev.address, owner)
        if dev.parent is not None:
            if dev.parent == dev.name:
                yield at + ("parent",), "a device cannot be its own parent"
            elif site.device(dev.parent) is None:
                yield at + ("parent",), f"no device named {dev.parent!r} in site {site.id!r}"
            elif _in_cycle(site, dev):
                yield at + ("parent",), f"parent chain of {dev.name!r} loops back to itself"


def _in_cycle(site: Site, dev: Device) -> bool:
    seen = {dev.name}
    cur = site.device(dev.parent) if dev.parent else None
    while cur is not None:
        if cur.name in seen:
            return True
        seen.add(cur.name)
        cur = site.device(cur.parent) if cur.parent else None
    return False
