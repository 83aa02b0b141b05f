"""The demo lab: a realistic mix of Jharkhand facilities, most fine, some degraded, a few down.

Sites and their gear come from the bundled example inventory
(``netmon/data/inventory/jharkhand-example.yaml``; its 127.x addresses are replaced by lab addresses).
Without it, a small built-in set of sites is used. Each site gets one condition from
:data:`CONDITIONS`; healthy sites still see a plausible WAN round-trip time (5-40 ms).
:func:`add_hindi_names` gives the lab's inventory the example's Hindi names of the state and
districts (the sites keep theirs), so the status board reads in Hindi as it would for real.

The demo opens with the status board: :func:`board_banner` is the first thing printed once
netmon answers, and :func:`open_board` opens it in the desktop's browser (``$BROWSER``, else
``xdg-open`` when a display is there; as root under sudo, as the user who ran sudo) and never
fails: without a browser it says so and the URL is there to click.
"""

from __future__ import annotations

import os
import random
import shlex
import shutil
import subprocess
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from netmon.errors import ConfigError
from netmon.inventory import Device, Site, load_inventory
from netmon.lab.model import Faults, Flap, LabDevice, LabSite, Period, Scenario, Snmp
from netmon.lab.plan import LabTiming
from netmon.settings import EXAMPLE_INVENTORY

DEMO_TIMING = LabTiming(
    interval=5.0,
    count=5,
    spacing=0.2,
    timeout=1.0,
    window=300.0,
    min_probes=3,
    snmp_interval=10.0,
    snmp_timeout=1.0,
    snmp_retries=1,
    snmp_max_poll_time=5.0,
)

# site id -> condition; most fully functional, some degraded, a few down.
DEMO_SITES: dict[str, str] = {
    "mc-rims-ranchi": "healthy",
    "mc-snmmc-dhanbad": "controller_down",
    "dh-ranchi": "healthy",
    "dh-bokaro": "healthy",
    "dh-gumla": "healthy",
    "dh-deoghar": "healthy",
    "dh-koderma": "healthy",
    "dh-khunti": "healthy",
    "dh-hazaribagh": "slow_uplink",
    "dh-dhanbad": "lossy_uplink",
    "dh-dumka": "aps_down",
    "dh-sahebganj": "uplink_down",
    "chc-sisai": "healthy",
    "chc-bundu": "healthy",
    "chc-nirsa": "healthy",
    "chc-patratu": "healthy",
    "chc-mandar": "healthy",
    "chc-torpa": "flapping_ap",
    "chc-ratu": "uplink_down",
    "chc-kisko": "never_seen",
}

Patch = dict[str, Faults]


def _wan(site: Site) -> str:
    return next(d.name for d in site.devices if d.role == "wan")


def _healthy(site: Site, rng: random.Random) -> Patch:
    return {_wan(site): Faults(delay=rng.uniform(0.005, 0.040), jitter=0.002, propagate=True)}


def _lossy(site: Site, rng: random.Random) -> Patch:
    return {_wan(site): Faults(loss=0.03, delay=0.025, jitter=0.004, propagate=True)}


def _slow(site: Site, rng: random.Random) -> Patch:
    return {_wan(site): Faults(delay=0.290, jitter=0.010, propagate=True)}


def _uplink_down(site: Site, rng: random.Random) -> Patch:
    return {_wan(site): Faults(delay=0.020, down_periods=[Period(start=rng.uniform(30, 60))])}


def _never_seen(site: Site, rng: random.Random) -> Patch:
    return {d.name: Faults(down=True) for d in site.devices if d.parent is None}


def _aps_down(site: Site, rng: random.Random) -> Patch:
    aps = [d.name for d in site.devices if d.role == "ap"]
    down = rng.sample(aps, max(1, round(0.3 * len(aps))))
    return {**_healthy(site, rng), **{name: Faults(down=True) for name in down}}


def _controller_down(site: Site, rng: random.Random) -> Patch:
    wlc = next(d.name for d in site.devices if d.role == "controller")
    return {**_healthy(site, rng), wlc: Faults(down=True)}


def _flapping_ap(site: Site, rng: random.Random) -> Patch:
    ap = next(d.name for d in site.devices if d.role == "ap")
    return {**_healthy(site, rng), ap: Faults(flap=Flap(period=90, down_for=30))}


CONDITIONS: dict[str, Callable[[Site, random.Random], Patch]] = {
    "healthy": _healthy, "lossy_uplink": _lossy, "slow_uplink": _slow,
    "uplink_down": _uplink_down, "never_seen": _never_seen, "aps_down": _aps_down,
    "controller_down": _controller_down, "flapping_ap": _flapping_ap,
}  # fmt: skip


def demo_scenarios(example: Path = EXAMPLE_INVENTORY, seed: int = 2026) -> list[Scenario]:
    """Scenarios for the demo sites (from ``example`` if readable, else built-in sites)."""
    try:
        inventory = load_inventory(example)
        sites = [s for sid in DEMO_SITES if (s := inventory.site(sid)) is not None]
    except ConfigError:
        sites = []
    if len(sites) < len(DEMO_SITES) // 2:
        sites = builtin_sites()
    rng = random.Random(seed)
    out = []
    for site in sites:
        condition = DEMO_SITES.get(site.id, "healthy")
        patch = CONDITIONS[condition](site, rng)
        out.append(_scenario(site, condition, patch))
    return out


def _scenario(site: Site, condition: str, patch: Patch) -> Scenario:
    devices = [
        LabDevice(name=d.name, role=d.role, parent=d.parent, faults=patch.get(d.name, Faults()),
                  snmp=_demo_agent(site, d))
        for d in site.devices
    ]  # fmt: skip
    lab_site = LabSite(id=site.id, name=site.name, name_hi=site.name_hi, district=site.district,
                       type=site.type, hfr_id=site.hfr_id, devices=devices)  # fmt: skip
    return Scenario(id=site.id, description=f"demo: {condition.replace('_', ' ')}", site=lab_site)


def _demo_agent(site: Site, dev: Device) -> Snmp | None:
    """A real snmpd on the first WAN device and router (and controller at a medical college) of
    the larger sites, with its uplink port (if1, ``uplink0``) listed, so that ``netmon lab reboot
    SITE/router-1`` and ``netmon lab set SITE/wan-1 if1=down`` change the verdict."""
    roles = {"wan", "router", "controller"} if site.type == "medical_college" else {"wan", "router"}
    if site.type not in ("medical_college", "district_hospital") or dev.role not in roles:
        return None
    return Snmp(uplink_interfaces=["uplink0"]) if dev.name.endswith("-1") else None


def builtin_sites() -> list[Site]:
    """A dozen sites of our own, used when the example inventory is not available."""
    hospitals = ["Ranchi", "Bokaro", "Gumla", "Hazaribagh", "Dhanbad", "Dumka", "Sahebganj"]
    chcs = {  # town: district
        "Sisai": "Gumla",
        "Bundu": "Ranchi",
        "Torpa": "Khunti",
        "Ratu": "Ranchi",
        "Kisko": "Lohardaga",
    }
    rows = [(f"dh-{d.lower()}", f"Sadar Hospital, {d}", d, "district_hospital") for d in hospitals]
    rows += [(f"chc-{town.lower()}", f"CHC {town}", d, "chc") for town, d in chcs.items()]
    return [Site.model_validate(_builtin(*row)) for row in rows]


def _builtin(site_id: str, name: str, district: str, kind: str) -> dict[str, Any]:
    devices: list[dict[str, Any]] = [{"name": "wan-1", "role": "wan", "address": "0.0.0.0"}]
    if kind == "district_hospital":
        devices += [{"name": "router-1", "role": "router", "parent": "wan-1"},
                    {"name": "sw-01", "role": "switch", "parent": "router-1"}]  # fmt: skip
        aps = 12
    else:
        devices += [{"name": "sw-01", "role": "switch", "parent": "wan-1"}]
        aps = 4
    devices += [{"name": f"ap-{i:03d}", "role": "ap", "parent": "sw-01"} for i in range(1, aps + 1)]
    for d in devices:
        d.setdefault("address", "0.0.0.0")  # placeholder: the lab allocates real addresses
    return {"id": site_id, "name": name, "district": district, "type": kind, "devices": devices}


def add_hindi_names(inventory_path: Path, example: Path = EXAMPLE_INVENTORY) -> None:
    """Copy the example's ``state_hi`` and its districts' ``name_hi`` (those the lab has
    sites in) into the lab's inventory; an unreadable example leaves it as it is."""
    try:
        given = load_inventory(example)
    except ConfigError:
        return
    doc = yaml.safe_load(inventory_path.read_text("utf-8"))
    used = {s["district"] for s in doc.get("sites", [])}
    districts = {n: {"name_hi": d.name_hi} for n, d in given.districts.items()
                 if n in used and d.name_hi}  # fmt: skip
    if given.state_hi:
        doc["state_hi"] = given.state_hi
    if districts:
        doc["districts"] = districts
    inventory_path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), "utf-8")


def board_banner(base_url: str) -> str:
    """The lines that open the demo: where the status board is, in both languages."""
    rule = "=" * 72
    return (f"{rule}\n  The status board:  {base_url}/status\n"
            f"  in Hindi:          {base_url}/status?lang=hi\n{rule}")  # fmt: skip


def browser_command(env: Mapping[str, str], euid: int) -> list[str] | None:
    """How to open a URL here: ``$BROWSER`` (its first entry; the URL is appended, or put
    where ``%s`` is), else ``xdg-open`` when there is a display; None when neither. As root
    under sudo the command runs as ``$SUDO_USER`` (browsers refuse root, or should)."""
    cmd: list[str] | None = None
    browser = env.get("BROWSER", "").split(os.pathsep)[0].strip()
    if browser:
        cmd = shlex.split(browser)
    elif (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")) and shutil.which("xdg-open"):
        cmd = ["xdg-open"]
    if cmd is None or not cmd or shutil.which(cmd[0]) is None:
        return None
    user = env.get("SUDO_USER")
    if euid == 0 and user and user != "root" and shutil.which("runuser"):
        cmd = ["runuser", "-u", user, "--", *cmd]
    return cmd


def open_board(url: str, env: Mapping[str, str] | None = None, euid: int | None = None) -> str:
    """Open ``url`` in a browser if there is one, without waiting for it; what was done, in
    words (never raises: the demo goes on either way)."""
    cmd = browser_command(os.environ if env is None else env,
                          os.geteuid() if euid is None else euid)  # fmt: skip
    if cmd is None:
        return "no browser found here (no $BROWSER, no display for xdg-open): open the URL above"
    argv = [a.replace("%s", url) for a in cmd] if any("%s" in a for a in cmd) else [*cmd, url]
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    except OSError as exc:
        return f"could not start {argv[0]} ({exc}): open the URL above"
    threading.Thread(target=proc.wait, name="browser", daemon=True).start()  # reaped
    return f"opened in a browser ({' '.join(cmd)})"
