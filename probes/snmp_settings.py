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
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from netmon.schema import (
    FROM_CODE,
    Int,
    Loc,
    Seconds,
    Strict,
    error_loc,
    error_message,
    field_name,
)

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
        return SecretStr(_read_secret(ref.file))
    return value


MAX_SECRET_BYTES = 4096  # a passphrase, not a file to load (``file: /dev/zero`` never ends)


def _read_secret(path: Path) -> str:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"cannot read secret file {path}: {exc.strerror}") from None
    if len(data) > MAX_SECRET_BYTES:
        raise ValueError(f"secret file {path} is longer than {MAX_SECRET_BYTES} bytes")
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError(f"secret file {path} is not UTF-8") from None


Secret = Annotated[SecretStr, BeforeValidator(_resolve_secret)]


AuthProtocol = Literal["SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512"]
PrivProtocol = Literal["AES", "AES-192", "AES-256"]
MIN_KEY_LENGTH = 8  # RFC 3414 section 11.2: passphrases of at least 8 characters
MAX_WALKS_LIMIT = 16


class SnmpCredentials(Strict):
    """How to talk to an agent; secrets may come from the environment or a file.

    These are the only credential rules: the probe's runtime settings (``probes.snmp``) are
    validated by the same model (:func:`check_poll`).
    """

    version: Literal["1", "2c", "3"] = "2c"
    community: Secret | None = None
    user: str | None = None
    auth_protocol: AuthProtocol = "SHA"  # SHA is SHA-1
    auth_key: Secret | None = None  # passphrase; none: noAuthNoPriv
    priv_protocol: PrivProtocol = "AES"  # AES is AES-128 (Blumenthal key expansion above)
    priv_key: Secret | None = None  # passphrase; none: authNoPriv
    port: Annotated[Int, Field(ge=1, le=65535)] = 161

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value

    @field_validator("auth_key", "priv_key")
    @classmethod
    def _key_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_KEY_LENGTH:
            raise ValueError(f"must be at least {MIN_KEY_LENGTH} characters (RFC 3414)")
        return value

    @model_validator(mode="after")
    def _complete(self) -> SnmpCredentials:
        if self.version != "3" and self.community is None:
            raise ValueError(f"SNMPv{self.version} needs a community")
        if self.version == "3" and not self.user:
            raise ValueError("SNMPv3 needs a user")
        if self.priv_key is not None and self.auth_key is None:
            raise ValueError("priv_key needs an auth_key (authPriv)")
        return self


class SnmpLimits(Strict):
    """How long and how hard one poll of a device may try."""

    timeout: Seconds = 2.0  # per request
    retries: Annotated[Int, Field(ge=0, le=10)] = 1  # extra attempts per request after a timeout
    max_poll_time: Seconds = 20.0  # bound on one whole poll of a device
    # walks in flight per device poll (1: one after another): v2c tables (each one chain of
    # multi-column GETBULKs), v1/v3 single columns
    max_walks: Annotated[Int, Field(ge=1, le=MAX_WALKS_LIMIT)] = 4


class SnmpDefaults(SnmpLimits):
    interval: Seconds = 60.0


class SnmpPoll(SnmpCredentials, SnmpLimits):
    """Everything one poll of one device needs, with every rule: credentials, profile, limits."""

    profile: ProfileName = "generic"
    # GETBULK max-repetitions when the table's size is not known from the last poll
    max_repetitions: Annotated[Int, Field(ge=1, le=1000)] = 40


def check_poll(values: Mapping[str, object]) -> SnmpPoll:
    """Validate one device's poll settings; a ValueError names every broken rule, never a secret."""
    try:
        return SnmpPoll.model_validate(values, context=FROM_CODE)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where, message = field_name(error_loc(err)), error_message(err)
            problems.append(f"{where}: {message}" if where else message)
        raise ValueError("invalid SNMP settings: " + "; ".join(problems)) from None


def poll_values(
    credentials: SnmpCredentials, device: DeviceSnmp, limits: SnmpLimits
) -> dict[str, object]:
    """The validated inventory's settings for one device, secrets revealed (for the probe only)."""
    values: dict[str, object] = {**dict(limits), **dict(credentials), "profile": device.profile}
    return {k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in values.items()}


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
        message = f"no SNMP credentials named {snmp.credentials!r} (known: {known})"
        yield ("snmp", "credentials"), message
    if snmp.profile not in profiles:
        known = ", ".join(sorted(profiles)) or "none found"
        yield ("snmp", "profile"), f"no SNMP profile {snmp.profile!r} (known: {known})"
