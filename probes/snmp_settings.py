"""The SNMP probe kind's settings as the inventory writes them, and its cross checks.

    snmp:                                  # top level of the inventory (SnmpConfig)
      credentials:
        ro: {version: 2c, community: {env: NETMON_SNMP_COMMUNITY}}
        v3: {version: 3, user: netmon, auth_key: {file: /etc/netmon/auth.key}}
      defaults: {interval: 60s, timeout: 2s, retries: 1, max_poll_time: 20s, max_walks: 4}
    devices:
      - {name: sw-1, ..., snmp: {credentials: ro, profile: generic, uplink_interfaces: [Gi0/1]}}

Secrets are literal strings, ``{env: NAME}`` or ``{file: PATH}``; they become ``SecretStr`` and
never show in a repr or an error.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator

from netmon.schema import Loc, Seconds, Strict

ProfileName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]


class SecretRef(Strict):
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


class SnmpCredentials(Strict):
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


class SnmpDefaults(Strict):
    interval: Seconds = 60.0
    timeout: Seconds = 2.0  # per request
    retries: Annotated[int, Field(ge=0, le=10)] = 1
    max_poll_time: Seconds = 20.0  # bound on one whole poll of a device
    max_walks: Annotated[int, Field(ge=1, le=16)] = 4  # column walks in flight per device poll


class SnmpConfig(Strict):
    credentials: dict[str, SnmpCredentials] = {}
    defaults: SnmpDefaults = SnmpDefaults()


class DeviceSnmp(Strict):
    credentials: str
    profile: ProfileName = "generic"
    uplink_interfaces: list[str] = []  # ifName values whose link must be up


def device_checks(
    snmp: DeviceSnmp | None, kinds: Sequence[str], config: SnmpConfig, profiles: Collection[str]
) -> Iterator[tuple[Loc, str]]:
    """One device's SNMP problems that need the whole inventory; ``loc`` is relative to the device."""
    if "snmp" in kinds and snmp is None:
        yield ("snmp",), "probes include snmp but the device has no snmp settings"
    if snmp is None:
        return
    if snmp.credentials not in config.credentials:
        known = ", ".join(sorted(config.credentials)) or "none defined"
        yield (
            ("snmp", "credentials"),
            f"no SNMP credentials named {snmp.credentials!r} (known: {known})",
        )
    if snmp.profile not in profiles:
        yield (
            ("snmp", "profile"),
            f"no SNMP profile {snmp.profile!r} (known: {', '.join(sorted(profiles))})",
        )
