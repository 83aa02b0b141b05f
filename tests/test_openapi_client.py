"""A tracker can generate its client from netmon's OpenAPI document: openapi-python-client (a
real generator, from the test extra) builds a package from the live /openapi.json of a real
``netmon run``, with no warning, and that package's typed calls (listSites, getSite,
listChanges) work against the same process."""

from __future__ import annotations

import datetime
import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from prometheus_client.registry import CollectorRegistry

from netmon.api import create_app, models
from netmon.inventory import load_inventory
from netmon.monitor import Monitor
from netmon.store import Store
from netmon.verdict import Criterion, Verdict
from probes.base import Engines
from tests.conftest import INVENTORIES
from tests.netmon_process import running_netmon
from tests.test_e2e import wait_for

PACKAGE = "netmon_client"
BIN = Path(sys.executable).parent


def generate(spec: Path, out: Path) -> str:
    """Run the generator on ``spec`` into ``out``/netmon_client; its output."""
    generator = BIN / "openapi-python-client"
    if not generator.exists():
        pytest.skip("openapi-python-client is not installed (scripts/setup --test installs it)")
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")  # its ruff
    done = subprocess.run(
        [str(generator), "generate", "--path", str(spec), "--meta", "none",
         "--output-path", str(out / PACKAGE)],
        cwd=out, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


@pytest.fixture(scope="module")
def client_package(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[dict[str, ModuleType], Any]]:
    """(the generated modules by name, a generated Client) for a live netmon on valid-small."""
    tmp_path = tmp_path_factory.mktemp("client")
    inventory = (INVENTORIES / "valid-small.yaml").read_text()
    with running_netmon(tmp_path, inventory, ready=("ok", "degraded")) as (port, _proc):
        base = f"http://127.0.0.1:{port}"
        spec = tmp_path / "openapi.json"
        spec.write_bytes(httpx.get(f"{base}/openapi.json", timeout=10).content)
        output = generate(spec, tmp_path)
        assert "Warning" not in output, output  # every part of the document was understood
        sys.path.insert(0, str(tmp_path))
        try:
            names = ["api.sites.list_sites", "api.sites.get_site", "api.changes.list_changes",
                     "models", "client"]  # fmt: skip
            mods = {n: importlib.import_module(f"{PACKAGE}.{n}") for n in names}
            with mods["client"].Client(base_url=base, timeout=httpx.Timeout(10)) as client:
                yield mods, client
        finally:
            sys.path.remove(str(tmp_path))
            for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
                del sys.modules[name]


@pytest.mark.slow
def test_generated_client_calls_the_live_api(
    client_package: tuple[dict[str, ModuleType], Any],
) -> None:
    mods, client = client_package
    models = mods["models"]
    sites = mods["api.sites.list_sites"].sync(client=client)
    assert isinstance(sites, models.SitesPublic)
    assert [s.id for s in sites.data] == ["mc-rims-ranchi", "chc-bundu", "chc-unwired"]
    assert all(isinstance(s.verdict, models.Verdict) for s in sites.data)
    unwired = next(s for s in sites.data if s.id == "chc-unwired")
    assert unwired.verdict is models.Verdict.NOT_INSTALLED
    assert all(isinstance(r.criterion, models.Criterion) for r in unwired.reasons)

    page = mods["api.sites.list_sites"].sync(client=client, limit=2)
    assert [s.id for s in page.data] == [
        "chc-bundu",
        "chc-unwired",
    ] and page.next_  # the generator spells it next_ (a builtin)

    site = mods["api.sites.get_site"].sync(client=client, site_id="chc-bundu")
    assert isinstance(site, models.SiteDetail)
    assert [d.name for d in site.device_list] == ["wan-1", "ap-1"]
    assert all(isinstance(d.state, models.DevicePublicState) for d in site.device_list)
    missing = mods["api.sites.get_site"].sync(client=client, site_id="nowhere")
    assert isinstance(missing, models.Problem) and missing.error == "not_found"


@pytest.mark.slow
def test_generated_client_follows_the_change_feed(
    client_package: tuple[dict[str, ModuleType], Any],
) -> None:
    mods, client = client_package
    models, list_changes = mods["models"], mods["api.changes.list_changes"]
    # the first verdicts are written within a second or two (the store's flush)
    feed = wait_for(lambda: (f := list_changes.sync(client=client)).items and f)
    assert isinstance(feed, models.ChangesPublic)
    first = feed.items[0]
    assert isinstance(first, models.ChangePublic) and isinstance(first.verdict, models.Verdict)
    assert isinstance(first.changed_at, datetime.datetime) and first.changed_at.tzinfo
    assert {c.site_id for c in feed.items} <= {"mc-rims-ranchi", "chc-bundu", "chc-unwired"}
    one = list_changes.sync(client=client, limit=1)
    (after,) = parse_qs(urlsplit(one.next_).query)["after"]
    assert after == one.items[0].cursor
    rest = list_changes.sync(client=client, after=after, limit=1000)
    assert [c.cursor for c in one.items + rest.items][: len(feed.items)] == [
        c.cursor for c in feed.items
    ]
    bad = list_changes.sync(client=client, after="not-a-cursor")
    assert isinstance(bad, models.ValidationProblem)
    assert [e.field for e in bad.errors] == ["query.after"]


OPERATIONS = {
    ("/api/v1/sites", "listSites", "sites"),
    ("/api/v1/sites/{site_id}", "getSite", "sites"),
    ("/api/v1/sites/{site_id}/history", "getSiteHistory", "history"),
    ("/api/v1/sites/{site_id}/devices/{device}/results", "listDeviceResults", "results"),
    ("/api/v1/sites/{site_id}/availability", "getSiteAvailability", "availability"),
    ("/api/v1/availability", "listAvailability", "availability"),
    ("/api/v1/progress", "getProgress", "progress"),
    ("/api/v1/changes", "listChanges", "changes"),
    ("/api/v1/sites/{site_id}/maintenance", "listSiteMaintenance", "maintenance"),
    ("/api/v1/sites/{site_id}/maintenance", "createSiteMaintenance", "maintenance"),
    ("/api/v1/sites/{site_id}/maintenance/{window_id}", "getSiteMaintenance", "maintenance"),
    ("/api/v1/sites/{site_id}/maintenance/{window_id}", "deleteSiteMaintenance", "maintenance"),
    ("/api/v1/audit", "listAudit", "audit"),
    ("/api/v1/summary", "getSummary", "summary"),
    ("/api/v1/pollers", "listPollers", "pollers"),
    ("/api/v1/pollers/heartbeat", "pollerHeartbeat", "pollers"),
    ("/api/v1/pollers/assignment", "pollerAssignment", "pollers"),
    ("/api/v1/pollers/results", "pollerResults", "pollers"),
    ("/healthz", "health", "health"),
    ("/metrics", "metrics", "metrics"),
}


@pytest.fixture
def spec(tmp_path: Path) -> dict[str, Any]:
    store = Store(f"sqlite:///{tmp_path / 'netmon.db'}")
    monitor = Monitor(load_inventory(INVENTORIES / "valid-small.yaml"), store, Engines())
    doc: dict[str, Any] = create_app(monitor, CollectorRegistry()).openapi()
    store.close()
    return doc


def test_every_route_has_an_operation_id_and_its_resources_tag(spec: dict[str, Any]) -> None:
    found = {(path, op["operationId"], *op["tags"])
             for path, ops in spec["paths"].items() for op in ops.values()}  # fmt: skip
    assert found == OPERATIONS


def test_verdicts_and_criteria_are_enums_with_their_meaning(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    assert schemas["Verdict"]["enum"] == [v.value for v in Verdict]
    assert schemas["Criterion"]["enum"] == [c.value for c in Criterion]
    for c in Criterion:
        assert f"`{c.value}` ({c.unit.value})" in schemas["Criterion"]["description"]
    assert "fully_functional" in schemas["Verdict"]["description"]
    for name in ("SitePublic", "ChangePublic", "VerdictChangePublic", "ReasonPublic"):
        refs = str(schemas[name]["properties"])
        assert "#/components/schemas/Verdict" in refs or "#/components/schemas/Criterion" in refs
    state = schemas["DevicePublic"]["properties"]["state"]
    assert state["enum"] == ["up", "down", "unreachable_parent", "unknown"]


def test_each_example_is_valid_for_its_model(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    with_examples = {n: s["examples"] for n, s in schemas.items() if s.get("examples")}
    assert {"SitePublic", "ChangePublic", "ChangesPublic", "VerdictChangePublic",
            "ResultPublic", "ReasonPublic", "GroupSummary", "ProgressDay"} <= set(with_examples)  # fmt: skip
    assert "examples" not in schemas["SiteDetail"]  # SitePublic's would not be one of it
    for name, examples in with_examples.items():
        model = getattr(models, name)
        for example in examples:
            model.model_validate(example)  # raises if the example is not one
