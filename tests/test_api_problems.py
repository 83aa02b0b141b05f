"""Every API error is an RFC 9457 problem (application/problem+json), listed in OpenAPI;
/docs and /redoc load nothing from off the app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from exporters.prometheus import make_registry
from netmon.api import create_app
from netmon.inventory import load_inventory
from netmon.monitor import Monitor
from netmon.store import Store
from probes.base import Engines, ProbeResult
from tests.conftest import INVENTORIES, FakeClock

NOW = 1_800_000_000.0
PROBLEM = "application/problem+json"
MEMBERS = {"type", "title", "status", "detail", "instance", "error"}


@pytest.fixture
def monitor(tmp_path: Path) -> Monitor:
    store = Store(f"sqlite:///{tmp_path / 'api.db'}")
    store.migrate()
    m = Monitor(load_inventory(INVENTORIES / "valid-small.yaml"), store, Engines(), FakeClock(NOW))
    m.record(
        "chc-bundu", "wan-1", ProbeResult("icmp", True, NOW - 5, 0.3, 3, 3, (0.01, 0.01, 0.01))
    )
    m.evaluate()
    m.ready = True
    return m


@pytest.fixture
async def client(monitor: Monitor) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(monitor, make_registry(monitor, "test", "raw"))
    # raise_app_exceptions=False: Starlette re-raises a 500's exception after answering it.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


def problem_of(resp: httpx.Response, status: int, error: str) -> dict[str, object]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == PROBLEM
    body = resp.json()
    assert set(body) >= MEMBERS
    assert (body["status"], body["error"], body["type"]) == (
        status,
        error,
        f"urn:netmon:problem:{error}",
    )
    assert body["instance"] == resp.request.url.path
    assert body["title"] and body["detail"]
    return dict(body)


@pytest.mark.parametrize(
    "path",
    ["/api/v1/sites/nowhere", "/api/v1/sites/nowhere/history", "/api/v1/sites/nowhere/devices/wan-1/results",
     "/api/v1/sites/chc-bundu/devices/nope/results", "/api/v1/no-such-resource", "/docs/static/nothing.js"],
)  # fmt: skip
async def test_unknown_resources_are_404_problems(client: httpx.AsyncClient, path: str) -> None:
    problem_of(await client.get(path), 404, "not_found")


async def test_unknown_device_names_site_and_device(client: httpx.AsyncClient) -> None:
    body = problem_of(
        await client.get("/api/v1/sites/chc-bundu/devices/nope/results"), 404, "not_found"
    )
    assert body["detail"] == "no device 'nope' at site 'chc-bundu'"


async def test_wrong_method_is_405_problem_with_allow(client: httpx.AsyncClient) -> None:
    resp = await client.post("/api/v1/sites")
    body = problem_of(resp, 405, "method_not_allowed")
    assert resp.headers["allow"] == "GET"
    assert body["title"] == "Method not allowed"


async def test_head_is_the_get_without_its_body(client: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/api/v1/sites", "/status"):
        get, head = await client.get(path), await client.head(path)
        assert (head.status_code, head.content) == (get.status_code, b""), path
        assert head.headers["content-type"] == get.headers["content-type"], path
        assert head.headers["content-length"] == str(len(get.content)), path
    missing = await client.head("/api/v1/sites/no-such-site")
    assert (missing.status_code, missing.content) == (404, b"")
    assert (await client.head("/api/v1/pollers/results")).status_code == 405  # a POST alone


async def test_allow_names_every_route_of_the_path(client: httpx.AsyncClient) -> None:
    """GET and POST /maintenance are two routes; Starlette's own 405 named the first alone."""
    resp = await client.request("OPTIONS", "/api/v1/sites/x/maintenance")
    problem_of(resp, 405, "method_not_allowed")
    assert resp.headers["allow"] == "GET, POST"
    resp = await client.request("PATCH", "/api/v1/sites/x/maintenance/1")
    assert resp.headers["allow"] == "DELETE, GET"


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("/api/v1/sites?type=hospital", ["query.type"]),
        ("/api/v1/sites?type=hospital&verdict=fine", ["query.type", "query.verdict"]),
        ("/api/v1/sites/chc-bundu/history?limit=0", ["query.limit"]),
        ("/api/v1/sites/chc-bundu/devices/wan-1/results?since=yesterday&limit=x", ["query.since", "query.limit"]),
        ("/api/v1/sites/chc-bundu/devices/wan-1/results?since=0.5", ["query.since"]),  # not Unix time
        ("/api/v1/sites/chc-bundu/devices/wan-1/results?since=1800000000", ["query.since"]),
        ("/api/v1/sites/chc-bundu/devices/wan-1/results?since=2026-01-01", ["query.since"]),
        ("/api/v1/sites/chc-bundu/devices/wan-1/results?since=2026-01-01T00:00:00", ["query.since"]),
        ("/api/v1/sites/chc-bundu/devices/wan-1/results?since=2026-13-01T00:00:00Z", ["query.since"]),
    ],
)  # fmt: skip
async def test_invalid_request_is_422_problem_listing_fields(
    client: httpx.AsyncClient, query: str, fields: list[str]
) -> None:
    body = problem_of(await client.get(query), 422, "invalid_request")
    errors = body["errors"]
    assert isinstance(errors, list)
    assert [e["field"] for e in errors] == fields
    assert all(set(e) == {"field", "message"} and e["message"] for e in errors)
    assert set(body) == MEMBERS | {"errors"}  # no pydantic "loc", "input", "ctx", "url"
    assert "pydantic" not in str(body)


async def test_loading_is_503_problem_with_retry_after(
    client: httpx.AsyncClient, monitor: Monitor
) -> None:
    monitor.ready = False
    for path in (
        "/api/v1/sites",
        "/api/v1/sites/chc-bundu",
        "/api/v1/summary",
        "/api/v1/sites/x/history",
    ):
        resp = await client.get(path)
        problem_of(resp, 503, "loading")
        assert resp.headers["retry-after"] == "5"


async def test_a_bug_is_a_bare_500_problem(
    client: httpx.AsyncClient, monitor: Monitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object) -> None:
        raise RuntimeError("secret internals at 0xdeadbeef")

    monkeypatch.setattr(monitor, "view", broken)
    resp = await client.get("/api/v1/sites/chc-bundu")
    body = problem_of(resp, 500, "internal_error")
    assert set(body) == MEMBERS
    assert (
        "secret" not in resp.text
        and "Traceback" not in resp.text
        and "RuntimeError" not in resp.text
    )


@pytest.mark.parametrize("closed", [False, True])
async def test_openapi_documents_every_problem(monitor: Monitor, closed: bool) -> None:
    """Reads are open by default: they declare no 401/403 and no security, so a client (and
    schemathesis) is not told to send a token nobody asks for; closed, they declare both."""
    app = create_app(monitor, make_registry(monitor, "test", "raw"), read_requires_token=closed)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        spec = (await c.get("/openapi.json")).json()
    own_scope = ("/api/v1/audit", "/api/v1/pollers/assignment")  # always need their scope
    reads = [op for path, ops in spec["paths"].items() if path.startswith("/api/v1/") and
             path not in own_scope for m, op in ops.items() if m == "get"]  # fmt: skip
    assert all(("security" in op) == closed for op in reads)
    schemas = spec["components"]["schemas"]
    assert {"Problem", "ValidationProblem", "FieldProblem"} <= set(schemas)
    assert "HTTPValidationError" not in str(spec)  # FastAPI's own 422 body is never sent
    assert set(schemas["Problem"]["required"]) == MEMBERS
    closable = {"401", "403"} if closed else set()  # every read, when reads need a token
    expected = {
        ("get", "/api/v1/sites"): {"422", "500", "503"} | closable,
        ("get", "/api/v1/sites/{site_id}"): {"404", "422", "500", "503"} | closable,
        ("get", "/api/v1/sites/{site_id}/history"): {"404", "422", "500", "503"} | closable,
        ("get", "/api/v1/sites/{site_id}/devices/{device}/results"): {"404", "422", "500", "503"}
        | closable,
        ("get", "/api/v1/sites/{site_id}/availability"): {"404", "422", "500", "503"} | closable,
        ("get", "/api/v1/availability"): {"422", "500", "503"} | closable,
        ("get", "/api/v1/progress"): {"422", "500", "503"} | closable,
        ("get", "/api/v1/changes"): {"422", "500", "503"} | closable,
        ("get", "/api/v1/summary"): {"500", "503"} | closable,
        ("post", "/api/v1/pollers/heartbeat"): {"400", "401", "403", "409", "422", "500", "503"},
        ("get", "/api/v1/pollers/assignment"): {"401", "403", "409", "500", "503"},
        ("post", "/api/v1/pollers/results"): {"400", "401", "403", "409", "422", "500", "503"},
        ("get", "/api/v1/pollers"): {"409", "500", "503"} | closable,
        ("get", "/api/v1/sites/{site_id}/maintenance"): {"404", "422", "500", "503"} | closable,
        ("post", "/api/v1/sites/{site_id}/maintenance"): {"400", "401", "403", "404", "422", "500", "503"},
        ("get", "/api/v1/sites/{site_id}/maintenance/{window_id}"): {"404", "422", "500", "503"}
        | closable,
        ("delete", "/api/v1/sites/{site_id}/maintenance/{window_id}"): {"401", "403", "404", "409",
                                                                        "422", "500", "503"},
        ("get", "/api/v1/audit"): {"401", "403", "422", "500", "503"},
        ("get", "/healthz"): {"500"},
        ("get", "/metrics"): {"404", "422", "500"},
    }  # fmt: skip
    assert {(m, p) for p, ops in spec["paths"].items() for m in ops} == set(expected)
    ok = {"post": "201", "delete": "204"}
    not_created = {"/api/v1/pollers/heartbeat", "/api/v1/pollers/results"}  # POSTs that answer 200
    for (method, path), statuses in expected.items():
        responses = spec["paths"][path][method]["responses"]
        success = "200" if path in not_created else ok.get(method, "200")
        assert set(responses) == statuses | {success}, (method, path)
        for status in statuses:
            (media,) = responses[status]["content"]
            ref = responses[status]["content"][media]["schema"]["$ref"]
            assert media == PROBLEM
            assert ref.removeprefix("#/components/schemas/") == (
                "ValidationProblem" if status == "422" else "Problem"
            )


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v for k, v in attrs if k in ("src", "href", "spec-url") and v]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_load_only_from_the_app(client: httpx.AsyncClient, page: str) -> None:
    resp = await client.get(page)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    assert "http://" not in resp.text and "https://" not in resp.text
    parser = Links()
    parser.feed(resp.text)
    assert len(parser.urls) >= 2  # a stylesheet or icon, and the script
    for url in parser.urls + ["/openapi.json"]:
        absolute = urljoin(str(resp.url), url)
        assert urlsplit(absolute).netloc == "t", url  # same origin
        asset = await client.get(absolute)
        assert asset.status_code == 200, url
        assert asset.content, url
