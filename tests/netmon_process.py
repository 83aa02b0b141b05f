"""``netmon run`` as a real process on an empty inventory, for the drills (tests/test_spill.py,
tests/test_http_hygiene.py): its own data folder and SQLite database, a free port, a log file."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.test_e2e import free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def running_netmon(
    workdir: Path,
    inventory: str = "sites: []\n",
    database_url: str | None = None,
    ready: tuple[str, ...] = ("ok",),
    port: int | None = None,
    env_extra: dict[str, str] | None = None,
) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """Start netmon in ``workdir`` (its SQLite database, unless ``database_url``) on ``port``
    (default: a free one) with ``env_extra`` in its environment, wait until /healthz says one
    of ``ready``; yield (port, process). Killed at the end if the test did
    not stop it (with SIGTERM, as it should)."""
    config = workdir / "inventory.yaml"
    config.write_text(inventory)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETMON_")}
    env.update(NETMON_DATA_DIR=str(workdir), NETMON_LOG_LEVEL="info", **(env_extra or {}))
    port = port or free_port()
    url = database_url or f"sqlite:///{workdir / 'netmon.db'}"
    with (workdir / "netmon.log").open("a") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "netmon.cli", "run", "--config", str(config), "--port",
             str(port), "--database-url", url],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip

    def ready_or_gone() -> bool:
        if proc.poll() is not None:
            return True
        return bool(
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()["status"] in ready
        )

    try:
        wait_for(ready_or_gone)
        assert proc.poll() is None, (workdir / "netmon.log").read_text()
        yield port, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def stop(proc: subprocess.Popen[str]) -> int:
    """SIGTERM and the exit status."""
    proc.send_signal(signal.SIGTERM)
    return proc.wait(60)


def stop_all(procs: Iterable[subprocess.Popen[Any]], grace: float = 30.0) -> None:
    """SIGTERM every process still running, then wait for each; kill one that outlasts
    ``grace`` seconds."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
