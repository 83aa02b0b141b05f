"""From raw SNMP values to netmon's records: decoded values, interface rows, AP rows.

:class:`RawPoll` holds what one poll read, keyed by the profile's names (scalars by name, table
columns by ``{table: {column: {index: value}}}`` where ``index`` is the OID suffix after the
column). The functions here are pure: the poller passes the previous :class:`DeviceState` in and
gets the rows plus the state to keep out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from probes.snmp_client import Value
from probes.snmp_counters import (
    DeviceState,
    InterfaceState,
    error_increases,
    flap_increment,
    octet_rates,
)
from probes.snmp_findings import Interface, Json, from_columns
from probes.snmp_profiles import ApsRole, Column, Profile

_MAC_HEX = re.compile(r"[0-9a-f]{12}")


@dataclass(slots=True)
class RawPoll:
    """Everything one poll read, by profile names; ``walked`` lists the completed columns."""

    scalars: dict[str, Value] = field(default_factory=dict)
    tables: dict[str, dict[str, dict[str, Value]]] = field(default_factory=dict)
    walked: set[tuple[str, str]] = field(default_factory=set)
    layouts: dict[str, object] = field(default_factory=dict)  # TableRead.layout, by table

    def has_data(self) -> bool:
        return bool(self.scalars) or any(
            values for table in self.tables.values() for values in table.values()
        )

    def row_counts(self) -> dict[str, int]:
        """Rows per table (its longest column): sizes the next poll's first GETBULK."""
        return {
            name: max((len(values) for values in columns.values()), default=0)
            for name, columns in self.tables.items()
        }

    def column(self, table: str, column: str | None) -> dict[str, Value]:
        return self.tables.get(table, {}).get(column, {}) if column else {}


# -- values ----------------------------------------------------------------------------------


def decode(value: Value, column: Column) -> Json:
    """A raw value as JSON: numbers for numeric types, text for string/oid, aa:bb:.. for mac."""
    if value is None:
        return None
    if column.type == "mac":
        return _mac_value(value)
    if column.type in ("string", "oid"):
        return _text(value)
    if isinstance(value, bool):
        return int(value)
    return value if isinstance(value, int | float) else None


def _text(value: Value) -> str:
    if isinstance(value, bytes):
        return value.rstrip(b"\0").decode("utf-8", errors="replace")
    return str(value)


def _mac_value(value: Value) -> str | None:
    if isinstance(value, bytes) and len(value) == 6:
        return ":".join(f"{octet:02x}" for octet in value)
    return normalize_mac(_text(value)) if value is not None else None


def normalize_mac(text: str) -> str | None:
    """``aa:bb:cc:dd:ee:ff`` for any common MAC spelling (colons, dashes, dots, none)."""
    digits = re.sub(r"[\s:.\-]", "", text.strip().lower())
    if not _MAC_HEX.fullmatch(digits):
        return None
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def mac_from_index(index: str) -> str | None:
    """The MAC in the last six arcs of a row index (tables indexed by MacAddress)."""
    arcs = index.split(".")[-6:]
    if len(arcs) != 6 or not all(arc.isdigit() and int(arc) < 256 for arc in arcs):
        return None
    return ":".join(f"{int(arc):02x}" for arc in arcs)


def index_key(index: str) -> tuple[int, ...]:
    return tuple(int(arc) for arc in index.split(".") if arc.isdigit())


# -- system ----------------------------------------------------------------------------------


def system_info(profile: Profile, raw: RawPoll) -> dict[str, Json]:
    """sys_uptime_ticks / sys_name / sys_descr / sys_object_id from the profile's system role."""
    names = _roles(profile)[0]
    info: dict[str, Json] = {}
    for field_name in ("uptime", "name", "descr", "object_id"):
        scalar = names.get(field_name)
        value = raw.scalars.get(scalar) if scalar else None
        key = "sys_uptime_ticks" if field_name == "uptime" else f"sys_{field_name}"
        info[key] = decode(value, profile.scalars[scalar]) if scalar and value is not None else None
    return info


def other_scalars(profile: Profile, raw: RawPoll) -> dict[str, Json]:
    """Scalars the profile reads beyond the system role (vendor extras), decoded."""
    used = _roles(profile)[1]
    return {
        name: decode(raw.scalars.get(name), column)
        for name, column in profile.scalars.items()
        if name not in used
    }


def _roles(profile: Profile) -> tuple[dict[str, Any], set[str]]:
    """The system role's fields (``model_dump``), and the scalars it names: worked out once
    per profile object (profiles are frozen; a reload makes new ones)."""
    cached = _ROLES.get(id(profile))
    if cached is None or cached[0] is not profile:
        if len(_ROLES) >= 256:
            _ROLES.clear()
        role = profile.system
        names = role.model_dump() if role else {}
        used = set(role.model_dump(exclude_none=True).values()) if role else set()
        cached = _ROLES[id(profile)] = (profile, names, used)
    return cached[1], cached[2]


_ROLES: dict[int, tuple[Profile, dict[str, Any], set[str]]] = {}


# -- interfaces ------------------------------------------------------------------------------


@dataclass(slots=True)
class Interval:
    """What the previous poll of the device says about this one."""

    prev: DeviceState | None
    elapsed: float | None  # seconds since the previous complete poll
    rebooted: bool


def interface_rows(
    profile: Profile, raw: RawPoll, interval: Interval, notes: list[str]
) -> tuple[list[Interface], dict[int, InterfaceState]]:
    """One row per interface, and the per-interface state to keep for the next poll.

    Column-wise (each field a list in index order, computed with C-level ``map`` passes where
    it can): the rows were a third of a poll's CPU one by one (bench/snmp.py)."""
    role = profile.interfaces
    assert role is not None
    columns = [raw.column(role.table, getattr(role, f)) for f in _IF_FIELDS]
    keys = sorted(filter(str.isdigit, set().union(*columns)), key=int)
    indexes = list(map(int, keys))
    names = _names(list(map(columns[0].get, keys)))
    oper, admin, in_o, out_o, in_e, out_e, change, _speed = got = [_ints(c, keys) for c in columns[1:]]  # fmt: skip
    known = interval.prev.interfaces if interval.prev else {}
    olds: list[InterfaceState | None] = list(map(known.get, indexes)) if known else [None] * len(keys)  # fmt: skip
    flaps = [
        0 if o is None else o.flaps + flap_increment(o.oper, op, o.last_change, ch)
        for o, op, ch in zip(olds, oper, change, strict=True)
    ]
    kept = from_columns(InterfaceState, in_o, out_o, in_e, out_e, oper, change, flaps)
    states = dict(zip(indexes, kept, strict=True))
    rates = [[None] * len(keys)] * 4  # in/out bits/s, in/out errors
    if interval.elapsed is not None and not interval.rebooted and len(keys):
        rates = _rates(profile, interval.elapsed, olds, got, indexes, notes)
    up = role.up_values
    oper_up = [None if v is None else v in up for v in oper]
    admin_up = [None if v is None else v in up for v in admin]
    rows = from_columns(Interface, indexes, names, oper_up, admin_up, *rates, flaps, in_o, out_o, in_e, out_e)  # fmt: skip
    return rows, states


_IF_FIELDS = (
    "name", "oper_status", "admin_status", "in_octets", "out_octets",
    "in_errors", "out_errors", "last_change", "speed_mbps",
)  # fmt: skip
_COUNTERS = ("in_octets", "out_octets", "in_errors", "out_errors")
_INT_OR_NONE = frozenset((int, type(None)))
_OLD = {name: attrgetter(name) for name in _COUNTERS}
_NAMES: dict[bytes, str] = {}  # ifName bytes -> text (the same names come back every poll)
_NAMES_CACHE = 1 << 14


def _ints(column: Mapping[str, Value], indexes: list[str]) -> list[int | None]:
    """The column's values at ``indexes``: ints as they are, anything else (a bool too) None."""
    got = list(map(column.get, indexes))
    if _INT_OR_NONE.issuperset(map(type, got)):
        return got  # type: ignore[return-value]
    return [v if type(v) is int else None for v in got]


def _names(values: list[Value]) -> list[str | None]:
    """Interface names as text (:func:`_text`), cached by their bytes."""
    if all(type(v) is bytes for v in values):
        texts = list(map(_NAMES.get, values))  # type: ignore[arg-type]
        if None not in texts:
            return texts
    if len(_NAMES) >= _NAMES_CACHE:
        _NAMES.clear()
    named = [_text(v) if v is not None else None for v in values]
    _NAMES.update(
        (v, t) for v, t in zip(values, named, strict=True) if type(v) is bytes and t is not None
    )
    return named


def _rates(
    profile: Profile,
    elapsed: float,
    olds: list[InterfaceState | None],
    got: list[list[int | None]],
    indexes: list[int],
    notes: list[str],
) -> list[list[Any]]:
    """in/out bits/s and in/out errors since the previous complete poll, per interface (None
    for an interface without one); notes for counters that wrapped or reset."""
    _oper, _admin, in_o, out_o, in_e, out_e, _change, speed = got
    widths, cap = _widths(profile), profile.max_bps
    caps = [s * 1e6 * 1.05 if s else cap for s in speed]
    none = [None] * len(indexes)
    out: list[list[Any]] = []
    said: dict[str, dict[int, str]] = {}
    for name, cur in zip(_COUNTERS, (in_o, out_o, in_e, out_e), strict=True):
        width = widths[name]
        if not width:
            out.append(none)
            continue
        old: list[int | None] = (
            list(map(_OLD[name], olds))
            if all(olds)  # (None is the only falsy one: no `in`, which calls their __eq__)
            else [None if o is None else _OLD[name](o) for o in olds]
        )
        if name.endswith("_errors"):
            out.append(error_increases(old, cur, width))
            continue
        bps, said[name] = octet_rates(old, cur, width, elapsed, caps)
        out.append([None if b is None else round(b, 1) for b in bps])
    for i in sorted({*said.get("in_octets", ()), *said.get("out_octets", ())}):
        for direction in ("in", "out"):
            if note := said.get(f"{direction}_octets", {}).get(i):
                notes.append(f"ifIndex {indexes[i]}: {direction} octets {note}")
    return out


def _widths(profile: Profile) -> dict[str, int | None]:
    """Bits of the interface role's octet and error counters (None: the role has none)."""
    role = profile.interfaces
    assert role is not None
    table = profile.tables[role.table].columns
    widths: dict[str, int | None] = {}
    for field_name in _COUNTERS:
        column = getattr(role, field_name)
        widths[field_name] = (64 if table[column].type == "counter64" else 32) if column else None
    return widths


def _int(value: Value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# -- access points ---------------------------------------------------------------------------


def ap_rows(profile: Profile, raw: RawPoll) -> list[dict[str, Json]]:
    """One row per AP the device lists: {name, mac, up, clients} (None where unknown)."""
    role = profile.aps
    assert role is not None
    columns = profile.tables[role.table].columns
    used = [c for c in (role.name, role.mac, role.up and role.up.column) if c and c in columns]
    if role.clients and not role.clients.table:
        used.append(role.clients.column)
    indexes = sorted({i for c in used for i in raw.column(role.table, c)}, key=index_key)
    clients = _clients_by_ap(profile, role, raw, indexes)
    return [_ap_row(profile, role, raw, index, clients) for index in indexes]


def _ap_row(
    profile: Profile, role: ApsRole, raw: RawPoll, index: str, clients: Mapping[str, int | None]
) -> dict[str, Json]:
    columns = profile.tables[role.table].columns
    name = raw.column(role.table, role.name).get(index)
    if role.mac == "index":
        mac: Json = mac_from_index(index)
    else:
        mac = (
            decode(raw.column(role.table, role.mac).get(index), columns[role.mac])
            if role.mac
            else None
        )
    return {
        "name": _text(name) if name is not None else None,
        "mac": mac,
        "up": _is_up(profile, role, raw, index),
        "clients": clients.get(index),
    }


def _is_up(profile: Profile, role: ApsRole, raw: RawPoll, index: str) -> bool | None:
    if role.up is None:
        return True  # the device lists only itself / only live APs
    column = profile.tables[role.table].columns[role.up.column]
    value = decode(raw.column(role.table, role.up.column).get(index), column)
    if value is None:
        return None
    if isinstance(value, int | float):
        return any(_same_number(value, v) for v in role.up.values)
    return str(value).strip().casefold() in {str(v).strip().casefold() for v in role.up.values}


def _same_number(value: float, wanted: int | str) -> bool:
    try:
        return value == int(wanted)
    except ValueError:
        return False


def _clients_by_ap(
    profile: Profile, role: ApsRole, raw: RawPoll, indexes: list[str]
) -> dict[str, int | None]:
    """Client count per AP index: the AP row's column, or a sum over another table's rows."""
    rule = role.clients
    if rule is None:
        return {}
    table = rule.table or role.table
    values = raw.column(table, rule.column)
    if not rule.table:
        return {i: _int(values.get(i)) for i in indexes}
    if (table, rule.column) not in raw.walked:
        return {}  # a partial walk would under-count: unknown rather than wrong
    totals: dict[str, int | None] = dict.fromkeys(indexes, 0)
    for sub_index, value in values.items():
        ap = _owner(sub_index, totals)
        if ap is not None and isinstance(value, int):
            totals[ap] = (totals[ap] or 0) + value
    return totals


def _owner(sub_index: str, aps: Mapping[str, Any]) -> str | None:
    """The AP index that ``sub_index`` (e.g. MAC.slot) starts with, if any."""
    arcs = sub_index.split(".")
    for length in range(len(arcs) - 1, 0, -1):
        prefix = ".".join(arcs[:length])
        if prefix in aps:
            return prefix
    return None


# -- matching the controller's APs to the inventory -----------------------------------------


def _ap_keys(ap: Mapping[str, Any]) -> set[str]:
    keys = set()
    if ap.get("mac") and (mac := normalize_mac(str(ap["mac"]))):
        keys.add(mac)
    if ap.get("name"):
        keys.add(str(ap["name"]).strip().casefold())
    return keys


def _known_key(entry: str) -> str:
    return normalize_mac(entry) or entry.strip().casefold()


def match_aps(
    aps: Iterable[Mapping[str, Any]], known: Iterable[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split a poll's APs into (matched, unknown) against inventory AP names or MACs.

    An AP matches when its MAC (any spelling) or its name (case-insensitive) is in ``known``.
    ``unknown`` are APs the controller reports but the inventory lacks.
    """
    keys = {_known_key(entry) for entry in known}
    matched: list[dict[str, Any]] = []
    unknown: list[dict[str, Any]] = []
    for ap in aps:
        (matched if _ap_keys(ap) & keys else unknown).append(dict(ap))
    return matched, unknown


def missing_aps(aps: Iterable[Mapping[str, Any]], known: Iterable[str]) -> list[str]:
    """Inventory entries (names or MACs, as given) that no AP of the poll matches."""
    seen = set().union(*(_ap_keys(ap) for ap in aps))
    return [entry for entry in known if _known_key(entry) not in seen]
