"""Bearer tokens and maintenance windows over the API, on SQLite and on PostgreSQL: writes need
a token with their scope (401/403 problems), a window posted makes its site's results drop out
of the verdict at once, every write is audited, reads can be closed, and no token value ever
appears in the log, the API's answers or /metrics."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from exporters.prometheus import make_registry
from netmon.api import create_app
from netmon.auth import create_token, revoke_token
from netmon.inventory import parse_inventory
from netmon.monitor import Monitor
from netmon.store import Store, make_engine
from probes.base import Engines, ProbeResult
from tests.conftest import INVENTORIES, FakeClock

NOW = 1_800_000_000.0
PROBLEM = "application/problem+json"
SITE = "/api/v1/sites/chc-bundu/maintenance"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


# valid-small.yaml, with one window announced by the inventory at chc-bundu (long past)
INVENTORY = (
    (INVENTORIES / "valid-small.yaml")
    .read_text()
    .replace(
        "    probe: {interval: 20s}\n",
        "    probe: {interval: 20s}\n"
        f'    maintenance: [{{start: "{iso(NOW - 9000)}", end: "{iso(NOW - 8000)}", reason: fibre}}]\n',
    )
)


def ok(ts: float) -> ProbeResult:
    return ProbeResult("icmp", True, ts, 0.3, 3, 3, (0.01, 0.012, 0.011))


def lost(ts: float) -> ProbeResult:
    return ProbeResult("icmp", False, ts, 0.6, 3, 0, (), "no reply to 3 echoes")


def new_monitor(store: Store, clock: FakeClock) -> Monitor:
    return Monitor(parse_inventory(INVENTORY), store, Engines(), clock)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def monitor(database_url: str, clock: FakeClock) -> Monitor:
    store = Store(database_url)
    store.migrate()
    m = new_monitor(store, clock)
    for site, devices in (("chc-bundu", ("wan-1", "ap-1")),
                          ("mc-rims-ranchi", ("wan-1", "router-1", "sw-1", "ap-1", "ap-2"))):  # fmt: skip
        for dev in devices:
            m.record(site, dev, ok(NOW - 20))
    m.evaluate()
    m.ready = True
    return m


@pytest.fixture
def tokens(monitor: Monitor) -> dict[str, str]:
    store = monitor.store
    return {
        "writer": create_token(store, "tracker", ["maintenance:write"], NOW),
        "auditor": create_token(store, "auditor", ["audit:read"], NOW),
        "reader": create_token(store, "dashboard", ["read"], NOW),
    }


async def client_for(monitor: Monitor, read_requires_token: bool) -> httpx.AsyncClient:
    app = create_app(monitor, make_registry(monitor, "test", "raw"), read_requires_token)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://t")


@pytest.fixture
async def client(monitor: Monitor) -> AsyncIterator[httpx.AsyncClient]:
    async with await client_for(monitor, False) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def window(start: float = NOW - 10, end: float = NOW + 3600, reason: str = "BSNL splicing") -> dict[str, str]:  # fmt: skip
    return {"start": iso(start), "end": iso(end), "reason": reason}


def problem(resp: httpx.Response, status: int, error: str) -> dict[str, object]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == PROBLEM
    body = dict(resp.json())
    assert (body["status"], body["error"]) == (status, error)
    return body


async def test_writes_need_a_valid_token_with_the_scope(
    client: httpx.AsyncClient, monitor: Monitor, tokens: dict[str, str]
) -> None:
    for headers in ({}, bearer("nmt_" + "x" * 43), bearer("not-a-token"), {"Authorization": "Basic eDp5"}):  # fmt: skip
        resp = await client.post(SITE, json=window(), headers=headers)
        problem(resp, 401, "unauthorized")
        assert resp.headers["www-authenticate"].startswith("Bearer")
    for name in ("auditor", "reader"):
        resp = await client.post(SITE, json=window(), headers=bearer(tokens[name]))
        assert "maintenance:write" in str(problem(resp, 403, "forbidden")["detail"])
        assert 'error="insufficient_scope"' in resp.headers["www-authenticate"]
    assert (await client.delete(f"{SITE}/1")).status_code == 401
    assert (await client.get(SITE)).json()["count"] == 1  # nothing was written: the inventory's
    resp = await client.post(SITE, json=window(), headers=bearer(tokens["writer"]))
    assert resp.status_code == 201, resp.text
    revoke_token(monitor.store, "tracker")
    resp = await client.post(SITE, json=window(), headers=bearer(tokens["writer"]))
    problem(resp, 401, "unauthorized")


async def test_a_window_posted_makes_the_site_maintenance_with_no_outage(
    client: httpx.AsyncClient, monitor: Monitor, tokens: dict[str, str], clock: FakeClock
) -> None:
    resp = await client.post(SITE, json=window(), headers=bearer(tokens["writer"]))
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert resp.headers["location"] == f"{SITE}/{body['id']}"
    assert (body["source"], body["active"], body["created_by"]) == ("api", True, "tracker")
    assert body["start"] == iso(NOW - 10).replace("+00:00", "Z")
    sites = {s["id"]: s for s in (await client.get("/api/v1/sites")).json()["data"]}
    assert sites["chc-bundu"]["maintenance"] == "BSNL splicing"
    assert sites["mc-rims-ranchi"]["maintenance"] is None
    # both sites lose every uplink for ten minutes: only the one without maintenance is down
    for step in range(30):
        clock.now = NOW + 20 * step
        for dev in ("wan-1", "ap-1"):
            monitor.record("chc-bundu", dev, lost(clock.now))
            monitor.record("mc-rims-ranchi", dev, lost(clock.now))
        monitor.evaluate()
    sites = {s["id"]: s for s in (await client.get("/api/v1/sites")).json()["data"]}
    assert sites["mc-rims-ranchi"]["verdict"] == "down"
    assert sites["chc-bundu"]["verdict"] == "fully_functional", sites["chc-bundu"]
    wan = monitor.evidence[("chc-bundu", "wan-1", "icmp")].summary(clock.now)
    assert wan is not None and wan.down_since is None and wan.longest_outage == 0
    got = (await client.get(resp.headers["location"])).json()
    assert got == {**body, "active": True}


async def test_list_and_delete(
    client: httpx.AsyncClient, monitor: Monitor, tokens: dict[str, str]
) -> None:
    writer = bearer(tokens["writer"])
    created = (await client.post(SITE, json=window(), headers=writer)).json()
    later = (await client.post(SITE, json=window(NOW + 86400, NOW + 90000, "UPS"), headers=writer)).json()  # fmt: skip
    listed = (await client.get(SITE)).json()
    assert listed["count"] == 3
    assert [(w["id"], w["source"], w["active"]) for w in listed["data"]] == [
        ("inventory-0", "inventory", False), (created["id"], "api", True), (later["id"], "api", False)
    ]  # fmt: skip
    problem(await client.delete(f"{SITE}/inventory-0", headers=writer), 409, "conflict")
    problem(await client.delete(f"{SITE}/999999", headers=writer), 404, "not_found")
    problem(await client.delete(f"{SITE}/inventory-7", headers=writer), 404, "not_found")
    other = f"/api/v1/sites/mc-rims-ranchi/maintenance/{created['id']}"
    problem(await client.delete(other, headers=writer), 404, "not_found")  # not that site's
    resp = await client.delete(f"{SITE}/{created['id']}", headers=writer)
    assert resp.status_code == 204 and not resp.content
    assert [w["id"] for w in (await client.get(SITE)).json()["data"]] == [
        "inventory-0",
        later["id"],
    ]
    assert monitor.inventory.site("chc-bundu").in_maintenance(NOW) is None  # type: ignore[union-attr]
    site = (await client.get("/api/v1/sites/chc-bundu")).json()
    assert site["maintenance"] is None
    problem(await client.delete(f"{SITE}/{created['id']}", headers=writer), 404, "not_found")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"start": "2027-01-01T10:00:00", "end": "2027-01-01T12:00:00+05:30", "reason": "x"}, "body.start"),
        ({"start": NOW, "end": NOW + 60, "reason": "x"}, "body.start"),
        ({**window(NOW, NOW - 1)}, "body"),
        ({**window(NOW, NOW + 401 * 86400)}, "body"),
        ({**window(), "reason": "  "}, "body.reason"),
        ({**window(), "extra": 1}, "body.extra"),
    ],
)  # fmt: skip
async def test_bad_windows_are_422(
    client: httpx.AsyncClient, tokens: dict[str, str], body: dict[str, object], field: str
) -> None:
    resp = await client.post(SITE, json=body, headers=bearer(tokens["writer"]))
    found = problem(resp, 422, "invalid_request")
    assert field in [e["field"] for e in found["errors"]], found  # type: ignore[attr-defined]


async def test_unknown_site_is_404_after_the_token_is_checked(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    url = "/api/v1/sites/nowhere/maintenance"
    problem(await client.post(url, json=window()), 401, "unauthorized")
    problem(await client.post(url, json=window(), headers=bearer(tokens["writer"])), 404, "not_found")  # fmt: skip
    problem(await client.get(url), 404, "not_found")


async def test_the_audit_log_shows_each_write_with_its_token_name(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    writer = bearer(tokens["writer"])
    created = (await client.post(SITE, json=window(), headers=writer)).json()
    await client.delete(f"{SITE}/{created['id']}", headers=writer)
    problem(await client.get("/api/v1/audit"), 401, "unauthorized")
    problem(await client.get("/api/v1/audit", headers=writer), 403, "forbidden")
    resp = await client.get("/api/v1/audit", headers=bearer(tokens["auditor"]))
    assert resp.status_code == 200, resp.text
    rows = resp.json()["data"]
    assert [(r["action"], r["token"], r["method"]) for r in rows[:2]] == [
        ("maintenance.delete", "tracker", "DELETE"), ("maintenance.create", "tracker", "POST")
    ]  # fmt: skip
    assert rows[1]["path"] == SITE and rows[1]["detail"]["reason"] == "BSNL splicing"
    assert rows[1]["detail"]["window_id"] == int(created["id"])
    assert {r["action"] for r in rows[2:]} == {"token.create"}  # the three tokens, by the CLI
    older = await client.get(f"/api/v1/audit?before={rows[1]['id']}&limit=1", headers=bearer(tokens["auditor"]))  # fmt: skip
    assert [r["id"] for r in older.json()["data"]] == [rows[2]["id"]]
    # an id no 64-bit column holds is the caller's error, not the database's (schemathesis found
    # ?before=13070061658814197792768 answered 500)
    huge = await client.get("/api/v1/audit?before=13070061658814197792768", headers=bearer(tokens["auditor"]))  # fmt: skip
    problem(huge, 422, "invalid_request")


async def test_closed_reads_need_a_token_with_read(
    monitor: Monitor, tokens: dict[str, str]
) -> None:
    async with await client_for(monitor, True) as closed:
        for path in ("/api/v1/sites", "/api/v1/sites/chc-bundu", "/api/v1/summary", SITE,
                     "/api/v1/sites/chc-bundu/history", "/api/v1/sites/chc-bundu/devices/wan-1/results"):  # fmt: skip
            problem(await closed.get(path), 401, "unauthorized")
            problem(await closed.get(path, headers=bearer(tokens["writer"])), 403, "forbidden")
            resp = await closed.get(path, headers=bearer(tokens["reader"]))
            assert resp.status_code == 200, (path, resp.text)
        assert (await closed.get("/healthz")).status_code == 200
        assert (await closed.get("/metrics")).status_code == 200
        # writes still need their own scope, whatever reads need
        resp = await closed.post(SITE, json=window(), headers=bearer(tokens["writer"]))
        assert resp.status_code == 201
    async with await client_for(monitor, False) as open_:
        assert (await open_.get("/api/v1/sites")).status_code == 200


async def test_no_token_value_in_the_log_the_answers_or_metrics(
    client: httpx.AsyncClient, monitor: Monitor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store = monitor.store
    tokens = [create_token(store, "tracker", ["maintenance:write"], NOW),
              create_token(store, "auditor", ["audit:read", "read"], NOW)]  # fmt: skip
    seen: list[str] = []
    writer, auditor = bearer(tokens[0]), bearer(tokens[1])
    for resp in (
        await client.post(SITE, json=window(), headers=writer),
        await client.post(SITE, json=window(), headers=auditor),  # 403
        await client.post(SITE, json={"start": tokens[0]}, headers=writer),  # 422
        await client.get(SITE, headers=writer),
        await client.get("/api/v1/audit", headers=auditor),
        await client.get("/api/v1/sites", headers=auditor),
        await client.get("/metrics"),
        await client.get("/openapi.json"),
    ):
        seen.append(resp.text)
    assert "tracker" in seen[4] and "maintenance.create" in seen[4]  # the audit log is there
    revoke_token(store, "tracker")
    problem(await client.post(SITE, json=window(), headers=writer), 401, "unauthorized")
    text = "\n".join([*seen, caplog.text])
    assert "refused" in caplog.text  # the refusals are logged, without the token
    for token in tokens:
        assert token not in text and token[4:] not in text and token[4:20] not in text


async def test_windows_are_read_at_start_and_after_a_dead_database_returns(
    database_url: str, monitor: Monitor, client: httpx.AsyncClient, tokens: dict[str, str],
    clock: FakeClock,
) -> None:  # fmt: skip
    resp = await client.post(SITE, json=window(), headers=bearer(tokens["writer"]))
    assert resp.status_code == 201
    fresh = new_monitor(monitor.store, clock)  # a restart
    assert fresh.inventory.site("chc-bundu").in_maintenance(NOW) is None  # type: ignore[union-attr]
    assert await fresh.load_windows()
    assert fresh.inventory.site("chc-bundu").in_maintenance(NOW).reason == "BSNL splicing"  # type: ignore[union-attr]
    # started with the database down: windows unread, start goes on; a flush later reads them
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = Store(f"postgresql+psycopg://netmon@127.0.0.1:{port}/netmon?connect_timeout=1")
    down = new_monitor(dead, clock)
    await down._flush()
    assert not down.windows_loaded
    dead.engine.dispose()
    dead.engine = make_engine(database_url)  # the database is back
    await down._flush()
    assert not down.windows_loaded  # not retried before WINDOWS_RETRY
    clock.advance(31)
    await down._flush()
    assert down.windows_loaded
    assert down.inventory.site("chc-bundu").in_maintenance(clock.now) is not None  # type: ignore[union-attr]
    dead.close()


def test_merging_keeps_sites_without_windows(tmp_path: Path, clock: FakeClock) -> None:
    from netmon.maintenance import ApiMaintenance, with_windows

    inv = parse_inventory(INVENTORY)
    assert with_windows(inv, []) is inv
    w = ApiMaintenance(id=1, site_id="chc-bundu", start=datetime.fromtimestamp(NOW, UTC),
                       end=datetime.fromtimestamp(NOW + 60, UTC), reason="r", created_by="t",
                       created_at=datetime.fromtimestamp(NOW, UTC))  # fmt: skip
    merged = with_windows(inv, [w])
    assert merged.site("mc-rims-ranchi") is inv.site("mc-rims-ranchi")
    bundu = merged.site("chc-bundu")
    assert bundu is not None and bundu is not inv.site("chc-bundu")
    assert [m.reason for m in bundu.maintenance] == ["fibre", "r"]
    assert [m.reason for m in inv.site("chc-bundu").maintenance] == ["fibre"]  # type: ignore[union-attr]
    assert merged.policy_for(bundu) == inv.policy_for(inv.site("chc-bundu"))  # type: ignore[arg-type]


async def test_a_window_that_began_in_the_past_forgives_what_was_folded_inside_it(
    client: httpx.AsyncClient, monitor: Monitor, tokens: dict[str, str], clock: FakeClock
) -> None:
    """Up for 13 minutes, then down for ten; a window announced now from just before the cut
    takes the outage back (its site's window is folded again); withdrawing it restores it."""
    for step in range(70):
        clock.now = NOW + 20 * step
        for dev in ("wan-1", "ap-1"):
            monitor.record("chc-bundu", dev, ok(clock.now) if step < 40 else lost(clock.now))
        monitor.evaluate()
    assert monitor.status["chc-bundu"].verdict == "down"
    writer = bearer(tokens["writer"])
    resp = await client.post(SITE, json=window(NOW + 790, clock.now + 3600), headers=writer)
    assert resp.status_code == 201, resp.text
    assert monitor.status["chc-bundu"].verdict == "fully_functional"
    wan = monitor.evidence[("chc-bundu", "wan-1", "icmp")].summary(clock.now)
    assert wan is not None and wan.longest_outage == 0 and wan.down_since is None
    assert wan.probes == 41  # the ones before the window (NOW - 20 too)
    resp = await client.delete(f"{SITE}/{resp.json()['id']}", headers=writer)
    assert resp.status_code == 204
    assert monitor.status["chc-bundu"].verdict == "down"
    wan = monitor.evidence[("chc-bundu", "wan-1", "icmp")].summary(clock.now)
    assert wan is not None and wan.probes == 71
    assert wan.longest_outage == pytest.approx(20 * 29, abs=20)


async def test_closed_reads_survive_a_database_outage_for_tokens_seen_lately(
    monitor: Monitor, tokens: dict[str, str], clock: FakeClock
) -> None:
    """Verdicts are served from memory while the database is down; a token it accepted
    within ten minutes still reads. One it never saw cannot be judged: 503, not 401."""
    reader = bearer(tokens["reader"])
    async with await client_for(monitor, True) as closed:
        assert (await closed.get("/api/v1/sites", headers=reader)).status_code == 200
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        live = monitor.store.engine
        monitor.store.engine = make_engine(f"postgresql+psycopg://x@127.0.0.1:{port}/x?connect_timeout=1")  # fmt: skip
        try:
            assert (await closed.get("/api/v1/sites", headers=reader)).status_code == 200
            resp = await closed.get("/api/v1/sites", headers=bearer(tokens["auditor"]))
            problem(resp, 503, "store_unavailable")
            clock.advance(601)  # the acceptance is too old now
            resp = await closed.get("/api/v1/sites", headers=reader)
            problem(resp, 503, "store_unavailable")
        finally:
            monitor.store.engine.dispose()
            monitor.store.engine = live
        revoke_token(monitor.store, "dashboard")  # back: a revocation counts at once
        problem(await closed.get("/api/v1/sites", headers=reader), 401, "unauthorized")
