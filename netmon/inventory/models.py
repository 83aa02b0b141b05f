"""The inventory's models: which sites exist, what gear each has, how to probe it and judge it.

Validation is strict: unknown keys are errors. Checks that need more than one value at a time
across sites (duplicates, parents, districts) are in :mod:`netmon.inventory.checks`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import math
import re
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    Discriminator,
    Field,
    PrivateAttr,
    StrictBool,
    Tag,
    create_model,
    field_validator,
    model_validator,
)

from netmon.inventory.recurring import PERIOD, Recurring
from netmon.schema import Int, Real, Seconds, Strict
from probes import KINDS
from probes.snmp_settings import DeviceSnmp, SnmpConfig

JHARKHAND_DISTRICTS = (
    "Bokaro", "Chatra", "Deoghar", "Dhanbad", "Dumka", "East Singhbhum", "Garhwa", "Giridih",
    "Godda", "Gumla", "Hazaribagh", "Jamtara", "Khunti", "Koderma", "Latehar", "Lohardaga",
    "Pakur", "Palamu", "Ramgarh", "Ranchi", "Sahebganj", "Seraikela Kharsawan", "Simdega",
    "West Singhbhum",
)  # fmt: skip

Role = Literal["wan", "router", "switch", "ap", "controller"]
FacilityType = Literal["medical_college", "district_hospital", "chc", "phc", "other"]
if TYPE_CHECKING:
    ProbeKind = str
else:
    ProbeKind = Literal[tuple(KINDS)]  # the registered probe kinds' names (probes.KINDS)
Slug = Annotated[str, Field(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")]
Ratio = Annotated[Real, Field(ge=0.0, le=1.0)]
_DATE = re.compile(r"^\d{4}-\d\d-\d\d$")


def _day(value: object) -> object:
    """A calendar date (YAML's ``2026-01-10``, or that text quoted), never a date-time nor a
    number (pydantic alone takes ``20260110`` as Unix seconds)."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and _DATE.match(value):
        return value
    raise ValueError("expected a date like 2026-01-10")


Day = Annotated[dt.date, BeforeValidator(_day)]
_HFR_ID = re.compile(r"^IN\d{10}$")


def _hfr_id(value: object) -> object:
    """An ABDM Health Facility Registry facility id: ``IN`` and 10 digits (12 characters, the
    "12 digit Facility ID" of NHA's HFR guide, e.g. ``IN2010000123``). Unique across the
    inventory (:mod:`netmon.inventory.checks`)."""
    if isinstance(value, str) and not _HFR_ID.match(value):
        raise ValueError(
            f"not a Health Facility Registry id: {value!r} (expected IN and 10 digits, "
            "e.g. IN2010000123)"
        )
    return value


HfrId = Annotated[str, BeforeValidator(_hfr_id)]
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+$")


class ProbeSettings(Strict):
    """How often and how hard to probe; any field left out is inherited."""

    interval: Seconds | None = None
    count: Annotated[Int, Field(ge=1, le=100)] | None = None
    timeout: Seconds | None = None
    spacing: Seconds | None = None


class Defaults(Strict):
    interval: Seconds = 60.0
    count: Annotated[Int, Field(ge=1, le=100)] = 5
    timeout: Seconds = 1.0
    spacing: Seconds = 1.0


class Policy(Strict):
    """Defaults anchored in TRAI QoS and leased-line SLAs (../shared/domain.md)."""

    window: Seconds = 86400.0
    min_probes: Annotated[Int, Field(ge=1)] = 1
    uplink_availability: Ratio = 0.99
    uplink_max_loss: Ratio = 0.01
    ap_max_loss: Ratio = 0.02
    rtt_p95_max: Seconds = 0.120
    ap_min_up_ratio: Ratio = 0.90
    small_site_aps: Annotated[Int, Field(ge=0)] = 5
    small_site_max_aps_down: Annotated[Int, Field(ge=0)] = 1
    max_outage: Seconds = 4 * 3600.0
    max_silence: Seconds = 600.0  # no uplink result for longer: unknown (no data), never down
    max_reboots: Annotated[Int, Field(ge=0)] = 0  # per device in the window (SNMP sysUpTime)
    max_outages: Annotated[Int, Field(ge=0)] = (
        2  # per non-uplink device in the window: more is flapping
    )

    def merged(self, override: PolicyOverride | None) -> Policy:
        if override is None:
            return self
        return self.model_copy(update=set_fields(override))


def optional_fields(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s fields, each optional (default None) with the same type and constraints."""
    out: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        annotation: Any = info.annotation
        if info.metadata:
            annotation = Annotated[(annotation, *info.metadata)]
        out[name] = (annotation | None, None)
    return out


if TYPE_CHECKING:

    class PolicyOverride(Policy):
        """For type checkers: every field of :class:`Policy` (at run time, each optional)."""

else:
    PolicyOverride = create_model(
        "PolicyOverride",
        __base__=Strict,
        __doc__="Verdict thresholds (see README); any field left out is inherited from Policy.",
        __module__=__name__,
        **optional_fields(Policy),
    )


class DeviceBase(Strict):
    """A device; :class:`Device` adds one optional key per probe kind with device settings."""

    name: Slug
    role: Role
    address: str | None = None
    parent: str | None = None
    mac: str | None = None  # how a wireless controller names this AP, if not by name
    probes: list[ProbeKind] | None = None  # default: each kind's enabled_by_default

    @property
    def kinds(self) -> list[str]:
        """The probe kinds that probe this device (``probes:``, else each kind's default)."""
        if self.probes is not None:
            return list(self.probes)
        return [kind.name for kind in KINDS.values() if kind.enabled_by_default(self)]  # type: ignore[arg-type]

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


def _kind_fields(attribute: str) -> dict[str, Any]:
    """One optional field per registered kind that has a model in ``attribute``."""
    models = {k.name: getattr(k, attribute) for k in KINDS.values()}
    return {name: (model | None, None) for name, model in models.items() if model is not None}


if TYPE_CHECKING:

    class Device(DeviceBase):
        snmp: DeviceSnmp | None = None

else:
    Device = create_model(
        "Device", __base__=DeviceBase, __module__=__name__, **_kind_fields("device_settings")
    )


class Maintenance(Strict):
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


def _entry_kind(value: object) -> str:
    every = isinstance(value, Recurring) or (isinstance(value, dict) and "every" in value)
    return "Maintenance[every]" if every else "Maintenance[once]"


# a site's maintenance entry: one window (start, end: date-times) or a rule (every: ...)
MaintenanceEntry = Annotated[
    Annotated[Maintenance, Tag("Maintenance[once]")]
    | Annotated[Recurring, Tag("Maintenance[every]")],
    Discriminator(_entry_kind),
]


class WideMaintenance(Maintenance):
    """A top-level window: for every site, or those of ``districts``."""

    districts: list[Annotated[str, Field(min_length=1)]] | None = None


class WideRecurring(Recurring):
    """A top-level recurring window: for every site, or those of ``districts``."""

    districts: list[Annotated[str, Field(min_length=1)]] | None = None


WideEntry = Annotated[
    Annotated[WideMaintenance, Tag("Maintenance[once]")]
    | Annotated[WideRecurring, Tag("Maintenance[every]")],
    Discriminator(_entry_kind),
]
LOOK_BACK = 63 * 86400.0  # the longest gap between two occurrences (monthly on the 31st: 61 days)


def _aware(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


class Rollout(Strict):
    """The rollout the progress report counts against (``GET /api/v1/progress``)."""

    start: Day
    deadline: Day

    @model_validator(mode="after")
    def _ordered(self) -> Rollout:
        if self.deadline <= self.start:
            raise ValueError("the deadline must be after the start")
        return self


class Report(Strict):
    """How reports count days: a site is fully functional on a day when its
    fully_functional_ratio that day is at least ``day_threshold``."""

    day_threshold: Annotated[Real, Field(gt=0.0, le=1.0)] = 0.95


class District(Strict):
    """What the inventory says about a district beyond its name (``districts:``, by name)."""

    name_hi: Annotated[str, Field(min_length=1)] | None = None  # the status board's Hindi name


class Api(Strict):
    """The API's own settings (``NETMON_API_READ_REQUIRES_TOKEN`` overrides them)."""

    read_requires_token: StrictBool = False  # GET /api/v1/* needs a token with the scope "read"


class SiteInfo(Strict):
    """What identifies a facility and how it is probed and judged (shared with the lab)."""

    id: Slug
    name: Annotated[str, Field(min_length=1)]
    name_hi: Annotated[str, Field(min_length=1)] | None = None  # the status board's Hindi name
    district: Annotated[str, Field(min_length=1)]
    type: FacilityType
    hfr_id: HfrId | None = None  # ABDM Health Facility Registry id
    probe: ProbeSettings | None = None
    policy: PolicyOverride | None = None


class Site(SiteInfo):
    commissioned: Day | None = None  # counted in the rollout's progress from this day on
    poller_group: Slug = (
        "central"  # which pollers probe it (netmon serve + netmon poll; netmon.fleet)
    )
    maintenance: list[MaintenanceEntry] = []
    devices: list[Device] = []

    _by_name: dict[str, Device] = PrivateAttr(default_factory=dict)
    _uplinks: list[Device] = PrivateAttr(default_factory=list)
    _aps: list[Device] = PrivateAttr(default_factory=list)

    def model_post_init(self, _context: Any) -> None:
        # worked out once: the judge reads them at every evaluation (a site's devices do not
        # change after it is made; a reload makes new sites)
        self._by_name = {d.name: d for d in reversed(self.devices)}  # first one wins
        self._uplinks = _uplinks_of(self.devices)
        self._aps = [d for d in self.devices if d.role == "ap"]

    def device(self, name: str) -> Device | None:
        return _private(self, "_by_name").get(name)

    def uplinks(self) -> list[Device]:
        """The devices the site reaches the outside through: its ``wan`` devices, else its
        ``router`` ones, else those with no parent. Do not modify."""
        return cast(list[Device], _private(self, "_uplinks"))

    def aps(self) -> list[Device]:
        """The site's access points, in inventory order. Do not modify."""
        return cast(list[Device], _private(self, "_aps"))

    def in_maintenance(self, ts: float) -> Maintenance | None:
        """The window covering ``ts`` (a recurring rule's occurrence as a window of its own)."""
        for m in self.maintenance:
            if isinstance(m, Maintenance):
                if m.covers(ts):
                    return m
            elif found := [s for s in m.spans(ts, math.nextafter(ts, math.inf)) if s[0] <= ts]:
                a, b = found[0]
                return Maintenance.model_construct(start=_aware(a), end=_aware(b), reason=m.reason)
        return None

    def maintenance_spans(self, start: float, end: float) -> list[tuple[float, float]]:
        """Every announced window overlapping ``[start, end)`` (recurring ones expanded), as
        Unix seconds, unmerged."""
        out: list[tuple[float, float]] = []
        for m in self.maintenance:
            if isinstance(m, Maintenance):
                a, b = m.start.timestamp(), m.end.timestamp()
                if a < end and b > start:
                    out.append((a, b))
            else:
                out.extend(m.spans(start, end))
        return out

    def maintenance_ended(self, now: float) -> float | None:
        """When the last window that ended at or before ``now`` ended."""
        ends = [e for m in self.maintenance if isinstance(m, Maintenance)
                and (e := m.end.timestamp()) <= now]  # fmt: skip
        for m in self.maintenance:
            if isinstance(m, Recurring):
                for back in (PERIOD[m.every] + m.duration, LOOK_BACK + m.duration):
                    if found := [b for _a, b in m.spans(now - back, now) if b <= now]:
                        ends.append(found[-1])
                        break
        return max(ends, default=None)

    def maintenance_next(self, now: float) -> float:
        """The next time after ``now`` a window begins or ends (inf: none)."""
        times = [t for m in self.maintenance if isinstance(m, Maintenance)
                 for t in (m.start.timestamp(), m.end.timestamp()) if t > now]  # fmt: skip
        for m in self.maintenance:
            if isinstance(m, Recurring):
                for ahead in (PERIOD[m.every], LOOK_BACK):
                    if found := [t for s in m.spans(now, now + ahead) for t in s if t > now]:
                        times.append(min(found))
                        break
        return min(times, default=math.inf)


class InventoryBase(Strict):
    """The inventory; :class:`Inventory` adds one top-level section per kind with a config."""

    state: str = "Jharkhand"
    state_hi: Annotated[str, Field(min_length=1)] | None = None  # the status board's Hindi name
    defaults: Defaults = Defaults()
    policy: Policy = Policy()
    rollout: Rollout | None = None
    report: Report = Report()
    districts: dict[str, District] = {}  # by the name the sites' ``district`` gives
    api: Api = Api()
    maintenance: list[WideEntry] = []  # state-wide or district-wide, added to each site's own
    sites: list[Site] = []

    _by_id: dict[str, Site] = PrivateAttr(default_factory=dict)
    _policies: dict[str, Policy] = PrivateAttr(default_factory=dict)

    def model_post_init(self, _context: Any) -> None:
        if self.maintenance:  # each site's list gets the wide windows that apply to it, once
            object.__setattr__(self, "sites", [self._spread(s) for s in self.sites])
        self._by_id = {s.id: s for s in reversed(self.sites)}  # first one wins
        self._policies = {s.id: self.policy.merged(s.policy) for s in self.sites}

    def site(self, site_id: str) -> Site | None:
        return _private(self, "_by_id").get(site_id)

    def _spread(self, site: Site) -> Site:
        district = site.district.lower()
        extra = [w for w in self.maintenance
                 if (w.districts is None or district in (d.lower() for d in w.districts))
                 and not any(m is w for m in site.maintenance)]  # fmt: skip
        return (
            site.model_copy(update={"maintenance": [*site.maintenance, *extra]}) if extra else site
        )

    def probe_settings(self, site: Site) -> Defaults:
        if site.probe is None:
            return self.defaults
        return self.defaults.model_copy(update=set_fields(site.probe))

    def policy_for(self, site: Site) -> Policy:
        cached = _private(self, "_policies").get(site.id)
        return (
            cached
            if cached is not None and _private(self, "_by_id").get(site.id) is site
            else self.policy.merged(site.policy)
        )


def _uplinks_of(devices: list[Device]) -> list[Device]:
    for pick in (
        [d for d in devices if d.role == "wan"],
        [d for d in devices if d.role == "router"],
        [d for d in devices if d.parent is None],
    ):
        if pick:
            return pick
    return []


def _private(model: BaseModel, name: str) -> Any:
    """A private attribute read straight from pydantic's store: ``model._x`` goes through
    pydantic's ``__getattr__`` (~1.9 us here, 25x a dict lookup), and the judge reads these per
    device and result (Site.device, Inventory.site, policy_for)."""
    private = model.__pydantic_private__
    return private[name] if private is not None else getattr(model, name)


def _config_fields() -> dict[str, Any]:
    """One top-level section per registered kind with a config model (defaults when left out)."""
    return {k.name: (k.config, k.config()) for k in KINDS.values() if k.config is not None}


if TYPE_CHECKING:

    class Inventory(InventoryBase):
        snmp: SnmpConfig = SnmpConfig()

else:
    Inventory = create_model(
        "Inventory", __base__=InventoryBase, __module__=__name__, **_config_fields()
    )


def set_fields(model: BaseModel) -> dict[str, Any]:
    """The fields given a value (raw, not serialised: durations stay seconds)."""
    return {k: v for k in type(model).model_fields if (v := getattr(model, k)) is not None}
