"""NetBox as a register source: sites and devices read through NetBox's REST API, mapped by a
small YAML file onto netmon's fields, merged like a CSV (same keys, diff, validation, exit 78).

    netmon import netbox --url https://netbox.example.org --token-file /etc/netmon/netbox.token \
        --tag netmon --mapping netbox-map.yaml --into inventory.yaml [--dry-run] [--prune]

Read: ``GET /api/dcim/sites/?tag=T`` and ``GET /api/dcim/devices/?tag=T`` (NetBox 4: ``role``,
``primary_ip4``, ``custom_fields``), every page (``next``), ``Authorization: Token <token>``
(``Bearer`` for a NetBox 4.5 ``nbt_`` token). Only objects whose status the mapping lists are
imported (default ``active``): with ``--prune`` a site or device that leaves that status, or
loses the tag, leaves the inventory -- NetBox's status drives it, as in netbox-zabbix-sync.

The mapping (``--mapping``; every key optional, these are the defaults)::

    sites:
      statuses: [active]
      id: slug                      # a path into the NetBox object (dots go down)
      name: name
      district: region.name
      type: {path: custom_fields.facility_type}
      hfr_id: custom_fields.hfr_id
    devices:
      statuses: [active]
      name: name
      role: {path: role.slug, map: {ont: wan, access-point: ap, access-switch: switch,
                                    core-switch: switch, wlc: controller}}
      address: primary_ip4.address  # the prefix length (/24) is dropped
      parent: custom_fields.netmon_parent

A field is a path, ``{path: ..., map: {netbox value: netmon value}}`` (a value not in ``map``
is taken as it is), or ``{value: ...}`` (a constant); ``null`` leaves the field unmanaged. A
device's site is the netmon id of the NetBox site it is in. Problems are reported per object:
``netbox:dcim/devices/17: role: ...`` (the field named by its NetBox path).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from netmon.configfile import load_yaml, read_text, validation_problems
from netmon.errors import ConfigError, ConfigProblem, NetmonError
from netmon.onboard.register import DeviceRecord, Origin, Register, SiteRecord
from netmon.schema import Strict

MAX_PAGES = 1000  # x the page size: a bound on what one import reads
PAGE = 1000
TIMEOUT = 30.0  # seconds per request


ROLES = {
    "ont": "wan",
    "access-point": "ap",
    "access-switch": "switch",
    "core-switch": "switch",
    "wlc": "controller",
}  # NetBox role slug -> netmon role (others as they are)


class Mapped(Strict):
    path: str | None = None
    map: dict[str, str] = {}
    value: str | None = None


FieldMap = str | Mapped | None


class SiteMap(Strict):
    statuses: list[str] = ["active"]
    id: FieldMap = "slug"
    name: FieldMap = "name"
    name_hi: FieldMap = None
    district: FieldMap = "region.name"
    type: FieldMap = Mapped(path="custom_fields.facility_type")
    hfr_id: FieldMap = "custom_fields.hfr_id"
    commissioned: FieldMap = None


class DeviceMap(Strict):
    statuses: list[str] = ["active"]
    name: FieldMap = "name"
    role: FieldMap = Mapped(path="role.slug", map=ROLES)
    address: FieldMap = "primary_ip4.address"
    parent: FieldMap = "custom_fields.netmon_parent"
    mac: FieldMap = None
    snmp_credentials: FieldMap = None
    snmp_profile: FieldMap = None


class Mapping(Strict):
    sites: SiteMap = SiteMap()
    devices: DeviceMap = DeviceMap()


def load_mapping(path: Path | None) -> Mapping:
    """The mapping file (located problems, exit 78), or the defaults."""
    if path is None:
        return Mapping()
    doc = load_yaml(path)
    try:
        return Mapping.model_validate(doc.data or {})
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc, doc)) from None


def fetch(url: str, token: str, endpoint: str, tag: str) -> list[dict[str, Any]]:
    """Every object of ``endpoint`` (e.g. ``dcim/devices``) with ``tag``, over all pages."""
    query = urllib.parse.urlencode({"tag": tag, "limit": PAGE})
    page: str | None = f"{url.rstrip('/')}/api/{endpoint}/?{query}"
    scheme = "Bearer" if token.startswith("nbt_") else "Token"
    out: list[dict[str, Any]] = []
    for _ in range(MAX_PAGES):
        if page is None:
            return out
        request = urllib.request.Request(page, headers={"Authorization": f"{scheme} {token}",
                                                        "Accept": "application/json"})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
                body = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise NetmonError(f"NetBox {endpoint}: {exc}") from exc
        out.extend(body.get("results") or [])
        page = body.get("next")
    raise NetmonError(f"NetBox {endpoint}: more than {MAX_PAGES} pages")


def read_token(path: Path) -> str:
    token = read_text(path).strip()
    if not token:
        raise ConfigError([ConfigProblem(str(path), None, "", "the token file is empty")])
    return token


def _get(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def _value(obj: dict[str, Any], spec: FieldMap) -> tuple[str | None, str]:
    """(netmon text or None, the NetBox path it came from) for one mapped field."""
    if isinstance(spec, str):
        spec = Mapped(path=spec)
    assert spec is not None
    if spec.path is None:
        return spec.value, "(constant)"
    raw = _get(obj, spec.path)
    if isinstance(raw, dict) and "value" in raw:
        raw = raw["value"]  # a NetBox choice: {value, label}
    text = None if raw is None or raw == "" else str(raw)
    if text is not None and spec.path.endswith("address"):
        text = text.split("/")[0]  # 10.0.0.1/24 -> 10.0.0.1
    return (spec.map.get(text, text) if text is not None else None), spec.path


_TARGETS = {"snmp_credentials": "snmp.credentials", "snmp_profile": "snmp.profile"}


def _fields(
    obj: dict[str, Any], model: Strict, skip: set[str]
) -> tuple[dict[str, str | None], dict[str, str]]:
    """The managed fields (mapped, not None) of ``obj``, and the NetBox path of each."""
    fields: dict[str, str | None] = {}
    columns: dict[str, str] = {}
    for name in type(model).model_fields:
        spec = getattr(model, name)
        if name in skip or spec is None:
            continue
        target = _TARGETS.get(name, name)
        fields[target], columns[target] = _value(obj, spec)
    return fields, columns


def read_netbox(sites: list[dict[str, Any]], devices: list[dict[str, Any]], m: Mapping) -> Register:
    """The register NetBox's sites and devices make under mapping ``m``."""
    register = Register(devices_given=True)
    by_netbox_id: dict[Any, str] = {}
    for obj in sites:
        if _status(obj) not in m.sites.statuses:
            continue
        fields, columns = _fields(obj, m.sites, {"statuses", "id"})
        site_id, path = _value(obj, m.sites.id)
        origin = Origin(f"netbox:dcim/sites/{obj.get('id')}", None, {"id": path, **columns})
        if site_id is None:
            register.problems.append(origin.problem("id", "empty"))
            continue
        by_netbox_id[obj.get("id")] = site_id
        register.sites.append(SiteRecord(site_id, fields, origin))
    for obj in devices:
        if _status(obj) in m.devices.statuses:
            _device(obj, m, by_netbox_id, register)
    return register


def _device(obj: dict[str, Any], m: Mapping, sites: dict[Any, str], register: Register) -> None:
    fields, columns = _fields(obj, m.devices, {"statuses", "name"})
    name, path = _value(obj, m.devices.name)
    origin = Origin(f"netbox:dcim/devices/{obj.get('id')}", None,
                    {"name": path, "site": "site", **columns})  # fmt: skip
    site = sites.get(_get(obj, "site.id"))
    if name is None:
        register.problems.append(origin.problem("name", "empty"))
    elif site is None:  # its site is not tagged or not in an imported status: neither is it
        register.notes.append(f"{origin.file} ({name}): skipped, its site "
                              f"{_get(obj, 'site.name')!r} is not imported")  # fmt: skip
    else:
        register.devices.append(DeviceRecord(site, name, fields, origin))


def _status(obj: dict[str, Any]) -> str | None:
    status = obj.get("status")
    return str(status.get("value")) if isinstance(status, dict) else None
