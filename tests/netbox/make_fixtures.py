"""Write tests/netbox/fixtures/{sites,devices}.json: NetBox 4 API objects for 41 sites, 246 devices.

No NetBox is reachable from CI, so the objects are written here in the shape NetBox 4's REST API
returns (``/api/dcim/sites/``, ``/api/dcim/devices/``: nested ``{id, url, display, name, slug}``
references, ``status: {value, label}``, ``role`` (not 3.x's ``device_role``), ``primary_ip4``
with its prefix length, ``tags``, ``custom_fields``, the ``*_count`` fields), field for field
as a NetBox 4.1 instance answers. tests/netbox/server.py pages them as NetBox does. Run it again
after changing it: ``python tests/netbox/make_fixtures.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("fixtures")
BASE = "http://netbox.test"
DISTRICTS = ["Ranchi", "Khunti", "Gumla", "Lohardaga", "Simdega", "Latehar", "Palamu", "Garhwa"]
TAG = {
    "id": 3,
    "url": f"{BASE}/api/extras/tags/3/",
    "display_url": f"{BASE}/extras/tags/3/",
    "display": "netmon",
    "name": "netmon",
    "slug": "netmon",
    "color": "2196f3",
}
ROLES = {"ont": 1, "router": 2, "access-switch": 3, "access-point": 4}


def ref(kind: str, n: int, name: str, slug: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": n,
        "url": f"{BASE}/api/{kind}/{n}/",
        "display_url": f"{BASE}/{kind}/{n}/".replace("/api", ""),
        "display": name,
        "name": name,
    }
    if slug is not None:
        out["slug"] = slug
    out["description"] = ""
    return out


def site(n: int, block: str, district: str, status: str = "active") -> dict[str, Any]:
    d = DISTRICTS.index(district) + 1
    return {
        "id": n,
        "url": f"{BASE}/api/dcim/sites/{n}/",
        "display_url": f"{BASE}/dcim/sites/{n}/",
        "display": f"CHC {block}",
        "name": f"CHC {block}",
        "slug": f"chc-{block.lower()}",
        "status": {"value": status, "label": status.title()},
        "region": {
            **ref("dcim/regions", d, district, district.lower()),
            "site_count": 0,
            "_depth": 1,
        },
        "group": None,
        "tenant": None,
        "facility": f"Community Health Centre, {block}",
        "time_zone": "Asia/Kolkata",
        "description": "",
        "physical_address": "",
        "shipping_address": "",
        "latitude": None,
        "longitude": None,
        "comments": "",
        "asns": [],
        "tags": [TAG],
        "custom_fields": {"facility_type": "chc", "hfr_id": f"IN20{n:08d}", "name_hi": None},
        "created": "2026-09-01T10:00:00.000000Z",
        "last_updated": "2026-11-20T08:30:00.000000Z",
        "circuit_count": 1,
        "device_count": 6,
        "prefix_count": 1,
        "rack_count": 0,
        "virtualmachine_count": 0,
        "vlan_count": 2,
    }


def device(
    n: int,
    s: dict[str, Any],
    name: str,
    role: str,
    ip: str,
    parent: str | None,
    status: str = "active",
) -> dict[str, Any]:
    return {
        "id": n,
        "url": f"{BASE}/api/dcim/devices/{n}/",
        "display_url": f"{BASE}/dcim/devices/{n}/",
        "display": name,
        "name": name,
        "device_type": {
            **ref("dcim/device-types", ROLES[role], role.upper(), role),
            "manufacturer": ref("dcim/manufacturers", 1, "Generic", "generic"),
            "model": role.upper(),
        },
        "role": ref("dcim/device-roles", ROLES[role], role.replace("-", " ").title(), role),
        "tenant": None,
        "platform": None,
        "serial": "",
        "asset_tag": None,
        "site": {k: s[k] for k in ("id", "url", "display", "name", "slug")} | {"description": ""},
        "location": None,
        "rack": None,
        "position": None,
        "face": None,
        "latitude": None,
        "longitude": None,
        "parent_device": None,
        "status": {"value": status, "label": status.title()},
        "airflow": None,
        "primary_ip": {
            "id": n,
            "url": f"{BASE}/api/ipam/ip-addresses/{n}/",
            "display": f"{ip}/24",
            "family": {"value": 4, "label": "IPv4"},
            "address": f"{ip}/24",
            "description": "",
        },
        "primary_ip4": {
            "id": n,
            "url": f"{BASE}/api/ipam/ip-addresses/{n}/",
            "display": f"{ip}/24",
            "family": {"value": 4, "label": "IPv4"},
            "address": f"{ip}/24",
            "description": "",
        },
        "primary_ip6": None,
        "oob_ip": None,
        "cluster": None,
        "virtual_chassis": None,
        "vc_position": None,
        "vc_priority": None,
        "description": "",
        "comments": "",
        "config_template": None,
        "local_context_data": None,
        "tags": [TAG],
        "custom_fields": {"netmon_parent": parent},
        "created": "2026-09-01T10:00:00.000000Z",
        "last_updated": "2026-11-20T08:30:00.000000Z",
        "console_port_count": 0,
        "console_server_port_count": 0,
        "power_port_count": 1,
        "power_outlet_count": 0,
        "interface_count": 8,
        "front_port_count": 0,
        "rear_port_count": 0,
        "device_bay_count": 0,
        "module_bay_count": 0,
        "inventory_item_count": 0,
    }


def main() -> None:
    blocks = [f"Block{i:02d}" for i in range(1, 42)]
    sites = [
        site(i, b, DISTRICTS[i % len(DISTRICTS)], "planned" if i == 41 else "active")
        for i, b in enumerate(blocks, start=1)
    ]
    devices = []
    for s in sites:
        n, net = s["id"], f"127.201.{s['id']}"
        gear = [
            ("wan-1", "ont", f"{net}.1", None),
            ("router-1", "router", f"{net}.2", "wan-1"),
            ("sw-01", "access-switch", f"{net}.3", "router-1"),
        ]
        gear += [(f"ap-{k:03d}", "access-point", f"{net}.{10 + k}", "sw-01") for k in (1, 2, 3)]
        for name, role, ip, parent in gear:
            status = "offline" if (n, name) == (7, "ap-003") else "active"
            devices.append(device(len(devices) + 1, s, name, role, ip, parent, status))
    OUT.mkdir(exist_ok=True)
    for name, objs in (("sites", sites), ("devices", devices)):
        (OUT / f"{name}.json").write_text(json.dumps(objs, separators=(",", ":")) + "\n")
    print(f"{len(sites)} sites, {len(devices)} devices")


if __name__ == "__main__":
    main()
