"""A PostgreSQL server of the test's own, for drills that stop or freeze it.

``initdb`` into a fresh folder as the ``postgres`` OS user, started by its ``pg_ctl`` on a free
port other than 5432 (TCP on 127.0.0.1, its socket in the same folder), stopped by that
``pg_ctl`` at the end. :meth:`PgInstance.freeze` SIGSTOPs exactly this instance's processes:
the postmaster (``postmaster.pid``) and its children (``/proc``), never anything by name.

Needs the Debian ``postgresql`` package (scripts/setup --test installs it) and root (to run
initdb as ``postgres``); without them the fixture skips, which CI turns into a failure.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port != 5432:
            return port


class PgInstance:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="netmon-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.frozen: list[int] = []

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *args: str) -> None:
        cmd = ["runuser", "-u", "postgres", "--", str(self.bindir / args[0]), *args[1:]]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60, cwd=self.root)

    def start(self) -> None:
        shutil.chown(self.root, "postgres")
        self._as_postgres("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                          "--no-sync", "--no-instructions")  # fmt: skip
        self.up()

    def up(self) -> None:
        """Start the server (again, after :meth:`down`)."""
        opts = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
                " -c max_connections=20")  # fmt: skip
        log = str(self.root / "server.log")
        self._as_postgres("pg_ctl", "-D", str(self.data), "-o", opts, "-l", log, "-w", "start")

    def down(self) -> None:
        """Stop the server, keeping its data (a database outage: connections refused)."""
        self._as_postgres("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def pids(self) -> list[int]:
        """The postmaster and its children (backends, checkpointer, walwriter ...)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = []
        for stat in glob.glob("/proc/[0-9]*/stat"):
            try:
                fields = Path(stat).read_text().rsplit(")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
            if int(fields[1]) == postmaster:  # field 4, ppid
                children.append(int(Path(stat).parent.name))
        return [postmaster, *children]

    def freeze(self) -> None:
        """SIGSTOP the instance: connections stay open, nothing answers (a hung server)."""
        pids = self.pids()
        os.kill(pids[0], signal.SIGSTOP)  # the postmaster first: it forks no child after this
        self.frozen = [pids[0], *self.pids()[1:]]
        for pid in self.frozen[1:]:
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self.frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.frozen = []

    def stop(self) -> None:
        self.thaw()
        if (self.data / "postmaster.pid").exists():
            self._as_postgres("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def find_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@pytest.fixture(scope="module")
def pg_instance() -> Iterator[PgInstance]:
    """A running PostgreSQL of this module's own (skips without initdb or root: fails in CI)."""
    bindir = find_bindir()
    if bindir is None or shutil.which("runuser") is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) or runuser are not installed")
    if os.geteuid() != 0:
        pytest.skip("running initdb as the postgres user needs root")
    instance = PgInstance(bindir)
    try:
        instance.start()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        log = instance.root / "server.log"
        detail = log.read_text() if log.exists() else ""
        instance.stop()
        pytest.fail(f"cannot start a PostgreSQL instance: {exc}\n{detail}")
    try:
        yield instance
    finally:
        instance.stop()
