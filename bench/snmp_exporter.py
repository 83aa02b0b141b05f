"""Prometheus snmp_exporter as a reference in bench/snmp.py: config, process, scrapes, CPU.

Debian's ``prometheus-snmp-exporter`` (0.21 in bookworm; ``apt-get install
prometheus-snmp-exporter``, listed in scripts/setup) ships no MIBs and no usable snmp.yml, so
:func:`write_config` writes one module per community with numeric OIDs for the same objects a
netmon ``generic`` poll reads: sysDescr, sysUpTime and sysName (GET; sysObjectID has no metric
type) and the nine interface columns (walked, ``max_repetitions`` as netmon's first request).
The exporter listens on 127.0.0.1 only; its CPU is read from /proc (bench/procstat.py, the
process and any children) around the scrapes, so the scrape client's own CPU is not in it.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from procstat import ProcessTree

EXPORTER = "prometheus-snmp-exporter"
SCALARS = {
    "sysDescr": "1.3.6.1.2.1.1.1",
    "sysUpTime": "1.3.6.1.2.1.1.3",
    "sysName": "1.3.6.1.2.1.1.5",
}
TEXT_TYPES = {"sysDescr", "sysName", "ifName"}
COLUMNS = {
    "ifAdminStatus": "1.3.6.1.2.1.2.2.1.7", "ifOperStatus": "1.3.6.1.2.1.2.2.1.8",
    "ifLastChange": "1.3.6.1.2.1.2.2.1.9", "ifInErrors": "1.3.6.1.2.1.2.2.1.14",
    "ifOutErrors": "1.3.6.1.2.1.2.2.1.20", "ifName": "1.3.6.1.2.1.31.1.1.1.1",
    "ifHCInOctets": "1.3.6.1.2.1.31.1.1.1.6", "ifHCOutOctets": "1.3.6.1.2.1.31.1.1.1.10",
    "ifHighSpeed": "1.3.6.1.2.1.31.1.1.1.15",
}  # fmt: skip
_START_TIMEOUT = 10.0


def available() -> bool:
    return shutil.which(EXPORTER) is not None


def _metric(name: str, oid: str, indexed: bool) -> list[str]:
    kind = "DisplayString" if name in TEXT_TYPES else "gauge"
    if name in ("ifHCInOctets", "ifHCOutOctets", "ifInErrors", "ifOutErrors"):
        kind = "counter"
    lines = [f"  - name: {name}", f"    oid: {oid}", f"    type: {kind}"]
    if indexed:
        lines += ["    indexes:", "    - labelname: ifIndex", "      type: gauge"]
    return lines


def write_config(path: Path, communities: dict[str, str], repetitions: int) -> None:
    """snmp.yml with one module per ``{module: community}`` (the 0.21 format: auth in it)."""
    lines: list[str] = []
    for module, community in communities.items():
        lines += [f"{module}:", "  version: 2", "  auth:", f"    community: {community}",
                  f"  max_repetitions: {repetitions}", "  retries: 0", "  timeout: 5s",
                  "  get:"]  # fmt: skip
        lines += [f"  - {oid}.0" for oid in SCALARS.values()]
        lines += ["  walk:"] + [f"  - {oid}" for oid in COLUMNS.values()]
        lines += ["  metrics:"]
        for name, oid in SCALARS.items():
            lines += _metric(name, oid, indexed=False)
        for name, oid in COLUMNS.items():
            lines += _metric(name, oid, indexed=True)
    path.write_text("\n".join(lines) + "\n")


@dataclass
class Exporter:
    proc: subprocess.Popen[bytes]
    port: int

    def cpu(self) -> float:
        return ProcessTree(self.proc.pid).sample()


@contextmanager
def running(
    workdir: Path, communities: dict[str, str], port: int, repetitions: int
) -> Iterator[Exporter]:
    """The exporter on 127.0.0.1:``port`` with our config; always killed on exit."""
    config = workdir / "snmp.yml"
    write_config(config, communities, repetitions)
    log = (workdir / "snmp_exporter.log").open("wb")
    proc = subprocess.Popen(
        [EXPORTER, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
         "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        _wait_listening(proc, port, workdir)
        yield Exporter(proc, port)
    finally:
        proc.kill()
        proc.wait(timeout=10)
        log.close()


def _wait_listening(proc: subprocess.Popen[bytes], port: int, workdir: Path) -> None:
    import socket

    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    log = (workdir / "snmp_exporter.log").read_text()[-2000:]
    raise RuntimeError(f"snmp_exporter did not start on port {port}; log:\n{log}")


async def scrape(port: int, module: str, target: str) -> tuple[bool, int]:
    """One /snmp scrape: (ok, samples of the polled objects, i.e. varbinds turned metrics)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    path = f"/snmp?module={module}&target={target}"
    writer.write(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
    body = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, text = body.partition(b"\r\n\r\n")
    ok = head.startswith(b"HTTP/1.") and b" 200 " in head.split(b"\r\n")[0]
    names = tuple(SCALARS) + tuple(COLUMNS)
    samples = sum(1 for line in text.decode().splitlines() if line.startswith(names))
    return ok and samples > 0, samples
