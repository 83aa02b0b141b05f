"""Shared fixtures for the NOC bundle tests (deploy/ and docs/), run against real binaries.

Binaries come from PATH (Debian: prometheus, prometheus-alertmanager, victoria-metrics, promtool,
amtool, systemd-analyze); a test whose binary is missing is skipped and says which one.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule in deploy/prometheus/rules/, in file order."""
    rules = []
    for path in sorted((REPO / "deploy/prometheus/rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules += [r for r in group["rules"] if "alert" in r]
    return rules


@pytest.fixture(scope="session")
def recorded_names() -> set[str]:
    names = set()
    for path in sorted((REPO / "deploy/prometheus/rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names |= {r["record"] for r in group["rules"] if "record" in r}
    return names


# Metrics a rule may use before netmon exports them (each marked "WAITING FOR ..." in the rules).
AWAITED_METRICS: dict[str, str] = {}


@pytest.fixture(scope="session")
def awaited_metrics() -> dict[str, str]:
    return AWAITED_METRICS


@pytest.fixture(scope="session")
def exported_metrics() -> set[str]:
    """Metric names documented at the top of exporters/prometheus.py and of each probe kind's
    modules (a kind exports its own families through its ``metrics`` hook)."""
    sources = [REPO / "exporters/prometheus.py", *sorted((REPO / "probes").glob("*.py"))]
    docs = [ast.get_docstring(ast.parse(path.read_text())) or "" for path in sources]
    names = set(re.findall(r"\bnetmon_[a-z0-9_]+", "\n".join(docs)))
    assert "netmon_site_fully_functional" in names, (
        "exporters/prometheus.py no longer lists its metrics"
    )
    return names


def _raw_metric_names(expr: str) -> set[str]:
    """netmon_* metric names in a PromQL expression, not counting recording-rule names."""
    return set(re.findall(r"(?<![\w:])netmon_[a-z0-9_]+(?![\w:])", expr))


@pytest.fixture(scope="session")
def metric_names() -> Callable[[str], set[str]]:
    """``metric_names(expr)``: the netmon_* metrics an expression reads (recordings excluded)."""
    return _raw_metric_names


def _which(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(
        f"none of {', '.join(names)} is on PATH (Debian: apt-get install prometheus"
        " prometheus-alertmanager victoria-metrics)"
    )


@pytest.fixture(scope="session")
def which() -> Callable[..., str]:
    """``which("a", "b")``: the path of the first binary found, else skip the test."""
    return _which


@pytest.fixture
def free_port() -> Callable[[], int]:
    def pick() -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    return pick


def http_json(method: str, url: str, body: Any = None, timeout: float = 5.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            text = resp.read()
    except urllib.error.HTTPError as exc:
        exc.close()  # its open response would warn (ResourceWarning: an error) when collected
        raise
    return json.loads(text) if text else None


@pytest.fixture(scope="session")
def http() -> Callable[..., Any]:
    """``http("GET", url, body=None)``: the decoded JSON answer (HTTPError on 4xx/5xx)."""
    return http_json


def _wait(check: Callable[[], Any], what: str, timeout: float = 30.0, every: float = 0.25) -> Any:
    """Call ``check`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
            last_exc, result = exc, None
        if result:
            return result
        time.sleep(every)
    pytest.fail(
        f"gave up after {timeout:g}s waiting for {what}"
        + (f" (last error: {last_exc})" if last_exc else "")
    )


@pytest.fixture(scope="session")
def wait_for() -> Callable[..., Any]:
    return _wait


class Processes:
    """Started processes, stopped (SIGTERM, then SIGKILL) when the test ends."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, name: str, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        log = self.logdir / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, **kwargs)
        self.procs.append((proc, log))
        return proc

    def log(self, proc: subprocess.Popen[bytes]) -> str:
        path = next(p for q, p in self.procs if q is proc)
        return path.read_text(errors="replace")[-4000:]

    def stop_all(self) -> None:
        for proc, _ in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        procs.stop_all()


@dataclass(frozen=True)
class Bench:
    """The fixtures a test that runs real binaries uses, as one: ``bench.processes`` etc."""

    repo: Path
    tmp_path: Path
    which: Callable[..., str]
    free_port: Callable[[], int]
    processes: Processes
    http: Callable[..., Any]
    wait_for: Callable[..., Any]


@pytest.fixture
def bench(
    tmp_path: Path,
    free_port: Callable[[], int],
    processes: Processes,
) -> Bench:
    return Bench(REPO, tmp_path, _which, free_port, processes, http_json, _wait)
