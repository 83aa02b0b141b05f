"""Real SNMP agents on loopback for the SNMP tests (and bench/snmp.py): snmpd and snmpsim.

Both listen on ``udp:127.0.0.1:<free port>`` only, run in their own session, and are always
killed on exit (``Agent.stop``, also on leaving ``with agent:``; the fixtures stop them in
teardown even if a test failed or left one SIGSTOPped). Tests skip with a reason when ``snmpd``
or the ``snmpsim`` package is missing.

snmpd gets its own config (``-C -c``), pid file and persistent directory
(``SNMP_PERSISTENT_DIR``, where ``createUser`` lines are turned into USM users), and empty MIB
settings so net-snmp does not complain about MIB files Debian does not ship.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
HOST = "127.0.0.1"
COMMUNITY = "netmon-ro-community"
V3_PRIV_USER = ("netmon-priv", "SHA", "auth-secret-123", "AES", "priv-secret-456")
V3_AUTH_USER = ("netmon-auth", "SHA-256", "auth-only-789")
V3_NOAUTH_USER = "netmon-noauth"
_START_TIMEOUT = 20.0  # seconds for an agent to answer after start


def free_udp_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def quiet_env(persistent_dir: Path) -> dict[str, str]:
    """Environment for net-snmp tools: no MIB loading, a private persistent directory."""
    return {
        **os.environ,
        "MIBS": "",
        "MIBDIRS": "/nonexistent",
        "SNMP_PERSISTENT_DIR": str(persistent_dir),
    }


@dataclass
class Agent:
    """A running agent process and where it answers."""

    proc: subprocess.Popen[bytes]
    host: str
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # SIGKILL also ends a SIGSTOPped process
        self.proc.wait(timeout=10)

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _answers(host: str, port: int, community: str) -> bool:
    from gufo.snmp.sync.client import SnmpSession

    try:
        SnmpSession(host, port, community=community, timeout=0.2).get("1.3.6.1.2.1.1.3.0")
    except Exception:
        return False
    return True


def _wait_ready(agent: Agent, community: str) -> Agent:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if agent.proc.poll() is not None:
            break
        if _answers(agent.host, agent.port, community):
            return agent
        time.sleep(0.1)
    agent.stop()
    raise RuntimeError(f"agent did not start; log:\n{agent.log.read_text()[-2000:]}")


SNMPD_CONF = """\
engineId netmontest
rocommunity {community} 127.0.0.1
createUser {pu} {pa} {pak} {pp} {ppk}
createUser {au} {aa} {aak}
createUser {nu}
rouser {pu} priv
rouser {au} auth
rouser {nu} noauth
sysName netmon-test-snmpd
sysLocation loopback
sysContact noc@example.org
"""


def _need(module: str, why: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(why)


def start_snmpd(workdir: Path, port: int | None = None) -> Agent:
    """snmpd on 127.0.0.1:<free port> (or ``port``: a restart where it was) with the v2c
    community and the three v3 users above."""
    _need("gufo.snmp", "gufo-snmp is not installed (pip install gufo-snmp)")
    snmpd = shutil.which("snmpd") or "/usr/sbin/snmpd"
    if not Path(snmpd).exists():
        pytest.skip("snmpd is not installed (apt-get install snmpd)")
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "snmpd.conf"
    pu, pa, pak, pp, ppk = V3_PRIV_USER
    au, aa, aak = V3_AUTH_USER
    conf.write_text(SNMPD_CONF.format(
        community=COMMUNITY, pu=pu, pa=pa, pak=pak, pp=pp, ppk=ppk, au=au, aa=aa, aak=aak,
        nu=V3_NOAUTH_USER,
    ))  # fmt: skip
    (workdir / "persist").mkdir(exist_ok=True)
    port = port or free_udp_port()
    log = workdir / "snmpd.log"
    cmd = [snmpd, "-f", "-Lo", "-C", "-c", str(conf), "-p", str(workdir / "snmpd.pid"),
           f"udp:{HOST}:{port}"]  # fmt: skip
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=quiet_env(workdir / "persist"),
            start_new_session=True,
        )  # fmt: skip
    return _wait_ready(Agent(proc, HOST, port, log), COMMUNITY)


def start_snmpsim(
    workdir: Path, data_dir: Path = DATA, host: str = HOST, max_varbinds: int = 64
) -> Agent:
    """snmpsim serving ``data_dir/*.snmprec`` (community = file stem) on host:<free port>,
    answering at most ``max_varbinds`` varbinds per GETBULK (snmpsim's default: 64; net-snmp's
    snmpd has no such cap, only the datagram size)."""
    _need("gufo.snmp", "gufo-snmp is not installed (pip install gufo-snmp)")
    _need("snmpsim", "snmpsim is not installed (pip install snmpsim pysmi)")
    _need("pysmi", "snmpsim needs pysmi, which it does not declare (pip install pysmi)")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_udp_port(host)
    log = workdir / "snmpsim.log"
    # snmpsim 1.2 sets ``maxVarBinds`` on pysnmp 7's responder, which reads ``max_varbinds``:
    # its --max-var-binds does nothing, so the cap is set on the class here
    code = (
        "import sys; from pysnmp.entity.rfc3413 import cmdrsp; "
        f"cmdrsp.BulkCommandResponder.max_varbinds = {int(max_varbinds)}; "
        "from snmpsim.commands.responder import main; sys.exit(main())"
    )
    cmd = [sys.executable, "-c", code, f"--data-dir={data_dir}",
           f"--agent-udpv4-endpoint={host}:{port}", f"--cache-dir={workdir / 'cache'}",
           "--logging-method=null"]  # fmt: skip
    env = {**os.environ, "SNMPSIM_ALLOW_ROOT": "true"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    return _wait_ready(Agent(proc, host, port, log), "switch-24")


# -- fixtures (import into a test module under another name to use them) ---------------------


@pytest.fixture(scope="module", name="snmpd")
def snmpd_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    with start_snmpd(tmp_path_factory.mktemp("snmpd")) as agent:
        yield agent


@pytest.fixture(name="own_snmpd")
def own_snmpd_fixture(tmp_path: Path) -> Iterator[Agent]:
    """A snmpd for one test (the test may pause or kill it)."""
    with start_snmpd(tmp_path / "snmpd") as agent:
        yield agent


@pytest.fixture(scope="module", name="snmpsim")
def snmpsim_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    with start_snmpsim(tmp_path_factory.mktemp("snmpsim")) as agent:
        yield agent
