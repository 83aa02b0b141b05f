"""The CSV columns of ``netmon import csv`` / ``netmon export csv``, and the field each one sets.

SITES.csv (one row per site, keyed by ``id``)::

    id            the site id (slug: a-z, 0-9, -)            required; the key
    name          the facility's name                        required for a new site
    name_hi       its Hindi name (status board)
    district      one of the state's districts               required for a new site
    type          medical_college | district_hospital | chc | phc | other   required for a new site
    hfr_id        ABDM Health Facility Registry id (IN + 10 digits)
    commissioned  the day the Wi-Fi was commissioned (YYYY-MM-DD)

DEVICES.csv (one row per device, keyed by ``site`` and ``name``)::

    site              the id of its site (in SITES.csv or already in the inventory)   required
    name              the device name (slug), unique in its site                      required
    role              wan | router | switch | ap | controller          required for a new device
    address           IP address or host name
    parent            the name of its upstream device in the same site
    mac               how a wireless controller names this AP
    snmp_credentials  the name of an entry of the inventory's snmp.credentials
    snmp_profile      the SNMP profile (default generic)

The first row names the columns, in any order. Only the columns a file has are managed: a column
left out of the header leaves that field as the inventory has it; a cell left empty clears it.
Cells are trimmed; files are UTF-8 (a spreadsheet's byte-order mark is fine).
"""

from __future__ import annotations

SITE_KEY = "id"
SITE_COLUMNS: dict[str, str] = {  # column -> field path in the site
    "id": "id",
    "name": "name",
    "name_hi": "name_hi",
    "district": "district",
    "type": "type",
    "hfr_id": "hfr_id",
    "commissioned": "commissioned",
}
DEVICE_KEYS = ("site", "name")
DEVICE_COLUMNS: dict[str, str] = {  # column -> field path in the device
    "name": "name",
    "role": "role",
    "address": "address",
    "parent": "parent",
    "mac": "mac",
    "snmp_credentials": "snmp.credentials",
    "snmp_profile": "snmp.profile",
}
SITE_FIELDS = tuple(SITE_COLUMNS.values())  # the order new entries get their keys in
DEVICE_FIELDS = tuple(DEVICE_COLUMNS.values())
