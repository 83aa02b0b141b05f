"""Shared fixtures: data paths, a fake clock, and a probe-free monitor over a chosen store."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

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
