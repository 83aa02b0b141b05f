"""``netmon run`` as a child process against a lab inventory, with a tiny JSON client."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import netmon
from netmon.lab.netns import die_with_parent

READY_TIMEOUT = 30.0  # s: netmon imports FastAPI, migrates its database, opens its socket


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class NetmonProcess:
    """``python -m netmon.cli run --config INVENTORY`` on ``host:port`` (a free port by default)."""

    def __init__(
        self,
        inventory: Path,
        workdir: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        database_url: str | None = None,
        log_to_file: bool = True,
        env: dict[str, str] | None = None,
        role: str = "run",
    ) -> None:
        """``env``: extra environment (a lab's :attr:`netmon.lab.Lab.netmon_env`, log level...);
        ``role``: ``run`` (all in one) or ``serve`` (no poller of its own: ``netmon poll``s)."""
        self.port = port or free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.log_path = workdir / "netmon.log"
        database_url = database_url or f"sqlite:///{workdir / 'netmon.db'}"
        cmd = [sys.executable, "-m", "netmon.cli", role, "--config", str(inventory),
               "--host", host, "--port", str(self.port), "--database-url", database_url]  # fmt: skip
        root = str(Path(netmon.__file__).resolve().parents[1])
        env = dict(os.environ, PYTHONPATH=root, NETMON_DATA_DIR=str(workdir), **(env or {}))
        # die_with_parent: an orphaned netmon must not keep probing lab addresses once the
        # lab (and its route) may be gone
        if log_to_file:
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(cmd, stdout=log, stderr=log, env=env, cwd=root,
                                                preexec_fn=die_with_parent)  # fmt: skip
        else:
            self.process = subprocess.Popen(cmd, env=env, cwd=root, preexec_fn=die_with_parent)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"netmon exited with {self.process.returncode}:\n{self.log()}")
            try:  # answering is not enough: while "loading" the API answers 503
                if self.get("/healthz", timeout=2.0).get("status") != "loading":
                    return
            except (OSError, urllib.error.URLError, ValueError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"netmon was not ready (/healthz) within {timeout:g}s:\n{self.log()}")

    def get(self, path: str, timeout: float = 10.0) -> Any:
        return self.get_json(self.url + path, timeout)

    @staticmethod
    def get_json(url: str, timeout: float = 10.0) -> Any:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (our own URL)
            return json.loads(response.read().decode("utf-8", errors="replace"))

    def get_text(self, path: str, timeout: float = 10.0) -> str:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as response:  # noqa: S310 (our own URL)
            return str(response.read().decode("utf-8", errors="replace"))

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, grace: float = 20.0) -> int | None:
        """SIGTERM (netmon flushes its store), then SIGKILL after ``grace`` seconds."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        return self.process.returncode
