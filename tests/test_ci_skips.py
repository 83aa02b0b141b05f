"""tests/conftest.py: with CI=true a skip fails the run (a missing tool or privilege must not
hide behind a green CI), except the skips CI_ALLOWED_SKIPS names; outside CI skips stay skips."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")
TESTS = """
import pytest

def test_passes():
    pass

def test_skips_for_a_tool():
    pytest.skip("fping is not installed")

@pytest.mark.skipif(True, reason="raw ICMP sockets need CAP_NET_RAW")
def test_skipif_for_a_privilege():
    pass

def test_allowed_skip():
    pytest.skip("198.51.100.0/30 is already in use on this host: eth9")

@pytest.mark.xfail(reason="a known gap", strict=True)
def test_known_gap():
    assert False
"""
MODULE_SKIP = 'import pytest\npytest.skip("snmpd is missing", allow_module_level=True)\n'


def outcome(tmp_path: Path, ci: str | None) -> tuple[int, str]:
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    (tmp_path / "test_sample.py").write_text(TESTS)
    (tmp_path / "test_module_skip.py").write_text(MODULE_SKIP)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA",
         "--continue-on-collection-errors", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return proc.returncode, proc.stdout


def summary(out: str) -> str:
    return out.strip().splitlines()[-1]


@pytest.mark.parametrize("ci", ["true", "1"])
def test_in_ci_a_skip_for_a_tool_or_privilege_fails(tmp_path: Path, ci: str) -> None:
    code, out = outcome(tmp_path, ci)
    assert code == 1, out
    assert re.search(r"1 failed, 1 passed, 1 skipped, 1 xfailed, 2 errors", summary(out)), out
    assert "FAILED test_sample.py::test_skips_for_a_tool" in out
    assert "ERROR test_sample.py::test_skipif_for_a_privilege" in out  # a skip mark: at setup
    assert "ERROR test_module_skip.py" in out
    assert "skipped in CI, which must not skip: fping is not installed" in out
    assert "SKIPPED [1] test_sample.py" in out and "already in use on this host" in out


def test_outside_ci_skips_are_skips(tmp_path: Path) -> None:
    code, out = outcome(tmp_path, None)
    assert code == 0, out
    assert re.search(r"1 passed, 4 skipped, 1 xfailed", summary(out)), out
