"""``netmon import netbox``: NetBox 4 API objects (tests/netbox/fixtures, 41 sites and 246
devices, served and paged by tests/netbox/server.py) merged like a CSV register: dry-run diff,
status and tag decide what is imported, problems per NetBox object, idempotent, exit 78."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from netmon.cli import main
from netmon.config import EX_CONFIG
from netmon.inventory import load_inventory
from tests.netbox.server import NetBox

TOKEN = "0123456789abcdef0123456789abcdef01234567"
EMPTY = "state: Jharkhand\nsites: []\n"


@pytest.fixture
def netbox() -> Iterator[NetBox]:
    with NetBox(TOKEN) as server:
        yield server


def run(capsys: pytest.CaptureFixture[str], netbox: NetBox, tmp_path: Path,
        *extra: str) -> tuple[int, str, str]:  # fmt: skip
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    code = main(["import", "netbox", "--url", netbox.url, "--token-file", str(token),
                 "--into", str(tmp_path / "inv.yaml"), *extra])  # fmt: skip
    out, err = capsys.readouterr()
    return code, out, err


def test_a_dry_run_shows_the_diff_and_writes_nothing_then_the_import_is_idempotent(
    netbox: NetBox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    into = tmp_path / "inv.yaml"
    into.write_text(EMPTY)
    code, out, err = run(capsys, netbox, tmp_path, "--dry-run")
    assert code == 0, err
    lines = out.splitlines()
    assert "added   site chc-block01: name='CHC Block01', district='Khunti', type='chc', " \
           "hfr_id='IN2000000001'" in lines  # fmt: skip
    assert (
        "added   device chc-block01/router-1: role='router', address='127.201.1.2', parent='wan-1'"
    ) in lines
    assert sum(line.startswith("note: netbox:dcim/devices/") for line in lines) == 6  # planned site
    assert f"{into}: 40 sites added, 239 devices added" in lines  # one AP is offline
    assert into.read_text() == EMPTY
    assert netbox.requests == 1 + 3  # 41 sites: one page of 100; 246 devices: three
    code, out, _ = run(capsys, netbox, tmp_path)
    assert code == 0 and f"wrote {into}" in out
    inv = load_inventory(into)
    assert len(inv.sites) == 40 and sum(len(s.devices) for s in inv.sites) == 239
    assert main(["check-config", str(into)]) == 0
    capsys.readouterr()
    code, out, _ = run(capsys, netbox, tmp_path)
    assert code == 0 and f"{into}: no changes" in out


def test_netbox_status_drives_removal_with_prune(
    netbox: NetBox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "inv.yaml").write_text(EMPTY)
    code, _, err = run(capsys, netbox, tmp_path)
    assert code == 0, err
    netbox.objects["dcim/devices"][5]["status"] = {
        "value": "decommissioning",
        "label": "Decommissioning",
    }
    netbox.objects["dcim/devices"][1]["primary_ip4"]["address"] = "127.201.1.99/24"
    code, out, err = run(capsys, netbox, tmp_path, "--prune", "--dry-run")
    assert code == 0, err
    assert "removed device chc-block01/ap-003" in out.splitlines()
    assert (
        "changed device chc-block01/router-1: address: '127.201.1.2' -> '127.201.1.99'"
        in out.splitlines()
    )
    netbox.objects["dcim/devices"][0]["status"] = {"value": "offline", "label": "Offline"}
    code, _, err = run(capsys, netbox, tmp_path, "--prune")  # wan-1 leaves; router-1 names it
    assert code == EX_CONFIG
    assert err.startswith(
        "netbox:dcim/devices/2: custom_fields.netmon_parent: no device named 'wan-1'"
    )


def test_bad_objects_are_reported_per_netbox_object_and_nothing_is_written(
    netbox: NetBox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "inv.yaml").write_text(EMPTY)
    netbox.objects["dcim/devices"][2]["name"] = "SW:01"
    netbox.objects["dcim/sites"][1]["custom_fields"]["hfr_id"] = "IN-12"
    netbox.objects["dcim/devices"][3]["role"]["slug"] = "patch-panel"
    code, out, err = run(capsys, netbox, tmp_path)
    assert code == EX_CONFIG and out == ""
    lines = err.splitlines()
    assert any(line.startswith("netbox:dcim/devices/3: name: ") for line in lines), err
    assert any(line.startswith("netbox:dcim/sites/2: custom_fields.hfr_id: not a Health Facility")
               for line in lines), err  # fmt: skip
    assert any(line.startswith("netbox:dcim/devices/4: role.slug: ") for line in lines), err
    assert (tmp_path / "inv.yaml").read_text() == EMPTY


def test_a_mapping_error_is_located_and_a_bad_token_is_one_line(
    netbox: NetBox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mapping = tmp_path / "map.yaml"
    mapping.write_text("sites:\n  statuses: [active]\n  district: {path: region.name, mapp: {}}\n")
    code, _, err = run(capsys, netbox, tmp_path, "--mapping", str(mapping))
    assert code == EX_CONFIG
    assert err.startswith(f"{mapping}:3: sites.district")
    netbox.token = "another"
    code, _, err = run(capsys, netbox, tmp_path)
    assert code == 1 and err.strip() == "netmon: NetBox dcim/sites: HTTP Error 403: Forbidden"
