"""From scenarios to a lab plan: device addresses, the netmon inventory, the responder config.

Addresses: each site gets the next free /24 of 198.18.0.0/15 (198.18.1.0/24 first; the link
block 198.18.0.0/24 is never used), devices in file order from .1; a device with an explicit
``address`` keeps it. A site with more than 254 devices continues in the next /24.

SNMP: every device with an agent is polled by the generated inventory. Agents that share a
community share a named v2c credential (``lab-v2c-N``, the community written literally); agents
polled with v3 share a named authPriv SHA/AES credential (``lab-v3-N``) whose keys never sit in
the inventory: the auth key is read from a file (``{file: SECRETS_DIR/lab-v3-N.auth}``), the
privacy key from netmon's environment (``{env: NETMON_LAB_V3_N_PRIV_KEY}``, see
:meth:`Plan.netmon_env`). Secrets a scenario leaves out are random, one set per plan (so
agents without their own community share one, as in a real estate).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from netmon.durations import format_duration
from netmon.errors import ConfigError
from netmon.inventory import parse_inventory
from netmon.lab.control import wire_faults
from netmon.lab.model import LAB_NET, LINK_NET, Faults, LabError, Scenario, Snmp, check_lab_address


@dataclass(frozen=True)
class LabTiming:
    """Probe settings and verdict window for lab inventories: fast enough for tests."""

    interval: float = 2.0
    count: int = 5
    spacing: float = 0.1
    timeout: float = 0.5
    window: float = 60.0
    min_probes: int = 3
    # SNMP polls: a silent agent costs timeout x (retries + 1), and a whole poll is cut at
    # max_poll_time, shorter than the interval so a poll never overruns the next one.
    snmp_interval: float = 2.0
    snmp_timeout: float = 1.0
    snmp_retries: int = 0  # the lab never drops SNMP packets
    snmp_max_poll_time: float = 1.5

    def __post_init__(self) -> None:
        burst = (self.count - 1) * self.spacing + self.timeout
        if burst >= self.interval:
            raise LabError(
                f"a burst takes {burst:g}s, not less than the {self.interval:g}s interval"
            )
        if not self.snmp_timeout <= self.snmp_max_poll_time < self.snmp_interval:
            raise LabError("SNMP timing needs timeout <= max_poll_time < interval")


@dataclass
class PlannedDevice:
    key: str  # "site/device"
    site: str
    name: str
    role: str
    address: str
    parent: str | None  # key of the parent device
    faults: Faults
    scale: float  # the scenario's time_scale, for schedules
    snmp: Snmp | None


def random_token(kind: str) -> str:
    """A lab secret: distinctive (a leak check looks for it verbatim) and unguessable."""
    return f"{kind}{secrets.token_hex(10)}"


@dataclass(frozen=True)
class Credential:
    """One named SNMP credential of the generated inventory."""

    name: str
    version: str  # "2c" or "3"
    community: str = field(default="", repr=False)
    user: str = ""
    auth_key: str = field(default="", repr=False)
    priv_key: str = field(default="", repr=False)

    @property
    def auth_file(self) -> str:
        return f"{self.name}.auth"

    @property
    def priv_env(self) -> str:
        return "NETMON_" + self.name.upper().replace("-", "_") + "_PRIV_KEY"

    def inventory(self, secrets_dir: Path) -> dict[str, Any]:
        if self.version == "2c":
            return {"version": "2c", "community": self.community}
        return {"version": "3", "user": self.user, "auth_protocol": "SHA",
                "auth_key": {"file": str(secrets_dir / self.auth_file)},
                "priv_protocol": "AES", "priv_key": {"env": self.priv_env}}  # fmt: skip


@dataclass
class Plan:
    scenarios: list[Scenario]
    devices: dict[str, PlannedDevice]
    timing: LabTiming

    @classmethod
    def build(cls, scenarios: Sequence[Scenario], timing: LabTiming | None = None) -> Plan:
        """Addresses for every device; SNMP agents get their missing secrets (random)."""
        _check_unique(scenarios)
        taken = {d.address for sc in scenarios for d in sc.site.devices if d.address}
        blocks = _blocks()
        devices: dict[str, PlannedDevice] = {}
        tokens: dict[str, str] = {}  # one random community / key pair for the whole lab

        def token(kind: str) -> str:
            return tokens.setdefault(kind, random_token(kind))

        for sc in scenarios:
            free = _hosts(blocks, taken)
            for dev in sc.site.devices:
                key = f"{sc.site.id}/{dev.name}"
                address = check_lab_address(dev.address or next(free))
                parent = f"{sc.site.id}/{dev.parent}" if dev.parent else None
                snmp = dev.snmp.with_secrets(token) if dev.snmp else None
                devices[key] = PlannedDevice(key, sc.site.id, dev.name, dev.role, address,
                                             parent, dev.faults, sc.time_scale, snmp)  # fmt: skip
        if len({d.address for d in devices.values()}) != len(devices):
            raise LabError("two lab devices share an address")
        return cls(list(scenarios), devices, timing or LabTiming())

    def addresses(self) -> list[str]:
        return [d.address for d in self.devices.values()]

    def networks(self) -> list[ipaddress.IPv4Network]:
        """The /24 blocks holding lab devices, collapsed."""
        blocks = {ipaddress.IPv4Network(f"{a}/24", strict=False) for a in self.addresses()}
        return list(ipaddress.collapse_addresses(blocks))

    def responder_config(self, seed: int) -> dict[str, Any]:
        devs = [{"name": d.key, "address": d.address, "parent": d.parent,
                 **wire_faults(d.faults, scale=d.scale)} for d in self.devices.values()]  # fmt: skip
        return {"seed": seed, "devices": devs}

    def credentials(self) -> dict[str, Credential]:
        """Device key -> the named credential netmon polls its agent with."""
        out: dict[str, Credential] = {}
        named: dict[tuple[str, ...], Credential] = {}
        for key, d in self.devices.items():
            if d.snmp is None:
                continue
            s = d.snmp
            assert s.community and s.v3_auth_key and s.v3_priv_key  # with_secrets() filled them
            ident = ("2c", s.community) if s.poll == "v2c" else ("3", s.v3_user, s.v3_auth_key, s.v3_priv_key)  # fmt: skip
            if ident not in named:
                n = 1 + sum(c.version == ident[0] for c in named.values())
                named[ident] = (
                    Credential(f"lab-v2c-{n}", "2c", community=s.community)
                    if s.poll == "v2c"
                    else Credential(
                        f"lab-v3-{n}",
                        "3",
                        user=s.v3_user,
                        auth_key=s.v3_auth_key,
                        priv_key=s.v3_priv_key,
                    )  # fmt: skip
                )
            out[key] = named[ident]
        return out

    def write_secrets(self, secrets_dir: Path) -> None:
        """The files the inventory's ``{file: ...}`` secrets point to (mode 0600)."""
        creds = {c.name: c for c in self.credentials().values() if c.version == "3"}
        if creds:
            secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for c in creds.values():
            path = secrets_dir / c.auth_file
            path.touch(mode=0o600)
            path.chmod(0o600)
            path.write_text(c.auth_key + "\n", encoding="utf-8")

    def netmon_env(self) -> dict[str, str]:
        """The environment netmon needs for the inventory's ``{env: ...}`` secrets."""
        return {c.priv_env: c.priv_key for c in self.credentials().values() if c.version == "3"}

    def secrets(self) -> list[str]:
        """Every community and v3 key the lab's agents accept."""
        return sorted({x for d in self.devices.values() if d.snmp for x in d.snmp.secrets})

    def inventory(self, secrets_dir: Path, snmp: bool = True) -> dict[str, Any]:
        """The netmon inventory; with ``snmp``, devices with an agent are polled too."""
        t = self.timing
        creds = self.credentials() if snmp else {}
        sites = []
        for sc in self.scenarios:
            s = sc.site
            site: dict[str, Any] = {
                "id": s.id,
                "name": s.name,
                **({"name_hi": s.name_hi} if s.name_hi else {}),
                "district": s.district,
                "type": s.type,
            }
            if s.hfr_id:
                site["hfr_id"] = s.hfr_id
            if s.probe:
                site["probe"] = s.probe.model_dump(mode="json", exclude_none=True)
            if s.policy:
                site["policy"] = s.policy.model_dump(mode="json", exclude_none=True)
            site["devices"] = [self._device(s.id, d.name, creds) for d in s.devices]
            sites.append(site)
        out: dict[str, Any] = {
            "state": "Jharkhand",
            "defaults": {"interval": format_duration(t.interval), "count": t.count,
                         "timeout": format_duration(t.timeout), "spacing": format_duration(t.spacing)},
            "policy": {"window": format_duration(t.window), "min_probes": t.min_probes},
        }  # fmt: skip
        if creds:
            named = {c.name: c.inventory(secrets_dir) for c in creds.values()}
            out["snmp"] = {
                "credentials": dict(sorted(named.items())),
                "defaults": {"interval": format_duration(t.snmp_interval),
                             "timeout": format_duration(t.snmp_timeout), "retries": t.snmp_retries,
                             "max_poll_time": format_duration(t.snmp_max_poll_time)},
            }  # fmt: skip
        out["sites"] = sites
        return out

    def _device(self, site: str, name: str, creds: dict[str, Credential]) -> dict[str, Any]:
        d = self.devices[f"{site}/{name}"]
        out: dict[str, Any] = {"name": d.name, "role": d.role, "address": d.address}
        if d.parent:
            out["parent"] = d.parent.split("/", 1)[1]
        if d.snmp is not None and d.key in creds:
            snmp: dict[str, Any] = {"credentials": creds[d.key].name, "profile": d.snmp.profile}
            if d.snmp.uplink_interfaces:
                snmp["uplink_interfaces"] = list(d.snmp.uplink_interfaces)
            out["snmp"] = snmp
        return out

    def inventory_yaml(self, namespace: str, secrets_dir: Path, snmp: bool = True) -> str:
        """The inventory as YAML, checked by netmon's own parser (write the secrets first)."""
        header = (
            "# netmon inventory generated by `netmon lab` -- do not edit.\n"
            f"# Every address lives in the lab network namespace {namespace} (198.18.0.0/15)\n"
            "# and answers only while that lab runs; do not probe it without the lab.\n"
        )
        inventory = self.inventory(secrets_dir, snmp)
        if "snmp" in inventory and self.netmon_env():
            header += "# SNMPv3 privacy keys come from the environment: see netmon.env in the lab workdir.\n"
        text = header + yaml.safe_dump(
            inventory, sort_keys=False, width=120, default_flow_style=None
        )
        try:
            with temporary_env(self.netmon_env() if snmp else {}):
                parse_inventory(text, "<lab inventory>")
        except ConfigError as exc:
            problems = "; ".join(str(p) for p in exc.problems)
            raise LabError(f"the generated inventory is invalid: {problems}") from exc
        return text


@contextlib.contextmanager
def temporary_env(values: dict[str, str]) -> Iterator[None]:
    """``values`` in os.environ for the block (to validate ``{env: ...}`` secrets), then restored."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _check_unique(scenarios: Sequence[Scenario]) -> None:
    for attr in ("id", "site"):
        keys = [sc.id if attr == "id" else sc.site.id for sc in scenarios]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            raise LabError(f"duplicate scenario {attr}s: {', '.join(dup)}")


def _blocks() -> Iterator[ipaddress.IPv4Network]:
    for net in LAB_NET.subnets(new_prefix=24):
        if net != LINK_NET:
            yield net


def _hosts(blocks: Iterator[ipaddress.IPv4Network], taken: set[str]) -> Iterator[str]:
    """Free host addresses for one site, starting at a fresh /24."""
    for block in blocks:
        for ip in block.hosts():
            if ip.packed[3] not in (0, 255) and str(ip) not in taken:
                taken.add(str(ip))
                yield str(ip)
    raise LabError(f"the lab range {LAB_NET} is full")
