"""What a source says about sites and devices, before it is merged into an inventory.

A record holds only the fields its source manages: a field set to None is cleared (a CSV cell
left empty), a field not in ``fields`` at all is left as the inventory has it (a column the CSV
does not have). Field names are inventory paths, dotted below the device (``snmp.credentials``).
Each record has an :class:`Origin`, so a problem found in the merged inventory is reported at the
source's row and column instead of a line of a file the user never wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netmon.errors import ConfigProblem

Value = str | None  # a source's text for a field; None: clear it


@dataclass(frozen=True)
class Origin:
    """Where a record came from: a file and row, and the column each field was read from."""

    file: str
    row: int | None
    columns: dict[str, str] = field(default_factory=dict)  # field path -> column name

    def problem(self, field_path: str, message: str) -> ConfigProblem:
        """A problem of ``field_path`` as ``file:row: column: message``."""
        return ConfigProblem(self.file, self.row, self.columns.get(field_path, field_path), message)


@dataclass
class SiteRecord:
    id: str
    fields: dict[str, Value]
    origin: Origin


@dataclass
class DeviceRecord:
    site: str
    name: str
    fields: dict[str, Value]
    origin: Origin


@dataclass
class Register:
    """Sites and devices in source order; ``problems``: what could not become a record."""

    sites: list[SiteRecord] = field(default_factory=list)
    devices: list[DeviceRecord] = field(default_factory=list)
    problems: list[ConfigProblem] = field(default_factory=list)
    devices_given: bool = False  # the source lists devices (a DEVICES.csv): prune may remove some
    notes: list[str] = field(default_factory=list)  # what was left out on purpose, and why


@dataclass(frozen=True)
class Change:
    """One entry of the diff: a site or device added, changed (field by field) or removed."""

    action: str  # "added" | "changed" | "removed"
    kind: str  # "site" | "device"
    key: str  # site id, or site-id/device-name
    fields: tuple[tuple[str, str | None, str | None], ...] = ()  # (field, old, new)

    def __str__(self) -> str:
        head = f"{self.action:<7} {self.kind} {self.key}"
        if self.action == "added":
            return head + ": " + ", ".join(f"{f}={new!r}" for f, _old, new in self.fields)
        if self.action == "removed":
            return head
        parts = [f"{f}: {_shown(old)} -> {_shown(new)}" for f, old, new in self.fields]
        return head + ": " + "; ".join(parts)


def _shown(value: str | None) -> str:
    return "(none)" if value is None else repr(value)


def summary(changes: list[Change]) -> str:
    """``2 sites added, 1 site changed (3 fields), 4 devices removed`` (or ``no changes``)."""
    counts: dict[tuple[str, str], int] = {}
    for change in changes:
        key = (change.kind, change.action)
        counts[key] = counts.get(key, 0) + 1
    parts = []
    for kind in ("site", "device"):
        for action in ("added", "changed", "removed"):
            if n := counts.get((kind, action), 0):
                parts.append(f"{n} {kind}{'s' if n != 1 else ''} {action}")
    fields = sum(len(c.fields) for c in changes if c.action == "changed")
    if fields:
        parts.append(f"{fields} field{'s' if fields != 1 else ''} changed")
    return ", ".join(parts) if parts else "no changes"
