"""Process settings: command-line flags over environment variables over defaults.

    NETMON_API_READ_REQUIRES_TOKEN  true: every GET of /api/v1 needs a bearer token with the
                         scope ``read``; false: reads are open (writes always need a token,
                         netmon.auth; /healthz and /metrics stay open). Unset: the inventory's
                         ``api.read_requires_token`` (default false); set, it overrides that
    NETMON_COMPACT_AFTER_HOURS  hours after its end at which an hour of raw results is packed
                         a device-hour a row (default 2; netmon.compaction)
    NETMON_CONFIG        inventory file (default: the bundled Jharkhand example)
    NETMON_DATABASE_URL  SQLAlchemy URL (default: SQLite file in NETMON_DATA_DIR)
    NETMON_DATA_DIR      where the embedded SQLite database lives (default: $STATE_DIRECTORY
                         under systemd, else ~/.local/state/netmon)
    NETMON_HOST, NETMON_PORT   where the API and /metrics listen (default 127.0.0.1:8000)
    NETMON_FAILOVER_DELAY   seconds a poller's lease lasts without a heartbeat; then its sites
                         go to the other pollers of its group (netmon serve; default 60; netmon.fleet).
                         Also the judging lease of servers sharing one database: a dead
                         leader's successor takes over within it (netmon.judging)
    NETMON_ICMP_MODE     auto | raw | dgram (default auto)
    NETMON_ICMP_RATE_LIMIT  cap on echo requests per second, all devices together (default none)
    NETMON_JOURNAL_MAX_MB   disk the write-ahead journal of results not yet in the database may
                         take in NETMON_DATA_DIR/journal (default 1024; netmon.journal)
    NETMON_LOG_LEVEL     debug | info | warning | error (default info)
    NETMON_OUTBOX_MAX_MB, NETMON_OUTBOX_MAX_AGE_HOURS  netmon poll: the on-disk outbox of
                         results the server has not taken yet, bounded by size (default 256 MB)
                         and age (default 24 h); the oldest dropped are counted (netmon.outbox)
    NETMON_POLLER        process | inline | remote: probe in a child process of its own
                         (default), on the server's event loop, or only in remote pollers
                         (``netmon serve`` sets it; netmon.fleet)
    NETMON_REPORT_TIMEZONE  the time zone whose days the daily rollups and reports count
                         (default Asia/Kolkata; netmon.rollup)
    NETMON_RETENTION_DAYS   days of raw probe results kept in the store (default 35; 0 = forever)
    NETMON_ROLLUP_HOURLY_DAYS  days of hourly device figures kept (default 400; 0 = forever;
                         daily site rollups are kept forever)
    NETMON_SNAPSHOT_EVERY   seconds between snapshots of the judged state in NETMON_DATA_DIR,
                         restored at start instead of re-reading the window (default 300; also
                         one at each clean stop; 0 = none written or read)
    NETMON_TRAP_LISTEN   host:port where SNMPv2c traps are taken as hints (e.g. 0.0.0.0:162;
                         port 162 needs CAP_NET_BIND_SERVICE; default none: no listener;
                         netmon.traps)
    NETMON_SNMP_PROFILES a directory of the site's own SNMP profiles, next to the bundled ones
                         (e.g. /etc/netmon/snmp-profiles; default none)

Every value is validated (pydantic-settings reads the environment; an empty variable counts as
unset). A bad one raises :class:`netmon.errors.ConfigError` with one line per problem, e.g.
``environment: NETMON_PORT: Input should be a valid integer (got 'abc')``; a bad flag passed
to :meth:`Settings.with_overrides` reads ``command line: --port: ...``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from netmon.errors import ConfigError, ConfigProblem
from netmon.resources import example_inventory
from netmon.schema import zone_name

EXAMPLE_INVENTORY = example_inventory()
ENV_PREFIX = "NETMON_"
ICMP_MODES = ("auto", "raw", "dgram")
LOG_LEVELS = ("debug", "info", "warning", "error")
# the poller in a child process, on the server's loop, or on other machines (netmon serve)
POLLER_MODES = ("process", "inline", "remote")
SECRET_FIELDS = frozenset({"database_url"})  # never echoed in an error (it may hold a password)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_ignore_empty=True,
        extra="forbid",
        frozen=True,
        str_strip_whitespace=True,
    )

    config: Path = Field(default_factory=example_inventory)
    database_url: str = Field(min_length=1)  # unset: SQLite file netmon.db in data_dir
    data_dir: Path
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=8000, ge=0, le=65535)
    icmp_mode: str = "auto"
    icmp_rate_limit: float | None = Field(default=None, gt=0)  # echoes/s, all probes; None: no cap
    report_timezone: str = "Asia/Kolkata"  # an IANA zone name (see :attr:`tz`)
    retention_days: float = Field(default=35.0, ge=0)  # raw results kept; 0 keeps them forever
    rollup_hourly_days: float = Field(default=400.0, ge=0)  # device hours kept; 0: forever
    compact_after_hours: float = Field(default=2.0, ge=0)  # raw hours packed after (compaction)
    snapshot_every: float = Field(default=300.0, ge=0)  # seconds (netmon.snapshot); 0: off
    journal_max_mb: int = Field(default=1024, ge=16)  # the journal's bound (netmon.journal)
    log_level: str = "info"
    poller: str = "process"  # see POLLER_MODES
    failover_delay: float = Field(default=60.0, ge=5)  # seconds: a silent poller's lease (fleet)
    outbox_max_mb: int = Field(default=256, ge=1)  # netmon poll: the outbox's bound on disk
    outbox_max_age_hours: float = Field(default=24.0, gt=0)  # netmon poll: older batches dropped
    snmp_profiles: Path | None = None  # the site's own SNMP profiles (bundled ones always load)
    api_read_requires_token: bool | None = None  # None: the inventory's api.read_requires_token
    trap_listen: str | None = None  # host:port of the SNMP trap listener (netmon.traps); None: off

    @field_validator("icmp_mode", "log_level", "poller", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("icmp_mode")
    @classmethod
    def _icmp_mode(cls, value: str) -> str:
        return _one_of(value, ICMP_MODES)

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        return _one_of(value, LOG_LEVELS)

    @field_validator("poller")
    @classmethod
    def _poller(cls, value: str) -> str:
        return _one_of(value, POLLER_MODES)

    @field_validator("trap_listen")
    @classmethod
    def _trap_listen(cls, value: str | None) -> str | None:
        from netmon.traps import parse_listen

        if value is not None:
            parse_listen(value)
        return value

    @field_validator("report_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return zone_name(value)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.report_timezone)

    def read_requires_token(self, configured: bool) -> bool:
        """Whether reads need a token: the environment's word (or --flag's), else the
        inventory's ``api.read_requires_token`` (``configured``)."""
        return configured if self.api_read_requires_token is None else self.api_read_requires_token

    @model_validator(mode="before")
    @classmethod
    def _derived_defaults(cls, values: Any) -> Any:
        """data_dir from systemd's $STATE_DIRECTORY or the home folder; the SQLite file in it."""
        if not isinstance(values, dict):
            return values
        values = dict(values)
        if not values.get("data_dir"):
            values["data_dir"] = _default_data_dir(os.environ)
        if not values.get("database_url"):
            values["database_url"] = f"sqlite:///{Path(values['data_dir']) / 'netmon.db'}"
        return values

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``env`` (default: the process environment) and the defaults."""
        environ = os.environ if env is None else env
        values = _EnvironmentSource(cls, environ)()
        values.setdefault("data_dir", _default_data_dir(environ))
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ConfigError(_problems(exc, "environment", _env_name)) from None

    def with_overrides(self, **changes: object) -> Settings:
        """These settings with every change that is not None (command-line flags), validated."""
        given = {k: v for k, v in changes.items() if v is not None}
        if "data_dir" in given and "database_url" not in given:
            given["database_url"] = ""  # follow the new data directory
        try:
            return type(self).model_validate({**self.model_dump(), **given})
        except ValidationError as exc:
            raise ConfigError(_problems(exc, "command line", _flag_name)) from None


class _EnvironmentSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping (the process's by default)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {
            name if self.case_sensitive else name.lower(): value
            for name, value in self._environ.items()
            if value or not self.env_ignore_empty
        }


def _default_data_dir(environ: Mapping[str, str]) -> Path:
    state = environ.get("STATE_DIRECTORY", "").split(":")[0]  # systemd StateDirectory=
    return Path(state) if state else Path.home() / ".local" / "state" / "netmon"


def _one_of(value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"must be one of {', '.join(allowed)}")
    return value


def _env_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def _flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def _problems(exc: ValidationError, where: str, name: Callable[[str], str]) -> list[ConfigProblem]:
    problems = []
    for error in exc.errors(include_url=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        message = error["msg"].removeprefix("Value error, ")
        if field and field not in SECRET_FIELDS and "input" in error:
            message += f" (got {error['input']!r})"
        problems.append(ConfigProblem(file=where, line=None, field=name(field), message=message))
    return problems
