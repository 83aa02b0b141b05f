"""snmpd ``pass_persist`` helper: sysUpTime and the interface tables from a lab state file.

net-snmp's ``snmpd`` starts this script (standard library only, run by path with ``python -S``)
and talks to it over stdin/stdout (``PING``/``get``/``getnext``/``set``). Every answer is computed
from a JSON state file the lab rewrites atomically, so the lab can "reboot" a device (``boot``
moves to now: sysUpTime goes back, counters restart) or take an interface down at run time::

    {"boot": 1767000000.0,
     "interfaces": [{"index": 1, "name": "uplink0", "oper": 1, "admin": 1, "speed_mbps": 1000,
                     "last_change": 1767000000.0, "in_rate": 125000, "out_rate": 50000}]}

Served: sysUpTime.0; ifNumber.0; ifTable columns ifIndex, ifDescr, ifType, ifSpeed,
ifAdminStatus, ifOperStatus, ifLastChange, ifInOctets, ifInErrors, ifOutOctets, ifOutErrors;
ifXTable columns ifName, ifHCInOctets, ifHCOutOctets, ifHighSpeed -- every IF-MIB column netmon's
``generic`` SNMP profile reads (the system group's other objects are snmpd's own). Only OIDs under the subtree given on
the command line are answered (snmpd runs one helper per registered subtree).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

Oid = tuple[int, ...]
Row = tuple[str, str]  # (pass_persist type, value)

SYS_UPTIME = (1, 3, 6, 1, 2, 1, 1, 3, 0)
IF_NUMBER = (1, 3, 6, 1, 2, 1, 2, 1, 0)
IF_ENTRY = (1, 3, 6, 1, 2, 1, 2, 2, 1)
IFX_ENTRY = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)
MAX_LINES = 10_000_000  # requests served before the helper exits (snmpd restarts it)


def parse_oid(text: str) -> Oid:
    return tuple(int(x) for x in text.strip().strip(".").split(".") if x)


def format_oid(oid: Oid) -> str:
    return "." + ".".join(str(x) for x in oid)


def mib(state: dict[str, Any], now: float) -> dict[Oid, Row]:
    """Every object this helper can serve, from ``state`` at time ``now``."""
    boot = float(state.get("boot", now))
    up = max(0.0, now - boot)
    rows: dict[Oid, Row] = {SYS_UPTIME: ("timeticks", str(int(up * 100) % 2**32))}
    ifaces = state.get("interfaces", [])
    rows[IF_NUMBER] = ("integer", str(len(ifaces)))
    for i in ifaces:
        rows.update(_interface_rows(i, boot, up))
    return rows


def _interface_rows(i: dict[str, Any], boot: float, up: float) -> dict[Oid, Row]:
    idx = int(i["index"])
    name = str(i["name"])
    in_octets = int(float(i.get("in_rate", 0)) * up)
    out_octets = int(float(i.get("out_rate", 0)) * up)
    changed = max(0.0, float(i.get("last_change", boot)) - boot)
    speed = int(i.get("speed_mbps", 1000))
    columns: dict[int, Row] = {
        1: ("integer", str(idx)),
        2: ("string", name),
        3: ("integer", "6"),  # ethernetCsmacd
        5: ("gauge", str(min(speed * 1_000_000, 2**32 - 1))),
        7: ("integer", str(int(i.get("admin", 1)))),
        8: ("integer", str(int(i.get("oper", 1)))),
        9: ("timeticks", str(int(changed * 100) % 2**32)),
        10: ("counter", str(in_octets % 2**32)),
        14: ("counter", str(int(i.get("in_errors", 0)) % 2**32)),
        16: ("counter", str(out_octets % 2**32)),
        20: ("counter", str(int(i.get("out_errors", 0)) % 2**32)),
    }
    rows: dict[Oid, Row] = {IF_ENTRY + (col, idx): row for col, row in columns.items()}
    xcolumns: dict[int, Row] = {
        1: ("string", name),
        6: ("counter64", str(in_octets % 2**64)),
        10: ("counter64", str(out_octets % 2**64)),
        15: ("gauge", str(speed)),
    }
    rows.update({IFX_ENTRY + (col, idx): row for col, row in xcolumns.items()})
    return rows


class Agent:
    def __init__(self, state_path: str, subtree: Oid) -> None:
        self.state_path = state_path
        self.subtree = subtree
        self.mtime = -1.0
        self.state: dict[str, Any] = {}

    def _load(self) -> None:
        try:
            mtime = os.stat(self.state_path).st_mtime
            if mtime != self.mtime:
                with open(self.state_path, encoding="utf-8") as fh:
                    self.state = json.load(fh)
                self.mtime = mtime
        except (OSError, ValueError):
            pass  # keep the last good state; the lab rewrites the file atomically

    def rows(self) -> dict[Oid, Row]:
        self._load()
        all_rows = mib(self.state, time.time())
        n = len(self.subtree)
        return {oid: row for oid, row in all_rows.items() if oid[:n] == self.subtree}

    def get(self, oid: Oid) -> tuple[Oid, Row] | None:
        row = self.rows().get(oid)
        return None if row is None else (oid, row)

    def getnext(self, oid: Oid) -> tuple[Oid, Row] | None:
        rows = self.rows()
        later = [o for o in rows if o > oid]
        if not later:
            return None
        best = min(later)
        return best, rows[best]


def serve(agent: Agent, stdin: Any, stdout: Any) -> None:
    for _ in range(MAX_LINES):
        line = stdin.readline()
        if not line:
            return
        cmd = line.strip().lower()
        if cmd == "ping":
            _out(stdout, "PONG")
            continue
        if cmd not in ("get", "getnext", "set"):
            continue
        oid = parse_oid(stdin.readline())
        if cmd == "set":
            stdin.readline()  # the type and value
            _out(stdout, "not-writable")
            continue
        found = agent.get(oid) if cmd == "get" else agent.getnext(oid)
        if found is None:
            _out(stdout, "NONE")
        else:
            _out(stdout, format_oid(found[0]), found[1][0], found[1][1])


def _out(stdout: Any, *lines: str) -> None:
    stdout.write("\n".join(lines) + "\n")
    stdout.flush()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: passpersist.py STATE_FILE SUBTREE_OID", file=sys.stderr)
        return 2
    serve(Agent(argv[0], parse_oid(argv[1])), sys.stdin, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
