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
from typing import Any

from probes.snmp_client import Value
from probes.snmp_counters import (
    DeviceState,
    InterfaceState,
    error_increase,
    flap_increment,
    octet_rate,
)
from probes.snmp_findings import Interface, Json
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
    role = profile.system
    names = role.model_dump() if role else {}
    info: dict[str, Json] = {}
    for field_name in ("uptime", "name", "descr", "object_id"):
        scalar = names.get(field_name)
        value = raw.scalars.get(scalar) if scalar else None
        key = "sys_uptime_ticks" if field_name == "uptime" else f"sys_{field_name}"
        info[key] = decode(value, profile.scalars[scalar]) if scalar and value is not None else None
    return info


def other_scalars(profile: Profile, raw: RawPoll) -> dict[str, Json]:
    """Scalars the profile reads beyond the system role (vendor extras), decoded."""
    used = set(profile.system.model_dump(exclude_none=True).values()) if profile.system else set()
    return {
        name: decode(raw.scalars.get(name), column)
        for name, column in profile.scalars.items()
        if name not in used
    }


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

    Column-wise: each column's values in index order first (non-int values as None), then
    one pass over the rows (measured in bench/snmp.py: it is a third of a poll's CPU)."""
    role = profile.interfaces
    assert role is not None
    columns = [raw.column(role.table, getattr(role, f)) for f in _IF_FIELDS]
    indexes = sorted(filter(str.isdigit, set().union(*columns)), key=int)
    names = [_text(v) if v is not None else None for v in map(columns[0].get, indexes)]
    numbers = [_ints(column, indexes) for column in columns[1:]]
    prev = interval.prev.interfaces if interval.prev else None
    rates = _Rates(profile, interval, notes) if interval.elapsed is not None and not interval.rebooted else None  # fmt: skip
    up = role.up_values
    rows, states = [], {}
    for index, name, oper, admin, in_o, out_o, in_e, out_e, change, speed in zip(
        map(int, indexes), names, *numbers, strict=True
    ):
        old = prev.get(index) if prev else None
        flaps = 0
        if old is not None:
            flaps = old.flaps + flap_increment(old.oper, oper, old.last_change, change)
        states[index] = InterfaceState(in_o, out_o, in_e, out_e, oper, change, flaps)
        in_bps = out_bps = in_err = out_err = None
        if old is not None and rates is not None:
            in_bps, in_err = rates.of(index, "in", in_o, old.in_octets, in_e, old.in_errors, speed)
            out_bps, out_err = rates.of(index, "out", out_o, old.out_octets, out_e, old.out_errors, speed)  # fmt: skip
        rows.append(Interface(
            index, name, None if oper is None else oper in up, None if admin is None else admin in up,
            in_bps, out_bps, in_err, out_err, flaps, in_o, out_o, in_e, out_e,
        ))  # fmt: skip
    return rows, states


_IF_FIELDS = (
    "name", "oper_status", "admin_status", "in_octets", "out_octets",
    "in_errors", "out_errors", "last_change", "speed_mbps",
)  # fmt: skip


_COUNTERS = ("in_octets", "out_octets", "in_errors", "out_errors")
_INT_OR_NONE = frozenset((int, type(None)))


def _ints(column: Mapping[str, Value], indexes: list[str]) -> list[int | None]:
    """The column's values at ``indexes``: ints as they are, anything else (a bool too) None."""
    got = list(map(column.get, indexes))
    if _INT_OR_NONE.issuperset(map(type, got)):
        return got  # type: ignore[return-value]
    return [v if type(v) is int else None for v in got]


class _Rates:
    """bits/s and error counts of one interface since the previous complete poll."""

    def __init__(self, profile: Profile, interval: Interval, notes: list[str]) -> None:
        assert interval.elapsed is not None
        self.widths = _widths(profile)
        self.max_bps = profile.max_bps
        self.elapsed = interval.elapsed
        self.notes = notes

    def of(
        self,
        index: int,
        direction: str,
        octets: int | None,
        old_octets: int | None,
        errors: int | None,
        old_errors: int | None,
        speed: int | None,
    ) -> tuple[float | None, int | None]:
        """(bits/s, errors) in one direction (``speed``: Mbit/s, caps plausible rates)."""
        bps = increase = None
        width = self.widths[f"{direction}_octets"]
        if octets is not None and old_octets is not None and width:
            cap = speed * 1e6 * 1.05 if speed else self.max_bps
            rate, note = octet_rate(old_octets, octets, width, self.elapsed, cap)
            bps = None if rate is None else round(rate, 1)
            if note:
                self.notes.append(f"ifIndex {index}: {direction} octets {note}")
        width = self.widths[f"{direction}_errors"]
        if errors is not None and old_errors is not None and width:
            increase = error_increase(old_errors, errors, width)
        return bps, increase


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
