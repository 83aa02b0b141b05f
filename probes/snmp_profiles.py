"""SNMP device profiles: what to read from a kind of device and what the rows mean -- as data.

A profile is one YAML file in ``netmon/data/snmp-profiles/`` (file stem == ``name``); a device names
its profile in :class:`probes.snmp.SnmpSettings`. A new vendor is one new file, no code. Loading
is strict: unknown keys, malformed OIDs, unknown types and dangling references are errors,
reported as ``file: location: message`` lines in one :class:`ProfileError`.

Schema::

    name: cisco-wlc                    # must equal the file's stem
    description: free text
    extends: generic                   # optional: inherit scalars, tables and roles (one level
                                       # of dict merge: a table of the same name is replaced)
    scalars:                           # read with GET (a few requests for all of them)
      sys_uptime: {oid: 1.3.6.1.2.1.1.3.0, type: timeticks}
    tables:                            # one GETBULK walk per column; rows keyed by OID index
      ap:
        columns:
          mac:  {oid: 1.3.6.1.4.1.14179.2.2.1.1.1, type: mac}
          name: {oid: 1.3.6.1.4.1.14179.2.2.1.1.3, type: string}
    system:                            # which scalars are sysUpTime, sysName, sysDescr, sysObjectID
      {uptime: sys_uptime, name: sys_name, descr: sys_descr, object_id: sys_object_id}
    interfaces:                        # IF-MIB role: status, bits/s, errors, flaps per interface
      {table: if, name: name, oper_status: oper_status, admin_status: admin_status,
       in_octets: in_octets, out_octets: out_octets, in_errors: in_errors,
       out_errors: out_errors, last_change: last_change, speed_mbps: high_speed}
    aps:                               # access-point role: one AP per row of ``table``
      table: ap
      name: name                       # column
      mac: mac                         # column, or "index": MAC from the row index's last 6 arcs
      up: {column: status, values: [1]}   # optional; absent: every listed AP is up
      clients: {column: clients}       # optional; ``table: radio`` sums the rows of another
                                       # table whose index starts with the AP's index

Column/scalar types: ``gauge``, ``counter32``, ``counter64``, ``timeticks``, ``enum``, ``string``,
``mac``, ``oid``. ``up.values`` are compared as integers for ``enum``/``gauge`` columns and as
case-insensitive text otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from netmon.resources import snmp_profiles_dir

DEFAULT_DIR = snmp_profiles_dir()  # bundled package data (netmon/data/snmp-profiles/)

ValueType = Literal["gauge", "counter32", "counter64", "timeticks", "enum", "string", "mac", "oid"]
COUNTER_TYPES = ("counter32", "counter64")
NUMERIC_TYPES = ("gauge", "counter32", "counter64", "timeticks", "enum")
_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]


class ProfileError(ValueError):
    """One or more profile files are invalid; the message has one ``file: loc: msg`` per line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Column(_Strict):
    """One SNMP object: a scalar instance (ends in ``.0``) or a table column (no index)."""

    oid: str
    type: ValueType

    @field_validator("oid", mode="before")
    @classmethod
    def _numeric_oid(cls, value: object) -> object:
        text = str(value).strip().lstrip(".") if isinstance(value, str | int | float) else value
        if not isinstance(text, str) or not _OID.match(text):
            raise ValueError(f"not a numeric OID: {value!r} (e.g. 1.3.6.1.2.1.1.3.0)")
        return text


class Table(_Strict):
    columns: dict[Name, Column] = Field(min_length=1)


class SystemRole(_Strict):
    uptime: str | None = None
    name: str | None = None
    descr: str | None = None
    object_id: str | None = None


class InterfacesRole(_Strict):
    table: str
    name: str | None = None
    oper_status: str
    admin_status: str | None = None
    up_values: list[int] = Field(default=[1], min_length=1)  # IF-MIB up(1)
    in_octets: str | None = None
    out_octets: str | None = None
    in_errors: str | None = None
    out_errors: str | None = None
    last_change: str | None = None
    speed_mbps: str | None = None  # ifHighSpeed: caps plausible rates


class UpRule(_Strict):
    column: str
    values: list[int | str] = Field(min_length=1)


class ClientsRule(_Strict):
    column: str
    table: str | None = None  # another table, summed over rows under the AP's index


class ApsRole(_Strict):
    table: str
    name: str | None = None
    mac: str | None = None  # a column, or "index"
    up: UpRule | None = None
    clients: ClientsRule | None = None


class Profile(_Strict):
    """A resolved profile (``extends`` already merged in)."""

    name: Name
    description: str = ""
    extends: Name | None = None
    max_bps: float = Field(default=400e9, gt=0)  # rate cap when an interface's speed is unknown
    scalars: dict[Name, Column] = Field(default_factory=dict)
    tables: dict[Name, Table] = Field(default_factory=dict)
    system: SystemRole | None = None
    interfaces: InterfacesRole | None = None
    aps: ApsRole | None = None

    @model_validator(mode="after")
    def _references(self) -> Profile:
        for problem in _dangling(self):
            raise ValueError(problem)
        return self


def _dangling(profile: Profile) -> Iterable[str]:
    """Every role field must name an existing scalar, table or column of the right type."""
    if profile.system:
        for field, scalar in profile.system.model_dump(exclude_none=True).items():
            if scalar not in profile.scalars:
                yield f"system.{field}: no scalar {scalar!r}"
    if profile.interfaces:
        yield from _check_interfaces(profile, profile.interfaces)
    if profile.aps:
        yield from _check_aps(profile, profile.aps)


def _check_interfaces(profile: Profile, role: InterfacesRole) -> Iterable[str]:
    table = profile.tables.get(role.table)
    if table is None:
        yield f"interfaces.table: no table {role.table!r}"
        return
    fields = role.model_dump(exclude_none=True, exclude={"table", "up_values"})
    for field, column in fields.items():
        if column not in table.columns:
            yield f"interfaces.{field}: no column {column!r} in table {role.table!r}"
        elif (
            field.endswith(("_octets", "_errors"))
            and table.columns[column].type not in COUNTER_TYPES
        ):
            yield f"interfaces.{field}: column {column!r} must be counter32 or counter64"


def _check_aps(profile: Profile, role: ApsRole) -> Iterable[str]:
    table = profile.tables.get(role.table)
    if table is None:
        yield f"aps.table: no table {role.table!r}"
        return
    for field in ("name", "mac"):
        column = getattr(role, field)
        is_index = field == "mac" and column == "index"
        if column is not None and not is_index and column not in table.columns:
            yield f"aps.{field}: no column {column!r} in table {role.table!r}"
    if role.up and role.up.column not in table.columns:
        yield f"aps.up.column: no column {role.up.column!r} in table {role.table!r}"
    if role.clients:
        yield from _check_clients(profile, role)


def _check_clients(profile: Profile, role: ApsRole) -> Iterable[str]:
    assert role.clients is not None
    name = role.clients.table or role.table
    table = profile.tables.get(name)
    if table is None:
        yield f"aps.clients.table: no table {name!r}"
    elif role.clients.column not in table.columns:
        yield f"aps.clients.column: no column {role.clients.column!r} in table {name!r}"
    elif table.columns[role.clients.column].type not in NUMERIC_TYPES:
        yield f"aps.clients.column: column {role.clients.column!r} must be numeric"


# -- loading ---------------------------------------------------------------------------------


def load_profiles(directory: Path | str = DEFAULT_DIR) -> dict[str, Profile]:
    """Load and validate every ``*.yaml`` profile in ``directory`` (all problems at once)."""
    directory = Path(directory)
    raw: dict[str, tuple[Path, dict[str, Any]]] = {}
    problems: list[str] = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            raw[path.stem] = (path, _read(path))
        except ProfileError as exc:
            problems.append(str(exc))
    if not raw and not problems:
        problems.append(f"{directory}: no *.yaml SNMP profiles found")
    profiles = _resolve_all(raw, problems)
    if problems:
        raise ProfileError("\n".join(problems))
    return profiles


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ProfileError(f"{path}: cannot read: {exc}") from exc
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: a profile must be a mapping")
    if data.get("name") != path.stem:
        raise ProfileError(f"{path}: name: must equal the file name {path.stem!r}")
    return data


def _resolve_all(
    raw: Mapping[str, tuple[Path, dict[str, Any]]], problems: list[str]
) -> dict[str, Profile]:
    profiles: dict[str, Profile] = {}
    for name, (path, _data) in raw.items():
        try:
            merged = _merged(name, raw, ())
            profiles[name] = Profile.model_validate(merged)
        except ProfileError as exc:
            problems.append(f"{path}: {exc}")
        except ValidationError as exc:
            problems.extend(f"{path}: {line}" for line in _error_lines(exc))
    return profiles


def _merged(
    name: str, raw: Mapping[str, tuple[Path, dict[str, Any]]], seen: tuple[str, ...]
) -> dict[str, Any]:
    """The profile's dict with its ``extends`` chain merged in (parent first)."""
    if name in seen:
        raise ProfileError(f"extends: cycle {' -> '.join((*seen, name))}")
    data = raw[name][1]
    parent_name = data.get("extends")
    if parent_name is None:
        return dict(data)
    if parent_name not in raw:
        raise ProfileError(f"extends: no profile {parent_name!r}")
    parent = _merged(parent_name, raw, (*seen, name))
    merged = {**parent, **data}
    for key in ("scalars", "tables"):
        merged[key] = {**(parent.get(key) or {}), **(data.get(key) or {})}
    return merged


def _error_lines(exc: ValidationError) -> list[str]:
    lines = []
    for error in exc.errors():
        loc = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{loc}: {message}" if loc else message)
    return lines
