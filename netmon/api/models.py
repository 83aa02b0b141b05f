"""The API's response models, one family per resource (requests are validated by FastAPI
from the route signatures; errors are :mod:`netmon.api.problems`)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal, overload

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from netmon.inventory import FacilityType, Role
from netmon.maintenance import MAX_DAYS
from netmon.verdict import Criterion, DeviceState, Verdict


@overload
def iso(ts: float) -> datetime: ...
@overload
def iso(ts: None) -> None: ...
@overload
def iso(ts: float | None) -> datetime | None: ...
def iso(ts: float | None) -> datetime | None:
    """Unix seconds as an aware UTC datetime (ISO 8601 in JSON)."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def examples(*items: JsonDict) -> ConfigDict:
    """A model's examples in the OpenAPI document (tests/test_openapi_client.py checks each
    against its model)."""
    return ConfigDict(json_schema_extra={"examples": list(items)})


_DOWN: JsonDict = {"criterion": "uplink_down", "message": "wan-1 is unreachable", "device": "wan-1",
         "measured": 420.0, "threshold": None}  # fmt: skip


class ReasonPublic(BaseModel):
    model_config = examples(_DOWN)

    criterion: Criterion  # the full list, with units, is in the OpenAPI schema and the README
    message: str
    device: str | None = None
    measured: float | None = None
    threshold: float | None = None


# --- sites ---------------------------------------------------------------------------------
class SiteBase(BaseModel):
    id: str
    name: str
    district: str
    type: FacilityType
    hfr_id: str | None
    verdict: Verdict
    reasons: list[ReasonPublic]
    since: datetime | None
    evaluated_at: datetime | None
    devices: int
    maintenance: str | None = None  # the reason, while announced maintenance is on


class SitePublic(SiteBase):
    model_config = examples({
        "id": "chc-bundu", "name": "Community Health Centre, Bundu", "district": "Ranchi",
        "type": "chc", "hfr_id": None, "verdict": "down", "reasons": [_DOWN],
        "since": "2026-11-30T04:12:00Z", "evaluated_at": "2026-11-30T04:19:00Z", "devices": 2,
        "maintenance": None, "first_fully_functional": "2026-01-12", "availability_30d": 0.9931,
    })  # fmt: skip

    first_fully_functional: date | None = Field(
        default=None, description="the first local day whose fully_functional_ratio reached "
        "report.day_threshold (from the daily rollups; null: none yet)",
    )  # fmt: skip
    availability_30d: float | None = Field(
        default=None, description="availability over the 30 local days up to today, from the "
        "daily rollups (at most a minute old); null: nothing observed",
    )  # fmt: skip


class SitesPublic(BaseModel):
    data: list[SitePublic]
    count: int
    next: str | None = Field(
        default=None, description="the next page (path and query; also the Link header), "
        "null on the last page",
    )  # fmt: skip


class LastResultPublic(BaseModel):
    at: datetime
    ok: bool
    sent: int
    received: int
    loss_ratio: float
    rtt_min_seconds: float | None
    rtt_avg_seconds: float | None
    rtt_max_seconds: float | None
    jitter_seconds: float | None
    reason: str


class WindowPublic(BaseModel):
    probes: int
    availability_ratio: float | None
    loss_ratio: float | None
    rtt_p95_seconds: float | None
    longest_outage_seconds: float
    down_since: datetime | None


class InterfacePublic(BaseModel):
    index: int
    name: str | None
    oper_up: bool | None
    admin_up: bool | None
    in_bps: float | None
    out_bps: float | None
    in_errors: int | None
    out_errors: int | None
    flaps: int


class SnmpPublic(BaseModel):
    answered: bool | None
    polled_at: datetime | None
    uptime_seconds: float | None
    reboots_in_window: list[datetime]
    uplinks_down: list[str]
    interfaces: list[InterfacePublic]
    aps_total: int | None
    aps_up: int | None


class DevicePublic(BaseModel):
    name: str
    role: Role
    address: str | None
    parent: str | None
    state: DeviceState
    last: LastResultPublic | None
    window: WindowPublic | None
    snmp: SnmpPublic | None = None
    clients: int | None = None  # associated clients, for APs a controller reports


class ControllerApPublic(BaseModel):
    controller: str
    name: str | None
    mac: str | None
    up: bool | None
    clients: int | None


class SiteDetail(SiteBase):
    window_seconds: float
    device_list: list[DevicePublic]
    clients: int | None  # associated clients over the site's controllers
    unknown_aps: list[ControllerApPublic]  # reported by a controller, missing from the inventory


# --- history -------------------------------------------------------------------------------
class VerdictChangePublic(BaseModel):
    model_config = examples(
        {"verdict": "down", "since": "2026-11-30T04:12:00Z", "reasons": [_DOWN]}
    )  # fmt: skip

    verdict: Verdict
    since: datetime
    reasons: list[ReasonPublic]


class HistoryPublic(BaseModel):
    data: list[VerdictChangePublic]
    count: int
    next: str | None = Field(
        default=None, description="the next page (path and query; also the Link header), "
        "null on the last page",
    )  # fmt: skip


# --- changes -------------------------------------------------------------------------------
class ChangePublic(BaseModel):
    model_config = examples({
        "cursor": "WzEsImNoYW5nZXMiLDQyXQ", "site_id": "chc-bundu", "verdict": "down",
        "since": "2026-11-30T04:12:00Z", "changed_at": "2026-11-30T04:13:00Z", "reasons": [_DOWN],
    })  # fmt: skip

    cursor: str = Field(description="opaque: `after=` this to get the changes after this one")
    site_id: str
    verdict: Verdict
    since: datetime
    changed_at: datetime | None  # when it was judged (null: rows of netmon before schema v3)
    reasons: list[ReasonPublic]


class ChangesPublic(BaseModel):
    model_config = examples({"items": [], "next": "/api/v1/changes?after=WzEsImNoYW5nZXMiLDQyXQ"})

    items: list[ChangePublic]
    next: str = Field(description="the page after this one (path and query; also the Link "
                      "header): present on the last page too, to poll for new changes")  # fmt: skip


# --- results -------------------------------------------------------------------------------
class ResultPublic(BaseModel):
    model_config = examples({
        "at": "2026-11-30T04:12:00Z", "kind": "icmp", "ok": False, "sent": 3, "received": 0,
        "rtt_min_seconds": None, "rtt_avg_seconds": None, "rtt_max_seconds": None,
        "jitter_seconds": None, "reason": "no reply to 3 echoes",
    })  # fmt: skip

    at: datetime
    kind: str
    ok: bool
    sent: int
    received: int
    rtt_min_seconds: float | None
    rtt_avg_seconds: float | None
    rtt_max_seconds: float | None
    jitter_seconds: float | None
    reason: str


class ResultsPublic(BaseModel):
    data: list[ResultPublic]
    count: int
    next: str | None = Field(
        default=None, description="the next page (path and query; also the Link header), "
        "null on the last page",
    )  # fmt: skip


# --- summary -------------------------------------------------------------------------------
class GroupSummary(BaseModel):
    model_config = examples({
        "key": "Ranchi", "sites": 40, "fully_functional": 31, "percent_fully_functional": 77.5,
        "by_verdict": {"fully_functional": 31, "degraded": 6, "down": 2, "not_installed": 1,
                       "unknown": 0},
    })  # fmt: skip

    key: str
    sites: int
    fully_functional: int
    percent_fully_functional: float
    by_verdict: dict[str, int]


class SummaryPublic(BaseModel):
    sites: int
    fully_functional: int
    percent_fully_functional: float
    by_verdict: dict[str, int]
    by_district: list[GroupSummary]
    by_type: list[GroupSummary]
    evaluated_at: datetime | None


# --- maintenance ---------------------------------------------------------------------------
def _iso_text(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date and time with its offset, as a string")
    return value


# ISO 8601 with an offset: 2026-12-01T22:00:00+05:30 or ...Z (a bare number is refused)
IsoTime = Annotated[AwareDatetime, BeforeValidator(_iso_text)]


class MaintenanceCreate(BaseModel):
    """A maintenance window to announce: results inside it are stored but not judged."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    start: IsoTime
    end: IsoTime
    reason: str = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _ordered(self) -> MaintenanceCreate:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.end - self.start > timedelta(days=MAX_DAYS):
            raise ValueError(f"a window is at most {MAX_DAYS} days long")
        return self


class RecurrencePublic(BaseModel):
    every: Literal["daily", "weekly", "monthly"]
    days: list[str | int] | None = None  # weekly: mon .. sun; monthly: days of the month
    start: str  # HH:MM local time in ``timezone``
    duration_seconds: float
    timezone: str


class MaintenancePublic(BaseModel):
    id: str  # "inventory-N" (the inventory's N-th window of the site) or the API window's number
    site_id: str
    source: Literal["inventory", "api"]
    start: datetime
    end: datetime
    reason: str
    active: bool  # the window covers now
    created_by: str | None = None  # the token's name (API windows)
    created_at: datetime | None = None
    recurrence: RecurrencePublic | None = Field(
        default=None,
        description="A recurring inventory window: its rule; start/end are then the occurrence "
        "on now, else the next one",
    )


class MaintenanceList(BaseModel):
    data: list[MaintenancePublic]
    count: int


# --- audit ---------------------------------------------------------------------------------
class AuditPublic(BaseModel):
    id: int
    at: datetime
    token: str  # the name of the token that wrote ("cli": the command line)
    method: str
    path: str
    action: str  # maintenance.create, maintenance.delete, token.create, token.revoke
    detail: dict[str, Any]


class AuditList(BaseModel):
    data: list[AuditPublic]
    count: int


# --- health --------------------------------------------------------------------------------
class JournalHealth(BaseModel):
    backlog: int  # rows journaled, not yet committed to the database
    bytes: int  # on disk
    failing: bool  # the last write to the journal failed (disk full, read-only)
    torn: int  # torn segment tails truncated at start
    corrupt: int  # corrupt lines skipped at start
    dropped: int  # rows removed by the size bound before they were committed


class StoreHealth(BaseModel):
    status: Literal["ok", "degraded"]  # degraded: the store's last read or write failed
    pending: int  # rows queued in memory, not yet written
    written: int
    errors: int  # failed writes
    read_errors: int
    dropped: int  # rows dropped because the backlog was full
    last_error: str | None  # the last failure (kept after recovery), driver's message
    last_error_at: datetime | None
    journal: JournalHealth | None = None  # the write-ahead journal (None: the store has none)


HealthStatus = Literal["ok", "loading", "degraded"]


class HealthPublic(BaseModel):
    status: HealthStatus
    version: str
    sites: int
    store: StoreHealth
    icmp_mode: str | None
    poller_up: bool = Field(description="the poller is connected (false: no new results, "
                                        "which is no data, not an outage)")  # fmt: skip
    judge: Literal["leader", "follower"] | None = Field(
        default=None, description="netmon serve: whether this server writes the verdict "
        "history (the judging lease, netmon.judging) or follows the one that does")  # fmt: skip


# --- availability --------------------------------------------------------------------------
class StateSeconds(BaseModel):
    """Seconds in each state; ``no_data``: netmon was not running, or had too few probes to
    judge (left out of every ratio, like maintenance)."""

    fully_functional: float
    degraded: float
    down: float
    not_installed: float
    maintenance: float
    no_data: float


class OutagePublic(BaseModel):
    start: datetime
    end: datetime
    duration_seconds: float
    reasons: list[str]


class DayAvailability(BaseModel):
    day: date
    seconds: StateSeconds
    availability: float | None = Field(description="1 − down / (observed − maintenance)")
    fully_functional_ratio: float | None


class SiteAvailability(BaseModel):
    site_id: str
    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")
    seconds: StateSeconds
    availability: float | None = Field(
        description="1 − down / (observed − maintenance); null when nothing was observed"
    )
    fully_functional_ratio: float | None
    outages: list[OutagePublic]
    daily: list[DayAvailability]


class GroupAvailability(BaseModel):
    group: str
    sites: int
    seconds: StateSeconds
    availability: float | None = Field(description="mean of the sites' availabilities")
    fully_functional_ratio: float | None = Field(description="mean of the sites' ratios")


class AvailabilityPublic(BaseModel):
    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")
    by: Literal["district", "type", "state"]
    data: list[GroupAvailability]


# --- progress ------------------------------------------------------------------------------
class RolloutPublic(BaseModel):
    start: date
    deadline: date


class ProgressDay(BaseModel):
    model_config = examples({
        "day": "2026-01-12", "group": "Ranchi", "sites": 40, "fully_functional": 31,
        "never_fully_functional": 6, "days_to_deadline": 47,
    })  # fmt: skip

    day: date
    group: str
    sites: int = Field(description="sites commissioned on or before the day (all without a date)")
    fully_functional: int = Field(description="of those, fully_functional_ratio that day ≥ "
                                  "day_threshold")  # fmt: skip
    never_fully_functional: int = Field(description="of those, fully functional on no day since "
                                        "the rollout's start (else the window's) up to this one")  # fmt: skip
    days_to_deadline: int | None = Field(description="deadline − day, negative after it; null "
                                         "without a rollout")  # fmt: skip


class ProgressPublic(BaseModel):
    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")
    by: Literal["district", "type", "state"]
    day_threshold: float
    rollout: RolloutPublic | None
    data: list[ProgressDay]
