"""What one SNMP poll found: typed, frozen, and round-tripping the store's JSON column.

The JSON shape (:meth:`SnmpFindings.to_json`) is the ``extra`` object netmon stored before
findings were typed, so results written by older versions load unchanged.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from itertools import repeat
from typing import Any, TypeVar

Json = None | bool | int | float | str  # a decoded SNMP value, as stored


@dataclass(frozen=True, slots=True)
class Interface:
    """One interface row; rates and error counts are since the previous complete poll, the
    ``*_counter`` fields the device's own counters as read (its wraps and resets included)."""

    index: int
    name: str | None = None
    oper_up: bool | None = None
    admin_up: bool | None = None
    in_bps: float | None = None
    out_bps: float | None = None
    in_errors: int | None = None
    out_errors: int | None = None
    flaps: int = 0  # oper-status transitions seen so far
    in_octets_counter: int | None = None  # e.g. ifHCInOctets (the profile's in_octets column)
    out_octets_counter: int | None = None
    in_errors_counter: int | None = None  # e.g. ifInErrors
    out_errors_counter: int | None = None


@dataclass(frozen=True, slots=True)
class AccessPoint:
    """One AP as a controller reports it (``None`` where the profile cannot tell)."""

    name: str | None = None
    mac: str | None = None  # "aa:bb:cc:dd:ee:ff"
    up: bool | None = None
    clients: int | None = None


@dataclass(frozen=True, slots=True)
class SnmpFindings:
    """One poll's findings; never a community or key."""

    profile: str
    complete: bool  # every object of the profile was read
    poll_seconds: float = 0.0
    sys_uptime_seconds: float | None = None
    rebooted: bool = False  # sysUpTime went back (or lagged) since the previous poll
    sys_name: Json = None  # decoded as the profile says (text for the standard objects)
    sys_descr: Json = None
    sys_object_id: Json = None
    scalars: Mapping[str, Json] = field(default_factory=dict)  # the profile's other scalars
    interfaces: tuple[Interface, ...] | None = None  # None: no interfaces role, or not ok
    aps: tuple[AccessPoint, ...] | None = None  # None: no aps role, or not ok
    notes: tuple[str, ...] = ()  # counter wraps/resets, e.g. "ifIndex 3: in octets reset"

    @property
    def aps_total(self) -> int | None:
        return len(self.aps) if self.aps is not None else None

    @property
    def aps_up(self) -> int | None:
        return sum(ap.up is True for ap in self.aps) if self.aps is not None else None

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["scalars"] = dict(self.scalars)
        data["interfaces"] = _rows(self.interfaces)
        data["aps"] = _rows(self.aps)
        data["aps_total"], data["aps_up"] = self.aps_total, self.aps_up
        data["notes"] = list(self.notes)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SnmpFindings:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["scalars"] = dict(values.get("scalars") or {})
        values["interfaces"] = _parse(Interface, data.get("interfaces"))
        values["aps"] = _parse(AccessPoint, data.get("aps"))
        values["notes"] = tuple(values.get("notes") or ())
        return cls(**values)


T = TypeVar("T", Interface, AccessPoint)


def _rows(
    items: tuple[Interface, ...] | tuple[AccessPoint, ...] | None,
) -> list[dict[str, Any]] | None:
    return None if items is None else [asdict(item) for item in items]


def _parse(cls: type[T], rows: list[Mapping[str, Any]] | None) -> tuple[T, ...] | None:
    if rows is None:
        return None
    known = {f.name for f in fields(cls)}
    return tuple(cls(**{k: v for k, v in row.items() if k in known}) for row in rows)


C = TypeVar("C")


def from_columns(cls: type[C], *columns: Sequence[Any]) -> list[C]:
    """``[cls(*row) for row in zip(*columns)]`` for a slotted dataclass without defaults used
    or ``__post_init__``: one column per field, in field order. Each field is set on all the
    objects by one C-level ``map`` over its slot's descriptor instead of calling ``__init__``
    per object (a frozen dataclass's ``__init__`` makes one ``object.__setattr__`` call per
    field: ~2.2 us for an :class:`Interface`, ~0.8 us this way). Same objects, frozen or not."""
    setters = _setters(cls)
    if len(columns) != len(setters):
        raise TypeError(f"{cls.__name__} has {len(setters)} fields, got {len(columns)} columns")
    objects: list[C] = list(map(object.__new__, repeat(cls, len(columns[0]))))
    for setter, column in zip(setters, columns, strict=True):
        if len(column) != len(objects):
            raise ValueError("columns of different lengths")
        deque(map(setter, objects, column), maxlen=0)
    return objects


def _setters(cls: type) -> tuple[Callable[[Any, Any], None], ...]:
    found = _SETTERS.get(cls)
    if found is None:
        if hasattr(cls, "__post_init__") or not hasattr(cls, "__slots__"):
            raise TypeError(f"{cls.__name__}: not a slotted dataclass without __post_init__")
        found = _SETTERS[cls] = tuple(cls.__dict__[f.name].__set__ for f in fields(cls))
    return found


_SETTERS: dict[type, tuple[Callable[[Any, Any], None], ...]] = {}
