"""Real net-snmp agents for lab devices, one ``snmpd`` per device inside the lab namespace.

Each agent listens on its device's address only (``udp:198.18.x.y:161``), answers SNMPv2c
(community) and SNMPv3 (authPriv, SHA/AES user), and serves sysUpTime and the interface tables
through :mod:`netmon.lab.passpersist` from a state file the lab owns. Hence:

* :meth:`SnmpAgent.reboot` moves the boot time to now: sysUpTime goes back to ~0 and the
  interface counters restart, exactly what a poller sees when a device reboots;
* :meth:`SnmpAgent.set_interface` flips ifOperStatus / ifAdminStatus at run time.

The rest of the MIB (sysDescr, sysName, ...) is snmpd's own; ``sysName`` is the device name.
The built-in interface modules are disabled (``-I -ifTable,ifXTable,interfaces``) so the
namespace's real interfaces do not leak into the lab device's view.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netmon.lab.model import LabError, Snmp
from netmon.lab.netns import Namespace, children, terminate

PASSPERSIST = Path(__file__).with_name("passpersist.py")
SUBTREES = (".1.3.6.1.2.1.1.3", ".1.3.6.1.2.1.2", ".1.3.6.1.2.1.31.1.1")
STATUS = {"up": 1, "down": 2}


@dataclass
class SnmpAgent:
    name: str  # site/device
    address: str
    spec: Snmp
    directory: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def state_path(self) -> Path:
        return self.directory / "state.json"

    @property
    def config_path(self) -> Path:
        return self.directory / "netmon-lab-snmpd.conf"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def describe(self) -> dict[str, Any]:
        """How a poller reaches this agent (what a later SNMP test needs)."""
        s = self.spec
        return {"address": self.address, "port": 161, "community": s.community,
                "v3": {"user": s.v3_user, "auth_protocol": "SHA", "auth_key": s.v3_auth_key,
                       "priv_protocol": "AES", "priv_key": s.v3_priv_key},
                "poll": s.poll, "uplink_interfaces": list(s.uplink_interfaces),
                "state_file": str(self.state_path)}  # fmt: skip

    # -- files -----------------------------------------------------------------------------
    def write_files(self) -> None:
        for part in (str(self.directory), sys.executable):
            if any(c.isspace() for c in part):
                raise LabError(f"snmpd pass_persist cannot use a path with spaces: {part!r}")
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "persist").mkdir(exist_ok=True)
        now = time.time()
        self.write_state({"boot": now, "interfaces": [
            {"index": i.index, "name": i.name, "oper": STATUS[i.oper], "admin": STATUS[i.admin],
             "speed_mbps": i.speed_mbps, "last_change": now, "in_rate": 125_000 * i.index,
             "out_rate": 50_000 * i.index, "in_errors": 0, "out_errors": 0}
            for i in self.spec.interfaces]})  # fmt: skip
        self.config_path.write_text(self._config(), encoding="utf-8")
        self.config_path.chmod(0o600)

    def _config(self) -> str:
        s = self.spec
        if not (s.community and s.v3_auth_key and s.v3_priv_key):
            raise LabError(f"{self.name}: SNMP secrets not set (build agents from a Plan)")
        helper = f"{sys.executable} -S {PASSPERSIST} {self.state_path}"
        lines = [
            f"# netmon lab agent for {self.name}; generated, do not edit",
            f"agentaddress udp:{self.address}:161",
            f"rocommunity {s.community} default",
            f'createUser {s.v3_user} SHA "{s.v3_auth_key}" AES "{s.v3_priv_key}"',
            f"rouser {s.v3_user} authpriv",
            f"sysName {self.name.split('/')[-1]}",
            f"sysDescr netmon lab device {self.name}",
            "sysLocation netmon lab",
            "sysContact netmon lab",
            *[f"pass_persist -p 1 {oid} {helper} {oid}" for oid in SUBTREES],
        ]
        return "\n".join(lines) + "\n"

    def read_state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.state_path.read_text(encoding="utf-8"))
        return data

    def write_state(self, state: dict[str, Any]) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state), encoding="utf-8")
        tmp.replace(self.state_path)

    # -- process ---------------------------------------------------------------------------
    def start(
        self, ns: Namespace, log_dir: Path, preexec: Callable[[], None] | None = None
    ) -> None:
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "MIBS": "", "MIBDIRS": "/nonexistent",
               "SNMP_PERSISTENT_DIR": str(self.directory / "persist")}  # fmt: skip
        args = ["snmpd", "-f", "-Lo", "-C", "-c", str(self.config_path),
                "-I", "-ifTable,ifXTable,interfaces"]  # fmt: skip
        log = (log_dir / f"snmpd-{self.name.replace('/', '__')}.log").open("ab")
        try:
            self.process = subprocess.Popen(ns.command(args), stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=log, env=env, preexec_fn=preexec)  # fmt: skip
        except OSError as exc:
            raise LabError(f"cannot start snmpd for {self.name}: {exc}") from exc
        finally:
            log.close()

    def stop(self) -> None:
        """Stop snmpd and its pass_persist helpers, and wait until they are gone (a helper
        left to notice EOF on its own could outlive the lab for a moment)."""
        if self.process is not None and self.process.poll() is None:
            terminate([self.process.pid, *children(self.process.pid)])
            self.process.wait(timeout=5)
        self.process = None

    # -- run-time changes ------------------------------------------------------------------
    def reboot(self) -> None:
        state = self.read_state()
        now = time.time()
        state["boot"] = now
        for i in state["interfaces"]:
            i["last_change"] = now
        self.write_state(state)

    def set_interface(
        self, index: int | str, oper: str | None = None, admin: str | None = None
    ) -> None:
        """Interface ``index`` (ifIndex, or its ifName) goes up/down; ifLastChange moves."""
        state = self.read_state()
        key = "name" if isinstance(index, str) else "index"
        match = [i for i in state["interfaces"] if i[key] == index]
        if not match:
            raise LabError(f"{self.name} has no interface with if{key.title()} {index}")
        for key, value in (("oper", oper), ("admin", admin)):
            if value is not None:
                if value not in STATUS:
                    raise LabError(f"interface status must be up or down, got {value!r}")
                match[0][key] = STATUS[value]
        match[0]["last_change"] = time.time()
        self.write_state(state)


def wait_listening(agents: list[SnmpAgent], ns: Namespace, timeout: float = 10.0) -> None:
    """Wait (bounded) until every agent's UDP socket is bound inside the namespace."""
    want = {f"{a.address}:161" for a in agents}
    deadline = time.monotonic() + timeout
    while want and time.monotonic() < deadline:
        out = ns.exec(["ss", "-Hlun"], check=False)
        want -= {w for w in want if w in out}
        for a in agents:
            if a.process is not None and a.process.poll() is not None:
                raise LabError(f"snmpd for {a.name} exited with {a.process.returncode}; "
                               f"see its log in the lab workdir")  # fmt: skip
        if want:
            time.sleep(0.05)
    if want:
        raise LabError(f"snmpd did not start listening on {', '.join(sorted(want))}")
