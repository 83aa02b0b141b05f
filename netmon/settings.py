"""Process settings: command-line flags over environment variables over defaults.

    NETMON_CONFIG        inventory file (default: the bundled Jharkhand example)
    NETMON_DATABASE_URL  SQLAlchemy URL (default: SQLite file in NETMON_DATA_DIR)
    NETMON_DATA_DIR      where the embedded SQLite database lives (default: $STATE_DIRECTORY
                         under systemd, else ~/.local/state/netmon)
    NETMON_HOST, NETMON_PORT   where the API and /metrics listen (default 127.0.0.1:8000)
    NETMON_ICMP_MODE     auto | raw | dgram (default auto)
    NETMON_ICMP_RATE_LIMIT  cap on echo requests per second, all devices together (default none)
    NETMON_LOG_LEVEL     debug | info | warning | error (default info)
    NETMON_RETENTION_DAYS   days of raw probe results kept in the store (default 35; 0 = forever)
    NETMON_SNMP_PROFILES    a site's own SNMP profiles, added to the bundled ones (default none)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_INVENTORY = REPO_ROOT / "deploy" / "inventory" / "jharkhand-example.yaml"


@dataclass(frozen=True)
class Settings:
    config: Path
    database_url: str
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    icmp_mode: str = "auto"
    icmp_rate_limit: float | None = None  # echoes/s across all probes (real WANs); None: no cap
    retention_days: float = 35.0  # raw results kept; 0 keeps them forever
    log_level: str = "info"
    snmp_profiles: Path | None = None  # a site's own SNMP profiles, after the bundled ones

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        data_dir = Path(
            env.get("NETMON_DATA_DIR")
            or env.get("STATE_DIRECTORY", "").split(":")[0]
            or Path.home() / ".local" / "state" / "netmon"
        )
        return cls(
            config=Path(env.get("NETMON_CONFIG") or EXAMPLE_INVENTORY),
            database_url=env.get("NETMON_DATABASE_URL") or f"sqlite:///{data_dir / 'netmon.db'}",
            data_dir=data_dir,
            host=env.get("NETMON_HOST", "127.0.0.1"),
            port=int(env.get("NETMON_PORT", "8000")),
            icmp_mode=env.get("NETMON_ICMP_MODE", "auto"),
            icmp_rate_limit=float(env["NETMON_ICMP_RATE_LIMIT"]) if env.get("NETMON_ICMP_RATE_LIMIT") else None,
            log_level=env.get("NETMON_LOG_LEVEL", "info"),
            retention_days=float(env.get("NETMON_RETENTION_DAYS", "35")),
            snmp_profiles=Path(env["NETMON_SNMP_PROFILES"]) if env.get("NETMON_SNMP_PROFILES") else None,
        )

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})  # type: ignore[arg-type]
