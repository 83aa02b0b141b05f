"""Shared fixtures: data paths, a fake clock, and a probe-free monitor over a chosen store.

In CI (environment CI=true, as .ci/run sets it) a test that skips fails instead: a skip there
means a tool or a privilege the suite needs is missing, and a green CI would hide it. The only
skips CI lets through are those in :data:`CI_ALLOWED_SKIPS`, each with the reason it is not
about a missing tool or privilege; add one there (a substring of the skip reason) only with
such a reason.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest import CollectReport, TestReport

# Substring of a skip reason -> why CI may skip it (it is not a missing tool or privilege).
CI_ALLOWED_SKIPS: dict[str, str] = {
    "is already in use on this host": (
        "tests/test_icmp.py's namespace needs its own test subnet; when the host's own network"
        " already uses it the test must not take it over"
    ),
}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _skip_reason(report: TestReport | CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _fail_skip_in_ci(report: TestReport | CollectReport) -> None:
    if not (in_ci() and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report)
    if any(allowed in reason for allowed in CI_ALLOWED_SKIPS):
        return
    report.outcome = "failed"
    report.longrepr = (
        f"skipped in CI, which must not skip: {reason}\n"
        "Install the missing tool or grant the privilege in scripts/setup or .ci/run; if this"
        " skip is not about a missing tool or privilege, add it to CI_ALLOWED_SKIPS in"
        " tests/conftest.py with the reason."
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None]:
    outcome = yield
    _fail_skip_in_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None]:
    outcome = yield
    _fail_skip_in_ci(outcome.get_result())


DATA = Path(__file__).parent / "data"
INVENTORIES = DATA / "inventory"


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def postgres_url() -> str | None:
    return os.environ.get("NETMON_TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each store test runs on embedded SQLite and on the real PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'netmon.db'}"
        return
    url = postgres_url()
    if not url:
        if os.environ.get("NETMON_REQUIRE_POSTGRES"):
            pytest.fail("NETMON_REQUIRE_POSTGRES is set but NETMON_TEST_POSTGRES_URL is not")
        pytest.skip("NETMON_TEST_POSTGRES_URL is not set and no server answered on 127.0.0.1:5432")
    from sqlalchemy import create_engine, text

    # A fresh schema per test so tests never see each other's rows.
    schema = f"t_{os.getpid()}_{abs(hash(request.node.nodeid)) % 10**8}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    sep = "&" if "?" in url else "?"
    yield f"{url}{sep}options=-csearch_path%3D{schema}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


# -- Running the suite on several workers (pytest-xdist, `scripts/test` passes -n) ----------------
# Tests that share one resource of the host run on one worker, in their own order: the network
# namespace labs (they all route 198.18.0.0/15 and add namespaces) and the deploy checks (real
# Prometheus/Alertmanager processes of their own). Every other file is its own unit. Heavy units
# go first so that neither worker is left with a long tail.
SHARED_UNITS: dict[str, tuple[str, ...]] = {
    "lab": ("tests/lab/", "tests/test_icmp.py", "tests/test_icmp_kernel_clock.py"),
    "deploy": ("tests/deploy/",),
}
HEAVY_FIRST = ("lab", "tests/test_wheel.py", "deploy", "tests/test_status_browser.py")


def work_unit(nodeid: str) -> str:
    """The scheduling unit of a test: a shared unit's name, else its file."""
    path = nodeid.split("::", 1)[0]
    for unit, prefixes in SHARED_UNITS.items():
        if path.startswith(prefixes):
            return unit
    return path


def _heaviness(item: pytest.Item) -> int:
    unit = work_unit(item.nodeid)
    return HEAVY_FIRST.index(unit) if unit in HEAVY_FIRST else len(HEAVY_FIRST)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=_heaviness)  # stable: the order inside a unit stays as collected


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    class UnitScheduling(LoadScopeScheduling):
        """LoadScope with :func:`work_unit` as the scope, in collection order."""

        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False
    return UnitScheduling(config, log)
