"""Import costs (netmon.onboard): `netmon import netbox` of the NetBox fixtures (41 sites, 246
devices, served and paged by tests/netbox/server.py) and `netmon import csv` of the bundled
example (81 sites, 2,152 devices), each as the real command in a process of its own.

    python bench/onboard.py

Prints wall time and the command's whole-process CPU (RUSAGE_CHILDREN: it is waited for).
There is no reference tool to run beside it here (no NetBox, no netbox-zabbix-sync); the
figure to hold against is the issue's: >= 200 devices in < 2 s.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.netbox.server import NetBox  # noqa: E402

TOKEN = "0123456789abcdef0123456789abcdef01234567"
EXAMPLE = ROOT / "netmon/data/inventory/jharkhand-example.yaml"


def timed(args: list[str]) -> tuple[float, float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "netmon.cli", *args], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)  # fmt: skip
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    last = (proc.stdout.strip().splitlines() or [proc.stderr.strip()])[-1]
    return wall, cpu, last


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, NetBox(TOKEN) as netbox:
        d = Path(tmp)
        (d / "token").write_text(TOKEN)
        (d / "inv.yaml").write_text("sites: []\n")
        base = ["import", "netbox", "--url", netbox.url, "--token-file", str(d / "token"),
                "--into", str(d / "inv.yaml")]  # fmt: skip
        wall, cpu, _ = timed(["--version"])
        print(f"start-up alone (netmon --version): {wall:.2f} s wall, {cpu:.2f} CPU s")
        for label, extra in (("netbox dry run", ["--dry-run"]), ("netbox write", []),
                             ("netbox again (no change)", [])):  # fmt: skip
            wall, cpu, last = timed(base + extra)
            print(f"{label}: {wall:.2f} s wall, {cpu:.2f} CPU s: {last}")
        timed(["export", "csv", "--from", str(EXAMPLE), str(d / "s.csv"), str(d / "d.csv")])
        (d / "ex.yaml").write_text(EXAMPLE.read_text().split("\nsites:\n")[0] + "\nsites: []\n")
        for label, into in (("csv into an empty register", "ex.yaml"),
                            ("csv again (no change)", "ex.yaml")):  # fmt: skip
            wall, cpu, last = timed(["import", "csv", str(d / "s.csv"), str(d / "d.csv"),
                                     "--into", str(d / into)])  # fmt: skip
            print(f"{label}: {wall:.2f} s wall, {cpu:.2f} CPU s: {last}")


if __name__ == "__main__":
    main()
