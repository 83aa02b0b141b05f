"""The lab always cleans up: normal exit, exceptions, signals, and runs killed with SIGKILL."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from netmon.lab import Lab, LabError, load_scenarios
from netmon.lab.model import bundled_scenario_dir
from netmon.lab.netns import lab_namespaces, lab_processes, live_records, load_record
from tests.lab.conftest import wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
HEALTHY = Path(str(bundled_scenario_dir().joinpath("healthy.yaml")))  # has an SNMP agent too
ENV = dict(os.environ, PYTHONPATH=str(REPO))
CHILD = """
import sys, time
from netmon.lab import Lab, load_scenarios
lab = Lab(load_scenarios(sys.argv[1]), sys.argv[2]).start()
print(lab.ns.name, flush=True)
time.sleep(60)
"""


def _assert_clean(ns: str, workdir: Path) -> None:
    assert ns not in lab_namespaces()
    left = lab_processes(ns, str(workdir))
    assert not left, f"lab helper processes left: {left}"
    assert load_record(ns) is None


def _killed_lab(tmp_path: Path) -> str:
    """Start a lab in a child process, SIGKILL the child; return the namespace it left."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(HEALTHY), str(tmp_path)],
                             stdout=subprocess.PIPE, env=ENV, cwd=REPO)  # fmt: skip
    assert child.stdout is not None
    ready, _, _ = select.select([child.stdout], [], [], 20.0)
    assert ready, "the child lab did not start"
    ns = child.stdout.readline().decode().strip()
    child.stdout.close()
    child.kill()
    child.wait(timeout=10)
    assert ns in lab_namespaces(), "the killed run should leave its namespace behind"
    # its helpers die with it (PR_SET_PDEATHSIG); the namespace stays until the next start
    assert wait_until(lambda: not lab_processes(ns, str(tmp_path)), 10.0)
    return ns


def test_exception_inside_the_block_still_removes_everything(tmp_path: Path) -> None:
    lab = Lab(load_scenarios(HEALTHY), tmp_path)
    with pytest.raises(RuntimeError, match="boom"), lab:
        assert lab.ns is not None
        ns = lab.ns.name
        raise RuntimeError("boom")
    _assert_clean(ns, tmp_path)


def test_a_second_lab_is_refused_while_one_runs(tmp_path: Path) -> None:
    with Lab(load_scenarios(HEALTHY), tmp_path / "a") as first:
        with pytest.raises(LabError, match="already routes"):
            Lab(load_scenarios(HEALTHY), tmp_path / "b").start()
        assert first.ns is not None and first.ns.name in lab_namespaces()
        assert len(live_records()) == 1


def test_stale_namespace_of_a_killed_run_is_removed_at_the_next_start(tmp_path: Path) -> None:
    stale = _killed_lab(tmp_path / "killed")
    with Lab(load_scenarios(HEALTHY), tmp_path / "next") as lab:
        assert stale not in lab_namespaces()
        assert lab.ns is not None and lab.ns.name in lab_namespaces()
        ns = lab.ns.name
    _assert_clean(stale, tmp_path)
    _assert_clean(ns, tmp_path)


def test_netmon_lab_cleanup_removes_a_stale_namespace(tmp_path: Path) -> None:
    stale = _killed_lab(tmp_path)
    done = subprocess.run([sys.executable, "-m", "netmon.cli", "lab", "cleanup"], capture_output=True,
                          text=True, timeout=60, env=ENV, cwd=REPO)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"removed {stale}" in done.stdout
    _assert_clean(stale, tmp_path)


def _sigint_ignored() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as `cmd &` in a script or nohup hand it over


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as an interactive shell hands it over


@pytest.mark.parametrize(
    ("sig", "inherited"),
    [(signal.SIGTERM, _sigint_default), (signal.SIGINT, _sigint_default),
     (signal.SIGHUP, _sigint_default), (signal.SIGINT, _sigint_ignored)],
    ids=["SIGTERM", "SIGINT", "SIGHUP", "SIGINT-inherited-ignored"],
)  # fmt: skip
def test_lab_up_stops_cleanly_on_signals(
    sig: signal.Signals, inherited: Callable[[], None], tmp_path: Path
) -> None:
    """Whatever SIGINT the parent hands over (pytest itself may run in the background, with
    SIGINT ignored: the child's is set explicitly, so each case tests what its name says)."""
    inventory = tmp_path / "inventory.yaml"
    proc = subprocess.Popen([sys.executable, "-m", "netmon.cli", "lab", "up", "--scenarios", str(HEALTHY),
                             "--inventory-out", str(inventory), "--workdir", str(tmp_path / "w")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV, cwd=REPO,
                            preexec_fn=inherited)  # fmt: skip
    try:

        def started() -> bool:  # the record is written before the inventory: wait for both
            return inventory.is_file() and any(r.owner_pid == proc.pid for r in live_records())

        assert wait_until(started, 20.0), "lab up did not start"
        ns = next(r.ns for r in live_records() if r.owner_pid == proc.pid)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode in (0, 128 + sig), err
    _assert_clean(ns, tmp_path)
