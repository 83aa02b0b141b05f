"""CSV files to a register, and an inventory back to CSV files (the columns: :mod:`.columns`).

Reading checks only what a CSV file alone can say is wrong: the header (unknown, repeated or
missing key columns), a row's cell count, an empty or repeated key, a device whose site is in
neither file nor inventory. Every value is checked later, after merging, by the inventory's own
models and cross checks (:mod:`.merge`), so a CSV import accepts exactly what ``check-config``
does. Rows are numbered as a spreadsheet shows them: the header is row 1.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Collection, Iterator
from pathlib import Path

from netmon.configfile import read_text
from netmon.errors import ConfigError, ConfigProblem
from netmon.inventory import Device, Inventory, Site
from netmon.onboard.columns import (
    DEVICE_COLUMNS,
    DEVICE_KEYS,
    SITE_COLUMNS,
    SITE_KEY,
)
from netmon.onboard.register import DeviceRecord, Origin, Register, SiteRecord

Cells = dict[str, str | None]


def read_csv(sites: Path, devices: Path | None = None) -> Register:
    """The register SITES.csv (and DEVICES.csv) describe; structural problems in ``problems``."""
    register = Register(devices_given=devices is not None)
    seen: dict[str, int] = {}
    for row, cells in _rows(sites, SITE_COLUMNS, (SITE_KEY,), register.problems):
        key = _key(cells, SITE_KEY, sites, row, register.problems)
        if key is None or _repeated(seen, key, f"site id {key!r}", sites, row, SITE_KEY, register):
            continue
        fields = {SITE_COLUMNS[c]: v for c, v in cells.items() if c != SITE_KEY}
        columns = {SITE_COLUMNS[c]: c for c in cells}
        register.sites.append(SiteRecord(key, fields, Origin(str(sites), row, columns)))
    if devices is not None:
        _read_devices(devices, register)
    return register


def _read_devices(path: Path, register: Register) -> None:
    seen: dict[str, int] = {}
    for row, cells in _rows(path, {"site": "site", **DEVICE_COLUMNS}, DEVICE_KEYS,
                            register.problems):  # fmt: skip
        site = _key(cells, "site", path, row, register.problems)
        name = _key(cells, "name", path, row, register.problems)
        if site is None or name is None:
            continue
        what = f"device {name!r} in site {site!r}"
        if _repeated(seen, f"{site}/{name}", what, path, row, "name", register):
            continue
        fields = {DEVICE_COLUMNS[c]: v for c, v in cells.items() if c not in DEVICE_KEYS}
        columns = {DEVICE_COLUMNS.get(c, c): c for c in cells}
        register.devices.append(DeviceRecord(site, name, fields, Origin(str(path), row, columns)))


def _key(
    cells: Cells, column: str, path: Path, row: int, problems: list[ConfigProblem]
) -> str | None:
    value = cells.get(column)
    if value is None:
        problems.append(ConfigProblem(str(path), row, column, "empty: every row needs one"))
    return value


def _repeated(
    seen: dict[str, int], key: str, what: str, path: Path, row: int, column: str, reg: Register
) -> bool:
    """Whether ``key`` was on an earlier row (a problem if so); records it otherwise."""
    if key in seen:
        message = f"duplicate {what} (first at row {seen[key]})"
        reg.problems.append(ConfigProblem(str(path), row, column, message))
        return True
    seen[key] = row
    return False


def _rows(
    path: Path, known: Collection[str], keys: tuple[str, ...], problems: list[ConfigProblem]
) -> Iterator[tuple[int, Cells]]:
    """Each data row's cells by column (empty cells None), with its row number; none if the
    file or its header is unusable (the problems say why)."""
    try:
        text = read_text(path).removeprefix("\ufeff")  # a spreadsheet's BOM
    except ConfigError as exc:
        problems += exc.problems
        return
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader, [])]
        if _header_problems(header, known, keys, str(path), problems):
            return
        start = reader.line_num + 1
        for cells in reader:
            row, start = start, reader.line_num + 1
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                message = f"{len(cells)} cells, but the header has {len(header)} columns"
                problems.append(ConfigProblem(str(path), row, "", message))
                continue
            yield row, {h: (c.strip() or None) for h, c in zip(header, cells, strict=True)}
    except csv.Error as exc:
        problems.append(ConfigProblem(str(path), reader.line_num, "", f"CSV: {exc}"))


def _header_problems(
    header: list[str], known: Collection[str], keys: tuple[str, ...], file: str,
    problems: list[ConfigProblem],
) -> bool:  # fmt: skip
    found = []
    for i, name in enumerate(header):
        if name not in known:
            found.append(f"unknown column {name or '(empty)'!r} (known: {', '.join(known)})")
        elif name in header[:i]:
            found.append(f"column {name!r} appears twice")
    found += [f"required column {k!r} is missing" for k in keys if k not in header]
    problems += [ConfigProblem(file, 1, "", message) for message in found]
    return bool(found)


def write_csv(inventory: Inventory, sites: Path, devices: Path | None = None) -> tuple[int, int]:
    """Write the inventory's sites (and devices) in the import's columns; (sites, devices)."""
    with sites.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(SITE_COLUMNS)
        out.writerows(_site_row(site) for site in inventory.sites)
    if devices is None:
        return len(inventory.sites), 0
    rows = [[site.id, *_device_row(dev)] for site in inventory.sites for dev in site.devices]
    with devices.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(["site", *DEVICE_COLUMNS])
        out.writerows(rows)
    return len(inventory.sites), len(rows)


def _site_row(site: Site) -> list[str]:
    return [_cell(site, path) for path in SITE_COLUMNS.values()]


def _device_row(dev: Device) -> list[str]:
    return [_cell(dev, path) for path in DEVICE_COLUMNS.values()]


def _cell(model: object, path: str) -> str:
    """The text of a field the file set (a default left out is left out: an empty cell)."""
    for part in path.split("."):
        if model is None or part not in getattr(model, "model_fields_set", ()):
            return ""
        model = getattr(model, part)
    if isinstance(model, dt.date):
        return model.isoformat()
    return "" if model is None else str(model)
