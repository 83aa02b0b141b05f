"""GET handlers never write: /history and /results read the database and merge the rows still
queued in the store. A store that cannot be read answers 503 problem, and /healthz says so.
On embedded SQLite and the real PostgreSQL server (``database_url``)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from exporters.prometheus import make_registry
from netmon.api import create_app
from netmon.errors import StoreError
from netmon.inventory import load_inventory
from netmon.monitor import Monitor
from netmon.store import ProbeResultRow, Store
from probes.base import Engines, ProbeResult
from tests.conftest import INVENTORIES, FakeClock

NOW = 1_800_000_000.0
RESULTS = "/api/v1/sites/chc-bundu/devices/wan-1/results"
HISTORY = "/api/v1/sites/chc-bundu/history"


def ok(ts: float) -> ProbeResult:
    return ProbeResult("icmp", True, ts, 0.3, 3, 3, (0.01, 0.012, 0.011))


def lost(ts: float) -> ProbeResult:
    return ProbeResult("icmp", False, ts, 0.6, 3, 0, (), "no reply to 3 echoes")


def make_monitor(store: Store) -> Monitor:
    m = Monitor(load_inventory(INVENTORIES / "valid-small.yaml"), store, Engines(), FakeClock(NOW))
    m.ready = True
    return m


def rows_in_database(store: Store) -> int:
    with store.engine.connect() as conn:
        results = conn.execute(text("SELECT COUNT(*) FROM probe_result")).scalar_one()
        changes = conn.execute(text("SELECT COUNT(*) FROM verdict_change")).scalar_one()
    return int(results) + int(changes)


@pytest.fixture
async def api() -> AsyncIterator[Callable[[Monitor], httpx.AsyncClient]]:
    clients: list[httpx.AsyncClient] = []

    def make(monitor: Monitor) -> httpx.AsyncClient:
        app = create_app(monitor, make_registry(monitor, "test", "raw"))
        clients.append(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        )
        return clients[-1]

    yield make
    for c in clients:
        await c.aclose()


async def test_reads_merge_queued_rows_and_write_nothing(
    database_url: str, api: Callable[[Monitor], httpx.AsyncClient]
) -> None:
    store = Store(database_url)
    store.migrate()
    monitor = make_monitor(store)
    client = api(monitor)
    monitor.record("chc-bundu", "wan-1", ok(NOW - 30))
    monitor.evaluate()  # fully functional: a verdict change
    store.flush()
    monitor.record("chc-bundu", "wan-1", lost(NOW - 10))  # queued only
    monitor.evaluate()  # down: a second change, queued only
    written, pending, stored = store.written, len(store.pending), rows_in_database(store)
    assert pending > 0 and written > 0

    results = (await client.get(RESULTS)).json()
    assert [(r["ok"], r["reason"]) for r in results["data"]] == [
        (False, "no reply to 3 echoes"),
        (True, ""),
    ]
    history = (await client.get(HISTORY)).json()
    assert [c["verdict"] for c in history["data"]] == ["down", "fully_functional"]
    assert history["data"][0]["reasons"][0]["criterion"] == "uplink_down"
    for path in (
        "/api/v1/sites",
        "/api/v1/sites/chc-bundu",
        "/api/v1/summary",
        "/healthz",
        "/metrics",
    ):
        assert (await client.get(path)).status_code == 200
    assert (store.written, len(store.pending), rows_in_database(store)) == (
        written,
        pending,
        stored,
    )
    store.close()


async def test_a_row_written_but_not_yet_dequeued_is_listed_once(
    database_url: str, api: Callable[[Monitor], httpx.AsyncClient]
) -> None:
    """A flush commits a batch, then takes it off the queue: a read in between sees it twice."""
    store = Store(database_url)
    store.migrate()
    monitor = make_monitor(store)
    monitor.record("chc-bundu", "wan-1", ok(NOW - 30))
    monitor.record("chc-bundu", "wan-1", lost(NOW - 10))
    monitor.evaluate()
    store._write(list(store.pending))  # committed, still queued: the flush thread is mid-batch
    results = (await api(monitor).get(RESULTS)).json()
    assert [r["at"] for r in results["data"]] == sorted(
        {r["at"] for r in results["data"]}, reverse=True
    )
    assert results["count"] == 2
    history = (await api(monitor).get(HISTORY)).json()
    assert [c["verdict"] for c in history["data"]] == ["down"]
    store.close()


def test_store_results_respect_since_device_and_limit(database_url: str) -> None:
    store = Store(database_url)
    store.migrate()
    for i in range(6):
        store.add_result("s", "a", ok(NOW + i))
        store.add_result("s", "b", ok(NOW + i))
        if i == 2:
            store.flush()  # 0..2 written, 3..5 queued
    rows = store.results("s", "a", since=NOW + 1, limit=4)
    assert [(r.device, r.ts) for r in rows] == [("a", NOW + t) for t in (5, 4, 3, 2)]
    assert all(isinstance(r, ProbeResultRow) for r in rows)
    assert len(store.results("s", None, since=NOW, limit=100)) == 12
    assert store.results("other", None, since=NOW) == []
    store.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dead_store(kind: str, tmp_path: Path) -> Store:
    """A store whose database is not there: nothing listens on the port / no such directory."""
    if kind == "postgres-closed-port":
        return Store(
            f"postgresql+psycopg://netmon@127.0.0.1:{closed_port()}/netmon?connect_timeout=2"
        )
    return Store(f"sqlite:///{tmp_path / 'never-made' / 'netmon.db'}")


@pytest.mark.parametrize("kind", ["postgres-closed-port", "sqlite-missing-directory"])
async def test_unreachable_store_is_503_problem_and_degraded_health(
    kind: str, tmp_path: Path, api: Callable[[Monitor], httpx.AsyncClient]
) -> None:
    store = dead_store(kind, tmp_path)
    monitor = make_monitor(store)
    client = api(monitor)
    monitor.record("chc-bundu", "wan-1", ok(NOW - 5))
    monitor.evaluate()
    pending = len(store.pending)
    assert (await client.get("/healthz")).json()["store"]["status"] == "ok"  # nothing tried yet
    for path in (RESULTS, HISTORY):
        resp = await client.get(path)
        assert (
            resp.status_code == 503 and resp.headers["content-type"] == "application/problem+json"
        )
        assert resp.headers["retry-after"] == "10"  # a client knows when to ask again
        body = resp.json()
        assert (body["error"], body["type"]) == (
            "store_unavailable",
            "urn:netmon:problem:store_unavailable",
        )
        assert "127.0.0.1" not in resp.text and "never-made" not in resp.text  # no internals
    assert (await client.get("/api/v1/sites/chc-bundu")).json()["verdict"] == "fully_functional"
    health = (await client.get("/healthz")).json()
    assert health["status"] == "degraded" and health["store"]["status"] == "degraded"
    assert health["store"]["read_errors"] == 2 and health["store"]["last_error_at"] is not None
    cause = "connection refused" if kind.startswith("postgres") else "unable to open database file"
    assert cause in health["store"]["last_error"].lower()
    assert "SELECT" not in health["store"]["last_error"]
    assert (len(store.pending), store.written) == (pending, 0)  # the failed GETs wrote nothing
    store.close()


async def test_health_recovers_when_the_store_answers_again(
    tmp_path: Path, api: Callable[[Monitor], httpx.AsyncClient]
) -> None:
    store = dead_store("sqlite-missing-directory", tmp_path)
    monitor = make_monitor(store)
    client = api(monitor)
    assert (await client.get(HISTORY)).status_code == 503
    (tmp_path / "never-made").mkdir()
    store.migrate()
    assert (await client.get(HISTORY)).status_code == 200
    health = (await client.get("/healthz")).json()
    assert (health["status"], health["store"]["status"]) == ("ok", "ok")
    assert "unable to open database file" in health["store"]["last_error"]  # kept for the operator
    store.close()


async def test_a_failing_write_degrades_health_until_a_write_succeeds(
    tmp_path: Path, api: Callable[[Monitor], httpx.AsyncClient]
) -> None:
    store = dead_store("sqlite-missing-directory", tmp_path)
    monitor = make_monitor(store)
    client = api(monitor)
    monitor.record("chc-bundu", "wan-1", ok(NOW - 5))
    with pytest.raises(StoreError):
        store.flush()
    (tmp_path / "never-made").mkdir()
    store.migrate()
    assert (await client.get(HISTORY)).status_code == 200  # reads work again...
    health = (await client.get("/healthz")).json()
    assert (
        health["status"] == "degraded" and health["store"]["errors"] == 1
    )  # ...writes not yet shown
    store.flush()
    assert (await client.get("/healthz")).json()["status"] == "ok"
    store.close()
