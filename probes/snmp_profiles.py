"""SNMP device profiles: what to read from a kind of device and what the rows mean -- as data.

A profile is one YAML file in ``netmon/data/snmp-profiles/`` (file stem == ``name``); a device names
its profile in :class:`probes.snmp.SnmpSettings`. A new vendor is one new file, no code. Loading
is strict: unknown keys, malformed OIDs, unknown types and dangling references are errors,
reported as ``file:line: field: message`` lines in one :class:`ProfileError` (a ConfigError).
A site's own profiles (``--snmp-profiles DIR``) are loaded after the bundled ones.

Schema::

    name: cisco-wlc                    # must equal the file's stem
    description: free text
    extends: generic                   # optional: inherit scalars, tables and roles (one level
                                       # of dict merge: a table of the same name is replaced)
    scalars:                           # v2c: non-repeaters of the first GETBULK; else GET
      sys_uptime: {oid: 1.3.6.1.2.1.1.3.0, type: timeticks}
    tables:                            # v2c: a table's columns in one GETBULK chain (v1/v3:
                                       # a walk per column); rows keyed by OID index
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

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from netmon.configfile import Document, load_yaml, validation_problems
from netmon.errors import ConfigError, ConfigProblem
from netmon.resources import snmp_profiles_dir
from netmon.schema import Loc

DEFAULT_DIR = snmp_profiles_dir()  # bundled package data (netmon/data/snmp-profiles/)

ValueType = Literal["gauge", "counter32", "counter64", "timeticks", "enum", "string", "mac", "oid"]
COUNTER_TYPES = ("counter32", "counter64")
NUMERIC_TYPES = ("gauge", "counter32", "counter64", "timeticks", "enum")
_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]


class ProfileError(ConfigError):
    """One or more profile files are invalid; one ``file:line: field: message`` per problem."""


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


def dangling(profile: Profile) -> Iterable[tuple[Loc, str]]:
    """Every role field must name an existing scalar, table or column of the right type
    (checked by :func:`load_profiles`)."""
    if profile.system:
        for field, scalar in profile.system.model_dump(exclude_none=True).items():
            if scalar not in profile.scalars:
                yield ("system", field), f"no scalar {scalar!r}"
    if profile.interfaces:
        yield from _check_interfaces(profile, profile.interfaces)
    if profile.aps:
        yield from _check_aps(profile, profile.aps)


def _check_interfaces(profile: Profile, role: InterfacesRole) -> Iterable[tuple[Loc, str]]:
    table = profile.tables.get(role.table)
    if table is None:
        yield ("interfaces", "table"), f"no table {role.table!r}"
        return
    fields = role.model_dump(exclude_none=True, exclude={"table", "up_values"})
    for field, column in fields.items():
        if column not in table.columns:
            yield ("interfaces", field), f"no column {column!r} in table {role.table!r}"
        elif (
            field.endswith(("_octets", "_errors"))
            and table.columns[column].type not in COUNTER_TYPES
        ):
            yield ("interfaces", field), f"column {column!r} must be counter32 or counter64"


def _check_aps(profile: Profile, role: ApsRole) -> Iterable[tuple[Loc, str]]:
    table = profile.tables.get(role.table)
    if table is None:
        yield ("aps", "table"), f"no table {role.table!r}"
        return
    for field in ("name", "mac"):
        column = getattr(role, field)
        is_index = field == "mac" and column == "index"
        if column is not None and not is_index and column not in table.columns:
            yield ("aps", field), f"no column {column!r} in table {role.table!r}"
    if role.up and role.up.column not in table.columns:
        yield ("aps", "up", "column"), f"no column {role.up.column!r} in table {role.table!r}"
    if role.clients:
        yield from _check_clients(profile, role)


def _check_clients(profile: Profile, role: ApsRole) -> Iterable[tuple[Loc, str]]:
    assert role.clients is not None
    name = role.clients.table or role.table
    table = profile.tables.get(name)
    if table is None:
        yield ("aps", "clients", "table"), f"no table {name!r}"
    elif role.clients.column not in table.columns:
        yield ("aps", "clients", "column"), f"no column {role.clients.column!r} in table {name!r}"
    elif table.columns[role.clients.column].type not in NUMERIC_TYPES:
        yield ("aps", "clients", "column"), f"column {role.clients.column!r} must be numeric"


# -- loading ---------------------------------------------------------------------------------


def profile_names(*directories: Path | str) -> set[str]:
    """The names of the profiles in ``directories`` (their files' stems), valid or not."""
    return {path.stem for directory in directories for path in Path(directory).glob("*.yaml")}


def load_profiles(*directories: Path | str) -> dict[str, Profile]:
    """Load and validate every ``*.yaml`` profile in ``directories`` (default: the bundled
    ones); a later directory's profile replaces an earlier one of the same name, and may
    extend any of them. All problems at once, as ``file:line: field: message``."""
    files: dict[str, Document] = {}
    problems: list[ConfigProblem] = []
    for directory in directories or (DEFAULT_DIR,):
        _read_directory(Path(directory), files, problems)
    profiles = _resolve_all(files, problems)
    if problems:
        raise ProfileError(problems)
    return profiles


def _read_directory(
    directory: Path, files: dict[str, Document], problems: list[ConfigProblem]
) -> None:
    paths = sorted(directory.glob("*.yaml")) if directory.is_dir() else []
    if not paths:
        what = "no *.yaml SNMP profiles found" if directory.is_dir() else "not a directory"
        problems.append(ConfigProblem(str(directory), None, "", what))
    for path in paths:
        try:
            doc = load_yaml(path)
        except ConfigError as exc:
            problems += exc.problems
            continue
        if not isinstance(doc.data, dict):
            problems.append(ConfigProblem(str(path), 1, "", "a profile must be a mapping"))
        elif doc.data.get("name") != path.stem:
            problems.append(doc.problem(("name",), f"must equal the file name {path.stem!r}"))
        else:
            files[path.stem] = doc


def _resolve_all(
    files: Mapping[str, Document], problems: list[ConfigProblem]
) -> dict[str, Profile]:
    profiles: dict[str, Profile] = {}
    for name, doc in files.items():
        try:
            profile = Profile.model_validate(_merged(name, files, ()))
        except _ExtendsError as exc:
            problems.append(doc.problem(("extends",), str(exc)))
            continue
        except ValidationError as exc:
            problems += validation_problems(exc, doc)
            continue
        found = [doc.problem(loc, message) for loc, message in dangling(profile)]
        problems += found
        if not found:
            profiles[name] = profile
    return profiles


class _ExtendsError(Exception):
    """A broken ``extends`` chain (internal: reported as a problem at the file's ``extends``)."""


def _merged(name: str, files: Mapping[str, Document], seen: tuple[str, ...]) -> dict[str, Any]:
    """The profile's dict with its ``extends`` chain merged in (parent first)."""
    if name in seen:
        raise _ExtendsError(f"cycle {' -> '.join((*seen, name))}")
    data = files[name].data
    parent_name = data.get("extends")
    if parent_name is None:
        return dict(data)
    if parent_name not in files:
        raise _ExtendsError(f"no profile {parent_name!r}")
    parent = _merged(parent_name, files, (*seen, name))
    merged = {**parent, **data}
    for key in ("scalars", "tables"):
        merged[key] = {**(parent.get(key) or {}), **(data.get(key) or {})}
    return merged
