"""GET /api/v1/changes, the change feed: every site's written verdict changes, oldest first,
paged by an opaque cursor, with a ``next`` link (and Link header) on every page, the empty last
one too. On embedded SQLite and the real PostgreSQL server (``database_url``)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from exporters.prometheus import make_registry
from netmon.api import create_app
from netmon.inventory import load_inventory
from netmon.monitor import Monitor
from netmon.store import Store, VerdictChange
from probes.base import Engines
from tests.conftest import INVENTORIES, FakeClock

NOW = 1_800_000_000.0
FEED = "/api/v1/changes"
SITES = ("mc-rims-ranchi", "chc-bundu", "chc-unwired")
VERDICTS = ("down", "degraded", "fully_functional")


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = Store(database_url)
    s.migrate()
    yield s
    s.close()


@pytest.fixture
async def client(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    monitor = Monitor(
        load_inventory(INVENTORIES / "valid-small.yaml"), store, Engines(), FakeClock(NOW)
    )
    monitor.ready = True
    app = create_app(monitor, make_registry(monitor, "test", "raw"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


def change(i: int) -> VerdictChange:
    """The i-th change: sites and verdicts in turn, judged one minute apart."""
    reasons = [{"criterion": "uplink_down", "message": "wan-1 down", "device": "wan-1"}]
    verdict = VERDICTS[i % 3]
    return VerdictChange(SITES[i % 3], verdict, NOW + 60 * i - 5,
                         reasons if verdict == "down" else [], at=NOW + 60 * i)  # fmt: skip


def write(store: Store, first: int, count: int) -> None:
    for i in range(first, first + count):
        store.add_verdict_change(change(i))
    store.flush()


def at(i: int) -> str:
    return datetime.fromtimestamp(NOW + 60 * i, UTC).isoformat().replace("+00:00", "Z")


async def follow(client: httpx.AsyncClient, url: str) -> tuple[list[dict[str, object]], str]:
    """Every item from ``url`` on, page by page along ``next``, and the last ``next``."""
    items: list[dict[str, object]] = []
    while True:
        resp = await client.get(url)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert resp.headers["link"] == f'<{body["next"]}>; rel="next"'
        items += body["items"]
        if not body["items"]:
            return items, body["next"]
        url = body["next"]


async def test_feed_lists_every_sites_changes_oldest_first(
    store: Store, client: httpx.AsyncClient
) -> None:
    write(store, 0, 5)
    body = (await client.get(FEED)).json()
    assert [(c["site_id"], c["verdict"], c["changed_at"]) for c in body["items"]] == [
        (SITES[i % 3], VERDICTS[i % 3], at(i)) for i in range(5)
    ]
    first = body["items"][0]
    assert set(first) == {"cursor", "site_id", "verdict", "since", "changed_at", "reasons"}
    assert first["reasons"] == [{"criterion": "uplink_down", "message": "wan-1 down",
                                 "device": "wan-1", "measured": None, "threshold": None}]  # fmt: skip
    assert first["since"] == datetime.fromtimestamp(NOW - 5, UTC).isoformat().replace("+00:00", "Z")
    assert len({c["cursor"] for c in body["items"]}) == 5


async def test_cursor_round_trip_over_several_pages(
    store: Store, client: httpx.AsyncClient
) -> None:
    write(store, 0, 7)
    pages = []
    url = f"{FEED}?limit=3"
    for _ in range(4):
        body = (await client.get(url)).json()
        pages.append([c["changed_at"] for c in body["items"]])
        assert body["next"].startswith(f"{FEED}?") and "limit=3" in body["next"]
        url = body["next"]
    assert pages == [[at(0), at(1), at(2)], [at(3), at(4), at(5)], [at(6)], []]
    # a page's next is the cursor of its last item
    second = (await client.get(f"{FEED}?limit=3")).json()["items"][2]["cursor"]
    again = (await client.get(f"{FEED}?limit=3&after={second}")).json()
    assert [c["changed_at"] for c in again["items"]] == [at(3), at(4), at(5)]


async def test_empty_page_keeps_a_next_link_to_poll(
    store: Store, client: httpx.AsyncClient
) -> None:
    items, last = await follow(client, FEED)
    assert items == [] and last.startswith(f"{FEED}?after=")
    write(store, 0, 2)
    items, last = await follow(client, last)
    assert [c["changed_at"] for c in items] == [at(0), at(1)]
    empty = (await client.get(last)).json()
    assert empty == {"items": [], "next": last}  # polling an empty page names the same place
    write(store, 2, 1)
    assert [c["changed_at"] for c in (await client.get(last)).json()["items"]] == [at(2)]


async def test_a_change_queued_while_a_tracker_polls_comes_once_written(
    store: Store, client: httpx.AsyncClient
) -> None:
    write(store, 0, 2)
    _, last = await follow(client, FEED)
    store.add_verdict_change(change(2))  # judged, not yet written (the database slow or down)
    assert (await client.get(last)).json()["items"] == []  # the feed shows written rows
    write(store, 3, 1)  # the flush writes the queued one first, then this one
    items, _ = await follow(client, last)
    assert [c["changed_at"] for c in items] == [at(2), at(3)]


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor!",
        "%%%",
        b64(b"\xff\xfe"),  # not UTF-8
        b64(b"{not json"),
        b64(b'{"id": 3}'),  # JSON, not the array
        b64(json.dumps([2, "changes", 3]).encode()),  # another version
        b64(json.dumps([1, "sites", "chc-bundu"]).encode()),  # another list's cursor
        b64(json.dumps([1, "changes", "3"]).encode()),
        b64(json.dumps([1, "changes", True]).encode()),
        b64(json.dumps([1, "changes", -1]).encode()),
        b64(json.dumps([1, "changes", 1, 2]).encode()),
        b64(json.dumps([1, "changes", 1e400]).encode()),
    ],
)
async def test_malformed_cursor_is_a_422_problem(client: httpx.AsyncClient, cursor: str) -> None:
    resp = await client.get(FEED, params={"after": cursor})
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert body["error"] == "invalid_request"
    assert [e["field"] for e in body["errors"]] == ["query.after"]


@pytest.mark.parametrize("limit", ["0", "1001", "ten"])
async def test_limit_out_of_range_is_422(client: httpx.AsyncClient, limit: str) -> None:
    resp = await client.get(FEED, params={"limit": limit})
    assert resp.status_code == 422
    assert [e["field"] for e in resp.json()["errors"]] == ["query.limit"]


async def test_unreadable_store_is_503(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'never-made' / 'netmon.db'}")
    monitor = Monitor(
        load_inventory(INVENTORIES / "valid-small.yaml"), store, Engines(), FakeClock(NOW)
    )
    monitor.ready = True
    app = create_app(monitor, make_registry(monitor, "test", "raw"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        resp = await c.get(FEED)
    assert resp.status_code == 503 and resp.json()["error"] == "store_unavailable"
    assert store.read_errors == 1
    store.close()
