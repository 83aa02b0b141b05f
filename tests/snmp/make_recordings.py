"""Generate the snmpsim recordings (``tests/snmp/data/*.snmprec``) the SNMP tests poll.

    python tests/snmp/make_recordings.py          # rewrites tests/snmp/data/

The files are committed; this script documents how they were made and regenerates them
deterministically (fixed seed). snmpsim serves each file under the community named after it
(``cisco-wlc.snmprec`` -> community ``cisco-wlc``). Line format: ``OID|TYPE|VALUE`` with the
SNMP type tags 2 Integer32, 4 OCTET STRING (``4x`` = hex), 6 OID, 65 Counter32, 66 Gauge32,
67 TimeTicks, 70 Counter64.

Recordings
    switch-24             24-port access switch (+ vlan1), poll "t0"
    switch-24-t1          the same switch 60 s later: counters advanced, port 5 went down,
                          port 6 flapped between polls (ifLastChange moved, status unchanged)
    switch-24-reboot      the same switch after a reboot: sysUpTime and counters back near zero
    switch-24-reset       counters went back but sysUpTime went on (a counter reset)
    switch-24-wrap0/1     port 1 ifHCInOctets wraps past 2**64 between polls
    bench-49              49 interfaces -> a 1,078-varbind ifTable walk (22 columns x 49)
    cisco-wlc             AIRESPACE-WIRELESS-MIB, 200 APs (every 10th disassociated), 2 radios
    ruckus-smartzone      RUCKUS-SZ-WLAN-MIB, 60 APs (every 12th disconnected)
    ruckus-zonedirector   RUCKUS-ZD-WLAN-MIB, 40 APs (every 8th disconnected)
    cambium-cnpilot       CAMBIUM-MIB cambiumAccessPointTable of one cnPilot E-series AP (.0 index)
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path

DATA = Path(__file__).parent / "data"
Row = tuple[str, int | str, object]

SYS = "1.3.6.1.2.1.1"
IF = "1.3.6.1.2.1.2.2.1"
IFX = "1.3.6.1.2.1.31.1.1.1"
WLC_AP = "1.3.6.1.4.1.14179.2.2.1.1"
WLC_RADIO = "1.3.6.1.4.1.14179.2.2.2.1"
SZ_AP = "1.3.6.1.4.1.25053.1.4.2.1.1.2.2.1"
ZD_AP = "1.3.6.1.4.1.25053.1.2.2.1.1.2.1.1"
CAMBIUM_AP = "1.3.6.1.4.1.17713.22.1.1.1"
GIB = 1 << 30


def system(name: str, descr: str, object_id: str, uptime_ticks: int) -> list[Row]:
    return [
        (f"{SYS}.1.0", 4, descr),
        (f"{SYS}.2.0", 6, object_id),
        (f"{SYS}.3.0", 67, uptime_ticks),
        (f"{SYS}.4.0", 4, "noc@example.org"),
        (f"{SYS}.5.0", 4, name),
        (f"{SYS}.6.0", 4, "Server room"),
        (f"{SYS}.7.0", 2, 6),
    ]


def interface(
    index: int, name: str, up: bool, octets: tuple[int, int], last_change: int
) -> list[Row]:
    """All 22 ifTable columns plus the ifXTable columns netmon reads, for one interface."""
    oper = 1 if up else 2
    in_o, out_o = octets
    mac = f"0050560000{index:02x}"
    cols: list[tuple[int, int, object]] = [
        (1, 2, index),
        (2, 4, name),
        (3, 2, 6),
        (4, 2, 1500),
        (5, 66, 1_000_000_000),
        (6, "4x", mac),
        (7, 2, 1),
        (8, 2, oper),
        (9, 67, last_change),
        (10, 65, in_o % 2**32),
        (11, 65, index * 1000),
        (12, 65, 0),
        (13, 65, 0),
        (14, 65, index % 3),
        (15, 65, 0),
        (16, 65, out_o % 2**32),
        (17, 65, index * 900),
        (18, 65, 0),
        (19, 65, 0),
        (20, 65, index % 2),
        (21, 66, 0),
        (22, 6, "0.0"),
    ]
    rows: list[Row] = [(f"{IF}.{col}.{index}", tag, value) for col, tag, value in cols]
    rows += [
        (f"{IFX}.1.{index}", 4, name),
        (f"{IFX}.6.{index}", 70, in_o),
        (f"{IFX}.10.{index}", 70, out_o),
        (f"{IFX}.15.{index}", 66, 1000),
        (f"{IFX}.18.{index}", 4, f"ward-{index}"),
    ]
    return rows


def switch(
    uptime: int,
    counters: dict[int, tuple[int, int]],
    down: set[int],
    changes: dict[int, int],
    ports: int = 24,
) -> list[Row]:
    rows = system("sw-ward-a", "Example 24-port PoE switch", "1.3.6.1.4.1.8072.3.2.10", uptime)
    for index in range(1, ports + 1):
        name = f"Gi1/0/{index}"
        rows += interface(index, name, index not in down, counters[index], changes.get(index, 500))
    rows += interface(1000, "vlan1", True, counters.get(1000, (5 * GIB, 3 * GIB)), 400)
    return rows


def base_counters(ports: int = 24, scale: int = 1) -> dict[int, tuple[int, int]]:
    return {i: (i * 7 * GIB * scale, i * 3 * GIB * scale) for i in range(1, ports + 1)}


def advanced(counters: dict[int, tuple[int, int]], seconds: int) -> dict[int, tuple[int, int]]:
    """Counters after ``seconds`` at i Mbit/s in and i/2 Mbit/s out on port i."""
    return {
        i: (a + i * 1_000_000 // 8 * seconds, b + i * 500_000 // 8 * seconds)
        for i, (a, b) in counters.items()
    }


def switch_recordings() -> dict[str, list[Row]]:
    t0 = base_counters()
    t1 = advanced(t0, 60)
    wrap0 = dict(t0)
    wrap0[1] = (2**64 - 1_000_000, t0[1][1])
    wrap1 = advanced(wrap0, 60)
    wrap1[1] = ((wrap0[1][0] + 7_500_000) % 2**64, wrap1[1][1])  # 1 Mbit/s over 60 s
    reset = dict(t1)
    reset[3] = (1_000, 2_000)  # went back although sysUpTime went on
    return {
        "switch-24": switch(360_000, t0, {7}, {}),
        "switch-24-t1": switch(366_000, t1, {5, 7}, {5: 365_000, 6: 364_000}),
        "switch-24-reboot": switch(3_000, {i: (i * 1000, i * 500) for i in t0}, {7}, {}),
        "switch-24-reset": switch(366_000, reset, {7}, {}),
        "switch-24-wrap0": switch(360_000, wrap0, {7}, {}),
        "switch-24-wrap1": switch(366_000, wrap1, {7}, {}),
        "bench-49": switch(360_000, base_counters(48), set(), {}, ports=48),
    }


def uplinks() -> list[Row]:
    """Two uplink ports of a controller or AP (port 2 down)."""
    return interface(1, "uplink-1", True, (50 * GIB, 80 * GIB), 100) + interface(
        2, "uplink-2", False, (GIB, GIB), 200
    )


def mac_of(vendor: int, n: int) -> tuple[str, str]:
    """(hex octets for snmprec, dotted decimal OID index) of the n-th AP's MAC."""
    octets = [0x00, vendor, 0x5A, (n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF]
    return "".join(f"{o:02x}" for o in octets), ".".join(str(o) for o in octets)


def cisco_wlc(aps: int = 200) -> list[Row]:
    rng = random.Random(5)
    rows = system("wlc-rims-1", "Cisco Controller", "1.3.6.1.4.1.9.1.2170", 8_640_000)
    rows += uplinks()
    for n in range(1, aps + 1):
        hexmac, index = mac_of(0x3A, n)
        status = 2 if n % 10 == 0 else 1  # 1 associated, 2 disassociating
        rows += [
            (f"{WLC_AP}.1.{index}", "4x", hexmac),
            (f"{WLC_AP}.3.{index}", 4, f"AP-RIMS-{n:03d}"),
            (f"{WLC_AP}.6.{index}", 2, status),
        ]
        for slot in (0, 1):
            users = 0 if status != 1 else rng.randint(0, 25)
            rows.append((f"{WLC_RADIO}.15.{index}.{slot}", 65, users))
    return rows


def ruckus_smartzone(aps: int = 60) -> list[Row]:
    rng = random.Random(6)
    rows = system("vsz-ranchi", "Ruckus vSZ-E", "1.3.6.1.4.1.25053.3.1.11.1", 4_320_000)
    rows += uplinks()
    for n in range(1, aps + 1):
        hexmac, index = mac_of(0x24, n)
        up = n % 12 != 0
        rows += [
            (f"{SZ_AP}.1.{index}", "4x", hexmac),
            (f"{SZ_AP}.5.{index}", 4, f"SZ-AP-{n:02d}"),
            (f"{SZ_AP}.15.{index}", 66, rng.randint(0, 40) if up else 0),
            (f"{SZ_AP}.16.{index}", 4, "Connect" if up else "Disconnect"),
            (f"{SZ_AP}.17.{index}", 4, "Approved"),
        ]
    return rows


def ruckus_zonedirector(aps: int = 40) -> list[Row]:
    rng = random.Random(7)
    rows = system("zd-dumka", "Ruckus ZoneDirector 1200", "1.3.6.1.4.1.25053.3.1.5.15", 2_160_000)
    rows += uplinks()
    for n in range(1, aps + 1):
        hexmac, index = mac_of(0x1D, n)
        status = 0 if n % 8 == 0 else 1  # 0 disconnected, 1 connected
        rows += [
            (f"{ZD_AP}.1.{index}", "4x", hexmac),
            (f"{ZD_AP}.2.{index}", 4, f"ZD-AP-{n:02d}"),
            (f"{ZD_AP}.3.{index}", 2, status),
            (f"{ZD_AP}.15.{index}", 66, rng.randint(0, 30) if status else 0),
        ]
    return rows


def cambium_cnpilot() -> list[Row]:
    rows = system("chc-bero-ap1", "cnPilot E410", "1.3.6.1.4.1.17713.22", 90_000) + uplinks()
    return rows + [
        (f"{CAMBIUM_AP}.1.0", "4x", "00045610a0b1"),
        (f"{CAMBIUM_AP}.2.0", 4, "CHC-Bero-AP1"),
        (f"{CAMBIUM_AP}.5.0", 4, "E410"),
        (f"{CAMBIUM_AP}.12.0", 4, "Connected"),
        (f"{CAMBIUM_AP}.14.0", 2, 17),
    ]


def oid_key(oid: str) -> tuple[int, ...]:
    return tuple(int(part) for part in oid.split("."))


def render(rows: Iterable[Row]) -> str:
    lines = [
        f"{oid}|{tag}|{value}" for oid, tag, value in sorted(rows, key=lambda r: oid_key(r[0]))
    ]
    return "\n".join(lines) + "\n"


def recordings() -> dict[str, list[Row]]:
    return {
        **switch_recordings(),
        "cisco-wlc": cisco_wlc(),
        "ruckus-smartzone": ruckus_smartzone(),
        "ruckus-zonedirector": ruckus_zonedirector(),
        "cambium-cnpilot": cambium_cnpilot(),
    }


def main() -> None:
    DATA.mkdir(exist_ok=True)
    for name, rows in recordings().items():
        (DATA / f"{name}.snmprec").write_text(render(rows))
        print(f"{name}.snmprec: {len(rows)} objects")


if __name__ == "__main__":
    main()
