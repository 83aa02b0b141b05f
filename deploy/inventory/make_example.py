"""Generate ``jharkhand-example.yaml``: an example netmon inventory for Jharkhand's public hospitals.

Run ``python deploy/inventory/make_example.py`` to (re)write ``netmon/data/inventory/jharkhand-example.yaml``
(package data: every install carries it).
The output is deterministic: the same script always writes the same bytes, because every
per-site random draw comes from ``random.Random`` seeded with a fixed string plus the site id
(adding or removing a site does not change the gear of any other site).

Sites
    * the 6 government medical colleges (ids ``mc-<college>-<town>``),
    * the 24 district (Sadar) hospitals, one per district (ids ``dh-<district>``),
    * a spread of block-level CHCs, two or three per district (ids ``chc-<block>``).

Gear per site follows the *proposal* table in ``/work/shared/domain.md`` ("Plausible gear per
site"); counts are drawn inside its ranges:

    ============== ===== ====== ========= =============== ====== ===========
    facility        wan  router core sw   access switches  APs    controllers
    ============== ===== ====== ========= =============== ====== ===========
    medical college 1-2    1       2          15-30       80-200     1-2
    district hosp.   1     1       1           3-6         15-40      -
    CHC              1     -       -            1           2-6       -
    ============== ===== ====== ========= =============== ====== ===========

Parent chains (netmon uses them to blame the nearest failed upstream device)::

    wan-1 <- router-1 <- core-sw-N <- sw-NN <- ap-NNN
                                   <- wlc-N
    CHC:   wan-1 <- sw-01 <- ap-NNN       (the ONT's built-in router; no core switch)

Address scheme: every address is on loopback, ``127.B.R.N``, so the example answers ping on any
Linux host (the whole of 127.0.0.0/8 is routed to ``lo``).

    B  facility block, one per site: 10-15 medical colleges, 40-63 district hospitals,
       80+ CHCs (in the order listed below). Never 0, so nothing lands in 127.0.0.x.
    R  role: 1 wan, 2 router, 3 core switch, 4 controller, 5 access switch, 6 access point.
    N  1-based index of the device within its role (at most 200, so never .0 or .255).

The ``hfr_id`` values are illustrative only: ``IN`` + ``20`` (Jharkhand's LGD state code) +
``99`` + the three-digit block ``B`` + a three-digit site serial. They are not real Health Facility Registry ids.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import yaml

# Bundled with the package (netmon.resources.example_inventory()).
OUTPUT = (
    Path(__file__).resolve().parents[2] / "netmon" / "data" / "inventory" / "jharkhand-example.yaml"
)
SEED = "netmon-jharkhand-example-v1"

# Role -> third address octet (R in the docstring).
ROLE_OCTET = {"wan": 1, "router": 2, "core": 3, "controller": 4, "switch": 5, "ap": 6}

# First facility block (second address octet) for each facility type.
BLOCK_START = {"medical_college": 10, "district_hospital": 40, "chc": 80}

# (id, name, district) of the government medical colleges; AIIMS Deoghar is central, left out.
MEDICAL_COLLEGES = [
    ("mc-rims-ranchi", "Rajendra Institute of Medical Sciences (RIMS), Ranchi", "Ranchi"),
    ("mc-mgm-jamshedpur", "MGM Medical College, Jamshedpur", "East Singhbhum"),
    ("mc-snmmc-dhanbad", "Shaheed Nirmal Mahto Medical College, Dhanbad", "Dhanbad"),
    ("mc-pjmc-dumka", "Phulo Jhano Medical College, Dumka", "Dumka"),
    ("mc-sbmc-hazaribagh", "Sheikh Bhikhari Medical College, Hazaribagh", "Hazaribagh"),
    ("mc-mmc-palamu", "Medinirai Medical College, Palamu (Medininagar)", "Palamu"),
]

# District -> headquarters town, where the town is not named like the district.
DISTRICT_HQ = {
    "East Singhbhum": "Jamshedpur",
    "West Singhbhum": "Chaibasa",
    "Seraikela Kharsawan": "Seraikela",
    "Palamu": "Medininagar",
}

# Same 24 districts, same spelling, as netmon.inventory.JHARKHAND_DISTRICTS (kept literal so
# this script needs only the standard library and PyYAML).
DISTRICTS = [
    "Bokaro", "Chatra", "Deoghar", "Dhanbad", "Dumka", "East Singhbhum", "Garhwa", "Giridih",
    "Godda", "Gumla", "Hazaribagh", "Jamtara", "Khunti", "Koderma", "Latehar", "Lohardaga",
    "Pakur", "Palamu", "Ramgarh", "Ranchi", "Sahebganj", "Seraikela Kharsawan", "Simdega",
    "West Singhbhum",
]  # fmt: skip

# District -> its Hindi name on the status board (common spellings, domain.md: *check against
# the state's official list*).
DISTRICTS_HI = {
    "Bokaro": "बोकारो", "Chatra": "चतरा", "Deoghar": "देवघर", "Dhanbad": "धनबाद",
    "Dumka": "दुमका", "East Singhbhum": "पूर्वी सिंहभूम", "Garhwa": "गढ़वा", "Giridih": "गिरिडीह",
    "Godda": "गोड्डा", "Gumla": "गुमला", "Hazaribagh": "हज़ारीबाग", "Jamtara": "जामताड़ा",
    "Khunti": "खूंटी", "Koderma": "कोडरमा", "Latehar": "लातेहार", "Lohardaga": "लोहरदगा",
    "Pakur": "पाकुड़", "Palamu": "पलामू", "Ramgarh": "रामगढ़", "Ranchi": "रांची",
    "Sahebganj": "साहिबगंज", "Seraikela Kharsawan": "सरायकेला खरसावां", "Simdega": "सिमडेगा",
    "West Singhbhum": "पश्चिमी सिंहभूम",
}  # fmt: skip

# Site id -> its Hindi name, for a few sites (the others show their English name in Hindi too).
NAMES_HI = {
    "mc-rims-ranchi": "राजेंद्र आयुर्विज्ञान संस्थान (रिम्स), रांची",
    "dh-ranchi": "सदर अस्पताल, रांची",
    "dh-khunti": "सदर अस्पताल, खूंटी",
    "dh-dhanbad": "सदर अस्पताल, धनबाद",
    "chc-bundu": "सामुदायिक स्वास्थ्य केंद्र, बुंडू",
    "chc-ratu": "सामुदायिक स्वास्थ्य केंद्र, रातू",
    "chc-torpa": "सामुदायिक स्वास्थ्य केंद्र, तोरपा",
}

# District -> block towns with a community health centre (block-level CHCs, not sub-divisional
# hospitals). Two per district, three in the largest ones.
CHCS = {
    "Ranchi": ["Bundu", "Ratu", "Mandar"],
    "Khunti": ["Torpa", "Murhu"],
    "Gumla": ["Sisai", "Basia"],
    "Simdega": ["Kolebira", "Bano"],
    "Lohardaga": ["Kuru", "Kisko"],
    "East Singhbhum": ["Potka", "Chakulia", "Baharagora"],
    "West Singhbhum": ["Manoharpur", "Noamundi"],
    "Seraikela Kharsawan": ["Kharsawan", "Rajnagar"],
    "Dhanbad": ["Tundi", "Topchanchi", "Nirsa"],
    "Bokaro": ["Chandankiyari", "Gomia"],
    "Giridih": ["Jamua", "Bagodar"],
    "Hazaribagh": ["Barkagaon", "Ichak"],
    "Koderma": ["Domchanch", "Markacho"],
    "Chatra": ["Hunterganj", "Itkhori"],
    "Ramgarh": ["Gola", "Patratu"],
    "Palamu": ["Patan", "Lesliganj"],
    "Garhwa": ["Bhawnathpur", "Meral"],
    "Latehar": ["Balumath", "Chandwa"],
    "Deoghar": ["Sarath", "Mohanpur"],
    "Dumka": ["Jarmundi", "Shikaripara"],
    "Godda": ["Pathargama", "Poreyahat"],
    "Jamtara": ["Nala", "Kundhit"],
    "Pakur": ["Maheshpur", "Littipara"],
    "Sahebganj": ["Barharwa", "Borio"],
}

HEADER = """\
# Example netmon inventory: Jharkhand's government medical colleges, all 24 district (Sadar)
# hospitals and a spread of block-level community health centres (CHCs), with the BSNL Wi-Fi
# gear each might have.
#
# - Every address is on loopback (127.B.R.N; every 127.x.y.z answers ping on Linux), so the
#   default run works on any machine. Replace them with the real management addresses.
#   B = site block (10+ medical colleges, 40+ district hospitals, 80+ CHCs),
#   R = role (1 wan, 2 router, 3 core switch, 4 controller, 5 access switch, 6 AP), N = index.
# - The gear counts are a *proposal* (domain.md, "Plausible gear per site"), not a survey.
# - hfr_id values are illustrative (IN2099...), not real Health Facility Registry ids.
# - Generated by deploy/inventory/make_example.py: regenerate it, don't hand-edit.

"""


@dataclass(frozen=True)
class Site:
    """One facility before its gear is drawn."""

    id: str
    name: str
    district: str
    type: str
    block: int  # second address octet, unique per site


def slug(text: str) -> str:
    """Lower-case, hyphenated id fragment: 'East Singhbhum' -> 'east-singhbhum'."""
    return "-".join(text.lower().replace("(", " ").replace(")", " ").split())


def facilities() -> list[Site]:
    """All sites in output order, each given the next facility block of its type."""
    mcs = [(i, n, d, "medical_college") for i, n, d in MEDICAL_COLLEGES]
    dhs = [
        (f"dh-{slug(d)}", f"Sadar Hospital, {DISTRICT_HQ.get(d, d)}", d, "district_hospital")
        for d in DISTRICTS
    ]
    chcs = [
        (f"chc-{slug(town)}", f"Community Health Centre, {town}", d, "chc")
        for d in DISTRICTS
        for town in CHCS[d]
    ]
    sites = []
    for group in (mcs, dhs, chcs):
        start = BLOCK_START[group[0][3]]
        sites += [Site(i, n, d, t, start + k) for k, (i, n, d, t) in enumerate(group)]
    return sites


def hfr_id(site: Site, serial: int) -> str:
    """Illustrative registry id: IN + 20 (state) + 99 (marks it fake) + block + serial."""
    return f"IN2099{site.block:03d}{serial:03d}"


def device(site: Site, name: str, role: str, index: int, parent: str | None) -> dict:
    """One device dict; `role` may be 'core', which is written as a switch."""
    address = f"127.{site.block}.{ROLE_OCTET[role]}.{index}"
    out = {"name": name, "role": "switch" if role == "core" else role, "address": address}
    if parent is not None:
        out["parent"] = parent
    return out


def spread(i: int, items: int, buckets: int) -> int:
    """0-based bucket of item `i` when `items` are split into `buckets` contiguous, even runs."""
    return i * buckets // items


def gear_counts(site: Site, rng: random.Random) -> dict[str, int]:
    """How many devices of each role the site gets, drawn inside domain.md's ranges."""
    if site.type == "medical_college":
        return {
            "wan": rng.randint(1, 2), "router": 1, "core": 2, "switch": rng.randint(15, 30),
            "ap": rng.randint(80, 200), "controller": rng.randint(1, 2),
        }  # fmt: skip
    if site.type == "district_hospital":
        return {
            "wan": 1, "router": 1, "core": 1, "switch": rng.randint(3, 6),
            "ap": rng.randint(15, 40), "controller": 0,
        }  # fmt: skip
    return {"wan": 1, "router": 0, "core": 0, "switch": 1, "ap": rng.randint(2, 6), "controller": 0}


def devices(site: Site, n: dict[str, int]) -> list[dict]:
    """The site's devices in upstream-first order, with parent chains as in the docstring."""
    out = [device(site, f"wan-{i}", "wan", i, None) for i in range(1, n["wan"] + 1)]
    up = "wan-1"  # second ONT/ILL of a medical college is a backup link; the router hangs off #1
    if n["router"]:
        out.append(device(site, "router-1", "router", 1, up))
        up = "router-1"
    cores = [f"core-sw-{i}" for i in range(1, n["core"] + 1)]
    out += [device(site, c, "core", i, up) for i, c in enumerate(cores, 1)]
    out += [
        device(site, f"wlc-{i}", "controller", i, cores[(i - 1) % len(cores)])
        for i in range(1, n["controller"] + 1)
    ]
    switches = [f"sw-{i:02d}" for i in range(1, n["switch"] + 1)]
    out += [
        device(site, s, "switch", i, cores[(i - 1) % len(cores)] if cores else up)
        for i, s in enumerate(switches, 1)
    ]
    out += [
        device(site, f"ap-{i:03d}", "ap", i, switches[spread(i - 1, n["ap"], len(switches))])
        for i in range(1, n["ap"] + 1)
    ]
    return out


def scalar(value: str) -> str:
    """A string as a YAML scalar that is safe inside a flow mapping (quoted only if needed)."""
    dumped = yaml.safe_dump([value], default_flow_style=True, width=1000, allow_unicode=True)
    return dumped.strip()[1:-1]


def site_yaml(site: Site, serial: int, gear: list[dict]) -> str:
    """One site as a block-list item, each device a one-line flow mapping."""
    lines = [
        f"  - id: {scalar(site.id)}",
        f"    name: {scalar(site.name)}",
        *([f"    name_hi: {scalar(NAMES_HI[site.id])}"] if site.id in NAMES_HI else []),
        f"    district: {scalar(site.district)}",
        f"    type: {site.type}",
        f"    hfr_id: {scalar(hfr_id(site, serial))}",
        "    devices:",
    ]
    for d in gear:
        fields = ", ".join(f"{k}: {scalar(v)}" for k, v in d.items())
        lines.append(f"      - {{{fields}}}")
    return "\n".join(lines) + "\n"


def districts_yaml() -> str:
    """The districts' Hindi names (the status board's), one flow mapping per line."""
    lines = [f"  {scalar(d)}: {{name_hi: {scalar(DISTRICTS_HI[d])}}}" for d in DISTRICTS]
    return "districts:\n" + "\n".join(lines) + "\n\n"


def render() -> str:
    """The whole YAML document: header comment, settings, then the sites."""
    parts = [
        HEADER,
        "state: Jharkhand\nstate_hi: झारखंड\n\n",
        "defaults: {interval: 60s, count: 5, timeout: 1s, spacing: 1s}\n\n",
        "policy: {window: 24h}\n\n",
        districts_yaml(),
        "sites:\n",
    ]
    sites = []
    for serial, site in enumerate(facilities(), 1):
        rng = random.Random(f"{SEED}:{site.id}")
        sites.append(site_yaml(site, serial, devices(site, gear_counts(site, rng))))
    return "".join(parts) + "\n".join(sites)


def main() -> None:
    OUTPUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
