"""A register merged into the inventory YAML: in place, keyed, diffed, validated, all or nothing.

The inventory is read with ruamel.yaml's round-trip loader, and only the values a record changes
are touched: every other entry keeps its comments, quoting, flow style and position, so a file
whose entries all match the register is written back byte for byte (and is not written at all).
New sites go at the end (after a blank line, as the example inventory has them), new devices at
the end of their site, in the flow style of their neighbours; a new key goes where the
canonical order (:data:`~netmon.onboard.columns.SITE_FIELDS`) puts it among the keys there.

Removing is opt-in (``prune``): sites the register lacks, and, when the register lists devices,
the devices it lacks in the sites it lists. A register of one district never deletes the rest.

The merged text is validated as ``check-config`` validates a file -- each site by the
inventory's models, then the cross checks -- and each problem located at its origin: the row
and column of the record that set the value, or the inventory's field if no record did.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import tempfile
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import SingleQuotedScalarString

from netmon.configfile import parse_yaml, read_text
from netmon.errors import ConfigError, ConfigProblem
from netmon.inventory import Site, cross_checks
from netmon.inventory.loader import draft_inventory
from netmon.onboard.columns import DEVICE_FIELDS, SITE_FIELDS
from netmon.onboard.register import Change, DeviceRecord, Origin, Register, SiteRecord, Value
from netmon.schema import Loc, error_loc, error_message, field_name

_DATE = re.compile(r"^\d{4}-\d\d-\d\d$")
_DATE_FIELDS = frozenset({"commissioned"})
_RESOLVER = yaml.resolver.Resolver()  # PyYAML's: how netmon's loader will read a plain scalar
_STR = "tag:yaml.org,2002:str"
Where = tuple[int, ...]  # (site index) or (site index, device index) in the merged file


def _yaml() -> YAML:
    """The round-trip dumper that writes the example inventory back byte for byte."""
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long name
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


@dataclass
class Merge:
    """The merged document, its diff and where each record landed."""

    root: CommentedMap
    changes: list[Change] = field(default_factory=list)
    origins: dict[Where, Origin] = field(default_factory=dict)
    problems: list[ConfigProblem] = field(default_factory=list)

    def text(self) -> str:
        out = io.StringIO()
        _yaml().dump(self.root, out)
        return out.getvalue()


def read_document(path: Path) -> CommentedMap:
    """The inventory at ``path`` for merging (empty if there is none yet); a ConfigError with its
    own ``file:line`` problems if a value in it is invalid now: fix it before importing. The
    cross checks (a district no site is in yet, a missing parent) are left to the merged result."""
    if not path.exists():
        return CommentedMap()
    text = read_text(path)
    problems = draft_inventory(parse_yaml(text, str(path))).problems
    if problems:
        raise ConfigError(problems)
    root = _yaml().load(text)
    return root if isinstance(root, CommentedMap) else CommentedMap()


def merge(root: CommentedMap, register: Register, prune: bool = False) -> Merge:
    """Apply ``register`` to ``root`` in place; the diff, origins and problems in the result."""
    result = Merge(root, problems=list(register.problems))
    sites = root.get("sites")
    if not isinstance(sites, CommentedSeq):
        sites = root["sites"] = CommentedSeq()
    by_id = {str(s.get("id")): s for s in sites if isinstance(s, CommentedMap)}
    for record in register.sites:
        _merge_site(sites, by_id, record, result)
    for dev in register.devices:
        if dev.site not in by_id:
            message = f"no site {dev.site!r} in the sites file or the inventory"
            result.problems.append(dev.origin.problem("site", message))
            continue
        _merge_device(by_id[dev.site], dev, result)
    if prune:
        _prune(sites, register, result)
    _place(sites, register, result)
    return result


def _merge_site(
    sites: CommentedSeq, by_id: dict[str, CommentedMap], record: SiteRecord, result: Merge
) -> None:
    entry = by_id.get(record.id)
    if entry is None:
        entry = _new_entry({"id": record.id, **record.fields}, SITE_FIELDS, flow=False)
        sites.append(entry)
        if len(sites) > 1:
            sites.yaml_set_comment_before_after_key(len(sites) - 1, before="\n")
        by_id[record.id] = entry
        result.changes.append(Change("added", "site", record.id, _listed(entry, SITE_FIELDS[1:])))
    elif diff := _update(entry, record.fields, SITE_FIELDS):
        result.changes.append(Change("changed", "site", record.id, diff))


def _merge_device(site: CommentedMap, record: DeviceRecord, result: Merge) -> None:
    devices = site.get("devices")
    if not isinstance(devices, CommentedSeq):
        devices = site["devices"] = CommentedSeq()
    key = f"{record.site}/{record.name}"
    entry = next((d for d in devices if isinstance(d, CommentedMap)
                  and str(d.get("name")) == record.name), None)  # fmt: skip
    if entry is None:
        flow = all(d.fa.flow_style() for d in devices if isinstance(d, CommentedMap))
        entry = _new_entry({"name": record.name, **record.fields}, DEVICE_FIELDS, flow=flow)
        devices.append(entry)
        result.changes.append(Change("added", "device", key, _listed(entry, DEVICE_FIELDS[1:])))
    elif diff := _update(entry, record.fields, DEVICE_FIELDS):
        result.changes.append(Change("changed", "device", key, diff))


def _new_entry(values: dict[str, Value], order: tuple[str, ...], flow: bool) -> CommentedMap:
    entry = CommentedMap()
    if flow:
        entry.fa.set_flow_style()
    for path in sorted(values, key=lambda p: order.index(p) if p in order else len(order)):
        if (text := values[path]) is not None:
            _set(entry, path.split("."), _converted(path, text), order)
    return entry


def _listed(entry: CommentedMap, order: tuple[str, ...]) -> tuple[tuple[str, None, str], ...]:
    """A new entry's fields as the diff shows them: (field, None, text)."""
    found = [(p, _get(entry, p.split("."))) for p in order]
    return tuple((p, None, text) for p, v in found if (text := _text(v)) is not None)


def _update(
    entry: CommentedMap, fields: dict[str, Value], order: tuple[str, ...]
) -> tuple[tuple[str, str | None, str | None], ...]:
    """Set ``fields`` in ``entry`` (None: remove); the fields whose text changed."""
    changed = []
    for path, new in fields.items():
        parts = path.split(".")
        old = _text(_get(entry, parts))
        if old == new:
            continue
        changed.append((path, old, new))
        if new is None:
            _delete(entry, parts)
        else:
            _set(entry, parts, _converted(path, new), order)
    return tuple(changed)


def _converted(path: str, text: str) -> object:
    """The YAML value for a field's text: a date for date fields (``2026-01-10``, unquoted); a
    text netmon's YAML 1.1 loader would read as something else (``yes``, ``10:20:30``, ``1e3``)
    single-quoted -- ruamel.yaml writes YAML 1.2, where those are plain strings."""
    if path in _DATE_FIELDS and _DATE.match(text):
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            return text  # the model says why (month 13)
    if _RESOLVER.resolve(yaml.ScalarNode, text, (True, False)) != _STR:
        return SingleQuotedScalarString(text)
    return text


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def _get(entry: CommentedMap, parts: list[str]) -> object:
    value: object = entry
    for part in parts:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _set(entry: CommentedMap, parts: list[str], value: object, order: tuple[str, ...]) -> None:
    *above, last = parts
    node = entry
    for part in above:
        child = node.get(part)
        if not isinstance(child, CommentedMap):
            child = CommentedMap()
            if node.fa.flow_style():
                child.fa.set_flow_style()
            _insert(node, part, child, order)
        node = child
    if last in node:
        node[last] = value
    else:
        prefix = ".".join(above) + "." if above else ""
        _insert(node, last, value, tuple(p.removeprefix(prefix) for p in order))


def _insert(node: CommentedMap, key: str, value: object, order: tuple[str, ...]) -> None:
    """Insert ``key`` before the first key that comes after it in ``order`` (else after the
    last key in ``order``, else at the end)."""
    rank = order.index(key) if key in order else len(order)
    keys = list(node)
    later = [i for i, k in enumerate(keys) if k in order and order.index(k) > rank]
    known = [i for i, k in enumerate(keys) if k in order]
    node.insert(later[0] if later else (known[-1] + 1 if known else len(keys)), key, value)


def _delete(entry: CommentedMap, parts: list[str]) -> None:
    *above, last = parts
    node = _get(entry, above) if above else entry
    if isinstance(node, dict) and last in node:
        del node[last]
        if above and not node:
            _delete(entry, above)  # an snmp: {} left empty goes too


def _prune(sites: CommentedSeq, register: Register, result: Merge) -> None:
    listed = {r.id for r in register.sites}
    devices = {(d.site, d.name) for d in register.devices}
    for i in reversed(range(len(sites))):
        site = sites[i]
        site_id = str(site.get("id"))
        if site_id not in listed:
            del sites[i]
            result.changes.append(Change("removed", "site", site_id))
        elif register.devices_given and isinstance(site.get("devices"), CommentedSeq):
            seq = site["devices"]
            for j in reversed(range(len(seq))):
                if (site_id, name := str(seq[j].get("name"))) not in devices:
                    del seq[j]
                    result.changes.append(Change("removed", "device", f"{site_id}/{name}"))
    result.changes.sort(key=lambda c: c.action != "removed")  # stable: removals listed first


def _place(sites: CommentedSeq, register: Register, result: Merge) -> None:
    """Where each record's entry is in the merged file (to locate problems)."""
    site_origin = {r.id: r.origin for r in register.sites}
    device_origin = {(d.site, d.name): d.origin for d in register.devices}
    for i, site in enumerate(sites):
        site_id = str(site.get("id"))
        if site_id in site_origin:
            result.origins[(i,)] = site_origin[site_id]
        for j, dev in enumerate(site.get("devices") or ()):
            if (origin := device_origin.get((site_id, str(dev.get("name"))))) is not None:
                result.origins[(i, j)] = origin


def validate(result: Merge, text: str, into: str, snmp_profiles: Collection[str]) -> None:
    """Every problem of the merged inventory ``text``, located at its origin, in ``problems``."""
    doc = parse_yaml(text, into)
    sites = (doc.data or {}).get("sites") or []
    for i, item in enumerate(sites):
        try:
            Site.model_validate(item)
        except ValidationError as exc:
            result.problems += [_locate(result, ("sites", i) + error_loc(e), error_message(e),
                                        into) for e in exc.errors()]  # fmt: skip
    draft = draft_inventory(doc)
    found = cross_checks(draft.inventory, snmp_profiles, draft.positions)
    result.problems += [_locate(result, loc, message, into) for loc, message in found]
    result.problems = list(dict.fromkeys(result.problems))


def _locate(result: Merge, loc: Loc, message: str, into: str) -> ConfigProblem:
    """``file:row: column`` of the record that set the value at ``loc``; else the inventory's
    field (a value no record set)."""
    for where, rest in _wheres(loc):
        if (origin := result.origins.get(where)) is not None:
            return origin.problem(".".join(str(p) for p in rest) or "id", message)
    return ConfigProblem(into, None, field_name(loc), message + " (after the import)")


def _wheres(loc: Loc) -> Iterator[tuple[Where, Loc]]:
    if len(loc) < 2 or loc[0] != "sites" or not isinstance(loc[1], int):
        return
    if len(loc) >= 4 and loc[2] == "devices" and isinstance(loc[3], int):
        yield (loc[1], loc[3]), loc[4:] or ("name",)
    elif len(loc) < 3 or loc[2] != "devices":
        yield (loc[1],), loc[2:]


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` in one step (a crash leaves the old file or the new one)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent or Path("."), prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
