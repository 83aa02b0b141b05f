"""``api.read_requires_token`` in the inventory closes a real netmon's reads; the environment
variable, when set, overrides it (netmon.settings)."""

from __future__ import annotations

from pathlib import Path

import httpx

from netmon.inventory import parse_inventory
from tests.netmon_process import running_netmon

CLOSED = "api: {read_requires_token: true}\nsites: []\n"


def test_the_key_parses_strictly() -> None:
    assert parse_inventory(CLOSED).api.read_requires_token is True
    assert parse_inventory("sites: []\n").api.read_requires_token is False


def test_inventory_closes_reads_and_the_env_var_opens_them(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    with running_netmon(tmp_path / "a", CLOSED, port=18401) as (port, proc):
        r = httpx.get(f"http://127.0.0.1:{port}/api/v1/sites", timeout=10)
        assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        proc.terminate()
        assert proc.wait(30) == 0
    (tmp_path / "b").mkdir()
    env = {"NETMON_API_READ_REQUIRES_TOKEN": "false"}
    with running_netmon(tmp_path / "b", CLOSED, port=18402, env_extra=env) as (port, proc):
        r = httpx.get(f"http://127.0.0.1:{port}/api/v1/sites", timeout=10)
        assert r.status_code == 200 and r.json()["data"] == []
        proc.terminate()
        assert proc.wait(30) == 0
