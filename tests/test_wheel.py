"""netmon installs and runs from its wheel, the way deploy/compose/Dockerfile builds its image.

No container engine runs here, so the Dockerfile is proven by doing what it says: copy what its
COPY lines copy into a build folder, run its RUN commands (the Dockerfile's own text, with its
absolute paths moved into a temporary folder outside the checkout), and start the netmon they
installed from yet another folder, with no arguments: it must judge every bundled site.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

import netmon

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "deploy" / "compose" / "Dockerfile"
LOCK = REPO / "requirements.lock"
# RUN commands of the Dockerfile the test does not run, and why (everything else it runs).
NOT_RUN = {"useradd": "creates the image's system user (root only; nothing netmon installs)"}
# Absolute paths of the image, moved under the test's temporary folder.
IMAGE_PATHS = ("/opt/netmon", "/dist", "/src")
SITES_DEADLINE = 150.0  # s: the example probes every 60 s; first verdicts come within ~1 interval


@dataclass(frozen=True)
class Instruction:
    stage: str
    op: str
    args: str


def instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, each tagged with its stage."""
    joined = re.sub(r"\\\n\s*", " ", text)
    out, stage = [], ""
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        op, _, args = line.partition(" ")
        if op == "FROM":
            stage = args.split(" AS ")[-1].strip() if " AS " in args else "final"
        out.append(Instruction(stage, op, args.strip()))
    return out


DOCKER = instructions(DOCKERFILE.read_text())


def copies(stage: str, from_stage: bool) -> list[tuple[list[str], str]]:
    """(sources, destination) of the stage's COPY lines (those with --from= or those without)."""
    out = []
    for ins in DOCKER:
        if ins.stage == stage and ins.op == "COPY":
            words = ins.args.split()
            if words[0].startswith("--from=") == from_stage:
                words = [w for w in words if not w.startswith("--")]
                out.append((words[:-1], words[-1]))
    return out


def runs(stage: str) -> list[str]:
    return [i.args for i in DOCKER if i.stage == stage and i.op == "RUN"]


def dockerignore_allows(path: str) -> bool:
    """The .dockerignore is an allow-list ('*' then '!name' lines): is ``path`` let in?"""
    lines = (REPO / ".dockerignore").read_text().splitlines()
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    return "*" in lines and path.rstrip("/").split("/")[0] in allowed


# ---- the Dockerfile, the lock, the version: fast checks ---------------------------------------


def test_every_copy_source_exists_and_is_in_the_build_context() -> None:
    sources = [src for srcs, _ in copies("build", from_stage=False) for src in srcs]
    assert {"pyproject.toml", "README.md", "requirements.lock", "netmon", "probes"} <= set(sources)
    for src in sources:
        assert (REPO / src).exists(), f"Dockerfile: COPY {src}: missing"
        assert dockerignore_allows(src), f"Dockerfile: COPY {src}: excluded by .dockerignore"
    assert copies("final", from_stage=False) == [], "the image takes files only from the build"


def test_the_image_installs_the_built_wheel_with_the_lock() -> None:
    (build,) = runs("build")
    assert "pip wheel" in build and "--no-deps" in build
    install = " ".join(runs("final"))
    assert re.search(
        r"pip install .*-c /dist/requirements\.lock .*netmon-\*\.whl\)\[postgres\]", install
    )
    assert not any(ins.op == "COPY" and "deploy/" in ins.args for ins in DOCKER)  # package data
    assert [i.args for i in DOCKER if i.op == "CMD"] == ['["run"]']


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if m:
            pins[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return pins


def test_the_lock_pins_every_dependency_within_pyproject() -> None:
    """Fails after a dependency is added or changed in pyproject.toml: run scripts/lock."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    pins = lock_pins()
    for spec in [*project["dependencies"], *extras["test"], *extras["postgres"]]:
        req = Requirement(spec)
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        assert name in pins, f"{req.name} is not in requirements.lock: run scripts/lock"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock has {req.name}=={pins[name]}, pyproject.toml wants {req.specifier}:"
            " run scripts/lock"
        )


def test_the_version_is_the_package_metadata() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert netmon.__version__ == importlib.metadata.version("netmon") == pyproject


# ---- the wheel, installed outside the checkout -------------------------------------------------


@dataclass(frozen=True)
class Installed:
    root: Path  # what the image's / holds (opt/netmon, dist, src)
    venv: Path
    elsewhere: Path  # a working directory with nothing of netmon's in it
    home: Path

    def run(self, *argv: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, cwd=self.elsewhere, env=clean_env(self.home), capture_output=True,
            text=True, timeout=120, **kwargs,
        )  # fmt: skip

    def python(self, code: str) -> str:
        proc = self.run(str(self.venv / "bin" / "python"), "-c", code)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The caller's PATH and pip settings, nothing of netmon's or of the checkout's Python."""
    keep = {k: v for k, v in os.environ.items() if k.startswith("PIP_") or k in ("PATH", "LANG")}
    return {**keep, "HOME": str(home), **extra}


def image_path(command: str, root: Path) -> str:
    """``command`` with the image's absolute paths moved under ``root``."""
    alternatives = "|".join(re.escape(p) for p in IMAGE_PATHS)
    pattern = rf"(?<![\w.])({alternatives})(?=[/\s\"')]|$)"
    return re.sub(pattern, lambda m: str(root) + m.group(1), command)


def sh(command: str, root: Path, cwd: Path, shim: Path) -> None:
    # Without --no-cache-dir the pip cache makes a repeated run fast; nothing else changes.
    command = image_path(command, root).replace("--no-cache-dir ", "")
    home = os.environ.get("HOME", str(root))  # the pip cache lives there
    env = clean_env(Path(home), PATH=f"{shim}:{os.environ['PATH']}")
    proc = subprocess.run(["/bin/sh", "-c", command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, f"RUN {command}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def python_shim(root: Path) -> Path:
    """A folder with ``python``: this test's interpreter, standing in for the image's."""
    shim = root / "shim"
    shim.mkdir()
    (shim / "python").write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    (shim / "python").chmod(0o755)
    return shim


def copy_context(root: Path) -> Path:
    """The build stage's COPY lines, done: sources from the checkout into <root>/src."""
    workdir = Path(next(i.args for i in DOCKER if i.stage == "build" and i.op == "WORKDIR"))
    src_dir = Path(image_path(str(workdir), root))
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for sources, dest in copies("build", from_stage=False):
        for src in sources:
            target = src_dir / dest / Path(src).name if dest.endswith("/") else src_dir / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            if (REPO / src).is_dir():
                shutil.copytree(REPO / src, target, ignore=ignore)
            else:
                shutil.copy2(REPO / src, target)
    return src_dir


def copy_between_stages(root: Path) -> None:
    for sources, dest in copies("final", from_stage=True):
        for src in sources:
            source, target = Path(image_path(src, root)), Path(image_path(dest, root))
            if source.resolve() != target.resolve():
                shutil.copy2(source, target)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("image")
    assert not root.resolve().is_relative_to(REPO), "the install must be outside the checkout"
    shim = python_shim(root)
    src = copy_context(root)
    for command in runs("build"):
        sh(command, root, src, shim)
    copy_between_stages(root)
    for command in runs("final"):
        if command.split()[0] not in NOT_RUN:
            sh(command, root, root, shim)
    venv = Path(image_path("/opt/netmon/.venv", root))
    return Installed(
        root, venv, tmp_path_factory.mktemp("elsewhere"), tmp_path_factory.mktemp("home")
    )


slow = pytest.mark.slow


@slow
def test_netmon_comes_from_the_wheel_not_the_checkout(installed: Installed) -> None:
    where = Path(installed.python("import netmon; print(netmon.__file__)"))
    assert where.is_relative_to(installed.venv), where
    assert not (installed.root / "dist").exists(), "the image removes the wheel after installing"


@slow
def test_the_wheel_carries_every_file_of_the_packages(installed: Installed) -> None:
    """Every file git tracks under netmon/, probes/, exporters/ (code and package data)."""
    tracked = subprocess.run(["git", "ls-files", "netmon", "probes", "exporters"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    assert "netmon/data/inventory/jharkhand-example.yaml" in tracked
    site = Path(
        installed.python("import netmon, pathlib; print(pathlib.Path(netmon.__file__).parents[1])")
    )
    missing = [path for path in tracked if not (site / path).is_file()]
    assert not missing, f"not in the wheel (add them to [tool.setuptools.package-data]): {missing}"


@slow
def test_version_matches_the_metadata(installed: Installed) -> None:
    proc = installed.run(str(installed.venv / "bin" / "netmon"), "--version")
    assert proc.returncode == 0, proc.stderr
    metadata = installed.python("import importlib.metadata as m; print(m.version('netmon'))")
    assert proc.stdout.strip() == f"netmon {metadata}"
    assert metadata == netmon.__version__


@slow
def test_check_config_passes_on_the_bundled_example(installed: Installed) -> None:
    example = Path(
        installed.python("from netmon.resources import example_inventory as e; print(e())")
    )
    assert example.is_relative_to(installed.venv) and example.is_file()
    proc = installed.run(str(installed.venv / "bin" / "netmon"), "check-config", str(example))
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(rf"{re.escape(str(example))}: OK \(\d+ sites, \d+ devices\)\n", proc.stdout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        with exc:  # closed: an open response warns (ResourceWarning: an error) when collected
            return exc.code, exc.read()


def bundled_site_ids(installed: Installed) -> set[str]:
    code = (
        "import json; from netmon.inventory import load_inventory;"
        "from netmon.resources import example_inventory as e;"
        "print(json.dumps([s.id for s in load_inventory(e()).sites]))"
    )
    return set(json.loads(installed.python(code)))


@pytest.fixture
def running(installed: Installed, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``netmon run`` with no arguments, from a folder with nothing of netmon's in it."""
    port = free_port()
    env = clean_env(installed.home, NETMON_DATA_DIR=str(tmp_path), NETMON_PORT=str(port))
    log = (tmp_path / "netmon.log").open("w")
    proc = subprocess.Popen([str(installed.venv / "bin" / "netmon"), "run"], cwd=installed.elsewhere,
                            env=env, stdout=log, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def wait_for_verdicts(
    proc: subprocess.Popen[str], base: str, want: set[str], log: Path
) -> dict[str, str]:
    """Poll /api/v1/sites until every site has a verdict other than unknown (bounded)."""
    verdicts: dict[str, str] = {}
    deadline = time.monotonic() + SITES_DEADLINE
    for _ in range(int(SITES_DEADLINE)):  # at most one poll a second
        if proc.poll() is not None:
            pytest.fail(f"netmon run exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            status, body = get(f"{base}/api/v1/sites")
        except (urllib.error.URLError, OSError):
            status, body = 0, b""
        if status == 200:
            verdicts = {s["id"]: s["verdict"] for s in json.loads(body)["data"]}
            if set(verdicts) == want and "unknown" not in verdicts.values():
                return verdicts
        if time.monotonic() > deadline:
            break
        time.sleep(1)
    still = sorted(k for k, v in verdicts.items() if v == "unknown")
    pytest.fail(
        f"after {SITES_DEADLINE:g}s: {len(verdicts)}/{len(want)} sites, unknown: {still[:10]}"
    )


@slow
def test_run_with_no_arguments_judges_every_bundled_site(
    installed: Installed, running: tuple[subprocess.Popen[str], str], tmp_path: Path
) -> None:
    proc, base = running
    want = bundled_site_ids(installed)
    assert len(want) > 50
    verdicts = wait_for_verdicts(proc, base, want, tmp_path / "netmon.log")
    assert set(verdicts.values()) <= {"fully_functional", "degraded", "down", "not_installed"}
    status, body = get(f"{base}/healthz")
    assert status == 200 and json.loads(body)["version"] == netmon.__version__
    status, body = get(f"{base}/metrics")
    assert re.search(
        rf'^netmon_info{{[^}}]*version="{re.escape(netmon.__version__)}"', body.decode(), re.M
    )
    assert (tmp_path / "netmon.db").is_file()  # NETMON_DATA_DIR, not the working directory
    assert not any(installed.elsewhere.iterdir()), "netmon wrote into its working directory"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=90) == 0, (tmp_path / "netmon.log").read_text()[-3000:]
