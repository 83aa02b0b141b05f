"""deploy/systemd/: the unit passes systemd-analyze and keeps its hardening; the env example
documents every NETMON_* variable netmon reads."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

UNIT = Path("deploy/systemd/netmon.service")
POLL_UNIT = Path(
    "deploy/systemd/netmon-poll.service"
)  # netmon poll: a district poller, a site agent
UNITS = pytest.mark.parametrize("unit_path", [UNIT, POLL_UNIT], ids=["netmon", "netmon-poll"])
EXEC = "/opt/netmon/.venv/bin/netmon"
REQUIRED = {
    "AmbientCapabilities": "CAP_NET_RAW",
    "CapabilityBoundingSet": "CAP_NET_RAW",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "StateDirectory": "netmon",
    "DynamicUser": "yes",
    "EnvironmentFile": "-/etc/netmon/netmon.env",
    "ExecStart": f"{EXEC} run --config /etc/netmon/inventory.yaml",
    "ExecReload": "/bin/kill -HUP $MAINPID",  # netmon re-reads the inventory on SIGHUP
    "Restart": "on-failure",
    "RestartPreventExitStatus": "78",  # netmon's exit status for a configuration error
    "MemoryMax": "3G",  # above the backlog cap's ~1.5 GB: a leak is killed, not the host
    "TasksMax": "512",  # threads and processes: a runaway is stopped at 512
}


def directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z]+)=(.*)$", line)
        if m:
            out.setdefault(m.group(1), []).append(m.group(2))
    return out


def test_unit_is_hardened(repo: Path) -> None:
    found = directives((repo / UNIT).read_text())
    for key, value in REQUIRED.items():
        assert found.get(key) == [value], (key, found.get(key))


def test_poll_unit_is_hardened_like_the_server(repo: Path) -> None:
    found, server = (
        directives((repo / POLL_UNIT).read_text()),
        directives((repo / UNIT).read_text()),
    )
    same = ("AmbientCapabilities", "CapabilityBoundingSet", "NoNewPrivileges", "ProtectSystem",
            "ProtectHome", "PrivateTmp", "DynamicUser", "Restart", "RestartPreventExitStatus",
            "SystemCallFilter", "RestrictAddressFamilies")  # fmt: skip
    for key in same:
        assert found.get(key) == server.get(key), key
    assert found["ExecStart"][0].startswith(f"{EXEC} poll --server ")
    assert found["LoadCredential"] == ["poller.token:/etc/netmon/poller.token"]  # not in the env


def _unit_with_real_binary(repo: Path, tmp_path: Path, unit_path: Path = UNIT) -> Path:
    # systemd-analyze verify insists that ExecStart= exists; use this venv's netmon instead of
    # /opt/netmon's. Nothing else changes.
    netmon = Path(sys.executable).with_name("netmon")
    assert netmon.exists(), f"{netmon} missing: pip install -e . in the venv"
    unit = tmp_path / unit_path.name
    unit.write_text((repo / unit_path).read_text().replace(EXEC, str(netmon)))
    return unit


@UNITS
def test_systemd_analyze_verify(
    repo: Path, tmp_path: Path, which: Callable[..., str], unit_path: Path
) -> None:
    unit = _unit_with_real_binary(repo, tmp_path, unit_path)
    out = subprocess.run(
        [which("systemd-analyze"), "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert unit_path.name not in out.stderr, out.stderr  # no warnings about the unit either


@UNITS
def test_systemd_analyze_security_exposure_is_low(
    repo: Path, tmp_path: Path, which: Callable[..., str], unit_path: Path
) -> None:
    unit = _unit_with_real_binary(repo, tmp_path, unit_path)
    # Exposure 0 (locked down) .. 10 (unsafe); systemd calls up to 2 "OK". Threshold is in tenths.
    cmd = [
        which("systemd-analyze"),
        "security",
        "--offline=yes",
        "--threshold=20",
        "--no-pager",
        str(unit),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout[-1500:] + out.stderr


def test_env_example_documents_every_netmon_variable(repo: Path) -> None:
    settings = (repo / "netmon/settings.py").read_text()
    read = set(re.findall(r"\b(NETMON_[A-Z_]+)\b", settings))
    assert {"NETMON_DATABASE_URL", "NETMON_PORT"} <= read
    example = (repo / "deploy/systemd/netmon.env.example").read_text()
    documented = set(re.findall(r"^#?(NETMON_[A-Z_]+)=", example, flags=re.M))
    assert read <= documented, f"not in netmon.env.example: {sorted(read - documented)}"
    assert documented <= read, f"netmon does not read: {sorted(documented - read)}"


def test_memory_max_holds_the_whole_result_backlog(repo: Path) -> None:
    """A database outage fills the store's backlog up to ``max_pending`` rows: MemoryMax= must
    leave room for all of them (and the rest of netmon), or systemd would kill netmon -- and
    lose the backlog -- exactly when the database is down. Measured, not assumed."""
    import tracemalloc

    from netmon.store import ProbeResultRow, Store
    from probes.base import ProbeResult

    value = directives((repo / UNIT).read_text())["MemoryMax"][0]
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    memory_max = int(value[:-1]) * units[value[-1]]
    rows = []
    tracemalloc.start()
    for i in range(20_000):
        r = ProbeResult(
            "icmp", True, 1.8e9 + i, 0.4, 5, 5, (0.0011, 0.0012, 0.0013, 0.0014, 0.0015)
        )
        rows.append(("probe_result", ProbeResultRow.values(f"site-{i % 999:04d}", "wan-1", r)))
    per_row = tracemalloc.get_traced_memory()[0] / len(rows)
    tracemalloc.stop()
    backlog = per_row * Store("sqlite://").max_pending
    assert 500 < per_row < 2000  # what a row costs, ~740 bytes: the measure itself is sane
    assert backlog < 0.6 * memory_max, (per_row, backlog, memory_max)
