"""Drill: a hung PostgreSQL (issue 11, items 1 and 6), on a real instance of the test's own.

The server is SIGSTOPped, not stopped: its sockets stay open and nothing answers, so only the
store's own timeouts can end a wait. While it hangs a flush fails (counted, rows kept), the
API's reads answer 503 problem+json, /healthz says ``degraded``, and a shutdown gives up in
bounded time, leaving the rows in the journal; once it is SIGCONTed every result is written exactly once.

The bounds below (``HANG``) only turn a hang into a failure; they time nothing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from netmon.errors import StoreError
from netmon.journal import Journal
from netmon.store import READS_WAITING, Store, Timeouts
from tests.pg_instance import PgInstance, pg_instance
from tests.test_api_store import HISTORY, NOW, RESULTS, api, make_monitor, ok, rows_in_database

__all__ = ["api", "pg_instance"]  # fixtures used here
T = TypeVar("T")
FAST = Timeouts(connect=2.0, statement=2.0, lock=1.0, margin=1.0)  # deadline 3 s
HANG = 60.0  # a wait longer than this is a hang: the test fails instead of blocking CI


@pytest.fixture
def store(pg_instance: PgInstance) -> Iterator[Store]:
    """A migrated store on the instance, with empty tables."""
    s = Store(pg_instance.url, timeouts=FAST)
    s.migrate()
    with s.engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE probe_result, verdict_change")
    yield s
    pg_instance.thaw()
    s.close()


def bounded(fn: Callable[[], T]) -> T:
    """``fn()`` in a thread; a TimeoutError (the test fails) if it does not return in HANG s."""
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        return pool.submit(fn).result(timeout=HANG)
    finally:
        pool.shutdown(wait=False)


def wait_until(cond: Callable[[], bool]) -> None:
    while not cond():
        time.sleep(0.05)


def take(store: Store, n: int, start: float) -> None:
    for i in range(n):
        store.add_result("chc-bundu", "wan-1", ok(start + i))


def test_a_hung_database_fails_flushes_keeps_rows_and_writes_them_once_back(
    store: Store, pg_instance: PgInstance
) -> None:
    take(store, 10, NOW - 100)
    assert bounded(store.flush) == 10
    pg_instance.freeze()
    take(store, 10, NOW - 50)
    pool = concurrent.futures.ThreadPoolExecutor(1)
    hung = pool.submit(store.flush)  # on a pooled connection to the hung server
    bounded(lambda: wait_until(lambda: store.failing or hung.done()))
    assert not hung.done()  # failing (past the statement timeout) while the flush still waits
    with pytest.raises(StoreError):
        hung.result(timeout=HANG)
    pool.shutdown()
    assert (store.errors, len(store.pending), store.write_failing) == (1, 10, True)
    with pytest.raises(StoreError):  # a new connection
        bounded(store.flush)
    assert (store.errors, len(store.pending), store.write_failing) == (2, 10, True)
    assert store.last_error is not None
    pg_instance.thaw()
    assert bounded(store.flush) == 10
    assert bounded(lambda: rows_in_database(store)) == 20  # each result exactly once
    assert (len(store.pending), store.write_failing) == (0, False)


async def test_api_answers_503_problem_and_degraded_health_while_the_database_hangs(
    store: Store, pg_instance: PgInstance, api: Callable[..., httpx.AsyncClient]
) -> None:
    monitor = make_monitor(store)
    client = api(monitor)
    monitor.record("chc-bundu", "wan-1", ok(NOW - 5))
    monitor.evaluate()
    assert (await client.get(HISTORY)).status_code == 200  # pools a connection
    pg_instance.freeze()
    with pytest.raises(StoreError):
        await asyncio.wait_for(store.flush_async(), HANG)
    for path in (RESULTS, HISTORY):
        resp = await asyncio.wait_for(client.get(path), HANG)
        assert (resp.status_code, resp.headers["content-type"]) == (503, "application/problem+json")
        assert resp.json()["error"] == "store_unavailable"
    # Many reads at once: they wait in the store's own threads (or fail at once past
    # READS_WAITING); /metrics, on the default executor, answers while they wait.
    reads = [asyncio.create_task(client.get(HISTORY)) for _ in range(READS_WAITING + 4)]
    await asyncio.sleep(0.5)  # let them reach the store
    scrape = await asyncio.wait_for(client.get("/metrics"), HANG)
    assert scrape.status_code == 200 and not all(r.done() for r in reads)
    answers = await asyncio.wait_for(asyncio.gather(*reads), HANG)
    assert {(r.status_code, r.headers["content-type"]) for r in answers} == {
        (503, "application/problem+json")
    }
    health = (await client.get("/healthz")).json()
    assert (health["status"], health["store"]["status"]) == ("degraded", "degraded")
    assert health["store"]["errors"] == 1 and health["store"]["read_errors"] == 2 + len(reads)
    assert health["store"]["pending"] == len(store.pending) > 0
    assert "netmon_store_errors_total 1.0" in (await client.get("/metrics")).text
    assert (await client.get("/api/v1/sites/chc-bundu")).json()["verdict"] == "fully_functional"
    pg_instance.thaw()
    assert (await asyncio.wait_for(client.get(HISTORY), HANG)).status_code == 200
    await asyncio.wait_for(store.flush_async(), HANG)
    assert (await client.get("/healthz")).json()["status"] == "ok"


async def test_shutdown_while_the_database_hangs_is_bounded_and_the_next_run_writes_once(
    pg_instance: PgInstance, tmp_path: Path
) -> None:
    store = Store(pg_instance.url, timeouts=FAST, journal=Journal(tmp_path / "journal"))
    store.migrate()
    with store.engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE probe_result, verdict_change")
    store.open_journal()
    monitor = make_monitor(store)
    take(store, 5, NOW - 100)
    await asyncio.wait_for(store.flush_async(), HANG)
    pg_instance.freeze()
    take(store, 7, NOW - 50)
    await asyncio.wait_for(monitor.stop(), HANG)  # 3 flush attempts, each bounded
    left = len(store.pending)
    assert left >= 7 and store.errors == 3  # (the rest: the verdict changes at stop)
    store.close()  # the journal keeps what the database did not take
    pg_instance.thaw()
    after = Store(pg_instance.url, timeouts=FAST, journal=Journal(tmp_path / "journal"))
    replayed = after.open_journal()  # ``left``, and the committed rows its segment also holds
    assert replayed >= left
    assert bounded(after.flush) == replayed
    assert bounded(lambda: rows_in_database(after)) == 5 + left  # each row exactly once
    after.close()
    assert list((tmp_path / "journal").iterdir()) == []
