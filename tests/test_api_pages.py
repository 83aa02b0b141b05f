"""Keyset pages (``limit``, ``after``, ``next``) on /sites, /history and /results: following
``next`` gives every item once, in the order of the unpaged list, also when queued rows are
written between two pages. On embedded SQLite and the real PostgreSQL server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from exporters.prometheus import make_registry
from netmon.api import create_app
from netmon.api.pages import encode
from netmon.inventory import load_inventory
from netmon.monitor import Monitor
from netmon.store import Store, VerdictChange
from probes.base import Engines, ProbeResult
from tests.conftest import INVENTORIES, FakeClock

NOW = 1_800_000_000.0
HISTORY = "/api/v1/sites/chc-bundu/history"
RESULTS = "/api/v1/sites/chc-bundu/devices/wan-1/results"


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = Store(database_url)
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def monitor(store: Store) -> Monitor:
    m = Monitor(load_inventory(INVENTORIES / "valid-small.yaml"), store, Engines(), FakeClock(NOW))
    m.evaluate()
    m.ready = True
    return m


@pytest.fixture
async def client(monitor: Monitor) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(monitor, make_registry(monitor, "test", "raw"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


async def pages(client: httpx.AsyncClient, url: str) -> list[list[dict[str, Any]]]:
    """Each page's data from ``url`` on, along ``next`` (Link header checked) until it is null."""
    out = []
    while url is not None:
        resp = await client.get(url)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["count"] == len(body["data"])
        assert resp.headers.get("link") == (
            f'<{body["next"]}>; rel="next"' if body["next"] else None
        )
        out.append(body["data"])
        url = body["next"]
        assert len(out) < 50, "next never ends"
    return out


async def test_sites_page_by_id_and_keep_filters(client: httpx.AsyncClient) -> None:
    whole = (await client.get("/api/v1/sites")).json()
    assert [s["id"] for s in whole["data"]] == ["mc-rims-ranchi", "chc-bundu", "chc-unwired"]
    assert whole["next"] is None  # no paging asked: every site, inventory order, as before
    got = await pages(client, "/api/v1/sites?limit=1")
    assert [[s["id"] for s in p] for p in got] == [
        ["chc-bundu"],
        ["chc-unwired"],
        ["mc-rims-ranchi"],
    ]
    ranchi = await pages(client, "/api/v1/sites?district=ranchi&limit=1")
    assert [[s["id"] for s in p] for p in ranchi] == [["chc-bundu"], ["mc-rims-ranchi"]]
    after = encode("sites", ("chc-bundu",))
    rest = (await client.get(f"/api/v1/sites?after={after}")).json()
    assert [s["id"] for s in rest["data"]] == ["chc-unwired", "mc-rims-ranchi"]
    assert rest["next"] is None


def change(i: int) -> VerdictChange:
    verdict = ("down", "degraded", "fully_functional")[i % 3]
    return VerdictChange("chc-bundu", verdict, NOW + 10 * i - 1, [], at=NOW + 10 * i)


async def test_history_pages_across_written_and_queued_rows(
    client: httpx.AsyncClient, store: Store
) -> None:
    for i in range(1, 6):
        store.add_verdict_change(change(i))
    store.flush()
    for i in range(6, 9):
        store.add_verdict_change(change(i))  # queued: the newest three
    whole = (await client.get(HISTORY)).json()
    assert whole["next"] is None
    # 9: the fixture's first judgement (queued, the oldest), five written, three queued
    expected = [c["since"] for c in whole["data"]]
    assert len(expected) == 9
    got = await pages(client, f"{HISTORY}?limit=2")
    assert [len(p) for p in got] == [2, 2, 2, 2, 1]
    assert [c["since"] for p in got for c in p] == expected
    first = (await client.get(f"{HISTORY}?limit=2")).json()  # ends inside the queued rows
    store.flush()  # the queued rows are written between two pages
    rest = await pages(client, first["next"])
    assert [c["since"] for c in first["data"]] + [c["since"] for p in rest for c in p] == expected


def ok(ts: float, kind: str = "icmp") -> ProbeResult:
    return ProbeResult(kind, True, ts, 0.3, 3, 3, (0.01, 0.012, 0.011))


async def test_results_pages_with_ties_and_queued_rows(
    client: httpx.AsyncClient, store: Store
) -> None:
    for i in range(6):
        store.add_result("chc-bundu", "wan-1", ok(NOW - 100 + i))
    store.add_result("chc-bundu", "wan-1", ok(NOW - 100 + 3, "snmp"))  # same start as icmp's
    store.add_result("chc-bundu", "ap-1", ok(NOW - 100 + 3))  # another device: never listed
    store.flush()
    for i in range(6, 9):
        store.add_result("chc-bundu", "wan-1", ok(NOW - 100 + i))  # queued
    whole = (await client.get(RESULTS)).json()
    expected = [(r["at"], r["kind"]) for r in whole["data"]]
    assert len(expected) == 10 and whole["next"] is None
    for limit in (1, 3, 4):
        got = await pages(client, f"{RESULTS}?limit={limit}")
        assert [(r["at"], r["kind"]) for p in got for r in p] == expected, limit
    since = "2027-01-15T07:58:23Z"  # NOW - 97: since is kept in next
    got = await pages(client, f"{RESULTS}?since={since}&limit=2")
    assert [(r["at"], r["kind"]) for p in got for r in p] == expected[:7]
    assert expected[5][1] == "snmp" and expected[5][0] == expected[6][0]  # the tie


@pytest.mark.parametrize("path", ["/api/v1/sites", HISTORY, RESULTS])
async def test_a_bad_or_foreign_cursor_is_422(client: httpx.AsyncClient, path: str) -> None:
    foreign = {HISTORY: encode("history", ("chc-unwired", NOW, 1)),
               RESULTS: encode("results", ("chc-bundu/ap-1", NOW, "icmp"))}  # fmt: skip
    for cursor in ("garbage", encode("changes", (1,)), foreign.get(path, "x")):
        resp = await client.get(path, params={"after": cursor})
        assert resp.status_code == 422, (path, cursor, resp.text)
        assert [e["field"] for e in resp.json()["errors"]] == ["query.after"]


async def test_history_pages_into_rows_without_changed_at(
    client: httpx.AsyncClient, store: Store
) -> None:
    """Rows an older netmon wrote (schema v2: no changed_at) come last, by id, and pages
    cross from the rows with changed_at into them."""
    store.flush()  # the fixture's first judgements
    with store.engine.begin() as conn:
        for since in (1.0, 2.0, 3.0):
            conn.execute(text("INSERT INTO verdict_change (site_id, verdict, since, reasons) "
                              "VALUES ('chc-bundu', 'down', :since, '[]')"), {"since": since})  # fmt: skip
    for i in (1, 2):
        store.add_verdict_change(change(i))
    store.flush()
    whole = (await client.get(HISTORY)).json()
    since = [c["since"] for c in whole["data"]]
    old = ["1970-01-01T00:00:03Z", "1970-01-01T00:00:02Z", "1970-01-01T00:00:01Z"]
    assert len(since) == 6 and since[3:] == old  # newest v2 row (highest id) first among them
    for limit in (1, 2, 4):
        got = await pages(client, f"{HISTORY}?limit={limit}")
        assert [c["since"] for p in got for c in p] == since, limit
