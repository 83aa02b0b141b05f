"""Fixtures for the facility lab tests.

Tests that need the lab are marked ``root`` (and ``slow`` when they start processes); without
root, ``ip``, ``fping`` or ``snmpd`` they are skipped with the reason, and a host where
``ip netns add`` is not permitted skips them too.

* ``scenarios``     -- every scenario the lab bundles (netmon/lab/scenarios, validated)
* ``start_lab``     -- start a :class:`netmon.lab.Lab`; stopped at the end of the test module
* ``scenario_lab``  -- a lab running every scenario (module scope)
* ``netmon_server`` -- ``netmon run`` as a subprocess against ``scenario_lab``'s inventory
                      (SNMP included; debug log in its workdir's netmon.log)
* ``recording_browser(folder)`` -- a ``$BROWSER`` that notes the URL it was asked to open
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from netmon.lab import Lab, LabError, Scenario, bundled_scenarios
from netmon.lab.runner import NetmonProcess

HERE = Path(__file__).resolve().parent
TOOLS = ("ip", "fping", "snmpd", "snmpget")


def lab_unavailable() -> str | None:
    """Why the lab cannot run on this host, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, raw sockets)"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    return f"needs {', '.join(missing)}" if missing else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = lab_unavailable()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=f"facility lab {reason}")
    for item in items:
        if "root" in item.keywords and HERE in Path(str(item.path)).parents:
            item.add_marker(skip)


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll ``predicate`` every 0.1 s: True once it holds, False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def recording_browser(folder: Path) -> tuple[str, Path]:
    """A ``$BROWSER`` (a real script) that writes the URL it is given to a file: its path
    and the file's."""
    seen = folder / "opened.txt"
    script = folder / "browser.sh"
    script.write_text(f'#!/bin/sh\nprintf %s "$1" > {seen}\n')
    script.chmod(0o755)
    return str(script), seen


def start_or_skip(lab: Lab) -> Lab:
    try:
        return lab.start()
    except LabError as exc:
        if "netns add" in str(exc) or "Operation not permitted" in str(exc):
            pytest.skip(f"network namespaces not available here: {exc}")
        raise


@pytest.fixture(scope="session")
def scenarios() -> list[Scenario]:
    return bundled_scenarios()


@pytest.fixture(scope="module")
def start_lab() -> Iterator[Callable[..., Lab]]:
    """``start_lab(scenarios, workdir, **kwargs)``: a running lab, stopped after the module."""
    labs: list[Lab] = []

    def _start(scs: list[Scenario], workdir: Path, **kwargs: Any) -> Lab:
        lab = start_or_skip(Lab(scs, workdir, **kwargs))
        labs.append(lab)
        return lab

    yield _start
    for lab in labs:
        lab.stop()


@pytest.fixture(scope="module")
def scenario_lab(
    start_lab: Callable[..., Lab],
    scenarios: list[Scenario],
    tmp_path_factory: pytest.TempPathFactory,
) -> Lab:
    return start_lab(scenarios, tmp_path_factory.mktemp("scenario-lab"))


@pytest.fixture(scope="module")
def netmon_server(
    scenario_lab: Lab, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NetmonProcess]:
    """netmon probing the scenario lab; stopped before the lab (its addresses leave with it).

    It gets the lab's SNMPv3 privacy keys through its environment (as the inventory says) and
    logs at debug level, so the secret-leak check sees everything netmon can log."""
    workdir = tmp_path_factory.mktemp("netmon")
    server = NetmonProcess(
        scenario_lab.inventory_path,
        workdir,
        database_url=f"sqlite:///{workdir / 'x.db'}",
        env={**scenario_lab.netmon_env, "NETMON_LOG_LEVEL": "debug"},
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
